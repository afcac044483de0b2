import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * DropReason says why the store dropped a raft message: addressed to another
 * store, to an older peer of a Region than ours, to a Region whose peer may
 * not be created here (tombstone, overlap, not a first message), a full
 * mailbox, or an outgoing message to a peer this one does not know.
 */
export type DropReason = 'wrong-store' | 'stale-peer' | 'no-peer' | 'mailbox-full' | 'unknown-target-peer';

/** LATENCY_BUCKETS: seconds, from half a millisecond (an fsync on a fast disk) to 2.5 s (a stalled one). */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** COUNTERS: each plain field of StoreMetrics that is a counter, with its metric name and help (the names dashboards and tests read). */
const COUNTERS = [
  ['proposals', 'flotilla_proposals_total', 'Commands proposed'],
  ['proposalBatches', 'flotilla_proposal_batches_total', 'Raft entries that batch several client writes'],
  ['batchedCommands', 'flotilla_batched_commands_total', 'Client writes proposed inside a batch entry'],
  ['reads', 'flotilla_reads_total', 'Linearizable reads started'],
  ['leaseReads', 'flotilla_lease_reads_total', 'Reads served on the leader lease (no ReadIndex round)'],
  ['entriesCommitted', 'flotilla_entries_committed_total', 'Entries committed by the Regions this store leads'],
  ['entriesApplied', 'flotilla_entries_applied_total', 'Committed entries applied'],
  ['pollRounds', 'flotilla_poll_rounds_total', 'Poll rounds'],
  ['tickRounds', 'flotilla_tick_rounds_total', 'Base ticks'],
  ['peerTicks', 'flotilla_peer_ticks_total', 'Raft ticks delivered to peers'],
  ['logWrites', 'flotilla_fsyncs_total', 'Log engine writes (one fsync each)'],
  ['kvWrites', 'flotilla_kv_writes_total', 'KV apply transactions'],
  ['kvSyncs', 'flotilla_kv_syncs_total', 'KV engine syncs (before a log write that compacts, installs a snapshot or removes a Region)'],
  ['messagesSent', 'flotilla_raft_messages_sent_total', 'Raft messages sent'],
  ['messagesReceived', 'flotilla_raft_messages_received_total', 'Raft messages received'],
  ['messagesDropped', 'flotilla_raft_messages_dropped_total', 'Raft messages dropped by the store'],
  ['snapshotsSent', 'flotilla_snapshots_sent_total', 'Snapshots sent'],
  ['snapshotsApplied', 'flotilla_snapshots_applied_total', 'Snapshots applied'],
  ['clientRequests', 'flotilla_client_requests_total', 'Client requests'],
  ['clientErrors', 'flotilla_client_errors_total', 'Client requests answered with an error'],
  ['loadSplits', 'flotilla_load_splits_total', 'Splits asked for by load (QPS or bytes), not size'],
] as const;

type CounterField = (typeof COUNTERS)[number][0];

/**
 * StoreMetrics holds the store's counters, gauges and latency histograms
 * and serves them in the Prometheus text format through prom-client (one
 * registry per store, so stores sharing a process keep theirs apart). The
 * hot path only bumps plain numbers: counters and gauges are read from
 * them when scraped (prom-client's collect), and only the latency
 * histograms are prom-client objects observed directly.
 */
