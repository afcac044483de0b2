// bench/redis-pubsub.ts — keyspace notifications through the Redis front (issue #20): write to delivery latency.
//
//   pnpm bench:redis-pubsub [--quick] [--rate EVENTS_PER_S] [--seconds S]
//
// Starts placement + 3 stores (LocalCluster, production profile, free
// ports, temp dir) and `flotilla redis --keyspace txn` as a child process.
// Per case: N subscriber connections PSUBSCRIBE `__keyspace@0__:<case>:*`,
// 64 writer connections SET distinct keys at the target rate for S seconds
// (each writer one command at a time), and every subscriber's pmessage is
// timed against the SET's reply (the commit acknowledgement; a message
// that arrives before the reply counts 0 ms). missed / duplicated: keys a
// subscriber did not get / got twice; out_of_order: a writer's later key
// delivered before its earlier one. Cases: 1 and 10 subscribers at RATE
// (default 1,000/s, 10 s); --quick: 1 subscriber, 5 s. One JSON line per
// case on stdout with the load average (the machine is shared).
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCluster, makeLogger } from '@flotilla/node';
import { startRedisFront } from './redis-front';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const argOf = (name: string, fallback: string): string => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : fallback;
};
const RATE = Number(argOf('--rate', '1000'));
const CASE_MS = Number(argOf('--seconds', quick ? '5' : '10')) * 1000;
const WRITERS = 64;
const DRAIN_MS = 15_000;
const progress = (s: string): boolean => process.stderr.write(`[bench:redis-pubsub] ${s}\n`);
const round = (n: number): number => Math.round(n * 100) / 100;

type Value = string | number | null | Value[];

/** parse reads one RESP2 reply (simple, error, integer, bulk, array) at i, or null for more bytes. */
function parse(b: Buffer, i: number): { value: Value; end: number } | null {
  const eol = b.indexOf('\r\n', i);
  if (eol < 0) return null;
  const t = b[i];
  const line = b.toString('latin1', i + 1, eol);
  if (t === 0x2b /* + */ || t === 0x2d /* - */) return { value: t === 0x2d ? `ERR:${line}` : line, end: eol + 2 };
  if (t === 0x3a /* : */) return { value: Number(line), end: eol + 2 };
  if (t === 0x24 /* $ */) {
    const n = Number(line);
    if (n < 0) return { value: null, end: eol + 2 };
    if (b.length < eol + 2 + n + 2) return null;
    return { value: b.toString('latin1', eol + 2, eol + 2 + n), end: eol + 2 + n + 2 };
  }
  if (t === 0x2a /* * */) {
    const out: Value[] = [];
    let at = eol + 2;
    for (let k = 0; k < Number(line); k++) {
      const r = parse(b, at);
      if (!r) return null;
      out.push(r.value);
      at = r.end;
    }
    return { value: out, end: at };
  }
  throw new Error(`unexpected RESP byte ${t}`);
}

