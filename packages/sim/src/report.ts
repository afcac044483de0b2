// What a run records (the history, the fault log, failures, counters) and
// how it is reported: the per-seed result, the replay digest and the end
// state of the cluster printed with a failure.
import { createHash } from 'node:crypto';
import type { CheckResult, KvOperation } from './linearizability';
import type { SimCluster } from './cluster';
import { virtualNow } from './clock';
import { text } from './keys';

export interface SimStats {
  ops: number;
  acknowledged: number;
  unknown: number;
  failedReads: number;
  scans: number;
  finalReads: number;
  faults: Record<string, number>;
  regionsAtEnd: number;
  virtualMs: number;
  realMs: number;
  searchSteps: number;
  /** idsIssued: distinct IDs placement handed out (the ID ledger's size). */
  idsIssued?: number;
  /** tsoAnswers / tsoFailed: getTimestamps answered and failed (placements: 3). */
  tsoAnswers?: number;
  tsoFailed?: number;
  /** placementLeaders: distinct leaderships the routing checker saw (placements: 3). */
  placementLeaders?: number;
}

export interface SimResult {
  seed: number;
  ok: boolean;
  failures: string[];
  /** verdict of the linearizability check ('unknown' = a key's search ran out of budget). */
  linearizability: CheckResult['verdict'];
  stats: SimStats;
  /** digest hashes the history and the fault log: equal seeds must give equal digests. */
  digest: string;
  history: KvOperation[];
  faultLog: string[];
}

/**
 * Recorder is one run's record. Everything the digest covers goes through
 * it: the history (with one global event sequence as the checker's
 * real-time order) and the fault log (virtual ms, kind, detail).
 */
export class Recorder {
  readonly history: KvOperation[] = [];
  readonly faultLog: string[] = [];
  readonly failures: string[] = [];
  readonly stats: SimStats = { ops: 0, acknowledged: 0, unknown: 0, failedReads: 0, scans: 0, finalReads: 0, faults: {}, regionsAtEnd: 0, virtualMs: 0, realMs: 0, searchSteps: 0 };
  private eventSeq = 0;

  /** nextEvent numbers invocations and returns in the exact order they happen (virtual ms are too coarse). */
  nextEvent(): number {
    return ++this.eventSeq;
  }

  /** fault counts one fault of kind in the stats and logs it. */
  fault(kind: string, detail: string): void {
    this.stats.faults[kind] = (this.stats.faults[kind] ?? 0) + 1;
    this.note(`${kind} ${detail}`);
  }

  /** note logs an event that is not counted as a fault (an admin request's failure, a new store's id). */
  note(line: string): void {
    this.faultLog.push(`${virtualNow()} ${line}`);
  }

  fail(reason: string): void {
    this.failures.push(reason);
  }

  /** digest hashes the history and the fault log: a replay of the seed must give the same. */
  digest(): string {
    return createHash('sha256')
      .update(JSON.stringify(this.history, (_k, v) => (v === Infinity ? 'inf' : v)))
      .update(this.faultLog.join('\n'))
      .digest('hex')
      .slice(0, 16);
  }
}

const keyOrInfinity = (b: Uint8Array): string => (b.length === 0 ? '∞' : text(b));

/** describeCluster renders the end state for a failure report: placement's Regions and stores, then every peer's view. */
export function describeCluster(cluster: SimCluster): string {
  const lines = ['cluster state at the end:'];
  const g = cluster.group;
  if (g) for (const s of g.slots) lines.push(`  placement member ${s.name}: ${s.member ? JSON.stringify(s.member.health()) : 'down'}`);
  if (cluster.placementDown) lines.push('  placement: no leader serving');
  for (const info of cluster.regions()) {
    const r = info.region;
    const leader = info.leader ? `${info.leader.id}@${info.leader.storeId}` : '-';
    const down = info.downPeers.length ? ` down ${info.downPeers.map((d) => d.peer.id).join(',')}` : '';
    lines.push(`  placement: region ${r.id} [${keyOrInfinity(r.startKey)}, ${keyOrInfinity(r.endKey)}) epoch ${r.epoch.version}/${r.epoch.confVer} peers ${r.peers.map((p) => `${p.id}@${p.storeId}${p.role === 'voter' ? '' : 'L'}`).join(',')} leader ${leader}${down} operator ${JSON.stringify(cluster.placement.operators.get(r.id) ?? null)}`);
  }
  for (const st of cluster.placementDown ? [] : cluster.placement.allStores()) lines.push(`  placement: store ${st.id} ${st.state} regions ${st.regionCount} leaders ${st.leaderCount}`);
  for (const id of cluster.storeIds()) {
    const store = cluster.store(id);
    if (!store) {
      lines.push(`  store ${id}: down`);
      continue;
    }
    for (const p of store.inspect()) {
      const r = p.region;
      lines.push(
        `  store ${id}: region ${r.id} peer ${p.peerId} ${p.initialized ? '' : 'UNINIT '}[${keyOrInfinity(r.startKey)}, ${keyOrInfinity(r.endKey)}) epoch ${r.epoch.version}/${r.epoch.confVer} peers ${r.peers.map((x) => `${x.id}@${x.storeId}${x.role === 'voter' ? '' : 'L'}`).join(',')} ` +
          `role ${p.raftState} term ${p.term} lead ${p.leaderId} commit ${p.commitIndex} last ${p.lastIndex} applied ${p.appliedIndex}${p.hibernating ? ' hibernating' : ''}`,
      );
    }
  }
  return lines.join('\n');
}
