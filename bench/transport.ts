// Transport benchmark: two stores in two processes over loopback.
//
//   pnpm bench:transport            full run (3 runs per case, medians)
//   pnpm bench:transport --quick    under 30 s
//
// The parent is the receiving store (2); a child process started with
// `node --import tsx` is the sending store (1). Each message carries its
// batch's send time (CLOCK_MONOTONIC in µs, shared by both processes) in
// message.index, so the receiver measures send-to-delivery latency.
// Cases: heartbeat-sized messages, and MsgApp with one 1 KiB entry.
// Plus an in-process codec case: the compact frame codec against plain
// msgpack maps (the proto codec), to show why raft frames do not use maps.
// Output: one JSON line per case on stdout, a markdown table on stderr.

import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { encode, decode, type RaftMessage } from '@flotilla/proto';
import { EntryType, MessageType, type Message } from '@flotilla/raft-core';
import { WsTransport, FrameWriter, decodeRaftFrame } from '@flotilla/transport';

const SECRET = 'bench-secret';
const CLUSTER = 'bench';
const REGIONS = 1000;
const BATCH = 1024; // messages per flush (one poll round)

type Payload = 'heartbeat' | 'msgapp-1k';

interface RunResult {
  messages: number;
  seconds: number;
  messagesPerS: number;
  mbPerS: number;
  p50Ms: number;
  p99Ms: number;
  wireBytesPerMsg: number;
  dropped: number;
}

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

/**
 * makeMessage builds one envelope as a plain literal, the way raft-core
 * builds its messages (an object spread per message would cost more than
 * the transport itself and hide what is being measured).
 */
function makeMessage(payload: Payload, regionId: number, stampUs: number, entryData: Uint8Array): RaftMessage {
  const isApp = payload === 'msgapp-1k';
  const msg: Message = {
    msgType: isApp ? MessageType.MsgApp : MessageType.MsgHeartbeat,
    to: regionId * 8 + 2,
    from: regionId * 8 + 1,
    term: 7,
    logTerm: isApp ? 7 : 0,
    index: stampUs,
    entries: isApp ? [{ entryType: EntryType.EntryNormal, term: 7, index: 123_457, data: entryData }] : [],
    commit: 123_456,
    commitTerm: 0,
    requestSnapshot: 0,
    reject: false,
    rejectHint: 0,
    priority: 0,
  };
  return {
    regionId,
    fromPeer: { id: regionId * 8 + 1, storeId: 1, role: 'voter' },
    toPeer: { id: regionId * 8 + 2, storeId: 2, role: 'voter' },
    regionEpoch: { confVer: 5, version: 9 },
    message: msg,
    startKey: EMPTY,
    endKey: EMPTY,
    isTombstone: false,
  };
}

const EMPTY = new Uint8Array(0);

// ------------------------------------------------------------------ child (sender)

async function child(): Promise<void> {
  const addr = process.env['BENCH_RECEIVER']!;
  const t = new WsTransport({ storeId: 1, clusterId: CLUSTER, secret: SECRET, resolveAddress: async (id) => (id === 2 ? addr : undefined) });
  await t.start();
  const entryData = new Uint8Array(1024).fill(7);
  process.on('message', async (m: { cmd: string; payload: Payload; count: number; ratePerS?: number }) => {
    if (m.cmd === 'exit') {
      await t.close();
      process.exit(0);
    }
    if (m.cmd !== 'run') return;
    const before = t.stats();
    let sent = 0;
    let region = 1;
    // Paced mode: one poll round every 5 ms carrying rate/200 messages, like a busy store's tick.
    const pacedBatch = m.ratePerS ? Math.max(1, Math.round(m.ratePerS / 200)) : 0;
    const startMs = performance.now();
    let round = 0;
    while (sent < m.count) {
      if (pacedBatch > 0) {
        const wait = startMs + round * 5 - performance.now();
        round++;
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      const stamp = nowUs();
      const n = Math.min(pacedBatch || BATCH, m.count - sent);
      for (let i = 0; i < n; i++) {
        t.send(2, makeMessage(m.payload, region, stamp, entryData));
        region = region === REGIONS ? 1 : region + 1;
      }
      sent += n;
      t.flush();
      // Back-pressure: let the socket drain rather than piling frames into it.
      while (t.backlog(2).socketBufferedBytes > 4 * 1024 * 1024 || t.backlog(2).queuedMessages > 0) {
        await new Promise((r) => setImmediate(r));
        t.flush();
      }
      if ((sent / BATCH) % 8 === 0) await new Promise((r) => setImmediate(r));
    }
    const after = t.stats();
    process.send!({
      cmd: 'sent',
      dropped: after.messagesDropped - before.messagesDropped,
      bytes: after.bytesSent - before.bytesSent,
      frames: after.framesSent - before.framesSent,
    });
  });
  process.send!({ cmd: 'ready' });
}

// ------------------------------------------------------------------ parent (receiver)

function waitMessage<T>(cp: ChildProcess, cmd: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: { cmd: string }) => {
      if (m.cmd === cmd) {
        cp.off('message', onMsg);
        resolve(m as T);
      }
    };
    cp.on('message', onMsg);
    cp.once('exit', (code) => reject(new Error(`sender exited with ${code}`)));
  });
}

