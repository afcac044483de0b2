// LocalNetwork / LocalTransport: the in-memory transport for tests and
// deterministic simulation (FoundationDB / TigerBeetle VOPR style). Every
// fault (drop, delay, duplicate, reorder) is drawn from one seeded PRNG in
// the order messages are flushed, so the same seed and the same sends give
// the same delivery trace.
//
// Two clocks:
//  - 'manual': nothing is delivered until the simulation calls
//    `network.deliver(now)` with its virtual time; delays are in the
//    simulation's time unit (ticks or virtual ms).
//  - 'auto' (default): deliveries run on real timers (setImmediate for no
//    delay, setTimeout for delays in ms), for ordinary async tests.

import type { RaftMessage } from '@flotilla/proto';
import { newSeededRandom } from '@flotilla/raft-core';
import { decodeRaftFrame, encodeRaftFrame } from './codec';
import {
  emptyStats,
  TransportError,
  type MessagesHandler,
  type SnapshotChunks,
  type SnapshotHandler,
  type SnapshotHeader,
  type Transport,
  type TransportStats,
  type UnreachableHandler,
} from './transport';

/** LocalFaults are per-message probabilities and a delay range, all drawn from the seed. */
export interface LocalFaults {
  /** dropProbability: chance a message is lost (0..1). */
  dropProbability?: number;
  /** duplicateProbability: chance a delivered message arrives a second time. */
  duplicateProbability?: number;
  /** reorderProbability: chance a message may overtake earlier ones to the same store (otherwise FIFO per store pair). */
  reorderProbability?: number;
  /** delay: [min, max] delivery delay, inclusive, in the network's time unit (integers). */
  delay?: [number, number];
}

export interface LocalNetworkOptions {
  /** seed for every fault decision (default 1). */
  seed?: number;
  /** mode: 'auto' delivers on real timers; 'manual' only on deliver(now). */
  mode?: 'auto' | 'manual';
  faults?: LocalFaults;
  /** maxInFlightMessages bounds messages sent but not yet delivered (default 1,000,000); beyond it messages drop. */
  maxInFlightMessages?: number;
  /** maxQueuedMessages bounds each transport's unflushed queue per destination (default 100,000). */
  maxQueuedMessages?: number;
  /** traceLimit: keep the last N delivery events for inspection (default 0 = no trace). */
  traceLimit?: number;
  /**
   * useCodec: pass every batch through the real wire codec (default true),
   * so the receiver never shares objects with the sender (as over a real
   * wire) and a field the codec would lose or refuse shows up in tests.
   */
  useCodec?: boolean;
}

/** TraceEvent records one delivered message (or a drop, with `dropped`). */
export interface TraceEvent {
  at: number;
  from: number;
  to: number;
  regionId: number;
  msgType: number;
  term: number;
  index: number;
  dropped?: 'fault' | 'blocked' | 'unreachable' | 'overflow';
}

interface Delivery {
  at: number;
  seq: number;
  from: number;
  to: number;
  /** target is the receiving incarnation: a store restarted meanwhile does not get it. */
  target: LocalTransport;
  sender: LocalTransport;
  msgs: RaftMessage[];
}

/** LocalNetwork is the hub that connects the LocalTransports of many stores. */
export class LocalNetwork {
  readonly mode: 'auto' | 'manual';
  private readonly random: () => number;
  private faults: Required<LocalFaults>;
  private readonly transports = new Map<number, LocalTransport>();
  /** groupOf: store -> partition group; stores in different groups cannot talk. */
  private groupOf = new Map<number, number>();
  private isolated = new Set<number>();
  /** pending deliveries, sorted by (at, seq). */
  private pending: Delivery[] = [];
  private inFlight = 0;
  private seq = 0;
  private lastAt = new Map<string, number>();
  private manualNow = 0;
  private readonly maxInFlight: number;
  readonly maxQueuedMessages: number;
  private readonly traceLimit: number;
  private readonly useCodec: boolean;
  private traceEvents: TraceEvent[] = [];
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private immediate: NodeJS.Immediate | undefined;

  constructor(options: LocalNetworkOptions = {}) {
    this.mode = options.mode ?? 'auto';
    this.random = newSeededRandom(options.seed ?? 1);
    this.faults = normalizeFaults(options.faults);
    this.maxInFlight = options.maxInFlightMessages ?? 1_000_000;
    this.maxQueuedMessages = options.maxQueuedMessages ?? 100_000;
    this.traceLimit = options.traceLimit ?? 0;
    this.useCodec = options.useCodec ?? true;
  }

  /**
   * transport creates (or returns) the transport of one store on this
   * network. After that transport was closed (a crashed or stopped store)
   * it creates a fresh one: a restarted store starts with clean handlers
   * and counters, and nothing in flight to the old one reaches it.
   */
  transport(storeId: number): LocalTransport {
    let t = this.transports.get(storeId);
    if (!t || t.closed) {
      t = new LocalTransport(this, storeId);
      this.transports.set(storeId, t);
    }
    return t;
  }

