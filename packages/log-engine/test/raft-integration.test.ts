import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { EntryType, RawNode, StepPeerNotFoundError, newSeededRandom } from '@flotilla/raft-core';
import type { Entry, Message, Ready } from '@flotilla/raft-core';
import { LogBatch, LogEngine } from '../src/index';
import type { RegionLogStorage } from '../src/index';
import { tempDir } from './helpers';

// A 3-node raft group run in process: RawNode from raft-core, messages
// delivered in memory, each node's Ready persisted through a LogBatch and
// LogEngine.write (one SQLite file per node, as one store each), storage =
// RegionLogStorage. A node is restarted from its SQLite file and catches up.

const REGION = 1;
const VOTERS = [1, 2, 3];

interface Node {
  id: number;
  dir: string;
  engine: LogEngine;
  storage: RegionLogStorage;
  raw: RawNode;
  /** applied holds the data of every applied normal entry, in order (the state machine). */
  applied: string[];
  appliedIndex: number;
}

function startNode(id: number, dir: string, mode: 'sync' | 'worker', seed: number): Node {
  const engine = LogEngine.open({ path: path.join(dir, 'raft.db'), writer: mode, foldRows: 32 });
  const storage = engine.storage(REGION);
  const raw = new RawNode({ id, electionTick: 10, heartbeatTick: 1, maxInflightMsgs: 64, maxSizePerMsg: 4096, random: newSeededRandom(seed), applied: 0 }, storage);
  return { id, dir, engine, storage, raw, applied: [], appliedIndex: 0 };
}

async function bootstrap(dir: string, mode: 'sync' | 'worker'): Promise<void> {
  const e = LogEngine.open({ path: path.join(dir, 'raft.db'), writer: mode });
  await e.writeAsync(new LogBatch().setConfState(REGION, { voters: VOTERS, learners: [], votersOutgoing: [], learnersNext: [], autoLeave: false }));
  await e.close();
}

class Cluster {
  readonly nodes = new Map<number, Node>();
  private queue: Message[] = [];
  down = new Set<number>();

  constructor(readonly mode: 'sync' | 'worker') {}

  send(msgs: Message[]): void {
    for (const m of msgs) this.queue.push(m);
  }

  apply(n: Node, ents: Entry[]): void {
    for (const e of ents) {
      if (e.entryType === EntryType.EntryNormal && e.data.length > 0) n.applied.push(Buffer.from(e.data).toString());
      n.appliedIndex = e.index;
    }
  }

  /** handle runs one node's Ready: persist it in one LogBatch write, then send and apply. */
  async handle(n: Node): Promise<void> {
    if (!n.raw.hasReady()) return;
    const rd: Ready = n.raw.ready();
    this.send(rd.messages);
    const b = new LogBatch();
    if (rd.snapshot !== undefined) {
      const md = rd.snapshot.metadata;
      n.storage.applySnapshotMeta(b, md.index, md.term, md.confState);
    }
    n.storage.append(b, rd.entries);
    if (rd.hardState !== undefined) n.storage.setHardState(b, rd.hardState);
    await n.engine.writeAsync(b);
    this.send(rd.persistedMessages);
    this.apply(n, rd.committedEntries);
    const lr = n.raw.advance(rd);
    this.send(lr.messages);
    this.apply(n, lr.committedEntries);
    n.raw.advanceApply();
  }

  async round(tick: boolean): Promise<void> {
    for (const n of this.nodes.values()) {
      if (this.down.has(n.id)) continue;
      if (tick) n.raw.tick();
      await this.handle(n);
    }
    const msgs = this.queue;
    this.queue = [];
    for (const m of msgs) {
      if (this.down.has(m.to) || this.down.has(m.from)) continue;
      try {
        this.nodes.get(m.to)!.raw.step(m);
      } catch (err) {
        if (!(err instanceof StepPeerNotFoundError)) throw err;
      }
    }
  }

