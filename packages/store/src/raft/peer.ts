import {
  RawNode,
  type ConfState,
  type Entry,
  type HardState,
  type Logger,
  type Message,
  type RaftState,
  type Snapshot,
  type Storage,
} from '@flotilla/raft-core';
import { encode, type Peer as PeerMeta, type Region } from '@flotilla/proto';
import type { StoreConfig } from '../config';
import type { ApplyState, MergeState, RegionLocalState, StateMachine } from '../engines';
import type { Callback, Proposal } from '../operation/command';

/** RAFT_INIT_LOG_INDEX / TERM: where a bootstrapped or split Region's log starts (TiKV uses 5). */
export const RAFT_INIT_LOG_INDEX = 5;
export const RAFT_INIT_LOG_TERM = 5;

/** ReadWaiter is a read waiting for its ReadIndex and then for apply to reach it. */
export interface ReadWaiter {
  ctx: string;
  /** index is set once raft returned the read index. */
  index: number;
  serve: () => void;
  fail: (leader?: PeerMeta) => void;
  startedTick: number;
  /** issuedAtMs: the store's clock when the ReadIndex was asked for; a confirmed round renews the lease from it. */
  issuedAtMs: number;
}

/** MailboxItem is one unit of work for a peer, consumed by the poll loop. */
export type MailboxItem =
  | { kind: 'raft'; msg: Message; fromPeer: PeerMeta }
  | { kind: 'snapshotData'; msg: Message; fromPeer: PeerMeta; data: Uint8Array };

/** SnapshotData is what a Region snapshot carries: the Region meta and its key range. */
export interface SnapshotPayload {
  region: Region;
  confState: ConfState;
  /** merge: the Region's prepared merge, if it is merging (replicas must agree on it). */
  merge?: MergeState;
  pairs: { key: Uint8Array; value: Uint8Array }[];
}

export function confStateFromRegion(region: Region): ConfState {
  const voters: number[] = [];
  const learners: number[] = [];
  for (const p of region.peers) (p.role === 'voter' ? voters : learners).push(p.id);
  return { voters, learners, votersOutgoing: [], learnersNext: [], autoLeave: false };
}

/**
 * PeerStorage is raft's Storage for one Region on this store: the log
 * engine's RegionLogStorage for the log, with two store-level overrides:
 * the ConfState comes from the KV engine's region state (written with the
 * apply that changed it), and snapshots are generated from the KV engine's
 * range at the applied index.
 */
export class PeerStorage implements Storage {
  constructor(
    private readonly log: Storage,
    private readonly peer: { confState(): ConfState; hardStateOverride?: HardState },
    private readonly snapshotFn: (requestIndex: number, to: number) => Snapshot,
  ) {}
  initialState(): RaftState {
    const s = this.log.initialState();
    return { hardState: this.peer.hardStateOverride ?? s.hardState, confState: this.peer.confState() };
  }
  entries(lo: number, hi: number, maxSize?: number): Entry[] {
    return this.log.entries(lo, hi, maxSize);
  }
  term(index: number): number {
    return this.log.term(index);
  }
  firstIndex(): number {
    return this.log.firstIndex();
  }
  lastIndex(): number {
    return this.log.lastIndex();
  }
  snapshot(requestIndex: number, to: number): Snapshot {
    return this.snapshotFn(requestIndex, to);
  }
}

/**
 * Peer is one replica of one Region on this store: its RawNode, its
 * storage, its Region meta and apply state, and the client work waiting on
 * it. The store's poll loop drives it; it never does I/O on its own.
 */