async function runCase(receiver: WsTransport, cp: ChildProcess, payload: Payload, count: number, ratePerS?: number): Promise<RunResult> {
  const latUs = new Float64Array(count);
  let received = 0;
  let lastUs = 0;
  let done: () => void = () => {};
  const finished = new Promise<void>((r) => (done = r));
  receiver.onMessages((msgs) => {
    const now = nowUs();
    for (let i = 0; i < msgs.length; i++) {
      if (received < count) latUs[received] = now - msgs[i]!.message.index;
      received++;
    }
    lastUs = now;
    if (received >= count) done();
  });
  const statsBefore = receiver.stats();
  const t0 = nowUs();
  cp.send({ cmd: 'run', payload, count, ratePerS });
  const sent = await waitMessage<{ dropped: number; bytes: number }>(cp, 'sent');
  if (sent.dropped > 0) {
    // Nothing more will come for the dropped ones.
    await Promise.race([finished, new Promise((r) => setTimeout(r, 1000))]);
  } else {
    await finished;
  }
  const seconds = (lastUs - t0) / 1e6;
  const n = Math.min(received, count);
  const lat = latUs.subarray(0, n).sort();
  const bytes = receiver.stats().bytesReceived - statsBefore.bytesReceived;
  return {
    messages: n,
    seconds,
    messagesPerS: n / seconds,
    mbPerS: payload === 'msgapp-1k' ? (n * 1024) / seconds / 1e6 : bytes / seconds / 1e6,
    p50Ms: (lat[Math.floor(n * 0.5)] ?? 0) / 1000,
    p99Ms: (lat[Math.floor(n * 0.99)] ?? 0) / 1000,
    wireBytesPerMsg: bytes / n,
    dropped: sent.dropped,
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function codecCase(count: number): Record<string, number | string>[] {
  const rows: Record<string, number | string>[] = [];
  const data = new Uint8Array(1024).fill(3);
  for (const payload of ['heartbeat', 'msgapp-1k'] as Payload[]) {
    const batch = Array.from({ length: BATCH }, (_, i) => makeMessage(payload, 1 + (i % REGIONS), 1_000_000 + i, data));
    for (const codec of ['compact', 'msgpack-maps'] as const) {
      // The compact codec is measured the way the transport uses it: one reused writer.
      const writer = new FrameWriter();
      let last: Buffer | undefined;
      const encodeCompact = (b: RaftMessage[]) => {
        if (last) writer.release(last);
        writer.begin();
        for (const m of b) writer.write(m);
        return (last = writer.take());
      };
      const enc = codec === 'compact' ? encodeCompact : (b: RaftMessage[]) => encode(b);
      const dec = codec === 'compact' ? decodeRaftFrame : (f: Uint8Array) => decode(f) as RaftMessage[];
      const rounds = Math.max(1, Math.floor(count / BATCH));
      let frame = enc(batch);
      // Warm up the JIT on both directions before timing.
      for (let r = 0; r < Math.max(5, rounds / 10); r++) dec(enc(batch));
      const t0 = performance.now();
      for (let r = 0; r < rounds; r++) frame = enc(batch);
      const t1 = performance.now();
      let sink = 0;
      for (let r = 0; r < rounds; r++) sink += dec(frame).length;
      const t2 = performance.now();
      if (sink !== rounds * BATCH) throw new Error('codec bench decoded the wrong count');
      rows.push({
        bench: 'transport',
        case: 'codec',
        codec,
        payload,
        bytes_per_msg: Math.round((frame.length / BATCH) * 10) / 10,
        encode_msgs_per_s: Math.round((rounds * BATCH) / ((t1 - t0) / 1000)),
        decode_msgs_per_s: Math.round((rounds * BATCH) / ((t2 - t1) / 1000)),
      });
    }
  }
  return rows;
}

async function parent(): Promise<void> {
  const quick = process.argv.includes('--quick');
  // --case heartbeat|msgapp-1k runs one case only (for profiling); --no-codec skips the codec rows.
  const caseArg = process.argv[process.argv.indexOf('--case') + 1];
  const cases: Payload[] = process.argv.includes('--case') ? [caseArg as Payload] : ['heartbeat', 'msgapp-1k'];
  const runs = 3;
  const counts: Record<Payload, number> = quick ? { heartbeat: 600_000, 'msgapp-1k': 250_000 } : { heartbeat: 3_000_000, 'msgapp-1k': 1_000_000 };

  const table: string[] = [];
  for (const row of process.argv.includes('--no-codec') ? [] : codecCase(quick ? 200_000 : 1_000_000)) {
    console.log(JSON.stringify(row));
    table.push(`| codec ${row['codec']} | ${row['payload']} | ${row['bytes_per_msg']} B/msg | enc ${(Number(row['encode_msgs_per_s']) / 1e6).toFixed(2)} M/s | dec ${(Number(row['decode_msgs_per_s']) / 1e6).toFixed(2)} M/s | |`);
  }

  const receiver = new WsTransport({ storeId: 2, clusterId: CLUSTER, secret: SECRET, resolveAddress: async () => undefined });
  await receiver.start();
  const cp = fork(fileURLToPath(import.meta.url), ['--child'], {
    execArgv: ['--import', 'tsx', ...(process.env['BENCH_PROF'] ? ['--cpu-prof', '--cpu-prof-dir=' + process.env['BENCH_PROF']] : [])],
    env: { ...process.env, BENCH_RECEIVER: receiver.address },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  await waitMessage(cp, 'ready');
  // Warm up the connection and the JIT.
  await runCase(receiver, cp, 'heartbeat', 50_000);

  for (const payload of cases) {
    const results: RunResult[] = [];
    for (let r = 0; r < runs; r++) {
      const res = await runCase(receiver, cp, payload, counts[payload]);
      results.push(res);
      process.stderr.write(`  ${payload} run ${r + 1}/${runs}: ${Math.round(res.messagesPerS).toLocaleString()} msg/s, ${res.mbPerS.toFixed(0)} MB/s, p99 ${res.p99Ms.toFixed(2)} ms\n`);
    }
    const row = {
      bench: 'transport',
      payload,
      mode: 'saturate',
      processes: 2,
      messages: counts[payload],
      batch: BATCH,
      regions: REGIONS,
      messages_per_s: Math.round(median(results.map((x) => x.messagesPerS))),
      mb_per_s: Math.round(median(results.map((x) => x.mbPerS)) * 10) / 10,
      p50_ms: Math.round(median(results.map((x) => x.p50Ms)) * 100) / 100,
      p99_ms: Math.round(median(results.map((x) => x.p99Ms)) * 100) / 100,
      wire_bytes_per_msg: Math.round(median(results.map((x) => x.wireBytesPerMsg)) * 10) / 10,
      dropped: results.reduce((a, x) => a + x.dropped, 0),
      runs,
    };
    console.log(JSON.stringify(row));
    table.push(`| ${payload} | ${row.messages_per_s.toLocaleString()} msg/s | ${row.mb_per_s} MB/s | p50 ${row.p50_ms} ms | p99 ${row.p99_ms} ms | ${row.wire_bytes_per_msg} B/msg |`);
  }
  // Latency at a rate a busy store actually produces (not saturation): 200,000 heartbeats/s.
  if (!process.argv.includes('--case')) {
    const rate = 200_000;
    const count = quick ? 200_000 : 600_000;
    const results: RunResult[] = [];
    for (let r = 0; r < runs; r++) results.push(await runCase(receiver, cp, 'heartbeat', count, rate));
    const row = {
      bench: 'transport',
      payload: 'heartbeat',
      mode: 'paced',
      target_msgs_per_s: rate,
      processes: 2,
      messages: count,
      messages_per_s: Math.round(median(results.map((x) => x.messagesPerS))),
      p50_ms: Math.round(median(results.map((x) => x.p50Ms)) * 100) / 100,
      p99_ms: Math.round(median(results.map((x) => x.p99Ms)) * 100) / 100,
      runs,
    };
    console.log(JSON.stringify(row));
    table.push(`| heartbeat paced ${rate.toLocaleString()}/s | ${row.messages_per_s.toLocaleString()} msg/s | | p50 ${row.p50_ms} ms | p99 ${row.p99_ms} ms | |`);
  }
  cp.send({ cmd: 'exit' });
  await new Promise((r) => cp.once('exit', r));
  await receiver.close();
  process.stderr.write(`\n| case | payload / rate | size or MB/s | p50 / encode | p99 / decode | wire |\n|---|---|---|---|---|---|\n${table.join('\n')}\n`);
}

if (process.argv.includes('--child')) {
  await child();
} else {
  await parent();
}
