/**
 * DropReason says why the store dropped a raft message: addressed to another
 * store, to an older peer of a Region than ours, to a Region whose peer may
 * not be created here (tombstone, overlap, not a first message), a full
 * mailbox, or an outgoing message to a peer this one does not know.
 */
export type DropReason = 'wrong-store' | 'stale-peer' | 'no-peer' | 'mailbox-full' | 'unknown-target-peer';

/**
 * StoreMetrics holds the store's counters, gauges and latency histograms
 * and renders them in the Prometheus text format. Hand-rolled: the set is
 * small and fixed, and the hot path only bumps numbers.
 */
export class StoreMetrics {
  proposals = 0;
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
  readonly writeLatency = new Histogram('flotilla_log_write_seconds', 'Log engine write (with fsync) latency');
  readonly applyLatency = new Histogram('flotilla_apply_write_seconds', 'KV apply transaction latency');
  readonly pollLatency = new Histogram('flotilla_poll_round_seconds', 'Poll round duration');
  readonly commandLatency = new Histogram('flotilla_command_seconds', 'Proposal to apply latency');

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

  render(): string {
    const lines: string[] = [];
    const counter = (name: string, help: string, v: number) => lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name} ${v}`);
    const gauge = (name: string, help: string, v: number) => lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, `${name} ${v}`);
    counter('flotilla_proposals_total', 'Commands proposed', this.proposals);
    counter('flotilla_reads_total', 'Linearizable reads started', this.reads);
    counter('flotilla_lease_reads_total', 'Reads served on the leader lease (no ReadIndex round)', this.leaseReads);
    counter('flotilla_entries_committed_total', 'Entries committed by the Regions this store leads', this.entriesCommitted);
    counter('flotilla_entries_applied_total', 'Committed entries applied', this.entriesApplied);
    counter('flotilla_poll_rounds_total', 'Poll rounds', this.pollRounds);
    counter('flotilla_tick_rounds_total', 'Base ticks', this.tickRounds);
    counter('flotilla_peer_ticks_total', 'Raft ticks delivered to peers', this.peerTicks);
    counter('flotilla_fsyncs_total', 'Log engine writes (one fsync each)', this.logWrites);
    counter('flotilla_kv_writes_total', 'KV apply transactions', this.kvWrites);
    counter('flotilla_kv_syncs_total', 'KV engine syncs (before a log write that compacts, installs a snapshot or removes a Region)', this.kvSyncs);
    counter('flotilla_raft_messages_sent_total', 'Raft messages sent', this.messagesSent);
    counter('flotilla_raft_messages_received_total', 'Raft messages received', this.messagesReceived);
    counter('flotilla_raft_messages_dropped_total', 'Raft messages dropped by the store', this.messagesDropped);
    lines.push('# HELP flotilla_raft_messages_dropped_by_reason_total Raft messages dropped by the store, by reason', '# TYPE flotilla_raft_messages_dropped_by_reason_total counter');
    for (const [reason, n] of this.droppedByReason) lines.push(`flotilla_raft_messages_dropped_by_reason_total{reason="${reason}"} ${n}`);
    counter('flotilla_snapshots_sent_total', 'Snapshots sent', this.snapshotsSent);
    counter('flotilla_snapshots_applied_total', 'Snapshots applied', this.snapshotsApplied);
    counter('flotilla_client_requests_total', 'Client requests', this.clientRequests);
    counter('flotilla_client_errors_total', 'Client requests answered with an error', this.clientErrors);
    gauge('flotilla_regions', 'Region peers on this store', this.regions);
    gauge('flotilla_leaders', 'Region leaders on this store', this.leaders);
    gauge('flotilla_hibernated_regions', 'Hibernated Region peers', this.hibernated);
    for (const h of [this.writeLatency, this.applyLatency, this.pollLatency, this.commandLatency]) h.render(lines);
    return lines.join('\n') + '\n';
  }
}

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export class Histogram {
  private readonly counts = new Array<number>(BUCKETS.length + 1).fill(0);
  private sum = 0;
  private n = 0;
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  observe(v: number): void {
    let i = 0;
    while (i < BUCKETS.length && v > BUCKETS[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.n++;
  }
  render(lines: string[]): void {
    lines.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`);
    let acc = 0;
    BUCKETS.forEach((b, i) => {
      acc += this.counts[i]!;
      lines.push(`${this.name}_bucket{le="${b}"} ${acc}`);
    });
    lines.push(`${this.name}_bucket{le="+Inf"} ${this.n}`, `${this.name}_sum ${this.sum}`, `${this.name}_count ${this.n}`);
  }
}
