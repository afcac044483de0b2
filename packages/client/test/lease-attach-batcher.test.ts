import { describe, expect, it } from 'vitest';
import { ClientError } from '../src/errors';
import { ATTACH_BATCH, ATTACH_IN_FLIGHT, AttachBatcher, type AttachItemResult } from '../src/lease/attach-batcher';
import { LeaseClient, type LeaseApi } from '../src/lease/lease';

// AttachBatcher: concurrent attaches share leaseAttachBatch requests (at
// most ATTACH_IN_FLIGHT at once, at most ATTACH_BATCH items each), a refused
// item fails only its own attach, a failed request fails all of its own;
// LeaseClient.attachKeyBatched falls back to leaseAttach against a placement
// that does not know leaseAttachBatch. A fake placement (no sockets).

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

interface Sent {
  items: { id: number; key: Uint8Array }[];
  answer: (r: AttachItemResult[] | Error) => void;
}

function fake(): { batcher: AttachBatcher; sent: Sent[] } {
  const sent: Sent[] = [];
  const batcher = new AttachBatcher(
    (items) =>
      new Promise((resolve, reject) => {
        sent.push({ items, answer: (r) => (r instanceof Error ? reject(r) : resolve(r)) });
      }),
  );
  return { batcher, sent };
}

const ok = (n: number): AttachItemResult[] => Array.from({ length: n }, () => ({ attached: true as const }));

describe('AttachBatcher', () => {
  it('sends at once while requests are free, then coalesces what arrives meanwhile', async () => {
    const { batcher, sent } = fake();
    const first = batcher.attach(1, enc('a'));
    await expect.poll(() => sent.length).toBe(1);
    const more = Array.from({ length: ATTACH_IN_FLIGHT - 1 }, (_, i) => batcher.attach(1, enc(`b${i}`)));
    await expect.poll(() => sent.length).toBe(ATTACH_IN_FLIGHT);
    // Every request is busy: these wait, and go together.
    const waiting = Array.from({ length: ATTACH_BATCH + 5 }, (_, i) => batcher.attach(2, enc(`w${i}`)));
    await Promise.resolve();
    expect(sent.length).toBe(ATTACH_IN_FLIGHT);
    sent[0]!.answer(ok(1));
    await first;
    await expect.poll(() => sent.length).toBe(ATTACH_IN_FLIGHT + 1);
    expect(sent[ATTACH_IN_FLIGHT]!.items).toHaveLength(ATTACH_BATCH);
    for (let i = 1; i < ATTACH_IN_FLIGHT; i++) sent[i]!.answer(ok(1));
    await Promise.all(more);
    await expect.poll(() => sent.length).toBe(ATTACH_IN_FLIGHT + 2);
    expect(sent[ATTACH_IN_FLIGHT + 1]!.items.map((i) => new TextDecoder().decode(i.key))).toEqual(['w1000', 'w1001', 'w1002', 'w1003', 'w1004']);
    sent[ATTACH_IN_FLIGHT]!.answer(ok(ATTACH_BATCH));
    sent[ATTACH_IN_FLIGHT + 1]!.answer(ok(5));
    await Promise.all(waiting);
  });

  it('fails a refused item alone with its code and a failed request for all its items', async () => {
    const { batcher, sent } = fake();
    const [a, b, c] = [batcher.attach(1, enc('a')), batcher.attach(2, enc('b')), batcher.attach(3, enc('c'))].map((p) => p.then(() => 'ok', (e: unknown) => e));
    await expect.poll(() => sent.length).toBe(1);
    expect(sent[0]!.items.map((i) => i.id)).toEqual([1, 2, 3]);
    sent[0]!.answer([{ attached: true }, { error: 'LeaseNotFound', message: 'lease 2 not found' }, { error: 'InvalidArgument', message: 'lease 3 already has 9999 keys' }]);
    expect(await a).toBe('ok');
    expect(await b).toMatchObject({ code: 'LeaseNotFound' });
    expect(await c).toMatchObject({ code: 'InvalidArgument', message: 'lease 3 already has 9999 keys' });
    const d = batcher.attach(1, enc('d')).catch((e: unknown) => e);
    await expect.poll(() => sent.length).toBe(2);
    sent[1]!.answer(new ClientError('Unavailable', 'placement down'));
    expect(await d).toMatchObject({ code: 'Unavailable' });
  });
});

describe('LeaseClient.attachKeyBatched', () => {
  it('uses leaseAttachBatch, and leaseAttach from then on when placement answers UnknownMethod', async () => {
    const single: string[] = [];
    let batches = 0;
    let known = true;
    const api = {
      leaseAttach: async (_id: number, key: Uint8Array) => {
        single.push(new TextDecoder().decode(key));
      },
      leaseAttachBatch: async (items: { id: number; key: Uint8Array }[]) => {
        batches++;
        if (!known) throw Object.assign(new Error('unknown method leaseAttachBatch'), { code: 'UnknownMethod', retryable: false });
        return ok(items.length);
      },
    } as unknown as LeaseApi;
    const placement = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
      try {
        return await fn();
      } catch (err) {
        throw new ClientError('Unavailable', `${what}: ${(err as Error).message}`, undefined, err);
      }
    };
    const lease = new LeaseClient({ api, placement, runTxn: () => Promise.reject(new Error('no txn here')) });
    await Promise.all([lease.attachKeyBatched(enc('a'), 7), lease.attachKeyBatched(enc('b'), 7)]);
    expect(batches).toBe(1);
    expect(single).toEqual([]);
    known = false;
    await lease.attachKeyBatched(enc('c'), 7);
    await lease.attachKeyBatched(enc('d'), 7);
    expect(batches).toBe(2); // asked once, then no more
    expect(single).toEqual(['c', 'd']);
    await expect(lease.attachKeyBatched(enc('e'), 0)).rejects.toMatchObject({ code: 'InvalidArgument' });
  });
});
