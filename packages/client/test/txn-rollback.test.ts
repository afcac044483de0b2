import { describe, expect, it, vi } from 'vitest';
import type { TxnCommand } from '@flotilla/proto';
import type { GroupResult, KeyGroup } from '../src/txn/transport';
import { runTxn } from '../src/txn/txn';
import { TxnAbortedError } from '../src/txn/errors';
import { FakeTso, FakeTxnTransport, Percolator } from './txn-fake';

// An aborted attempt's rollbacks leave the caller's path (commit.ts
// rollbackInBackground): the retry runs its function while they are on
// their way, its commit waits for them, and a call that ends aborted
// resolves only once they answered. The previous path stays selectable.

const enc = new TextEncoder();
const b = (s: string): Uint8Array => enc.encode(s);

/** GatedTransport holds every rollback until open() (the rest goes straight through). */
class GatedTransport extends FakeTxnTransport {
  rollbacksWaiting = 0;
  private opened = false;
  private release!: () => void;
  private readonly gate = new Promise<void>((r) => (this.release = r));

  open(): void {
    this.opened = true;
    this.release();
  }

  constructor(store: Percolator, gated: boolean) {
    super(store, [b('m')]);
    if (!gated) this.open();
  }

  override async forKeys(keys: readonly Uint8Array[], build: (regionKeys: Uint8Array[], group: KeyGroup) => TxnCommand): Promise<GroupResult[]> {
    // A probe of the command's type; built for a one-key group, so never a 1PC prewrite (the only build with a side effect).
    if (build([keys[0]!], { regionId: 0, allKeys: false }).type === 'rollback' && !this.opened) {
      this.rollbacksWaiting++;
      await this.gate;
    }
    return super.forKeys(keys, build);
  }
}

/** conflictOnce: the first run of the function sees another transaction commit 'x' after its start_ts, so its prewrite of 'x' conflicts while 'a' (the other Region) is locked. */
function conflictOnce(t: FakeTxnTransport, onRun: (attempt: number) => void, readOnRetry = false) {
  let attempt = 0;
  return async (tx: { put(k: string, v: string): void; get(k: Uint8Array): Promise<Uint8Array | null> }): Promise<void> => {
    attempt++;
    onRun(attempt);
    if (attempt === 1) await runTxn(t, (other) => other.put('x', 'other'));
    if (attempt > 1 && readOnRetry) await tx.get(b('a'));
    tx.put('a', 'mine');
    tx.put('x', 'mine');
  };
}

const indexOf = (sent: TxnCommand[], type: string, nth = 0): number => sent.map((c, i) => (c.type === type ? i : -1)).filter((i) => i >= 0)[nth] ?? -1;

describe('txn driver: rollback of an aborted attempt', () => {
  it('runs the retry while the rollback is in flight, and sends the retry prewrites only after it applied', async () => {
    const store = new Percolator(new FakeTso());
    const t = new GatedTransport(store, true);
    let runs = 0;
    const call = runTxn(t, conflictOnce(t, (n) => (runs = n)), { maxRetries: 3 });
    await vi.waitFor(() => expect(runs).toBe(2), { timeout: 5000 });
    expect(t.rollbacksWaiting).toBe(1);
    expect(store.locks.size).toBe(1); // the first attempt's lock on 'a': its rollback is still held
    t.open();
    const out = await call;
    expect(out.attempts).toBe(2);
    expect(store.locks.size).toBe(0);
    // Prewrites: the other transaction's 1PC, our first attempt's two Regions, then the retry's two; the rollback sits before the retry's.
    expect(indexOf(t.sent, 'rollback')).toBeGreaterThan(-1);
    expect(indexOf(t.sent, 'rollback')).toBeLessThan(indexOf(t.sent, 'prewrite', 3));
  });

  it("the retry's read of a key its aborted attempt locked waits for that rollback and sends no lock resolution of its own", async () => {
    const store = new Percolator(new FakeTso());
    const t = new GatedTransport(store, true);
    let runs = 0;
    const call = runTxn(t, conflictOnce(t, (n) => (runs = n), true), { maxRetries: 3 });
    await vi.waitFor(() => expect(runs).toBe(2), { timeout: 5000 });
    expect(t.rollbacksWaiting).toBe(1);
    t.open();
    expect((await call).attempts).toBe(2);
    expect(t.sent.filter((c) => c.type === 'resolveLock' || c.type === 'checkTxnStatus')).toEqual([]);
    expect(store.locks.size).toBe(0);
  });

  it('a call that ends aborted resolves only once its rollback answered, leaving no lock', async () => {
    const store = new Percolator(new FakeTso());
    const t = new GatedTransport(store, true);
    let settled = false;
    const call = runTxn(t, conflictOnce(t, () => {}), { maxRetries: 0 }).catch((e: unknown) => e).finally(() => (settled = true));
    await vi.waitFor(() => expect(t.rollbacksWaiting).toBe(1), { timeout: 5000 });
    await new Promise((r) => setImmediate(r)); // one turn of the event loop: nothing else is pending but the held rollback
    expect(settled).toBe(false);
    t.open();
    const err = await call;
    expect(err).toBeInstanceOf(TxnAbortedError);
    expect((err as TxnAbortedError).reason).toBe('WriteConflict');
    expect(store.locks.size).toBe(0);
  });

  it('rollbackInBackground: false waits for the rollback before running the function again (the previous path)', async () => {
    const store = new Percolator(new FakeTso());
    const t = new GatedTransport(store, false);
    const locksAtRun: number[] = [];
    const out = await runTxn(t, conflictOnce(t, () => locksAtRun.push(store.locks.size)), { maxRetries: 3, rollbackInBackground: false });
    expect(out.attempts).toBe(2);
    expect(locksAtRun).toEqual([0, 0]);
    expect(indexOf(t.sent, 'rollback')).toBeGreaterThan(-1);
  });
});