  /** setFaults replaces the fault configuration (e.g. a calm liveness phase after a faulty safety phase). */
  setFaults(faults: LocalFaults): void {
    this.faults = normalizeFaults(faults);
  }

  /** partition splits stores into groups that cannot reach each other; unlisted stores form one more group. */
  partition(groups: number[][]): void {
    this.groupOf = new Map();
    groups.forEach((g, i) => g.forEach((id) => this.groupOf.set(id, i)));
  }

  /** isolate cuts one store off from every other store. */
  isolate(storeId: number): void {
    this.isolated.add(storeId);
  }

  /** heal removes every partition and isolation (probabilistic faults stay). */
  heal(): void {
    this.groupOf = new Map();
    this.isolated.clear();
  }

  /** canReach tells whether a message from `from` to `to` would pass the partition rules. */
  canReach(from: number, to: number): boolean {
    if (from === to) return true;
    if (this.isolated.has(from) || this.isolated.has(to)) return false;
    return (this.groupOf.get(from) ?? -1) === (this.groupOf.get(to) ?? -1);
  }

  /** now is the network's clock: the last deliver(now) in manual mode, performance.now() in auto mode. */
  now(): number {
    return this.mode === 'manual' ? this.manualNow : performance.now();
  }

  /** inFlightCount: messages sent and not yet delivered or dropped. */
  inFlightCount(): number {
    return this.inFlight;
  }

  /** nextDeliveryAt is the time of the earliest pending delivery (manual mode drivers advance to it). */
  nextDeliveryAt(): number | undefined {
    return this.pending[0]?.at;
  }

  /**
   * deliver hands every delivery due at or before `now` to its receiver,
   * in (time, send order); returns the number of messages delivered.
   * What handlers send and flush during this call is delivered by the
   * next call at the earliest, even with zero delay: one call is one
   * network step, and a ping-pong of zero-delay replies cannot spin.
   */
  deliver(now: number): number {
    if (this.mode === 'manual') {
      if (now < this.manualNow) throw new RangeError(`deliver(${now}) goes back in time (now is ${this.manualNow})`);
      this.manualNow = now;
    }
    let delivered = 0;
    const seqLimit = this.seq;
    const due: Delivery[] = [];
    const rest: Delivery[] = [];
    for (const d of this.pending) {
      if (d.at <= now && d.seq < seqLimit) due.push(d);
      else rest.push(d);
    }
    if (due.length === 0) return 0;
    this.pending = rest;
    for (const d of due) {
      this.inFlight -= d.msgs.length;
      delivered += this.deliverOne(d);
    }
    return delivered;
  }

  /** trace returns the recorded delivery events (with traceLimit > 0). */
  trace(): TraceEvent[] {
    return this.traceEvents.slice();
  }

  /** clearTrace forgets recorded events. */
  clearTrace(): void {
    this.traceEvents = [];
  }

  private record(ev: TraceEvent): void {
    if (this.traceLimit <= 0) return;
    this.traceEvents.push(ev);
    if (this.traceEvents.length > this.traceLimit) this.traceEvents.splice(0, this.traceEvents.length - this.traceLimit);
  }

  private recordMsg(at: number, from: number, to: number, m: RaftMessage, dropped?: TraceEvent['dropped']): void {
    if (this.traceLimit <= 0) return;
    const ev: TraceEvent = { at, from, to, regionId: m.regionId, msgType: m.message.msgType, term: m.message.term, index: m.message.index };
    if (dropped) ev.dropped = dropped;
    this.record(ev);
  }

  private deliverOne(d: Delivery): number {
    const target = d.target;
    // A store that went away (or got cut off) after the send loses what was in flight.
    if (!target.running || !this.canReach(d.from, d.to)) {
      d.sender.countDrop(d.msgs.length, target.running ? 'fault' : 'unreachable');
      for (const m of d.msgs) this.recordMsg(d.at, d.from, d.to, m, target.running ? 'blocked' : 'unreachable');
      return 0;
    }
    for (const m of d.msgs) this.recordMsg(d.at, d.from, d.to, m);
    target.receive(d.msgs, d.from);
    return d.msgs.length;
  }

