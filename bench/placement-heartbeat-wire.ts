// bench/placement-heartbeat-wire.ts — the CPU of one batched Region heartbeat on each side of the wire, in process.
//
// Case `region-heartbeat-wire` (pnpm bench:placement --only heartbeat-wire):
// the frames a store's PlacementClient sends (256 stats-only heartbeats of
// random Regions each, the way regionHeartbeats builds them) are encoded,
// then decoded and dispatched by a PlacementCluster holding --regions
// Regions as the leader does (flushing every 50 frames), and the answers
// encoded and decoded back, for each wire: `maps` (regionHeartbeats, one
// msgpack map per heartbeat, the previous wire) and `packed`
// (regionHeartbeatsPacked, packed-heartbeat.ts), alternating in one
// sitting. Reported per heartbeat: the client's CPU (encode the request,
// decode the answer) and the server's (decode, dispatch, encode the answer).
// No sockets or Raft: what the wire format itself costs, with less of the
// noise a shared machine adds to the process benchmark.
import { decode, encode } from '@flotilla/proto';
import { packHeartbeat, packable, type RegionHeartbeat } from '@flotilla/placement';
import type { PlacementCluster } from '@flotilla/placement/internal';

export interface WireRun {
  wire: 'maps' | 'packed';
  regions: number;
  heartbeats: number;
  batch: number;
  /** client_cpu_us_per_op: encode the request + decode the answer, per heartbeat (median of the runs). */
  client_cpu_us_per_op: number;
  /** server_cpu_us_per_op: decode the frame, dispatch, encode the answer, per heartbeat (median). */
  server_cpu_us_per_op: number;
  runs_client_us: number[];
  runs_server_us: number[];
  /** request_bytes_per_op: request frame bytes per heartbeat. */
  request_bytes_per_op: number;
}

const cpuUs = (): number => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** runWire: `reps` runs of `n` heartbeats per wire, alternating maps and packed. */
export function runWire(cluster: PlacementCluster, hbs: RegionHeartbeat[], n: number, reps: number, batch = 256): WireRun[] {
  let seed = 12345;
  const rand = (): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
  const wires = ['maps', 'packed'] as const;
  const out = new Map(wires.map((w) => [w, { client: [] as number[], server: [] as number[], bytes: 0 }]));
  for (let rep = 0; rep < reps; rep++) {
    for (const wire of wires) {
      // Which heartbeats go into which frame is drawn outside the timings.
      const frames: RegionHeartbeat[][] = [];
      for (let done = 0; done < n; done += batch) {
        const f: RegionHeartbeat[] = [];
        for (let i = 0; i < Math.min(batch, n - done); i++) f.push(hbs[Math.floor(rand() * hbs.length)]!);
        frames.push(f);
      }
      let client = 0;
      let server = 0;
      let bytes = 0;
      let id = 0;
      for (const f of frames) {
        let t = cpuUs();
        for (const hb of f) hb.approximateKeys++;
        const req =
          wire === 'maps'
            ? encode({ id: ++id, method: 'regionHeartbeats', params: { heartbeats: f } })
            : encode({ id: ++id, method: 'regionHeartbeatsPacked', params: { heartbeats: f.map((hb) => (packable(hb) ? packHeartbeat(hb) : hb)) } });
        client += cpuUs() - t;
        bytes += req.length;
        t = cpuUs();
        const msg = decode(req) as { id: number; method: string; params: unknown };
        const result = cluster.dispatch(msg.method, msg.params);
        const answer = encode({ id: msg.id, ok: true, result });
        if (id % 50 === 0) cluster.flush();
        server += cpuUs() - t;
        t = cpuUs();
        const got = decode(answer) as { result: { results: unknown[] } };
        if (got.result.results.length !== f.length) throw new Error(`answer has ${got.result.results.length} results for ${f.length} heartbeats`);
        client += cpuUs() - t;
      }
      const o = out.get(wire)!;
      o.client.push(+(client / n).toFixed(2));
      o.server.push(+(server / n).toFixed(2));
      o.bytes = Math.round(bytes / n);
    }
  }
  return wires.map((wire) => {
    const o = out.get(wire)!;
    return { wire, regions: hbs.length, heartbeats: n, batch, client_cpu_us_per_op: median(o.client), server_cpu_us_per_op: median(o.server), runs_client_us: o.client, runs_server_us: o.server, request_bytes_per_op: o.bytes };
  });
}