/** Conn is one RESP2 connection: send commands, take replies in order (onPush sees messages instead when set). */
class Conn {
  private buf: Buffer = Buffer.alloc(0);
  private readonly waiting: ((v: Value) => void)[] = [];
  onMessage: ((v: Value[]) => void) | undefined;
  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => {
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
      let at = 0;
      for (let r = parse(this.buf, at); r; r = parse(this.buf, at)) {
        at = r.end;
        const v = r.value;
        if (this.onMessage && Array.isArray(v) && v[0] === 'pmessage') this.onMessage(v);
        else this.waiting.shift()?.(v);
      }
      this.buf = this.buf.subarray(at);
    });
  }

  static open(port: number): Promise<Conn> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(new Conn(s)));
      s.once('error', reject);
    });
  }

  call(...argv: string[]): Promise<Value> {
    const parts = [`*${argv.length}\r\n`, ...argv.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`)];
    this.socket.write(parts.join(''));
    return new Promise((r) => this.waiting.push(r));
  }

  close(): void {
    this.socket.destroy();
  }
}

interface Row {
  bench: 'redis-pubsub';
  case: 'keyspace';
  subscribers: number;
  events_per_s_target: number;
  events_per_s: number;
  events: number;
  p50_ms: number;
  p99_ms: number;
  max_ms: number;
  missed: number;
  duplicated: number;
  out_of_order: number;
  write_errors: number;
  load_avg_1m: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

/** runCase subscribes, writes at RATE for CASE_MS, waits for every message (bounded) and summarizes. */
async function runCase(port: number, name: string, subscribers: number): Promise<Row> {
  const prefix = `${name}:`;
  const subs = await Promise.all(Array.from({ length: subscribers }, () => Conn.open(port)));
  // Per subscriber: receipt time of each key index, and per writer the last index seen (order check).
  const recv = subs.map(() => new Map<number, number>());
  let duplicated = 0;
  let outOfOrder = 0;
  const lastByWriter = subs.map(() => new Array<number>(WRITERS).fill(-1));
  for (const [i, s] of subs.entries()) {
    await s.call('PSUBSCRIBE', `__keyspace@0__:${prefix}*`);
    s.onMessage = (m) => {
      const now = performance.now();
      const [w, n] = String(m[2]).slice(`__keyspace@0__:${prefix}`.length).split('-').map(Number) as [number, number];
      const idx = n * WRITERS + w;
      if (recv[i]!.has(idx)) duplicated++;
      else recv[i]!.set(idx, now);
      if (n <= lastByWriter[i]![w]!) outOfOrder++;
      lastByWriter[i]![w] = n;
    };
  }
  const writers = await Promise.all(Array.from({ length: WRITERS }, () => Conn.open(port)));
  const acked = new Map<number, number>();
  let writeErrors = 0;
  let issued = 0;
  const start = performance.now();
  const end = start + CASE_MS;
  // Writer w writes keys <prefix><w>-<n>, one at a time, taking the next slot of the global schedule.
  await Promise.all(
    writers.map(async (c, w) => {
      for (let n = 0; ; n++) {
        const slot = issued++;
        const due = start + (slot * 1000) / RATE;
        if (due >= end) return;
        const wait = due - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        const r = await c.call('SET', `${prefix}${w}-${n}`, '1');
        if (r === 'OK') acked.set(n * WRITERS + w, performance.now());
        else writeErrors++;
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  const drainBy = performance.now() + DRAIN_MS;
  while (performance.now() < drainBy && recv.some((m) => [...acked.keys()].some((k) => !m.has(k)))) await new Promise((r) => setTimeout(r, 100));
  const latencies: number[] = [];
  let missed = 0;
  for (const m of recv) {
    for (const [k, at] of acked) {
      const got = m.get(k);
      if (got === undefined) missed++;
      else latencies.push(Math.max(0, got - at));
    }
  }
  latencies.sort((a, b) => a - b);
  for (const c of [...subs, ...writers]) c.close();
  return {
    bench: 'redis-pubsub',
    case: 'keyspace',
    subscribers,
    events_per_s_target: RATE,
    events_per_s: Math.round(acked.size / seconds),
    events: acked.size,
    p50_ms: round(percentile(latencies, 50)),
    p99_ms: round(percentile(latencies, 99)),
    max_ms: round(latencies[latencies.length - 1] ?? 0),
    missed,
    duplicated,
    out_of_order: outOfOrder,
    write_errors: writeErrors,
    load_avg_1m: round(loadavg()[0]!),
  };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-bench-redis-pubsub-'));
  const logger = makeLogger('warn', 'bench-redis-pubsub');
  progress(`starting placement + 3 stores in ${dir}`);
  const cluster = await LocalCluster.start({ dataDir: dir, stores: 3, profile: 'production', basePort: 0, logLevel: 'warn', logger });
  let front: { port: number; stop: () => void } | undefined;
  try {
    front = await startRedisFront(cluster.placement.address, ['--keyspace', 'txn']);
    for (const subscribers of quick ? [1] : [1, 10]) {
      progress(`${subscribers} subscriber(s), ${RATE} SET/s for ${CASE_MS / 1000} s`);
      console.log(JSON.stringify(await runCase(front.port, `ps${subscribers}`, subscribers)));
    }
  } finally {
    front?.stop();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:redis-pubsub failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
