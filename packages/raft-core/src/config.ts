import { ConfigError } from './errors';

/** Logger is the sink raft-core logs to; raft never formats a message unless the level is enabled. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** isDebugEnabled lets raft skip building debug messages; absent means false. */
  isDebugEnabled?(): boolean;
  /** isInfoEnabled lets raft skip building info messages; absent means true (unless silent). */
  isInfoEnabled?(): boolean;
}

/** ReadOnlyOption picks how ReadIndex requests are served. */
export type ReadOnlyOption = 'safe' | 'lease-based';

/** Config parameterizes one raft peer. See API.md for the defaults. */
export interface Config {
  /** id of this peer; never 0. */
  id: number;
  /** electionTick is the number of ticks without leader contact before a follower campaigns; > heartbeatTick. */
  electionTick: number;
  /** heartbeatTick is the number of ticks between leader heartbeats; > 0. */
  heartbeatTick: number;
  /** applied is the last applied index when restarting (default 0). */
  applied?: number;
  /** maxSizePerMsg limits the bytes of entries per MsgApp (default 1 MiB); 0 means one entry per message. */
  maxSizePerMsg?: number;
  /** maxCommittedSizePerReady limits the bytes of committed entries per Ready (default maxSizePerMsg). */
  maxCommittedSizePerReady?: number;
  /** maxInflightMsgs limits the in-flight MsgApps per follower in Replicate state; > 0. */
  maxInflightMsgs: number;
  /** maxInflightBytes limits the in-flight entry bytes per follower; 0 = unlimited. */
  maxInflightBytes?: number;
  /** maxUncommittedEntriesSize limits the leader's uncommitted payload bytes; 0 = unlimited. */
  maxUncommittedEntriesSize?: number;
  /** checkQuorum makes a leader step down when a quorum was not active for an election timeout. */
  checkQuorum?: boolean;
  /** preVote enables the pre-vote phase that avoids disrupting terms. */
  preVote?: boolean;
  /** readOnlyOption: 'safe' (heartbeat round) or 'lease-based' (requires checkQuorum). */
  readOnlyOption?: ReadOnlyOption;
  /** disableProposalForwarding makes followers drop proposals instead of forwarding them. */
  disableProposalForwarding?: boolean;
  /** priority for priority elections (raft-rs): a higher-priority voter refuses equal-log lower-priority candidates. */
  priority?: number;
  /** minElectionTick / maxElectionTick bound the randomized election timeout [min, max). */
  minElectionTick?: number;
  maxElectionTick?: number;
  /** skipBcastCommit: do not broadcast a commit advance with an immediate MsgApp. */
  skipBcastCommit?: boolean;
  /** random returns a number in [0,1); required, so runs are reproducible. */
  random: () => number;
  /** logger defaults to a silent logger. */
  logger?: Logger;
}

/** ResolvedConfig is a validated Config with every default filled in. */
export interface ResolvedConfig {
  id: number;
  electionTick: number;
  heartbeatTick: number;
  applied: number;
  maxSizePerMsg: number;
  maxCommittedSizePerReady: number;
  maxInflightMsgs: number;
  maxInflightBytes: number;
  maxUncommittedEntriesSize: number;
  checkQuorum: boolean;
  preVote: boolean;
  readOnlyOption: ReadOnlyOption;
  disableProposalForwarding: boolean;
  priority: number;
  minElectionTick: number;
  maxElectionTick: number;
  skipBcastCommit: boolean;
  random: () => number;
  logger: Logger;
}

const noop = (): void => {};
/** silentLogger drops everything; it is the default. */
export const silentLogger: Logger = {
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
  isDebugEnabled: () => false,
  isInfoEnabled: () => false,
};

const DEFAULT_MAX_SIZE_PER_MSG = 1024 * 1024;

