import type Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { LogEngine } from '@flotilla/log-engine';
import { utf8 } from '@flotilla/proto';
import { KvEngineStateMachine } from '../../src/kv/kv-engine-state-machine';
import type { Peer } from '../../src/raft/peer';
import type { CommandResult } from '../../src/raft/proposal';
import { StoreStorageError } from '../../src/storage-fault';
import { bootstrapLeader, unitStore, type UnitStore } from './fake-context';

// A full disk under a running store (issue #15 item 4), on real engines:
// SQLite's own SQLITE_FULL, from max_page_count on the engine's connection
// (the same error a full file system gives; apps/node's tmpfs test fills a
// real one). Before, the error escaped the poll round uncaught and the
// process died with a stack trace.

let u: UnitStore | undefined;
afterEach(() => {
  u?.close();
  u = undefined;
});

/** fillUp makes the next write that grows the database fail with SQLITE_FULL. */
function fillUp(db: Database.Database): void {
  db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);
}

const connection = (engine: object): Database.Database => (engine as { db: Database.Database }).db;

/** put queues a write of `size` bytes through the peer's mailbox (as the client API does) and returns its answers. */
function put(u: UnitStore, peer: Peer, key: string, size = 100): CommandResult[] {
  const answers: CommandResult[] = [];
  const req = { id: 1, header: { regionId: peer.regionId, regionEpoch: peer.region.epoch }, op: 'write' as const, writes: [{ type: 'put' as const, key: utf8(key), value: new Uint8Array(size).fill(7) }] };
  u.ctx.send(peer, { kind: 'command', req, cb: (r) => answers.push(r) });
  return answers;
}

/** reopened reads the store's files again with fresh engines: what a restart finds on disk. */
async function reopened(u: UnitStore): Promise<{ last: number; get: (k: string) => Uint8Array | undefined; close: () => Promise<void> }> {
  await u.ctx.log.close();
  u.ctx.sm.close();
  const log = LogEngine.open({ path: u.ctx.log.options.path });
  const sm = new KvEngineStateMachine(u.ctx.log.options.path.replace(/raft\.db$/, 'kv.db'), (r, i) => log.term(r, i));
  return { last: log.lastIndex(1), get: (k) => sm.get(utf8(k)), close: async () => (await log.close(), sm.close()) };
}

describe('a full disk under a running store', () => {
  it('a failed log write stops the store: the round is not applied or advanced, the proposal is Undetermined, the disk keeps every acknowledged write', async () => {
    u = unitStore();
    const peer = bootstrapLeader(u);
    const first = put(u, peer, 'acked');
    u.round();
    expect(first).toEqual([{ ok: true }]);
    const durable = u.ctx.log.lastIndex(1);

    fillUp(connection(u.ctx.log));
    const second = put(u, peer, 'lost', 64 * 1024);
    expect(() => u!.round()).not.toThrow();

    const halted = u.ctx.halted;
    expect(halted).toBeInstanceOf(StoreStorageError);
    expect(halted).toMatchObject({ kind: 'disk-full', path: u.ctx.log.options.path });
    expect(halted!.message).toMatch(/^store 1 stopped: .*raft\.db: log write failed: the disk is full \(SQLITE_FULL/);
    expect(halted!.remedy).toMatch(/Free space on the file system holding .* start the store again/);
    expect(u.ctx.closed).toBe(true);
    // The entry was proposed (it may have reached followers), so its outcome is unknown, never "ok".
    expect(second).toHaveLength(1);
    expect(second[0]).toMatchObject({ ok: false, error: { type: 'Undetermined', regionId: 1 } });
    expect((second[0] as { error: { message: string } }).error.message).toMatch(/the disk is full/);
    // raft-core was not told the round was persisted: the leader does not count the entry, nothing commits or applies.
    const raft = peer.raw.raft;
    expect(raft.raftLog.lastIndex()).toBe(durable + 1);
    expect(raft.prs.progress.get(peer.peerId)!.match).toBe(durable);
    expect(raft.raftLog.committed).toBe(durable);
    expect(u.ctx.sm.get(utf8('lost'))).toBeUndefined();
    // A stopped store starts no more rounds.
    put(u, peer, 'after');
    u.round();
    expect(raft.raftLog.lastIndex()).toBe(durable + 1);

    const disk = await reopened(u);
    expect(disk.last).toBe(durable);
    expect(disk.get('acked')?.length).toBe(100);
    expect(disk.get('lost')).toBeUndefined();
    await disk.close();
  });

  it('a failed KV write after a durable log write stops the store unanswered; the entry stays in the log for the restart to apply', async () => {
    u = unitStore();
    const peer = bootstrapLeader(u);
    fillUp(connection((u.ctx.sm as KvEngineStateMachine).engine));
    const answers = put(u, peer, 'in-log', 64 * 1024);
    u.round();
    const entryIndex = peer.raw.raft.raftLog.committed;
    expect(u.ctx.halted).toMatchObject({ kind: 'disk-full' });
    expect(u.ctx.halted!.path).toMatch(/kv\.db$/);
    expect(u.ctx.halted!.message).toMatch(/kv\.db: kv write failed: the disk is full/);
    // Applied in memory only: the client never heard "ok", but why its outcome is open.
    expect(answers).toHaveLength(1);
    expect(answers[0]).toMatchObject({ ok: false, error: { type: 'Undetermined', regionId: 1 } });
    expect((answers[0] as { error: { message: string } }).error.message).toMatch(/applying it failed: .*kv\.db: kv write failed: the disk is full/);
    const disk = await reopened(u);
    expect(disk.last).toBe(entryIndex);
    expect(disk.get('in-log')).toBeUndefined();
    await disk.close();
  });
});
