// The transaction workloads (Jepsen's bank and Elle's list-append) over a
// TxnApi, with their recorders. The same code drives the simulation (the
// real driver over SimTxnTransport, or the in-memory model) and the chaos
// runner (the driver over real processes).
//
// list-append: each transaction is 1-4 micro-operations on random keys:
//   read k           batchGet, the list decoded
//   append k v       read-modify-write of the list value (JSON array of
//                    numbers) in the same transaction; v unique per key
// The append's read is recorded as a read too ([r k L] [append k v]).
//
// bank: accounts start at INITIAL_BALANCE each; a transfer reads two
// accounts and moves 1-5 from one to the other (never below zero); a read
// takes every account in one snapshot.
import type { BankRead } from './bank';
import type { MicroOp, TxnRecord } from './history';
import type { TxnApi, TxnRunOutcome } from './api';

export const INITIAL_BALANCE = 100;
const enc = new TextEncoder();
const dec = new TextDecoder();

/** WorkloadEnv: what a workload needs from its world (virtual or real time). */
export interface WorkloadEnv {
  /** nextEvent numbers invocations and returns in the order they happen (the lost-append check's real-time order). */
  nextEvent: () => number;
  sleep: (ms: number) => Promise<void>;
  running: () => boolean;
  /** thinkMs: the longest pause between a client's transactions. */
  thinkMs: number;
}

/** TxnCounts: what the clients did. */
export interface TxnCounts {
  txns: number;
  ok: number;
  fail: number;
  info: number;
  /** why: failed and undetermined transactions by the start of their error message (at most 20 kinds). */
  why: Record<string, number>;
}

const newCounts = (): TxnCounts => ({ txns: 0, ok: 0, fail: 0, info: 0, why: {} });

function count<T>(c: TxnCounts, r: TxnRunOutcome<T>): void {
  c.txns++;
  c[r.status]++;
  if (r.status === 'ok') return;
  const k = `${r.status}: ${r.error.replace(/\d+/g, 'N').slice(0, 70)}`;
  if (c.why[k] !== undefined || Object.keys(c.why).length < 20) c.why[k] = (c.why[k] ?? 0) + 1;
}

/** decodeList reads a list value; anything but a JSON array of integers becomes [-1] (a value no one appended: the checker reports it). */
export function decodeList(v: Uint8Array | null): number[] {
  if (v === null) return [];
  try {
    const l: unknown = JSON.parse(dec.decode(v));
    if (Array.isArray(l) && l.every((x) => Number.isSafeInteger(x))) return l as number[];
  } catch {
    // fall through
  }
  return [-1];
}

/** ListAppendWorkload runs list-append clients over api and records the history. */
export class ListAppendWorkload {
  readonly history: TxnRecord[] = [];
  readonly counts = newCounts();
  private readonly nextValue = new Map<string, number>();
  private txnSeq = 0;

  constructor(
    private readonly api: TxnApi,
    private readonly keys: readonly string[],
    private readonly env: WorkloadEnv,
  ) {}

  /** client runs one client's loop until env.running() turns false. */
  async client(process: number, rng: () => number): Promise<void> {
    while (this.env.running()) {
      await this.one(process, rng);
      await this.env.sleep(Math.floor(rng() * this.env.thinkMs));
    }
  }

  /** readAll reads every key in one transaction (the final read); says whether it committed. */
  async readAll(process: number): Promise<boolean> {
    const plan: MicroOp[] = this.keys.map((key) => ({ f: 'r', key, value: null }));
    return (await this.one(process, () => 0, plan)) === 'ok';
  }

