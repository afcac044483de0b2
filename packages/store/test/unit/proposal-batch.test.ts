import { afterEach, describe, expect, it } from 'vitest';
import { utf8, type KvWrite, type Region, type RequestHeader } from '@flotilla/proto';
import { writeInitialRegion } from '../../src/bootstrap';
import type { StoreConfig } from '../../src/config';
import { recover } from '../../src/operation/life';
import type { Peer } from '../../src/raft/peer';
import type { CommandResult } from '../../src/raft/proposal';
import { unitStore, type UnitStore } from './fake-context';

// Proposal batching (issue #19 item 2): a leader's client writes of one
// round become one Raft entry (a bounded few), each still answered with its
// own result; a failure of the entry as a whole answers all of them alike.

const stores: UnitStore[] = [];
afterEach(() => {
  for (const s of stores.splice(0)) s.close();
});

const EMPTY = new Uint8Array(0);
const text = (v: Uint8Array | undefined): string | undefined => (v === undefined ? undefined : new TextDecoder().decode(v));

/** leaderOf opens a store whose single voter leads Region 1, which covers keys below "m" only. */
function leaderOf(overrides: Partial<StoreConfig> = {}): { u: UnitStore; peer: Peer } {
  const u = unitStore({ proposalBatchMaxCommands: 256, ...overrides });
  stores.push(u);
  const region: Region = { id: 1, startKey: EMPTY, endKey: utf8('m'), epoch: { confVer: 1, version: 1 }, peers: [{ id: 2, storeId: 1, role: 'voter' }] };
  writeInitialRegion(u.ctx, region);
  recover(u.ctx);
  const peer = u.ctx.peers.get(1)!;
  peer.raw.campaign();
  u.ctx.markDirty(peer);
  u.round();
  expect(peer.isLeader).toBe(true);
  return { u, peer };
}

const header = (peer: Peer): RequestHeader => ({ regionId: peer.regionId, regionEpoch: peer.region.epoch });

/** send queues one client write command (as the client API does) and returns where its answer lands. */
function send(u: UnitStore, peer: Peer, writes: KvWrite[]): CommandResult[] {
  const answers: CommandResult[] = [];
  u.ctx.send(peer, { kind: 'command', req: { id: 1, header: header(peer), op: 'write', writes }, cb: (r) => answers.push(r) });
  return answers;
}

const put = (key: string, value = `v-${key}`): KvWrite => ({ type: 'put', key: utf8(key), value: utf8(value) });

