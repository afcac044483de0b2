// @flotilla/raft-core — the pure Raft consensus module (etcd raft / raft-rs design).
// Module map: see README.md in this package.
export * from './types';
export * from './storage';
export { MemoryStorage } from './memory-storage';
export { validateConfig, silentLogger } from './config';
export type { Config, Logger, ReadOnlyOption, ResolvedConfig } from './config';
export {
  RaftError,
  ProposalDroppedError,
  StepLocalMsgError,
  StepPeerNotFoundError,
  ConfigError,
  ConfChangeError,
  ConfChangeDecodeError,
  RequestSnapshotDroppedError,
} from './errors';
export { Unstable } from './log-unstable';
export { RaftLog } from './log';
export { Inflights } from './tracker/inflights';
export { Progress, ProgressState } from './tracker/progress';
export { ProgressTracker } from './tracker/progress-tracker';
export type { TrackerConfig, ProgressMap } from './tracker/progress-tracker';
export { MajorityConfig } from './quorum/majority';
export { JointConfig } from './quorum/joint';
export { VoteResult } from './quorum/types';
export { Changer } from './confchange/changer';
export { restoreConfState } from './confchange/restore';
export { ReadOnly } from './read-only';
export type { ReadState } from './read-only';
export { Raft, StateRole, CAMPAIGN_TRANSFER, makeMessage } from './raft';
export type { SoftState, CampaignType } from './raft';
export { RawNode } from './raw-node';
export type { Ready, LightReady, SnapshotStatus } from './raw-node';
export { getStatus } from './status';
export type { Status, ProgressStatus } from './status';
export {
  encodeConfChange,
  decodeConfChange,
  encodeConfChangeV2,
  decodeConfChangeV2,
  encodeConfChangeEntry,
  decodeConfChangeEntry,
  confChangeAsV2,
  isConfChangeV2,
} from './confchange-codec';
export {
  limitSize,
  entrySize,
  payloadSize,
  newSeededRandom,
  describeMessage,
  describeEntry,
  describeEntries,
  describeHardState,
  describeConfState,
  describeSnapshot,
  describeConfChanges,
  messageTypeName,
  entryTypeName,
} from './util';
