import { Counter, Gauge, Registry } from 'prom-client';
import type { PlacementCluster } from '../cluster';

/** MetricsSource is what the metrics read at scrape time. */
export interface MetricsSource {
  role: () => string;
  term: () => number;
  appliedIndex: () => number;
  commitIndex: () => number;
  cluster: () => PlacementCluster | undefined;
}

/**
 * MemberMetrics is one placement member's Prometheus metrics (prom-client,
 * a registry per member so several members can share a process). Gauges
 * are read from the member when scraped; counters count requests as they
 * are dispatched. `GET /metrics` on every member serves them.
 */
export class MemberMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'method'>;
  private readonly timestamps: Counter;
  private readonly notLeader: Counter;
  private readonly regionHeartbeats: Counter;

  constructor(src: MetricsSource) {
    const r = this.registry;
    this.requests = new Counter({ name: 'placement_requests_total', help: 'API requests dispatched, by method (region and store heartbeats, getTimestamps, ...)', labelNames: ['method'], registers: [r] });
    this.timestamps = new Counter({ name: 'placement_tso_timestamps_total', help: 'timestamps asked of this member (the sum of getTimestamps counts)', registers: [r] });
    this.regionHeartbeats = new Counter({ name: 'placement_region_heartbeats_total', help: 'Region heartbeats received (one per Region; a regionHeartbeats batch counts each)', registers: [r] });
    this.notLeader = new Counter({ name: 'placement_not_leader_total', help: 'requests answered NotLeader (this member did not lead)', registers: [r] });
    const roles = ['leader', 'follower', 'candidate', 'precandidate', 'removed', 'starting'];
    new Gauge({
      name: 'placement_raft_role',
      help: "1 for this member's current role in the placement Raft group",
      labelNames: ['role'],
      registers: [r],
      collect() {
        const now = src.role();
        for (const role of roles) this.set({ role }, role === now ? 1 : 0);
      },
    });
    gauge(r, 'placement_raft_term', 'current Raft term', src.term);
    gauge(r, 'placement_raft_applied_index', 'last placement log entry applied to this member', src.appliedIndex);
    gauge(r, 'placement_raft_commit_index', 'last placement log entry known committed', src.commitIndex);
    gauge(r, 'placement_regions', 'Regions in the routing table (leader only)', () => src.cluster()?.regionCount() ?? 0);
    this.clusterGauges(src);
  }

  private clusterGauges(src: MetricsSource): void {
    const r = this.registry;
    new Gauge({
      name: 'placement_stores',
      help: 'stores by state (leader only)',
      labelNames: ['state'],
      registers: [r],
      collect() {
        const counts: Record<string, number> = { up: 0, disconnected: 0, down: 0, tombstone: 0 };
        for (const s of src.cluster()?.allStores() ?? []) counts[s.state] = (counts[s.state] ?? 0) + 1;
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'placement_operators',
      help: 'operators in flight by kind (leader only)',
      labelNames: ['kind'],
      registers: [r],
      collect() {
        this.reset();
        for (const op of src.cluster()?.operators.all() ?? []) this.inc({ kind: op.kind });
      },
    });
  }

  /** onRequest counts one validated request (params as parsed: the timestamp and heartbeat counts come from them). */
  onRequest(method: string, params: unknown): void {
    this.requests.inc({ method });
    if (method === 'getTimestamps') this.timestamps.inc((params as { count: number }).count);
    else if (method === 'regionHeartbeat') this.regionHeartbeats.inc();
    else if (method === 'regionHeartbeats' || method === 'regionHeartbeatsPacked') this.regionHeartbeats.inc((params as { heartbeats: unknown[] }).heartbeats.length);
  }

  onNotLeader(): void {
    this.notLeader.inc();
  }
}

function gauge(r: Registry, name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers: [r],
    collect() {
      this.set(read());
    },
  });
}