function isNonNegInt(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

function checkInt(field: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new ConfigError(field, `must be an integer, got ${String(v)}`);
  if (v < min) throw new ConfigError(field, `must be >= ${min}, got ${v}`);
  return v;
}

/**
 * validateConfig checks a Config and fills in defaults. It throws a
 * ConfigError naming the first bad field, so misconfiguration fails loudly at
 * construction instead of as odd behaviour later.
 */
export function validateConfig(c: Config): ResolvedConfig {
  if (c === null || typeof c !== 'object') throw new ConfigError('config', 'must be an object');
  if (typeof c.id !== 'number' || !Number.isSafeInteger(c.id)) throw new ConfigError('id', `must be an integer, got ${String(c.id)}`);
  if (c.id === 0) throw new ConfigError('id', 'cannot use 0 (None) as id');
  if (c.id < 0) throw new ConfigError('id', `must be positive, got ${c.id}`);
  if (typeof c.heartbeatTick !== 'number' || !Number.isSafeInteger(c.heartbeatTick) || c.heartbeatTick <= 0) {
    throw new ConfigError('heartbeatTick', `must be greater than 0, got ${String(c.heartbeatTick)}`);
  }
  if (typeof c.electionTick !== 'number' || !Number.isSafeInteger(c.electionTick) || c.electionTick <= c.heartbeatTick) {
    throw new ConfigError('electionTick', `must be greater than heartbeatTick (${c.heartbeatTick}), got ${String(c.electionTick)}`);
  }
  if (typeof c.maxInflightMsgs !== 'number' || !Number.isSafeInteger(c.maxInflightMsgs) || c.maxInflightMsgs <= 0) {
    throw new ConfigError('maxInflightMsgs', `must be greater than 0, got ${String(c.maxInflightMsgs)}`);
  }
  if (typeof c.random !== 'function') throw new ConfigError('random', 'a seeded random source () => number is required');
  const applied = c.applied === undefined ? 0 : checkInt('applied', c.applied, 0);
  const maxSizePerMsg = c.maxSizePerMsg === undefined ? DEFAULT_MAX_SIZE_PER_MSG : checkInt('maxSizePerMsg', c.maxSizePerMsg, 0);
  const maxCommittedSizePerReady =
    c.maxCommittedSizePerReady === undefined ? maxSizePerMsg : checkInt('maxCommittedSizePerReady', c.maxCommittedSizePerReady, 0);
  const maxInflightBytes = c.maxInflightBytes === undefined ? 0 : checkInt('maxInflightBytes', c.maxInflightBytes, 0);
  if (maxInflightBytes > 0 && maxInflightBytes < maxSizePerMsg) {
    throw new ConfigError('maxInflightBytes', `must be >= maxSizePerMsg (${maxSizePerMsg}) or 0, got ${maxInflightBytes}`);
  }
  const maxUncommitted =
    c.maxUncommittedEntriesSize === undefined ? 0 : checkInt('maxUncommittedEntriesSize', c.maxUncommittedEntriesSize, 0);
  const readOnlyOption = c.readOnlyOption ?? 'safe';
  if (readOnlyOption !== 'safe' && readOnlyOption !== 'lease-based') {
    throw new ConfigError('readOnlyOption', `must be 'safe' or 'lease-based', got ${String(readOnlyOption)}`);
  }
  if (readOnlyOption === 'lease-based' && !c.checkQuorum) {
    throw new ConfigError('readOnlyOption', "'lease-based' requires checkQuorum to be enabled");
  }
  const minElectionTick = c.minElectionTick === undefined || c.minElectionTick === 0 ? c.electionTick : c.minElectionTick;
  const maxElectionTick = c.maxElectionTick === undefined || c.maxElectionTick === 0 ? 2 * c.electionTick : c.maxElectionTick;
  if (!isNonNegInt(minElectionTick) || minElectionTick < c.electionTick) {
    throw new ConfigError('minElectionTick', `must be >= electionTick (${c.electionTick}), got ${String(minElectionTick)}`);
  }
  if (!isNonNegInt(maxElectionTick) || maxElectionTick <= minElectionTick) {
    throw new ConfigError('maxElectionTick', `must be > minElectionTick (${minElectionTick}), got ${String(maxElectionTick)}`);
  }
  const priority = c.priority ?? 0;
  if (typeof priority !== 'number' || !Number.isFinite(priority)) throw new ConfigError('priority', `must be a finite number, got ${String(priority)}`);
  return {
    id: c.id,
    electionTick: c.electionTick,
    heartbeatTick: c.heartbeatTick,
    applied,
    maxSizePerMsg,
    maxCommittedSizePerReady,
    maxInflightMsgs: c.maxInflightMsgs,
    maxInflightBytes,
    maxUncommittedEntriesSize: maxUncommitted,
    checkQuorum: c.checkQuorum ?? false,
    preVote: c.preVote ?? false,
    readOnlyOption,
    disableProposalForwarding: c.disableProposalForwarding ?? false,
    priority,
    minElectionTick,
    maxElectionTick,
    skipBcastCommit: c.skipBcastCommit ?? false,
    random: c.random,
    logger: c.logger ?? silentLogger,
  };
}
