// bench/placement-tso.ts — the timestamp oracle from one client process.
//
// Case `tso`: C concurrent callers of PlacementClient.timestamp() (batched:
// one getTimestamps round trip in flight, every caller arriving meanwhile
// joins the next one) against `members` placement processes with fsync on,
// for a fixed time. Reports timestamps per second and the per-call latency
// (p50/p99, ms). Every timestamp is checked to be unique and, per caller,
// increasing.
import { PlacementClient } from '@flotilla/placement';
import { PlacementGroup } from './placement-members';

export interface TsoResult {
  members: number;
  concurrency: number;
  durationMs: number;
  ts_per_s: number;
  p50_ms: number;
  p99_ms: number;
  round_trips: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
}

/** measure runs `concurrency` callers for durationMs against an open client. */
async function measure(client: PlacementClient, concurrency: number, durationMs: number): Promise<{ count: number; lat: number[]; seconds: number }> {
  const lat: number[] = [];
  let count = 0;
  const t0 = performance.now();
  const end = t0 + durationMs;
  const caller = async (): Promise<void> => {
    let last = -1n;
    while (performance.now() < end) {
      const s = performance.now();
      const ts = await client.timestamp();
      lat.push(performance.now() - s);
      if (ts <= last) throw new Error(`timestamp went back: ${ts} after ${last}`);
      last = ts;
      count++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, caller));
  return { count, lat, seconds: (performance.now() - t0) / 1000 };
}

/** runTso starts `members` placement processes and measures each concurrency in turn. */
export async function runTso(members: number, concurrencies: number[], durationMs: number): Promise<TsoResult[]> {
  const group = await PlacementGroup.start(members);
  const client = new PlacementClient({ addresses: group.addresses, requestTimeoutMs: 30_000, maxPendingRequests: 65_536 });
  const out: TsoResult[] = [];
  try {
    await measure(client, 16, 500); // warm-up (connection, JIT, first window)
    for (const c of concurrencies) {
      const rt0 = client.tsoRoundTrips;
      const m = await measure(client, c, durationMs);
      m.lat.sort((a, b) => a - b);
      out.push({
        members,
        concurrency: c,
        durationMs,
        ts_per_s: Math.round(m.count / m.seconds),
        p50_ms: +percentile(m.lat, 0.5).toFixed(3),
        p99_ms: +percentile(m.lat, 0.99).toFixed(3),
        round_trips: client.tsoRoundTrips - rt0,
      });
    }
  } finally {
    client.close();
    await group.stop();
  }
  return out;
}
