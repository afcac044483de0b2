import { describe, expect, it } from 'vitest';
import { LocalNetwork, type LocalNetworkOptions, type TraceEvent } from '../src/local';
import { TransportError } from '../src/transport';
import { raftMsg, waitFor } from './helpers';

/** runTrace drives three stores for 50 virtual ms and returns the delivery trace. */
async function runTrace(options: LocalNetworkOptions): Promise<TraceEvent[]> {
  const net = new LocalNetwork({ mode: 'manual', traceLimit: 100_000, ...options });
  const ts = [1, 2, 3].map((id) => net.transport(id));
  for (const t of ts) await t.start();
  // Store 2 answers every message it gets, so the trace depends on deliveries too.
  ts[1]!.onMessages((msgs, from) => {
    for (const m of msgs) ts[1]!.send(from, raftMsg(m.regionId, 2, from, m.message.index + 1_000_000));
  });
  let seq = 0;
  for (let now = 0; now < 50; now++) {
    for (let i = 0; i < 10; i++) {
      ts[0]!.send(2, raftMsg(1 + (seq % 7), 1, 2, ++seq));
      ts[2]!.send(2, raftMsg(1 + (seq % 7), 3, 2, ++seq));
      ts[0]!.send(3, raftMsg(1 + (seq % 7), 1, 3, ++seq));
    }
    for (const t of ts) t.flush();
    net.deliver(now);
    ts[1]!.flush();
  }
  for (let now = 50; net.inFlightCount() > 0; now++) {
    net.deliver(now);
    ts[1]!.flush();
  }
  return net.trace();
}

const faulty = { dropProbability: 0.1, duplicateProbability: 0.05, reorderProbability: 0.2, delay: [0, 5] as [number, number] };