  /** one plans one transaction (or takes the plan given), runs it and records it. */
  async one(process: number, rng: () => number, given?: MicroOp[]): Promise<TxnRunOutcome<void>['status']> {
    const plan: MicroOp[] = given ?? [];
    for (let n = given ? 0 : 1 + Math.floor(rng() * 4); n > 0; n--) {
      const key = this.keys[Math.floor(rng() * this.keys.length)]!;
      if (rng() < 0.5) plan.push({ f: 'r', key, value: null });
      else {
        const value = (this.nextValue.get(key) ?? 0) + 1;
        this.nextValue.set(key, value);
        plan.push({ f: 'append', key, value });
      }
    }
    const id = ++this.txnSeq;
    const invokeTime = this.env.nextEvent();
    let ops: MicroOp[] = [];
    const r = await this.api.run(async (tx) => {
      ops = []; // only the last run of the function counts
      for (const op of plan) {
        const [cur] = await tx.batchGet([op.key]);
        const list = decodeList(cur ?? null);
        ops.push({ f: 'r', key: op.key, value: list });
        if (op.f === 'append') {
          tx.put(op.key, enc.encode(JSON.stringify([...list, op.value])));
          ops.push(op);
        }
      }
    });
    const returnTime = r.status === 'info' ? Infinity : this.env.nextEvent();
    count(this.counts, r);
    const rec: TxnRecord = { id, process, status: r.status, ops: r.status === 'ok' ? ops : plan.map((o) => (o.f === 'r' ? { ...o, value: null } : o)), invokeTime, returnTime };
    if (r.status === 'ok') Object.assign(rec, { startTs: r.startTs, commitTs: r.commitTs });
    else rec.error = r.error;
    this.history.push(rec);
    return r.status;
  }
}

/** accountNames: the bank's accounts. */
export const accountNames = (keyOf: (i: number) => string, n: number): string[] => Array.from({ length: n }, (_, i) => keyOf(i));

/** BankWorkload runs bank clients over api and records every snapshot read of all accounts. */
export class BankWorkload {
  readonly reads: BankRead[] = [];
  readonly counts = newCounts();
  transfers = 0;
  private txnSeq = 0;

  constructor(
    private readonly api: TxnApi,
    readonly accounts: readonly string[],
    private readonly env: WorkloadEnv,
  ) {}

  get total(): number {
    return this.accounts.length * INITIAL_BALANCE;
  }

  /** setup writes every account's initial balance in one transaction (again until it commits; a run that finds them written is done). */
  async setup(deadlineMs: number): Promise<boolean> {
    while (Date.now() < deadlineMs) {
      const r = await this.api.run(async (tx) => {
        const cur = await tx.batchGet(this.accounts);
        if (cur.every((v) => v !== null)) return;
        this.accounts.forEach((a) => tx.put(a, enc.encode(String(INITIAL_BALANCE))));
      });
      if (r.status === 'ok') return true;
      await this.env.sleep(50);
    }
    return false;
  }

  async client(process: number, rng: () => number): Promise<void> {
    while (this.env.running()) {
      if (rng() < 0.3) await this.readAll();
      else await this.transfer(rng);
      await this.env.sleep(Math.floor(rng() * this.env.thinkMs));
    }
    void process;
  }

  /** readAll reads every account in one snapshot and records it (when the transaction committed); says whether it did. */
  async readAll(): Promise<boolean> {
    const id = ++this.txnSeq;
    const r = await this.api.run(async (tx) => tx.batchGet(this.accounts));
    count(this.counts, r);
    if (r.status !== 'ok') return false;
    const balances = new Map<string, number>();
    r.value.forEach((v, i) => {
      if (v !== null) balances.set(this.accounts[i]!, Number(dec.decode(v)));
    });
    this.reads.push({ txnId: id, ts: r.startTs, balances });
    return true;
  }

  async transfer(rng: () => number): Promise<void> {
    const n = this.accounts.length;
    const from = this.accounts[Math.floor(rng() * n)]!;
    let to = this.accounts[Math.floor(rng() * n)]!;
    if (to === from) to = this.accounts[(this.accounts.indexOf(from) + 1) % n]!;
    const amount = 1 + Math.floor(rng() * 5);
    ++this.txnSeq;
    const r = await this.api.run(async (tx) => {
      const [a, b] = await tx.batchGet([from, to]);
      const fa = Number(dec.decode(a ?? new Uint8Array()));
      const tb = Number(dec.decode(b ?? new Uint8Array()));
      if (a === null || b === null || fa < amount) return false;
      tx.put(from, enc.encode(String(fa - amount)));
      tx.put(to, enc.encode(String(tb + amount)));
      return true;
    });
    count(this.counts, r);
    if (r.status === 'ok' && r.value) this.transfers++;
  }
}
