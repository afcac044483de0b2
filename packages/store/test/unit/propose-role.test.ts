import { afterEach, describe, expect, it } from 'vitest';
import { MessageType } from '@flotilla/raft-core';
import { propose } from '../../src/operation/command/propose';
import type { CommandResult } from '../../src/raft/proposal';
import { bootstrapLeader, unitStore, type UnitStore } from './fake-context';

let u: UnitStore | undefined;
afterEach(() => {
  u?.close();
  u = undefined;
});

// A message earlier in a mailbox drain can make a leader's raft a follower
// before the round's Ready updates peer.isLeader. A command after it in the
// same drain must get NotLeader, not be forwarded and filed at the
// follower's last index (where another command's entry lands): a store
// crashed on "proposal at 11 after one at 11" in bench:watch.
describe('propose follows raft role, not the last soft state', () => {
  it('a leader that became a follower in this drain answers NotLeader and forwards nothing', () => {
    u = unitStore();
    const peer = bootstrapLeader(u);
    expect(peer.isLeader).toBe(true);
    const results: CommandResult[] = [];
    propose(u.ctx, peer, new Uint8Array([1]), (r) => results.push(r));
    const pending = peer.proposals.length;
    expect(pending).toBe(1);
    // A higher term's leader appears (as a MsgApp would do); no Ready has been handled yet.
    peer.raw.raft.becomeFollower(peer.raw.raft.term + 1, 99);
    expect(peer.isLeader).toBe(true); // stale, as within a drain
    u.sent.length = 0;
    expect(() => propose(u!.ctx, peer, new Uint8Array([2]), (r) => results.push(r))).not.toThrow();
    expect(results).toHaveLength(1);
    expect(results[0]!.ok).toBe(false);
    expect(results[0]).toEqual({ ok: false, error: { type: 'NotLeader', regionId: 1 } }); // leader 99 is not in the Region: no hint, not this peer
    expect(peer.proposals.length).toBe(pending);
    expect(u.sent.some((s) => s.msg.message.msgType === MessageType.MsgProp)).toBe(false);
  });

  it('the store configures raft not to forward proposals', () => {
    u = unitStore();
    const peer = bootstrapLeader(u);
    peer.raw.raft.becomeFollower(peer.raw.raft.term + 1, 99);
    expect(() => peer.raw.propose(new Uint8Array([3]))).toThrow(/not forwarding/);
  });
});