  /** until runs rounds until cond holds, at most maxRounds. */
  async until(cond: () => boolean, maxRounds: number, what: string): Promise<void> {
    for (let i = 0; i < maxRounds; i++) {
      if (cond()) return;
      await this.round(true);
    }
    if (!cond()) throw new Error(`not reached within ${maxRounds} rounds: ${what}`);
  }

  leader(): Node | undefined {
    for (const n of this.nodes.values()) if (!this.down.has(n.id) && n.raw.raft.state === 'Leader') return n;
    return undefined;
  }
}

describe.each(['sync', 'worker'] as const)('3-node raft group on LogEngine (%s writer)', (mode) => {
  it('elects a leader, commits proposals, and a restarted node catches up from its SQLite file', async () => {
    const c = new Cluster(mode);
    const dirs = new Map<number, string>();
    for (const id of VOTERS) {
      const dir = tempDir('flotilla-raft-');
      dirs.set(id, dir);
      await bootstrap(dir, mode);
      c.nodes.set(id, startNode(id, dir, mode, id * 101));
    }
    try {
      await c.until(() => c.leader() !== undefined, 500, 'a leader');
      let leader = c.leader()!;
      const total = mode === 'sync' ? 300 : 200;
      for (let i = 0; i < total; i++) {
        leader.raw.propose(Buffer.from(`p${i}`));
        if (i % 10 === 9) await c.round(false);
      }
      await c.until(() => [...c.nodes.values()].every((n) => n.applied.length === total), 500, 'all proposals applied everywhere');
      for (const n of c.nodes.values()) expect(n.applied).toEqual(Array.from({ length: total }, (_, i) => `p${i}`));

      // Compact every log a little below what all nodes applied, and purge.
      const compactTo = Math.min(...[...c.nodes.values()].map((n) => n.appliedIndex)) - 20;
      for (const n of c.nodes.values()) {
        await n.engine.writeAsync(n.storage.compact(new LogBatch(), compactTo));
        expect(await n.engine.purgeAsync(1000)).toBe(compactTo);
      }

      // Take a follower down, commit more without it, restart it from disk.
      const victim = [...c.nodes.values()].find((n) => n !== leader)!;
      const lastBefore = victim.storage.lastIndex();
      const hsBefore = victim.storage.initialState().hardState;
      c.down.add(victim.id);
      await victim.engine.close();
      for (let i = total; i < total + 100; i++) {
        leader.raw.propose(Buffer.from(`p${i}`));
        if (i % 10 === 9) await c.round(false);
      }
      await c.until(() => [...c.nodes.values()].every((n) => c.down.has(n.id) || n.applied.length === total + 100), 500, 'the survivors apply');

      const restarted = startNode(victim.id, dirs.get(victim.id)!, mode, victim.id * 7);
      expect(restarted.storage.lastIndex()).toBe(lastBefore);
      expect(restarted.storage.firstIndex()).toBe(compactTo + 1);
      expect(restarted.storage.initialState().hardState).toEqual(hsBefore);
      // The restarted state machine replays its log from the compaction
      // point: seed it with what it had applied up to there.
      restarted.applied = victim.applied.slice(0, compactTo - (victim.appliedIndex - victim.applied.length));
      restarted.raw = new RawNode(
        { id: victim.id, electionTick: 10, heartbeatTick: 1, maxInflightMsgs: 64, maxSizePerMsg: 4096, random: newSeededRandom(9), applied: compactTo },
        restarted.storage,
      );
      restarted.appliedIndex = compactTo;
      c.nodes.set(victim.id, restarted);
      c.down.delete(victim.id);
      await c.until(() => restarted.applied.length === total + 100, 1000, 'the restarted node catches up');
      leader = c.leader()!;
      expect(restarted.applied).toEqual(leader.applied);
      expect(restarted.storage.lastIndex()).toBe(leader.storage.lastIndex());
      expect(restarted.engine.stats().entriesFromCache).toBeGreaterThanOrEqual(0);
    } finally {
      for (const n of c.nodes.values()) await n.engine.close();
    }
  });
});