  /** route is called by a transport's flush with one destination's batch. */
  route(from: LocalTransport, to: number, sent: RaftMessage[]): void {
    const now = this.now();
    // Encoding happens at flush, as on the wire: a message the codec refuses throws here.
    const msgs = this.useCodec ? decodeRaftFrame(encodeRaftFrame(sent)) : sent;
    const target = this.transports.get(to);
    if (!target || !target.running) {
      for (const m of msgs) this.recordMsg(now, from.storeId, to, m, 'unreachable');
      from.countDrop(msgs.length, 'unreachable');
      from.reportUnreachable(to);
      return;
    }
    if (!this.canReach(from.storeId, to)) {
      for (const m of msgs) this.recordMsg(now, from.storeId, to, m, 'blocked');
      from.countDrop(msgs.length, 'fault');
      return;
    }
    const f = this.faults;
    const key = `${from.storeId}>${to}`;
    let last = this.lastAt.get(key) ?? -Infinity;
    const calm = f.dropProbability === 0 && f.duplicateProbability === 0 && f.delay[1] === 0;
    if (calm) {
      // Still FIFO behind anything delayed before the faults were lifted.
      const at = Math.max(now, last);
      this.lastAt.set(key, at);
      this.enqueue(at, from, target, msgs);
      return;
    }
    // Group messages that land at the same time into one batch, keeping send order.
    const batches = new Map<number, RaftMessage[]>();
    const add = (at: number, m: RaftMessage) => {
      let b = batches.get(at);
      if (!b) batches.set(at, (b = []));
      b.push(m);
    };
    for (const m of msgs) {
      if (f.dropProbability > 0 && this.random() < f.dropProbability) {
        this.recordMsg(now, from.storeId, to, m, 'fault');
        from.countDrop(1, 'fault');
        continue;
      }
      let at = now + this.drawDelay();
      const mayReorder = f.reorderProbability > 0 && this.random() < f.reorderProbability;
      if (!mayReorder) {
        if (at < last) at = last;
        last = at;
      }
      add(at, m);
      if (f.duplicateProbability > 0 && this.random() < f.duplicateProbability) {
        add(at + this.drawDelay(), this.useCodec ? decodeRaftFrame(encodeRaftFrame([m]))[0]! : m);
      }
    }
    this.lastAt.set(key, last);
    const times = [...batches.keys()].sort((a, b) => a - b);
    for (const at of times) this.enqueue(at, from, target, batches.get(at)!);
  }

  private drawDelay(): number {
    const [lo, hi] = this.faults.delay;
    if (hi === 0) return 0;
    return lo + Math.floor(this.random() * (hi - lo + 1));
  }

  private enqueue(at: number, sender: LocalTransport, target: LocalTransport, msgs: RaftMessage[]): void {
    const from = sender.storeId;
    const to = target.storeId;
    if (this.inFlight + msgs.length > this.maxInFlight) {
      for (const m of msgs) this.recordMsg(at, from, to, m, 'overflow');
      sender.countDrop(msgs.length, 'queue');
      sender.reportUnreachable(to);
      return;
    }
    this.inFlight += msgs.length;
    const d: Delivery = { at, seq: this.seq++, from, to, target, sender, msgs };
    // Binary search for the insertion point: after every entry with (at, seq) smaller.
    const p = this.pending;
    let lo = 0;
    let hi = p.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (p[mid]!.at <= at) lo = mid + 1;
      else hi = mid;
    }
    p.splice(lo, 0, d);
    if (this.mode === 'auto') this.schedule();
  }

  private schedule(): void {
    const next = this.pending[0];
    if (!next) return;
    const wait = next.at - performance.now();
    if (wait <= 0) {
      if (!this.immediate) {
        this.immediate = setImmediate(() => {
          this.immediate = undefined;
          this.deliver(performance.now());
          this.schedule();
        });
      }
      return;
    }
    if (this.timer && this.timerAt <= next.at) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = next.at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAt = Infinity;
      this.deliver(performance.now());
      this.schedule();
    }, Math.ceil(wait));
  }

  /** snapshotRoute checks reachability for a snapshot and returns the receiver. */
  snapshotTarget(from: number, to: number): LocalTransport {
    const target = this.transports.get(to);
    if (!target || !target.running) throw new TransportError('Unreachable', `store ${to} is not on the network`);
    if (!this.canReach(from, to)) throw new TransportError('Blocked', `store ${to} is partitioned from store ${from}`);
    return target;
  }

  /** close stops timers (auto mode) and forgets pending deliveries. */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = undefined;
    this.immediate = undefined;
    this.pending = [];
    this.inFlight = 0;
  }
}

function normalizeFaults(f: LocalFaults = {}): Required<LocalFaults> {
  const p = (v: number | undefined, name: string) => {
    const x = v ?? 0;
    if (!(x >= 0 && x <= 1)) throw new RangeError(`${name} must be in [0, 1], got ${v}`);
    return x;
  };
  const delay = f.delay ?? [0, 0];
  if (!(Number.isInteger(delay[0]) && Number.isInteger(delay[1]) && delay[0] >= 0 && delay[1] >= delay[0])) {
    throw new RangeError(`delay must be [min, max] integers with 0 <= min <= max, got ${JSON.stringify(delay)}`);
  }
  return {
    dropProbability: p(f.dropProbability, 'dropProbability'),
    duplicateProbability: p(f.duplicateProbability, 'duplicateProbability'),
    reorderProbability: p(f.reorderProbability, 'reorderProbability'),
    delay: [delay[0], delay[1]],
  };
}