describe('proposal batching', () => {
  it("N writes arriving in one round become one entry and one apply; each is answered, each applied", () => {
    const { u, peer } = leaderOf();
    const before = u.ctx.log.lastIndex(1);
    const kvWrites = u.ctx.metrics.kvWrites;
    const answers = Array.from({ length: 50 }, (_, i) => send(u, peer, [put(`k${i}`)]));
    u.round();
    expect(u.ctx.log.lastIndex(1)).toBe(before + 1);
    expect(u.ctx.metrics.proposalBatches).toBe(1);
    expect(u.ctx.metrics.batchedCommands).toBe(50);
    expect(u.ctx.metrics.kvWrites).toBe(kvWrites + 1);
    expect(answers).toEqual(answers.map(() => [{ ok: true }]));
    for (let i = 0; i < 50; i++) expect(text(u.ctx.sm.get(utf8(`k${i}`)))).toBe(`v-k${i}`);
  });

  it('answers each command with its own result: a refused one leaves its neighbours applied', () => {
    const { u, peer } = leaderOf();
    const a = send(u, peer, [put('a', 'one')]);
    // A compare-and-swap that sees the write before it in the same entry, and one that fails.
    const casHit = send(u, peer, [{ type: 'cas', key: utf8('a'), expected: utf8('one'), value: utf8('two') }]);
    const casMiss = send(u, peer, [{ type: 'cas', key: utf8('a'), expected: utf8('one'), value: utf8('three') }]);
    // A command whose key left the Region between proposal and apply (as after a split): refused alone.
    const outside: CommandResult[] = [];
    peer.writeBatch.add(header(peer), [put('zz')], (r) => outside.push(r), 32);
    const b = send(u, peer, [put('b')]);
    u.round();
    expect(u.ctx.metrics.proposalBatches).toBe(1);
    expect(a).toEqual([{ ok: true }]);
    expect(casHit).toEqual([{ ok: true, cas: [{ succeeded: true, previous: expect.anything() }] }]);
    expect(casMiss).toEqual([{ ok: true, cas: [{ succeeded: false, previous: expect.anything() }] }]);
    expect(text((casMiss[0] as { cas: { previous: Uint8Array }[] }).cas[0]!.previous)).toBe('two');
    expect(outside).toEqual([expect.objectContaining({ ok: false, error: expect.objectContaining({ type: 'KeyNotInRegion' }) })]);
    expect(b).toEqual([{ ok: true }]);
    expect(text(u.ctx.sm.get(utf8('a')))).toBe('two');
    expect(text(u.ctx.sm.get(utf8('b')))).toBe('v-b');
    expect(u.ctx.sm.get(utf8('zz'))).toBeUndefined();
  });

  it('a failure of the entry as a whole (a stale epoch) answers every command of it with the same typed error', () => {
    const { u, peer } = leaderOf();
    const stale: RequestHeader = { regionId: 1, regionEpoch: { confVer: 1, version: 0 } };
    const got: CommandResult[][] = [[], [], []];
    for (let i = 0; i < 3; i++) peer.writeBatch.add(stale, [put(`e${i}`)], (r) => got[i]!.push(r), 32);
    u.ctx.markDirty(peer);
    u.round();
    expect(u.ctx.metrics.proposalBatches).toBe(1);
    for (const g of got) expect(g).toEqual([expect.objectContaining({ ok: false, error: expect.objectContaining({ type: 'EpochNotMatch' }) })]);
    expect(u.ctx.sm.get(utf8('e0'))).toBeUndefined();
  });

  it('bounds an entry by command count and by bytes', () => {
    const byCount = leaderOf({ proposalBatchMaxCommands: 4 });
    const before = byCount.u.ctx.log.lastIndex(1);
    const answers = Array.from({ length: 10 }, (_, i) => send(byCount.u, byCount.peer, [put(`c${i}`)]));
    byCount.u.round();
    expect(byCount.u.ctx.log.lastIndex(1)).toBe(before + 3); // 4 + 4 + 2
    expect(answers.flat()).toEqual(answers.map(() => ({ ok: true })));

    const byBytes = leaderOf({ proposalBatchMaxBytes: 2500 });
    const start = byBytes.u.ctx.log.lastIndex(1);
    const big = Array.from({ length: 5 }, (_, i) => send(byBytes.u, byBytes.peer, [put(`b${i}`, 'x'.repeat(1000))]));
    byBytes.u.round();
    expect(byBytes.u.ctx.log.lastIndex(1)).toBe(start + 3); // 2 + 2 + 1
    expect(big.flat()).toEqual(big.map(() => ({ ok: true })));
    const entries = byBytes.u.ctx.log.entries(1, start + 1, start + 4);
    expect(entries.every((e) => e.data.length < 2500 + 200)).toBe(true);
  });

  it('proposalBatchMaxCommands 1 is the old path: one entry per write, no batch entries', () => {
    const { u, peer } = leaderOf({ proposalBatchMaxCommands: 1 });
    const before = u.ctx.log.lastIndex(1);
    const answers = Array.from({ length: 10 }, (_, i) => send(u, peer, [put(`a${i}`)]));
    u.round();
    expect(u.ctx.log.lastIndex(1)).toBe(before + 10);
    expect(u.ctx.metrics.proposalBatches).toBe(0);
    expect(answers.flat()).toEqual(answers.map(() => ({ ok: true })));
  });

  it('writes still batching when the leader steps down are answered with a retryable error, not lost', () => {
    const { u, peer } = leaderOf();
    const got: CommandResult[] = [];
    peer.writeBatch.add(header(peer), [put('w')], (r) => got.push(r), 32);
    // A higher term arrives before the round proposes the batch.
    peer.raw.raft.becomeFollower(peer.raw.raft.term + 1, 0);
    u.ctx.markDirty(peer);
    u.round();
    // Retryable, never Undetermined: the batch was never in the log.
    expect(got).toHaveLength(1);
    expect(got[0]!.ok).toBe(false);
    expect(['NotLeader', 'ServerIsBusy']).toContain((got[0] as { error: { type: string } }).error.type);
  });
});