describe('LocalNetwork', () => {
  it('delivers batches in order with no faults (auto mode)', async () => {
    const net = new LocalNetwork();
    const a = net.transport(1);
    const b = net.transport(2);
    await a.start();
    await b.start();
    const got: number[] = [];
    let batches = 0;
    b.onMessages((msgs, from) => {
      expect(from).toBe(1);
      batches++;
      for (const m of msgs) got.push(m.message.index);
    });
    for (let i = 1; i <= 100; i++) a.send(2, raftMsg(1, 1, 2, i));
    a.flush();
    for (let i = 101; i <= 200; i++) a.send(2, raftMsg(1, 1, 2, i));
    a.flush();
    await waitFor(() => got.length === 200, 'all messages');
    expect(got).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(batches).toBe(2); // one batch per flush
    net.close();
  });

  it('passes messages through the wire codec: the receiver never shares the sender objects', async () => {
    const net = new LocalNetwork({ mode: 'manual' });
    const a = net.transport(1);
    const b = net.transport(2);
    await a.start();
    await b.start();
    const got: unknown[] = [];
    b.onMessages((msgs) => got.push(...msgs));
    const sent = raftMsg(4, 1, 2, 77);
    a.send(2, sent);
    a.flush();
    net.deliver(0);
    expect(got).toHaveLength(1);
    expect(got[0]).not.toBe(sent);
    expect(got[0]).toMatchObject({ regionId: 4, message: { index: 77 } });
    // A message the codec refuses fails at flush, as it would on a real connection.
    a.send(2, raftMsg(4, 1, 2, -1));
    expect(() => a.flush()).toThrow(TypeError);
  });

  it('makes faults reproducible from the seed', async () => {
    const t1 = await runTrace({ seed: 42, faults: faulty });
    const t2 = await runTrace({ seed: 42, faults: faulty });
    const t3 = await runTrace({ seed: 43, faults: faulty });
    expect(t1.length).toBeGreaterThan(1000);
    expect(t2).toEqual(t1);
    expect(t3).not.toEqual(t1);
    // The faults really happened: drops, duplicates and reordering are in the trace.
    expect(t1.some((e) => e.dropped === 'fault')).toBe(true);
    const delivered = t1.filter((e) => !e.dropped && e.from === 1 && e.to === 2).map((e) => e.index);
    expect(new Set(delivered).size).toBeLessThan(delivered.length); // duplicates
    expect(delivered.some((x, i) => i > 0 && x < delivered[i - 1]!)).toBe(true); // reordering
  });

  it('keeps per-pair FIFO with delays when reordering is off', async () => {
    const trace = await runTrace({ seed: 7, faults: { delay: [0, 9] } });
    const seqs = trace.filter((e) => e.from === 1 && e.to === 2).map((e) => e.index);
    expect(seqs.length).toBe(500);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
  });

  it('delivers only what is due on a virtual clock', async () => {
    const net = new LocalNetwork({ mode: 'manual', faults: { delay: [10, 10] } });
    const a = net.transport(1);
    const b = net.transport(2);
    await a.start();
    await b.start();
    let got = 0;
    b.onMessages((msgs) => (got += msgs.length));
    a.send(2, raftMsg(1, 1, 2, 1));
    a.flush();
    expect(net.nextDeliveryAt()).toBe(10);
    expect(net.deliver(9)).toBe(0);
    expect(got).toBe(0);
    expect(net.deliver(10)).toBe(1);
    expect(got).toBe(1);
    expect(() => net.deliver(5)).toThrow(RangeError);
  });

  it('stays FIFO when faults are lifted while delayed messages are in flight', async () => {
    const net = new LocalNetwork({ mode: 'manual', faults: { delay: [10, 10] } });
    const a = net.transport(1);
    const b = net.transport(2);
    await a.start();
    await b.start();
    const got: number[] = [];
    b.onMessages((msgs) => msgs.forEach((m) => got.push(m.message.index)));
    a.send(2, raftMsg(1, 1, 2, 1));
    a.flush();
    net.setFaults({});
    a.send(2, raftMsg(1, 1, 2, 2));
    a.flush();
    net.deliver(0);
    expect(got).toEqual([]); // 2 may not overtake 1
    net.deliver(10);
    expect(got).toEqual([1, 2]);
  });

  it('partitions, isolates and heals', async () => {
    const net = new LocalNetwork({ mode: 'manual' });
    const ts = [1, 2, 3].map((id) => net.transport(id));
    for (const t of ts) await t.start();
    const got = new Map<number, number>();
    for (const t of ts) t.onMessages((msgs) => got.set(t.storeId, (got.get(t.storeId) ?? 0) + msgs.length));
    const everyone = () => {
      for (const from of ts) for (const to of [1, 2, 3]) if (to !== from.storeId) from.send(to, raftMsg(1, from.storeId, to, 1));
      for (const t of ts) t.flush();
      net.deliver(net.now());
    };
    net.partition([[1, 2], [3]]);
    everyone();
    expect(got.get(3)).toBeUndefined();
    expect(got.get(1)).toBe(1);
    expect(ts[0]!.stats().droppedFault).toBe(1);
    net.heal();
    net.isolate(1);
    got.clear();
    everyone();
    expect(got.get(1)).toBeUndefined();
    expect(got.get(2)).toBe(1);
    expect(got.get(3)).toBe(1);
    net.heal();
    got.clear();
    everyone();
    expect([got.get(1), got.get(2), got.get(3)]).toEqual([2, 2, 2]);
  });

  it('reports unreachable for a store that is not on the network', async () => {
    const net = new LocalNetwork({ mode: 'manual' });
    const a = net.transport(1);
    await a.start();
    const unreachable: number[] = [];
    a.onUnreachable((id) => unreachable.push(id));
    a.send(9, raftMsg(1, 1, 9, 1));
    a.flush();
    expect(unreachable).toEqual([9]);
    expect(a.stats().droppedUnreachable).toBe(1);
  });

  it('gives a restarted store a fresh transport that gets nothing sent to its previous incarnation', async () => {
    const net = new LocalNetwork({ mode: 'manual', faults: { delay: [5, 5] } });
    const a = net.transport(1);
    const old = net.transport(2);
    await a.start();
    await old.start();
    let oldGot = 0;
    old.onMessages((m) => (oldGot += m.length));
    a.send(2, raftMsg(1, 1, 2, 1));
    a.flush();
    await old.close(); // crash while the message is in flight
    const fresh = net.transport(2);
    expect(fresh).not.toBe(old);
    await fresh.start();
    let freshGot = 0;
    fresh.onMessages((m) => (freshGot += m.length));
    net.deliver(5);
    expect(oldGot + freshGot).toBe(0);
    expect(a.stats().droppedUnreachable).toBe(1);
    a.send(2, raftMsg(1, 1, 2, 2));
    a.flush();
    net.deliver(10);
    expect(freshGot).toBe(1);
    expect(fresh.stats().messagesReceived).toBe(1);
  });

  it('streams snapshots and fails them across a partition', async () => {
    const net = new LocalNetwork();
    const a = net.transport(1);
    const b = net.transport(2);
    await a.start();
    await b.start();
    let bytes = 0;
    b.onSnapshot(async (_h, chunks) => {
      for await (const c of chunks) bytes += c.length;
    });
    await a.sendSnapshot(2, raftMsg(1, 1, 2, 0), [new Uint8Array(10), new Uint8Array(20)]);
    expect(bytes).toBe(30);
    expect(a.stats().snapshotsSent).toBe(1);
    net.isolate(2);
    await expect(a.sendSnapshot(2, raftMsg(1, 1, 2, 0), [new Uint8Array(1)])).rejects.toBeInstanceOf(TransportError);
    net.close();
  });
});
