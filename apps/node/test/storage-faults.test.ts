import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, statfsSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FlotillaClient } from '@flotilla/client';
import { exited, runCli, startCli, waitFor, type CliChild } from './helpers';

// Storage failures through `flotilla store` as a real child process (issue
// #15 items 3 and 4): a database damaged on disk is refused at start with
// exit 3 and a message naming the file and what to do; a disk that fills
// while writing stops the store with exit 4, and once space is freed a
// restart reads back every acknowledged write. Never a stack trace.

const dir = mkdtempSync(join(tmpdir(), 'flotilla-storage-faults-'));
const tuningFile = join(dir, 'tuning.json');
writeFileSync(tuningFile, JSON.stringify({ storeHeartbeatIntervalMs: 300 }));
const children: CliChild[] = [];
const clients: FlotillaClient[] = [];

afterAll(() => {
  for (const c of clients) c.close();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

async function announced(child: CliChild, what: string): Promise<Record<string, unknown>> {
  return waitFor(`${what} to announce itself`, () => {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}: ${child.out.stderr}`);
    const line = child.out.stdout.split('\n').find((l) => l.startsWith('{'));
    return line ? (JSON.parse(line) as Record<string, unknown>) : null;
  }, 60_000, 50);
}

async function startPlacement(dataDir: string, extra: string[] = []): Promise<string> {
  const p = startCli(['placement', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--max-replicas', '1', '--log-level', 'warn', ...extra]);
  children.push(p);
  return (await announced(p, 'placement'))['address'] as string;
}

function storeChild(placement: string, dataDir: string): CliChild {
  const c = startCli(['store', '--placement', placement, '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--tuning', tuningFile, '--log-level', 'warn']);
  children.push(c);
  return c;
}

async function connect(placement: string): Promise<FlotillaClient> {
  const c = await FlotillaClient.connect({ placement, timeoutMs: 4000 });
  clients.push(c);
  return c;
}

/** leafPages lists a table's leaf pages in B-tree order (SQLite's dbstat) in a closed database file. */
function leafPages(file: string, table: string): number[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare("SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY path").pluck().all(table) as number[];
  } finally {
    db.close();
  }
}

/** damageMiddleLeaf writes 4 KiB of garbage over the middle leaf page of `table`. */
function damageMiddleLeaf(file: string, table: string): void {
  const leaves = leafPages(file, table);
  expect(leaves.length, `${table} leaf pages`).toBeGreaterThan(8);
  const page = leaves[Math.floor(leaves.length / 2)]!;
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, Buffer.alloc(4096, 0xa5), 0, 4096, (page - 1) * 4096);
  } finally {
    closeSync(fd);
  }
}

const noStack = (stderr: string): void => expect(stderr).not.toMatch(/\n\s+at .+:\d+:\d+/);

describe('flotilla store on a damaged database', () => {
  it('refuses to start with exit 3, naming the file and what to do, for kv.db and for raft.db, and changes nothing', async () => {
    const placement = await startPlacement(join(dir, 'p1'));
    const dataDir = join(dir, 'store-damaged');
    const first = storeChild(placement, dataDir);
    await announced(first, 'store');
    const client = await connect(placement);
    const value = (i: number) => `v${i}:${'x'.repeat(200)}`;
    // Many small writes: one log entry each (raft.db leaf pages) and one row each (kv.db leaf pages).
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < 600) {
        const i = next++;
        await client.put(`key/${String(i).padStart(4, '0')}`, value(i));
      }
    }));
    first.kill('SIGTERM');
    expect((await exited(first, 20_000)).code).toBe(0);

    for (const [file, table] of [['kv.db', 'kv'], ['raft.db', 'entries']] as const) {
      const path = join(dataDir, file);
      const pristine = join(dir, `${file}.pristine`);
      copyFileSync(path, pristine);
      damageMiddleLeaf(path, table);
      const damaged = readFileSync(path);
      const r = await exited(storeChild(placement, dataDir), 60_000);
      expect(r.code, r.stderr).toBe(3);
      expect(r.stderr).toContain(`flotilla store: store refuses to start: ${path}: database file is corrupted (`);
      expect(r.stderr).toMatch(/Do not start this store on that file\. Restore .* or remove the store: delete .* placement re-creates its Region replicas/);
      noStack(r.stderr);
      expect(readFileSync(path).equals(damaged)).toBe(true);
      copyFileSync(pristine, path);
    }

    // The refusals changed nothing: on the pristine files it starts and serves every write.
    const again = storeChild(placement, dataDir);
    await announced(again, 'store');
    const keys = Array.from({ length: 600 }, (_, i) => `key/${String(i).padStart(4, '0')}`);
    const got = await client.batchGet(keys);
    expect(got.filter((v, i) => v === null || Buffer.from(v).toString() !== value(i))).toEqual([]);
  }, 180_000);
});

// ---- full disk: a real, small tmpfs (needs root; CI runs as root) ----

/** tmpfsUnavailable says why this machine cannot mount a tmpfs for the test (undefined: it can). */
function tmpfsUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `tmpfs mounts need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root (CI runs as root)';
  const probe = mkdtempSync(join(tmpdir(), 'flotilla-tmpfs-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', probe], { stdio: 'pipe' });
    execFileSync('umount', [probe], { stdio: 'pipe' });
    return undefined;
  } catch (e) {
    return `cannot mount a tmpfs here: ${(e as Error).message.split('\n')[0]}`;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

const noTmpfs = tmpfsUnavailable();
if (noTmpfs) console.log(`skipping the full-disk test: ${noTmpfs}`);
const TMPFS_MB = 24;

describe.skipIf(noTmpfs !== undefined)(`flotilla store on a ${TMPFS_MB} MiB tmpfs that fills up`, () => {
  const mnt = join(dir, 'tmpfs');
  let mounted = false;
  beforeAll(() => {
    mkdirSync(mnt, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_MB}m`, 'tmpfs', mnt]);
    mounted = true;
  });
  afterEach(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });
  afterAll(async () => {
    // Processes with files on the mount first, then the mount (lazily if something still holds it).
    await Promise.all(children.filter((c) => c.exitCode === null && c.signalCode === null).map((c) => (c.kill('SIGKILL'), exited(c, 10_000))));
    if (!mounted) return;
    try {
      execFileSync('umount', [mnt], { stdio: 'pipe' });
    } catch {
      execFileSync('umount', ['-l', mnt], { stdio: 'pipe' });
    }
  });

  it('stops with exit 4 and a typed error to the client; after space is freed a restart reads back every acknowledged write', async () => {
    const placement = await startPlacement(join(dir, 'p2'));
    const dataDir = join(mnt, 'store');
    const store = storeChild(placement, dataDir);
    await announced(store, 'store');
    const client = await connect(placement);
    await client.put('hello', 'world');
    // Leave the store about 6 MiB: a ballast file holds the rest.
    const ballast = join(mnt, 'ballast');
    const free = statfsSync(mnt).bavail * statfsSync(mnt).bsize;
    writeFileSync(ballast, Buffer.alloc(Math.max(0, free - 6 * 1024 * 1024)));

    const acked = new Map<string, number>([['hello', -1]]);
    const errors: string[] = [];
    const valueOf = (i: number) => Buffer.alloc(16 * 1024, i & 0xff);
    let next = 0;
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (store.exitCode === null && errors.length < 50 && next < 5000) {
        const i = next++;
        try {
          await client.put(`big/${String(i).padStart(5, '0')}`, valueOf(i));
          acked.set(`big/${String(i).padStart(5, '0')}`, i);
        } catch (e) {
          errors.push(`${(e as Error).name}: ${(e as Error).message}`);
        }
      }
    }));
    const r = await exited(store, 30_000);
    if (process.env.FLOTILLA_TEST_VERBOSE) console.log(`acked ${acked.size}, client errors:\n${errors.join('\n')}\nstore stderr:\n${r.stderr}`);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(/flotilla store: store \d+ stopped: .*(raft|kv)\.db: .* failed: the disk is full \(SQLITE_FULL/);
    expect(r.stderr).toContain(`Free space on the file system holding ${dataDir} (or grow it), then start the store again`);
    noStack(r.stderr);
    expect(acked.size).toBeGreaterThan(50);
    // The writes in flight when it stopped were told why, as a typed client error.
    expect(errors.some((m) => /^ClientError\((Undetermined|Timeout|RetriesExhausted)\): .*the disk is full/.test(m)), `${errors.join('\n')}\n--- store stderr:\n${r.stderr}`).toBe(true);

    rmSync(ballast);
    const back = storeChild(placement, dataDir);
    await announced(back, 'store');
    const keys = [...acked.keys()];
    const got = await client.batchGet(keys);
    const wrong = keys.filter((k, j) => {
      const v = got[j] ?? null;
      const i = acked.get(k)!;
      return v === null || (i < 0 ? Buffer.from(v).toString() !== 'world' : !Buffer.from(v).equals(valueOf(i)));
    });
    expect(wrong).toEqual([]);
    // It takes writes again, and reports its disk: capacity, and "low space" once a ballast leaves it under 20%.
    await client.put('after', 'freed');
    writeFileSync(ballast, Buffer.alloc(Math.max(0, statfsSync(mnt).bavail * statfsSync(mnt).bsize - 1024 * 1024)));
    const table = await waitFor('flotilla stores to show the tmpfs capacity and low space', async () => {
      const out = await runCli(['stores', '--placement', placement]);
      return out.code === 0 && out.stdout.includes(`${TMPFS_MB}.0 MiB`) && out.stdout.includes('low space') ? out.stdout : null;
    }, 20_000, 300);
    expect(table).toMatch(/CAPACITY\s+USED\s+AVAILABLE/);
  }, 180_000);
});
