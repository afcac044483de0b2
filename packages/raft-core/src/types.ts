// Plain data types of the Raft protocol, in the shape of etcd's raftpb /
// raft-rs eraftpb. They are plain objects (no classes) so that the wire codec
// in @flotilla/proto can encode them without adapters, and so that tests can
// build them literally. Indexes and terms are JavaScript numbers: exact up to
// 2^53, which at a million entries per second lasts 285 years.

/** MessageType enumerates every Raft message; local ones never cross the wire. */
export const MessageType = {
  /** MsgHup is local: start an election (campaign). */
  MsgHup: 0,
  /** MsgBeat is local: the leader should send heartbeats. */
  MsgBeat: 1,
  /** MsgProp carries proposals; a follower forwards it to the leader. May be dropped. */
  MsgProp: 2,
  /** MsgApp replicates entries. May be dropped: the leader retries on probe. */
  MsgApp: 3,
  /** MsgAppResp acknowledges or rejects a MsgApp. May be dropped. */
  MsgAppResp: 4,
  /** MsgRequestVote asks for a vote. May be dropped: the election times out. */
  MsgRequestVote: 5,
  /** MsgRequestVoteResponse grants or rejects a vote. May be dropped. */
  MsgRequestVoteResponse: 6,
  /** MsgSnapshot carries a snapshot. May be dropped; the host must report the outcome. */
  MsgSnapshot: 7,
  /** MsgHeartbeat keeps followers from campaigning. May be dropped. */
  MsgHeartbeat: 8,
  /** MsgHeartbeatResponse answers a heartbeat. May be dropped. */
  MsgHeartbeatResponse: 9,
  /** MsgUnreachable is local: the host reports a peer unreachable. */
  MsgUnreachable: 10,
  /** MsgSnapStatus is local: the host reports a snapshot's outcome. */
  MsgSnapStatus: 11,
  /** MsgCheckQuorum is local: the leader checks it still has a quorum. */
  MsgCheckQuorum: 12,
  /** MsgTransferLeader asks the leader to hand leadership to `from`. May be dropped. */
  MsgTransferLeader: 13,
  /** MsgTimeoutNow tells the transferee to campaign at once. May be dropped. */
  MsgTimeoutNow: 14,
  /** MsgReadIndex asks for a read index; forwarded by followers. May be dropped. */
  MsgReadIndex: 15,
  /** MsgReadIndexResp carries the read index back. May be dropped. */
  MsgReadIndexResp: 16,
  /** MsgRequestPreVote asks for a pre-vote (no term change). May be dropped. */
  MsgRequestPreVote: 17,
  /** MsgRequestPreVoteResponse answers a pre-vote. May be dropped. */
  MsgRequestPreVoteResponse: 18,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** EntryType tells how an Entry's data is to be read. */
export const EntryType = {
  EntryNormal: 0,
  EntryConfChange: 1,
  EntryConfChangeV2: 2,
} as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

/** Entry is one record of the replicated log. */
export interface Entry {
  entryType: EntryType;
  term: number;
  index: number;
  data: Uint8Array;
  /** context is opaque to raft; hosts may use it (e.g. proposal IDs). */
  context?: Uint8Array;
}

/** HardState is what must be durable before a Ready's messages are sent. */
export interface HardState {
  term: number;
  vote: number;
  commit: number;
}

/** ConfState is the membership of a group, possibly in joint consensus. */
export interface ConfState {
  voters: number[];
  learners: number[];
  /** votersOutgoing is non-empty only in a joint configuration. */
  votersOutgoing: number[];
  /** learnersNext are voters of the outgoing config that become learners on leave. */
  learnersNext: number[];
  autoLeave: boolean;
}

export interface SnapshotMetadata {
  confState: ConfState;
  index: number;
  term: number;
}

/** Snapshot is opaque state-machine data plus the log position it covers. */
export interface Snapshot {
  data: Uint8Array;
  metadata: SnapshotMetadata;
}

/** Message is the unit raft peers exchange. Unused fields are zero/empty. */
export interface Message {
  msgType: MessageType;
  to: number;
  from: number;
  term: number;
  /** logTerm is the term of the entry at `index` (MsgApp), or the candidate's last term (votes). */
  logTerm: number;
  index: number;
  entries: Entry[];
  commit: number;
  /** commitTerm is the term of the entry at `commit`, when known (0 otherwise). */
  commitTerm: number;
  snapshot?: Snapshot;
  /** requestSnapshot is set on MsgAppResp when a follower asks for a snapshot. */
  requestSnapshot: number;
  reject: boolean;
  rejectHint: number;
  context?: Uint8Array;
  /** deprecatedPriority mirrors raft-rs; priority is used for priority elections. */
  priority: number;
}

export const ConfChangeType = {
  AddNode: 0,
  RemoveNode: 1,
  AddLearnerNode: 2,
} as const;
export type ConfChangeType = (typeof ConfChangeType)[keyof typeof ConfChangeType];

/** ConfChange is the single-step (v1) membership change. */
export interface ConfChange {
  changeType: ConfChangeType;
  nodeId: number;
  context?: Uint8Array;
}

export interface ConfChangeSingle {
  changeType: ConfChangeType;
  nodeId: number;
}

export const ConfChangeTransition = {
  /** Auto: joint consensus when needed (more than one voter change), leaving it automatically. */
  Auto: 0,
  /** Implicit: always joint, left automatically. */
  Implicit: 1,
  /** Explicit: always joint, left only by an empty ConfChangeV2. */
  Explicit: 2,
} as const;
export type ConfChangeTransition = (typeof ConfChangeTransition)[keyof typeof ConfChangeTransition];

/** ConfChangeV2 changes several members at once, possibly via joint consensus. */
export interface ConfChangeV2 {
  transition: ConfChangeTransition;
  changes: ConfChangeSingle[];
  context?: Uint8Array;
}

/** newMessage builds a Message with every field at its zero value. */
export function newMessage(msgType: MessageType, init: Partial<Message> = {}): Message {
  return {
    msgType,
    to: 0,
    from: 0,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    commitTerm: 0,
    requestSnapshot: 0,
    reject: false,
    rejectHint: 0,
    priority: 0,
    ...init,
  };
}

export function emptyConfState(): ConfState {
  return { voters: [], learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false };
}

export function emptySnapshot(): Snapshot {
  return { data: new Uint8Array(0), metadata: { confState: emptyConfState(), index: 0, term: 0 } };
}

export function isLocalMessage(t: MessageType): boolean {
  return (
    t === MessageType.MsgHup ||
    t === MessageType.MsgBeat ||
    t === MessageType.MsgUnreachable ||
    t === MessageType.MsgSnapStatus ||
    t === MessageType.MsgCheckQuorum
  );
}

export function isResponseMessage(t: MessageType): boolean {
  return (
    t === MessageType.MsgAppResp ||
    t === MessageType.MsgRequestVoteResponse ||
    t === MessageType.MsgHeartbeatResponse ||
    t === MessageType.MsgUnreachable ||
    t === MessageType.MsgRequestPreVoteResponse
  );
}