export class Peer {
  region: Region;
  readonly peerId: number;
  raw!: RawNode;
  apply: ApplyState;
  confState: ConfState;
  /** initialized is false for a peer created by a message, until a snapshot gives it data. */
  initialized: boolean;
  pendingRemove = false;
  /** mergeState is set while this Region is being merged away (source of a merge). */
  mergeState: MergeState | undefined;
  /** mergeStartedMs / commitMergeInFlight drive the source leader's merge progress (not persisted). */
  mergeStartedMs = 0;
  commitMergeInFlight = false;
  /** mergeWaiters are answered when this Region's merge completes or rolls back. */
  mergeWaiters: Callback[] = [];
  proposals: Proposal[] = [];
  reads: ReadWaiter[] = [];
  /**
   * leaseTerm / leaseUntilMs: the leader lease for lease-based reads, kept
   * by the store in its own monotonic clock (not in raft ticks, which stop
   * when the process stalls). See Store.startRead.
   */
  leaseTerm = 0;
  leaseUntilMs = 0;
  /** commitSeen: the highest commit index seen in a Ready (for the committed-entries metric). */
  commitSeen = 0;
  mailbox: MailboxItem[] = [];
  /** leaderId is the raft ID of the leader as last seen (0 = unknown). */
  leaderId = 0;
  isLeader = false;
  term = 0;
  /** hibernating peers are not ticked until something wakes them. */
  hibernating = false;
  /** hibernateNoticePending: the leader went quiet and must tell its followers at the end of the round. */
  hibernateNoticePending = false;
  idleTicks = 0;
  ticks = 0;
  /** lastCompactProposeMs throttles CompactLog proposals. */
  lastCompactMs = 0;
  /** splitInFlightVersion is the epoch version at which a split was asked for (0 = none). */
  splitInFlightVersion = 0;
  splitAskedAtMs = 0;
  /** splitCheckDirty: applied something since the last split check (only such Regions are checked). */
  splitCheckDirty = true;
  lastRegionHeartbeatMs = 0;
  /** leaderMissingTicks counts ticks without a known leader (stale peer detection). */
  leaderMissingTicks = 0;
  staleCheckInFlight = false;
  /** operatorActive: placement's last heartbeat answer carried an operator step. */
  operatorActive = false;
  approximateSizeBytes = 0;
  approximateKeys = 0;
  /** peerHeartbeatsMs remembers when each follower was last heard from (for down peers). */
  lastHeard = new Map<number, number>();
  /** pendingSnapshotTo avoids streaming the same snapshot twice concurrently. */
  sendingSnapshotTo = new Set<number>();

  constructor(
    region: Region,
    peerId: number,
    apply: ApplyState,
    confState: ConfState,
    initialized: boolean,
  ) {
    this.region = region;
    this.peerId = peerId;
    this.apply = apply;
    this.confState = confState;
    this.initialized = initialized;
  }

  get regionId(): number {
    return this.region.id;
  }

  /** meta is this peer's own Peer record (role from the current Region). */
  meta(): PeerMeta {
    return this.region.peers.find((p) => p.id === this.peerId) ?? { id: this.peerId, storeId: 0, role: 'voter' };
  }

  /**
   * peerCache remembers peers this peer has heard from or is adding but
   * that are not (yet) in its Region meta, so messages can be routed to
   * them. It is never persisted: the Region meta changes only by apply.
   */
  peerCache = new Map<number, PeerMeta>();

  peerById(id: number): PeerMeta | undefined {
    return this.region.peers.find((p) => p.id === id) ?? this.peerCache.get(id);
  }

  leaderMeta(): PeerMeta | undefined {
    return this.leaderId === 0 ? undefined : this.peerById(this.leaderId);
  }

  /** start creates the RawNode over the given log storage. */
  start(cfg: StoreConfig, log: Storage, sm: StateMachine, random: () => number, logger: Logger | undefined): void {
    const storage = new PeerStorage(log, { confState: () => this.confState }, (requestIndex) => this.generateSnapshot(sm, requestIndex));
    this.raw = new RawNode(
      {
        id: this.peerId,
        electionTick: cfg.electionTicks,
        heartbeatTick: cfg.heartbeatTicks,
        applied: this.apply.appliedIndex,
        maxSizePerMsg: cfg.maxSizePerMsgBytes,
        maxInflightMsgs: cfg.maxInflightMsgs,
        checkQuorum: true,
        preVote: true,
        // Raft always confirms reads with a heartbeat round (ReadIndex); the
        // store's lease-based mode keeps its own wall-clock lease on top.
        readOnlyOption: 'safe',
        random,
        ...(logger ? { logger } : {}),
      },
      storage,
    );
  }

  /**
   * generateSnapshot reads the Region's range at the applied index. It runs
   * synchronously inside raft's call, between poll rounds' applies, so the
   * data and the (index, term) it is labelled with always agree.
   */
  generateSnapshot(sm: StateMachine, _requestIndex: number): Snapshot {
    const pairs = sm.snapshotRange(this.region.startKey, this.region.endKey);
    const payload: SnapshotPayload = { region: this.region, confState: this.confState, pairs };
    if (this.mergeState) payload.merge = this.mergeState;
    return {
      data: encode(payload),
      metadata: { index: this.apply.appliedIndex, term: this.apply.appliedTerm, confState: this.confState },
    };
  }

  localState(): RegionLocalState {
    const state = this.pendingRemove ? 'tombstone' : this.mergeState ? 'merging' : 'normal';
    return this.mergeState ? { region: this.region, state, confState: this.confState, merge: this.mergeState } : { region: this.region, state, confState: this.confState };
  }

  addProposal(index: number, term: number, cb: Callback, nowMs: number): void {
    this.proposals.push({ index, term, cb, proposedAtMs: nowMs });
  }
}
