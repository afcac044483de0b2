// bench/raft-core: throughput of the pure Raft state machine.
//
//   pnpm bench:raft-core [--quick] [--voters 3] [--batch 1]
//
// --voters / --batch restrict the run to one case (for profiling:
// node --cpu-prof --import tsx bench/raft-core.ts --quick --voters 3 --batch 1).
//
// One in-memory group of 1, 3 or 5 voters over MemoryStorage; messages are
// delivered in-process, persistence is an in-memory append. Each step the
// leader gets a batch of 1, 16 or 256 proposals of 128 bytes, then the group
// runs until quiet (every node has persisted, committed and applied the
// batch). So batch=1 measures the full per-proposal round trip and
// batch=256 the amortized cost per entry. Each case runs REPS times for a
// fixed wall time; the median entries/s is reported.
//
// Output: one JSON line per case on stdout, a markdown table on stderr.
// Benchmarks report; they do not fail.
import { MemoryStorage, RawNode, emptyConfState, newSeededRandom } from '@flotilla/raft-core';
import type { Config, Message, Ready } from '@flotilla/raft-core';

const quick = process.argv.includes('--quick');

function intArg(name: string): number | undefined {
  const i = process.argv.indexOf(name);
  if (i < 0) return undefined;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${name} needs a positive integer`);
  return v;
}

const onlyVoters = intArg('--voters');
const onlyBatch = intArg('--batch');
const VOTERS = onlyVoters !== undefined ? [onlyVoters] : [1, 3, 5];
const BATCHES = onlyBatch !== undefined ? [onlyBatch] : [1, 16, 256];
const REPS = 3;
const CASE_MS = quick ? 500 : 2000;
const WARMUP_MS = quick ? 300 : 500;
const PAYLOAD_BYTES = 128;
/** COMPACT_EVERY bounds memory: storage is compacted every so many applied entries. */
const COMPACT_EVERY = 20_000;

interface BenchNode {
  id: number;
  rn: RawNode;
  storage: MemoryStorage;
  applied: number;
  lastCompact: number;
}

class Group {
  readonly nodes: BenchNode[] = [];
  private queue: Message[] = [];

  constructor(voters: number) {
    const ids = Array.from({ length: voters }, (_, i) => i + 1);
    for (const id of ids) {
      const storage = new MemoryStorage();
      storage.applySnapshot({
        data: new Uint8Array(0),
        metadata: { index: 1, term: 1, confState: { ...emptyConfState(), voters: ids } },
      });
      const config: Config = {
        id,
        electionTick: 10,
        heartbeatTick: 1,
        applied: 1,
        maxSizePerMsg: 1 << 20,
        maxInflightMsgs: 256,
        random: newSeededRandom(id),
      };
      this.nodes.push({ id, rn: new RawNode(config, storage), storage, applied: 1, lastCompact: 1 });
    }
    this.nodes[0]!.rn.campaign();
    this.settle();
    if (this.nodes[0]!.rn.raft.state !== 'Leader') throw new Error('node 1 did not become leader');
  }

  get leader(): BenchNode {
    return this.nodes[0]!;
  }

  /** settle runs Ready/deliver rounds until no node has work and no message is in flight. */
  settle(): void {
    for (;;) {
      let busy = false;
      for (const n of this.nodes) {
        if (n.rn.hasReady()) {
          busy = true;
          this.handle(n, n.rn.ready());
        }
      }
      if (this.queue.length > 0) {
        busy = true;
        const q = this.queue;
        this.queue = [];
        for (const m of q) this.nodes[m.to - 1]!.rn.step(m);
      }
      if (!busy) return;
    }
  }

  private handle(n: BenchNode, rd: Ready): void {
    if (rd.snapshot !== undefined && rd.snapshot.metadata.index !== 0) n.storage.applySnapshot(rd.snapshot);
    if (rd.entries.length > 0) n.storage.append(rd.entries);
    if (rd.hardState !== undefined) n.storage.setHardState(rd.hardState);
    for (const m of rd.messages) this.queue.push(m);
    for (const m of rd.persistedMessages) this.queue.push(m);
    const last = rd.committedEntries[rd.committedEntries.length - 1];
    if (last !== undefined) n.applied = last.index;
    const lr = n.rn.advance(rd);
    for (const m of lr.messages) this.queue.push(m);
    const lastLight = lr.committedEntries[lr.committedEntries.length - 1];
    if (lastLight !== undefined) n.applied = lastLight.index;
    n.rn.advanceApply();
    if (n.applied - n.lastCompact >= COMPACT_EVERY) {
      n.storage.compact(n.applied - 1000);
      n.lastCompact = n.applied;
    }
  }
}

interface CaseResult {
  entries: number;
  seconds: number;
}

function runCase(voters: number, batch: number, ms: number): CaseResult {
  const g = new Group(voters);
  const payload = new Uint8Array(PAYLOAD_BYTES).fill(7);
  const leader = g.leader;
  const start = leader.applied;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < ms) {
    for (let i = 0; i < batch; i++) leader.rn.propose(payload);
    g.settle();
    t = performance.now();
  }
  const applied = leader.applied - start;
  for (const n of g.nodes) {
    if (n.applied !== leader.applied) throw new Error(`node ${n.id} applied ${n.applied}, leader ${leader.applied}`);
  }
  return { entries: applied, seconds: (t - t0) / 1000 };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function main(): void {
  const rows: string[] = [];
  const t0 = performance.now();
  for (const voters of VOTERS) {
    for (const batch of BATCHES) {
      runCase(voters, batch, WARMUP_MS);
      const rates: number[] = [];
      for (let r = 0; r < REPS; r++) {
        const res = runCase(voters, batch, CASE_MS);
        rates.push(res.entries / res.seconds);
      }
      const rate = median(rates);
      const heapMb = process.memoryUsage().heapUsed / (1 << 20);
      const line = {
        bench: 'raft-core',
        voters,
        batch,
        payload_bytes: PAYLOAD_BYTES,
        entries_per_s: Math.round(rate),
        us_per_entry: Number((1e6 / rate).toFixed(3)),
        heap_mb: Number(heapMb.toFixed(1)),
        reps: REPS,
        rate_min: Math.round(Math.min(...rates)),
        rate_max: Math.round(Math.max(...rates)),
      };
      console.log(JSON.stringify(line));
      rows.push(`| ${voters} | ${batch} | ${line.entries_per_s.toLocaleString('en-US')} | ${line.us_per_entry} | ${line.heap_mb} |`);
      console.error(`progress: voters=${voters} batch=${batch} done (${((performance.now() - t0) / 1000).toFixed(1)}s)`);
    }
  }
  console.error('');
  console.error(`raft-core (${quick ? 'quick' : 'full'}, median of ${REPS}, ${PAYLOAD_BYTES}-byte entries, committed and applied on every node)`);
  console.error('');
  console.error('| voters | batch | entries/s | µs/entry | heap MB |');
  console.error('|---:|---:|---:|---:|---:|');
  for (const r of rows) console.error(r);
}

main();
