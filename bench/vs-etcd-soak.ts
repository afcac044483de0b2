// bench/vs-etcd-soak.ts — `pnpm bench:vs-etcd --soak`: Flotilla (placement +
// 3 stores, production profile) under YCSB A at 64 clients for N minutes
// (default 10), issue #19's soak target: throughput in the last minute
// >= 90 % of the first, no errors, store RSS flat after warm-up, raft.db <=
// 2x the live log bytes plus a fixed floor. One JSON line per minute, then a
// summary line; the live log bytes are read back from each store's raft.db
// after the cluster stops (the log engine holds the file exclusively while
// a store runs), and the file sizes are taken before that open.
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { entrySize, LogEngine } from '@flotilla/log-engine';
import { keyOf, load, progress, startFlotilla } from './vs-etcd-flotilla';
import { measure, percentile, rssBytes } from './vs-etcd-run';

const MB = 1024 * 1024;
const size = (f: string): number => (existsSync(f) ? statSync(f).size : 0);
const mb = (n: number): number => Number((n / MB).toFixed(1));

/** liveLogBytes opens a stopped store's raft.db and sums the entrySize of every entry still in a Region's log. */
async function liveLogBytes(file: string): Promise<number> {
  const engine = LogEngine.open({ path: file });
  try {
    let bytes = 0;
    for (const id of engine.regionIds()) {
      const last = engine.lastIndex(id);
      for (let lo = engine.firstIndex(id); lo <= last; lo += 4096) {
        for (const e of engine.entries(id, lo, Math.min(last + 1, lo + 4096))) bytes += entrySize(e);
      }
    }
    return bytes;
  } finally {
    await engine.close();
  }
}

export async function runSoak(minutes: number, loadedKeys: number, value: Buffer): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-vs-etcd-soak-'));
  progress(`soak: YCSB A at 64 clients for ${minutes} min; starting Flotilla in ${dir}`);
  const { cluster, client, kv, pids } = await startFlotilla(dir);
  const stores = cluster.stores;
  const perMinute: number[] = [];
  let errors = 0;
  try {
    await load(kv, loadedKeys, value);
    for (let minute = 1; minute <= minutes; minute++) {
      const m = await measure(64, minute === 1 ? 5000 : 0, 60_000, pids, async (r) => {
        const key = keyOf(Math.floor(r() * loadedKeys));
        if (r() < 0.5) {
          if ((await kv.get(key)) < 0) throw new Error('loaded key missing');
        } else await kv.put(key, value);
      });
      const opsPerS = Math.round(m.ops / m.seconds);
      perMinute.push(opsPerS);
      errors += m.errors;
      const row = {
        bench: 'vs-etcd', mode: 'soak', op: 'ycsb-a', concurrency: 64, minute, ops_per_s: opsPerS,
        p99_ms: Number(percentile(m.latenciesMs, 99).toFixed(2)), errors: m.errors,
        regions: (await client.regions()).length,
        store_rss_mb: stores.map((p) => mb(rssBytes(p.proc.pid ?? 0))),
        raft_db_mb: stores.map((p) => mb(size(join(p.dataDir, 'raft.db')))),
        raft_wal_mb: stores.map((p) => mb(size(join(p.dataDir, 'raft.db-wal')))),
        kv_db_mb: stores.map((p) => mb(size(join(p.dataDir, 'kv.db')))),
      };
      process.stdout.write(JSON.stringify(row) + '\n');
      progress(`minute ${minute}: ${opsPerS} ops/s, rss ${row.store_rss_mb.join('/')} MB, raft.db ${row.raft_db_mb.join('/')} MB (+wal ${row.raft_wal_mb.join('/')})`);
    }
  } finally {
    client.close();
    await cluster.stop();
  }
  const files = stores.map((p) => join(p.dataDir, 'raft.db'));
  const fileBytes = files.map((f) => size(f) + size(`${f}-wal`));
  const live: number[] = [];
  for (const f of files) live.push(await liveLogBytes(f));
  const first = perMinute[0] ?? 0;
  const last = perMinute[perMinute.length - 1] ?? 0;
  process.stdout.write(JSON.stringify({
    bench: 'vs-etcd', mode: 'soak-summary', minutes, first_minute_ops_per_s: first, last_minute_ops_per_s: last,
    last_over_first: Number((last / Math.max(1, first)).toFixed(3)), errors,
    raft_db_mb_at_stop: fileBytes.map(mb), live_log_mb_at_stop: live.map(mb),
  }) + '\n');
  rmSync(dir, { recursive: true, force: true });
}
