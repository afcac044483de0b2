// Typed errors raft-core throws for expected failures. Broken invariants are
// not errors of this kind: they throw plain `Error`s via `assert` and must
// never be caught.

/** RaftError is the base of every expected, typed raft-core failure. */
export class RaftError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/**
 * ProposalDroppedError: a proposal was not appended (no leader known, a
 * leader transfer is in progress, forwarding is disabled, the uncommitted
 * size limit was hit, or this node was removed). The caller may retry.
 */
export class ProposalDroppedError extends RaftError {
  constructor(message = 'raft proposal dropped') {
    super(message);
  }
}

/** StepLocalMsgError: a local message (MsgHup, MsgBeat, ...) was given to RawNode.step. */
export class StepLocalMsgError extends RaftError {
  constructor(message = 'raft: cannot step raft local message') {
    super(message);
  }
}

/** StepPeerNotFoundError: a response came from a peer that is not in the configuration. */
export class StepPeerNotFoundError extends RaftError {
  constructor(message = 'raft: cannot step as peer not found') {
    super(message);
  }
}

/** ConfigError: the Config is invalid; `field` names the offending field. */
export class ConfigError extends RaftError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`invalid raft config: ${field}: ${message}`);
  }
}

/** ConfChangeError: a configuration change cannot be applied to the current configuration. */
export class ConfChangeError extends RaftError {}

/** RequestSnapshotDroppedError: requestSnapshot() cannot be served now (leader, no leader, snapshot pending, ...). */
export class RequestSnapshotDroppedError extends RaftError {}

/** ConfChangeDecodeError: Entry.data of a conf change entry is not a valid encoding. */
export class ConfChangeDecodeError extends RaftError {}

/** assert throws when a raft invariant is broken. Never catch what it throws. */
export function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(`raft invariant violated: ${message}`);
}