export class StoreMetrics implements Record<CounterField, number> {
  proposals = 0;
  /** loadSplits: splits asked for because a Region stayed over loadSplitQps / loadSplitBytesPerSec (operation/load-split-driver.ts). */
  loadSplits = 0;
  /** proposalBatches / batchedCommands: entries carrying several client writes, and the writes they carried. */
  proposalBatches = 0;
  batchedCommands = 0;
  reads = 0;
  /** leaseReads: reads served on the leader lease without a ReadIndex round. */
  leaseReads = 0;
  entriesApplied = 0;
  /** entriesCommitted: entries this store's leaders saw commit (their commit index advancing). */
  entriesCommitted = 0;
  pollRounds = 0;
  tickRounds = 0;
  peerTicks = 0;
  logWrites = 0;
  kvWrites = 0;
  kvSyncs = 0;
  messagesSent = 0;
  messagesReceived = 0;
  messagesDropped = 0;
  /** droppedByReason splits messagesDropped by why (router/router.ts and operation/send.ts name the reasons). */
  readonly droppedByReason = new Map<DropReason, number>();
  snapshotsSent = 0;
  snapshotsApplied = 0;
  regions = 0;
  leaders = 0;
  hibernated = 0;
  clientRequests = 0;
  clientErrors = 0;
  readonly registry = new Registry();
  readonly writeLatency: Histogram;
  readonly applyLatency: Histogram;
  readonly pollLatency: Histogram;
  readonly commandLatency: Histogram;

  constructor() {
    const registers = [this.registry];
    const histogram = (name: string, help: string): Histogram => new Histogram({ name, help, buckets: LATENCY_BUCKETS, registers });
    this.writeLatency = histogram('flotilla_log_write_seconds', 'Log engine write (with fsync) latency');
    this.applyLatency = histogram('flotilla_apply_write_seconds', 'KV apply transaction latency');
    this.pollLatency = histogram('flotilla_poll_round_seconds', 'Poll round duration');
    this.commandLatency = histogram('flotilla_command_seconds', 'Proposal to apply latency');
    // A collect callback is called with the metric as `this`; `self` is the store's numbers.
    const self = this;
    for (const [field, name, help] of COUNTERS) {
      new Counter({
        name,
        help,
        registers,
        collect() {
          // A counter only goes up: reset and inc to the current total (prom-client has no set for counters).
          this.reset();
          this.inc(self[field]);
        },
      });
    }
    this.labelled(registers);
  }

  private labelled(registers: Registry[]): void {
    const self = this;
    new Counter({
      name: 'flotilla_raft_messages_dropped_by_reason_total',
      help: 'Raft messages dropped by the store, by reason',
      labelNames: ['reason'],
      registers,
      collect() {
        this.reset();
        for (const [reason, n] of self.droppedByReason) this.inc({ reason }, n);
      },
    });
    const gauge = (name: string, help: string, read: () => number): void =>
      void new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    gauge('flotilla_regions', 'Region peers on this store', () => self.regions);
    gauge('flotilla_leaders', 'Region leaders on this store', () => self.leaders);
    gauge('flotilla_hibernated_regions', 'Hibernated Region peers', () => self.hibernated);
    new Gauge({
      name: 'flotilla_region_peers',
      help: "Region peers on this store by role (leader, follower: every peer that does not lead); they sum to flotilla_regions",
      labelNames: ['role'],
      registers,
      collect() {
        this.set({ role: 'leader' }, self.leaders);
        this.set({ role: 'follower' }, Math.max(0, self.regions - self.leaders));
      },
    });
  }

  /** dropMessage counts one raft message the store dropped, by reason. */
  dropMessage(reason: DropReason): void {
    this.messagesDropped++;
    this.droppedByReason.set(reason, (this.droppedByReason.get(reason) ?? 0) + 1);
  }

  observeWrite(ms: number): void {
    this.writeLatency.observe(ms / 1000);
  }
  observeApply(ms: number): void {
    this.applyLatency.observe(ms / 1000);
  }
  observePoll(ms: number): void {
    this.pollLatency.observe(ms / 1000);
  }
  observeResponses(rs: { at: number }[], now: number): void {
    for (const r of rs) this.commandLatency.observe((now - r.at) / 1000);
  }

  /** contentType: what /metrics answers with (the Prometheus text format prom-client writes). */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** render is the Prometheus text of every metric (prom-client collects the numbers at this moment). */
  render(): Promise<string> {
    return this.registry.metrics();
  }
}