/** LocalTransport is one store's endpoint on a LocalNetwork. */
export class LocalTransport implements Transport {
  running = false;
  closed = false;
  private queues = new Map<number, RaftMessage[]>();
  private messagesHandler: MessagesHandler | undefined;
  private unreachableHandler: UnreachableHandler | undefined;
  private snapshotHandler: SnapshotHandler | undefined;
  private readonly counters: TransportStats = emptyStats();

  constructor(
    readonly network: LocalNetwork,
    readonly storeId: number,
  ) {}

  async start(): Promise<void> {
    if (this.closed) throw new TransportError('Closed', `transport of store ${this.storeId} was closed; get a new one from the network`);
    this.running = true;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.running = false;
    for (const q of this.queues.values()) this.countDrop(q.length, 'unreachable');
    this.queues.clear();
  }

  send(toStoreId: number, msg: RaftMessage): boolean {
    if (!this.running) {
      this.countDrop(1, 'unreachable');
      return false;
    }
    let q = this.queues.get(toStoreId);
    if (!q) this.queues.set(toStoreId, (q = []));
    if (q.length >= this.network.maxQueuedMessages) {
      this.countDrop(1, 'queue');
      this.reportUnreachable(toStoreId);
      return false;
    }
    q.push(msg);
    return true;
  }

  flush(): void {
    if (this.queues.size === 0) return;
    // Destinations in ascending store order: deterministic fault draws.
    const dests = [...this.queues.keys()].sort((a, b) => a - b);
    for (const to of dests) {
      const msgs = this.queues.get(to)!;
      if (msgs.length === 0) continue;
      this.queues.set(to, []);
      this.counters.framesSent++;
      this.counters.messagesSent += msgs.length;
      this.network.route(this, to, msgs);
    }
  }

  onMessages(handler: MessagesHandler): void {
    this.messagesHandler = handler;
  }

  onUnreachable(handler: UnreachableHandler): void {
    this.unreachableHandler = handler;
  }

  onSnapshot(handler: SnapshotHandler): void {
    this.snapshotHandler = handler;
  }

  async sendSnapshot(toStoreId: number, header: SnapshotHeader, chunks: SnapshotChunks): Promise<void> {
    if (!this.running) throw new TransportError('Closed', 'transport is closed');
    let target: LocalTransport;
    try {
      target = this.network.snapshotTarget(this.storeId, toStoreId);
    } catch (err) {
      this.counters.snapshotsFailed++;
      throw err;
    }
    const handler = target.snapshotHandler;
    if (!handler) {
      this.counters.snapshotsFailed++;
      throw new TransportError('Rejected', `store ${toStoreId} accepts no snapshots`);
    }
    const self = this;
    async function* stream(): AsyncGenerator<Uint8Array> {
      for await (const chunk of chunks as AsyncIterable<Uint8Array>) {
        if (!self.running || !target.running) throw new TransportError('Closed', 'snapshot stream interrupted');
        self.counters.snapshotChunksSent++;
        self.counters.snapshotBytesSent += chunk.length;
        target.counters.snapshotChunksReceived++;
        target.counters.snapshotBytesReceived += chunk.length;
        yield chunk;
      }
    }
    try {
      await handler(header, stream(), this.storeId);
    } catch (err) {
      this.counters.snapshotsFailed++;
      throw err instanceof TransportError ? err : new TransportError('Rejected', `receiver failed the snapshot: ${(err as Error).message}`, err);
    }
    this.counters.snapshotsSent++;
    target.counters.snapshotsReceived++;
  }

  stats(): TransportStats {
    let queued = 0;
    for (const q of this.queues.values()) queued += q.length;
    return { ...this.counters, queuedMessages: queued, queuedBytes: 0 };
  }

  /** receive is called by the network with one batch. */
  receive(msgs: RaftMessage[], from: number): void {
    this.counters.framesReceived++;
    this.counters.messagesReceived += msgs.length;
    this.messagesHandler?.(msgs, from);
  }

  countDrop(n: number, reason: 'queue' | 'unreachable' | 'fault'): void {
    if (n === 0) return;
    this.counters.messagesDropped += n;
    if (reason === 'queue') this.counters.droppedQueueFull += n;
    else if (reason === 'unreachable') this.counters.droppedUnreachable += n;
    else this.counters.droppedFault += n;
  }

  reportUnreachable(storeId: number): void {
    this.counters.unreachableReports++;
    this.unreachableHandler?.(storeId);
  }
}
