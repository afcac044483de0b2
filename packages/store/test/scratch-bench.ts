import { utf8, type Region } from '@flotilla/proto';
import { RawStoreClient, startCluster, waitFor } from './helpers';

const c = await startCluster(3, { profile: 'demo', tickIntervalMs: 100, config: { regionMaxSizeBytes: 1e12, regionSplitSizeBytes: 1e12, regionMaxKeys: 1e12, regionSplitKeys: 1e12 } });
const first = [...c.stores[0]!.store.peers.keys()][0]!;
const lead = () => waitFor('leader', () => { for (const s of c.stores) { const p = s!.store.peers.get(first); if (p?.isLeader) return { s: s!, p }; } return undefined; });
let { s, p } = await lead();
await waitFor('3 voters', () => p.region.peers.filter((x) => x.role === 'voter').length === 3 && c.stores.every((st) => st!.store.peers.get(first)?.initialized), 30000);
({ s, p } = await lead());
const hdr = (r: Region) => ({ regionId: r.id, regionEpoch: r.epoch });
const conc = Number(process.argv[2] ?? 256);
const clients = Array.from({ length: 8 }, () => new RawStoreClient(s.address));
const value = utf8('v'.repeat(100));
let done = 0;
const t0 = Date.now();
const lat: number[] = [];
async function worker(w: number) {
  let i = 0;
  while (Date.now() - t0 < 5000) {
    const st = performance.now();
    const r = await clients[w % 8]!.call({ header: hdr(p.region), op: 'write', writes: [{ type: 'put', key: utf8(`k${w}-${i++}`), value }] });
    if (r.ok) { done++; lat.push(performance.now() - st); }
  }
}
await Promise.all(Array.from({ length: conc }, (_, w) => worker(w)));
lat.sort((a, b) => a - b);
console.log(JSON.stringify({ conc, ops_per_s: Math.round(done / ((Date.now() - t0) / 1000)), p50: lat[lat.length >> 1]?.toFixed(2), p99: lat[Math.floor(lat.length * 0.99)]?.toFixed(2) }));
for (const x of c.stores) console.log(x!.store.metrics.render().split("\n").filter((l) => /_(sum|count) |fsyncs_total |poll_rounds_total /.test(l)).join(" | "));
for (const cl of clients) cl.close();
await c.close();
process.exit(0);
