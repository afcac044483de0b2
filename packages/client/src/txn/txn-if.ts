import { compareKeys, type Ts } from '@flotilla/proto';
import { ClientError } from '../errors';
import { checkKey, checkValue, toBytes, type Bytes } from '../bytes';
import type { Transaction, TxnOptions, TxnOutcome } from './txn';

/**
 * Compare is one condition of a conditional transaction (etcd's Compare):
 *   target 'value'    the key's value (bytes, compared byte-wise); an absent key's value compares false, except with '!='
 *   target 'version'  the key's version, the commit ts of its last write (0 when absent)
 *   target 'exists'   whether the key has a value (op '=' or '!=', value true/false)
 */
export type Compare =
  | { key: Bytes; target: 'value'; op: CompareOp; value: Bytes }
  | { key: Bytes; target: 'version'; op: CompareOp; value: bigint | number | string }
  | { key: Bytes; target: 'exists'; op: '=' | '!='; value: boolean };

export type CompareOp = '=' | '!=' | '<' | '>';

/** TxnOp is one operation of a branch; 'get' reads as the transaction sees it (its own earlier writes included). */
export type TxnOp = { op: 'put'; key: Bytes; value: Bytes } | { op: 'delete'; key: Bytes } | { op: 'get'; key: Bytes };

/** OpResult answers one TxnOp, in order: a get's value (null = absent) and version (null = written earlier in this branch). */
export type OpResult = { op: 'put'; key: Uint8Array } | { op: 'delete'; key: Uint8Array } | { op: 'get'; key: Uint8Array; value: Uint8Array | null; version: Ts | null };

export interface TxnIfResult {
  /** succeeded: every compare held and the `then` branch ran (else the `else` branch). */
  succeeded: boolean;
  /** commitTs: the version of every key the branch wrote (start_ts when nothing was written or locked). */
  commitTs: Ts;
  results: OpResult[];
}

/**
 * TxnIf is etcd's Txn(If/Then/Else) over Percolator, for keys in any
 * Regions: read the compared keys at start_ts, choose the branch, apply its
 * ops, and lock every compared key the branch does not write ('lock'
 * mutations), so a write to any of them committed after start_ts makes the
 * commit conflict and the whole thing run again. That lock is what makes
 * the compare and the writes one atomic step.
 */
export class TxnIf {
  private thenOps: TxnOp[] = [];
  private elseOps: TxnOp[] = [];

  constructor(
    /** run: runTxn over the client's transport. */
    private readonly run: <T>(fn: (tx: Transaction) => Promise<T>, opts?: TxnOptions) => Promise<TxnOutcome<T>>,
    private readonly compares: readonly Compare[],
  ) {
    compares.forEach((c, i) => checkCompare(c, i));
  }

  then(ops: readonly TxnOp[]): this {
    ops.forEach((o, i) => checkOp(o, `then[${i}]`));
    this.thenOps = [...ops];
    return this;
  }

  else(ops: readonly TxnOp[]): this {
    ops.forEach((o, i) => checkOp(o, `else[${i}]`));
    this.elseOps = [...ops];
    return this;
  }

  async commit(opts?: TxnOptions): Promise<TxnIfResult> {
    const out = await this.run(async (tx) => {
      const keys = this.compares.map((c) => toBytes(c.key));
      const current = await tx.batchGetWithVersion(keys);
      const succeeded = this.compares.every((c, i) => holds(c, current[i] ?? null));
      const results: OpResult[] = [];
      for (const op of succeeded ? this.thenOps : this.elseOps) results.push(await apply(tx, op));
      tx.lockKeys(keys);
      return { succeeded, results };
    }, opts);
    return { succeeded: out.value.succeeded, commitTs: out.commitTs, results: out.value.results };
  }
}

async function apply(tx: Transaction, op: TxnOp): Promise<OpResult> {
  const key = toBytes(op.key);
  switch (op.op) {
    case 'put':
      tx.put(key, op.value);
      return { op: 'put', key };
    case 'delete':
      tx.delete(key);
      return { op: 'delete', key };
    case 'get': {
      const v = await tx.getWithVersion(key);
      return { op: 'get', key, value: v?.value ?? null, version: v?.version ?? null };
    }
  }
}

/** holds evaluates one compare against the key's current value and version (null = absent; version null = written in this transaction, not possible here). */
export function holds(c: Compare, cur: { value: Uint8Array; version: Ts | null } | null): boolean {
  switch (c.target) {
    case 'exists':
      return (c.op === '=') === ((cur !== null) === c.value);
    case 'version':
      return cmp(c.op, sign(cur?.version ?? 0n, BigInt(c.value)));
    case 'value':
      if (cur === null) return c.op === '!=';
      return cmp(c.op, compareKeys(cur.value, toBytes(c.value)));
  }
}

function sign(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function cmp(op: CompareOp, s: number): boolean {
  return op === '=' ? s === 0 : op === '!=' ? s !== 0 : op === '<' ? s < 0 : s > 0;
}

const OPS = new Set(['=', '!=', '<', '>']);

function checkCompare(c: Compare, i: number): void {
  const what = `compares[${i}]`;
  checkKey(c.key, `${what}.key`);
  if (!OPS.has(c.op)) throw new ClientError('InvalidArgument', `${what}.op: expected one of = != < >, got ${String(c.op)}`);
  if (c.target === 'value') checkValue(c.value, `${what}.value`);
  else if (c.target === 'version') {
    try {
      if (BigInt(c.value) < 0n) throw new Error('negative');
    } catch {
      throw new ClientError('InvalidArgument', `${what}.value: expected a non-negative integer version, got ${String(c.value)}`);
    }
  } else if (c.target === 'exists') {
    if (typeof c.value !== 'boolean') throw new ClientError('InvalidArgument', `${what}.value: expected true or false for target 'exists'`);
    if (c.op !== '=' && c.op !== '!=') throw new ClientError('InvalidArgument', `${what}.op: target 'exists' takes = or !=`);
  } else throw new ClientError('InvalidArgument', `${what}.target: expected value, version or exists, got ${String((c as { target: unknown }).target)}`);
}

function checkOp(o: TxnOp, what: string): void {
  checkKey(o.key, `${what}.key`);
  if (o.op === 'put') checkValue(o.value, `${what}.value`);
  else if (o.op !== 'delete' && o.op !== 'get') throw new ClientError('InvalidArgument', `${what}.op: expected put, delete or get, got ${String((o as { op: unknown }).op)}`);
}
