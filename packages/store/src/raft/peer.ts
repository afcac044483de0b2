import { RawNode, type ConfState, type Logger, type Storage } from '@flotilla/raft-core';
import type { Peer as PeerMeta, Region } from '@flotilla/proto';
import type { StoreConfig } from '../config';
import type { ApplyState, MergeState, RegionLocalState, StateMachine } from '../engines';
import type { PeerMsg } from '../router/message';
import type { Callback, Proposal, ReadWaiter } from './proposal';
import { PeerStorage, generateSnapshot } from './storage';
import { FlowCounter } from './flow';
import { WriteBatch } from './write-batch';

/**
 * Peer is one replica of one Region on this store: its RawNode, its
 * storage, its Region meta and apply state, and the client work waiting on
 * it. The store's poll loop drives it; it never does I/O on its own, and
 * nothing outside a poll round changes it (work arrives in `mailbox`).
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
  /** mergeWaiters are answered when this Region's merge completes or rolls back (bounded: operation/command/admin/merge.ts). */
  mergeWaiters: Callback[] = [];
  proposals: Proposal[] = [];
  /** writeBatch: client writes accepted this round, proposed as one entry at the end of the mailbox (operation/command/propose.ts). */
  readonly writeBatch = new WriteBatch();
  /** reads wait for their read index and apply (bounded by StoreConfig.maxPendingReadsPerPeer). */
  reads: ReadWaiter[] = [];
  /**
   * leaseTerm / leaseUntilMs: the leader lease for lease-based reads, kept
   * by the store in its own monotonic clock (not in raft ticks, which stop
   * when the process stalls). See operation/query.ts.
   */
  leaseTerm = 0;
  leaseUntilMs = 0;
  /** commitSeen: the highest commit index seen in a Ready (for the committed-entries metric). */
  commitSeen = 0;
  /** mailbox holds the work queued for the next poll round (router/message.ts). */
  mailbox: PeerMsg[] = [];
  /** leaderId is the raft ID of the leader as last seen (0 = unknown). */
  leaderId = 0;
  isLeader = false;
  /** hibernating peers are not ticked until something wakes them (operation/hibernate.ts keeps the store's set). */
  hibernating = false;
  /** hibernateNoticePending: the leader went quiet and must tell its followers at the end of the round. */
  hibernateNoticePending = false;
  idleTicks = 0;
  ticks = 0;
  /** splitInFlightVersion is the epoch version at which a split was asked for (0 = none). */
  splitInFlightVersion = 0;
  splitAskedAtMs = 0;
  /** splitCheckDirty: applied something since the last split check (only such Regions are checked). */
  splitCheckDirty = true;
  lastRegionHeartbeatMs = 0;
  /** leaderMissingTicks counts ticks since the last word from a leader (stale peer detection). */
  leaderMissingTicks = 0;
  staleCheckInFlight = false;
  /** operatorActive: placement's last heartbeat answer carried an operator step. */
  operatorActive = false;
  approximateSizeBytes = 0;
  approximateKeys = 0;
  /** flow counts client reads and writes since the last Region heartbeat (placement's hot Regions). */
  readonly flow = new FlowCounter();
  /** lastHeard remembers when each other peer was last heard from, in ms (for down peers). */
  lastHeard = new Map<number, number>();
  /**
   * peerCache remembers peers this peer has heard from or is adding but
   * that are not (yet) in its Region meta, so messages can be routed to
   * them. It is never persisted: the Region meta changes only by apply.
   */
  peerCache = new Map<number, PeerMeta>();

  constructor(region: Region, peerId: number, apply: ApplyState, confState: ConfState, initialized: boolean) {
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

  peerById(id: number): PeerMeta | undefined {
    return this.region.peers.find((p) => p.id === id) ?? this.peerCache.get(id);
  }

  leaderMeta(): PeerMeta | undefined {
    return this.leaderId === 0 ? undefined : this.peerById(this.leaderId);
  }

  /** start creates the RawNode over the given log storage. */
  start(cfg: StoreConfig, log: Storage, sm: StateMachine, random: () => number, logger: Logger | undefined): void {
    const storage = new PeerStorage(log, { confState: () => this.confState }, () => generateSnapshot(sm, this));
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
        // A store answers NotLeader with the leader's address (TiKV does the
        // same); raft never forwards a proposal, whose callback would then be
        // filed against an index that is not its entry's (propose.ts).
        disableProposalForwarding: true,
        // Raft always confirms reads with a heartbeat round (ReadIndex); the
        // store's lease-based mode keeps its own wall-clock lease on top.
        readOnlyOption: 'safe',
        random,
        ...(logger ? { logger } : {}),
      },
      storage,
    );
  }

  localState(): RegionLocalState {
    const state = this.pendingRemove ? 'tombstone' : this.mergeState ? 'merging' : 'normal';
    return this.mergeState ? { region: this.region, state, confState: this.confState, merge: this.mergeState } : { region: this.region, state, confState: this.confState };
  }

  addProposal(index: number, term: number, cb: Callback, nowMs: number): void {
    this.proposals.push({ index, term, cb, proposedAtMs: nowMs });
  }
}
