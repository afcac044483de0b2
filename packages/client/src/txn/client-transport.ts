import { compareKeys, keyInRegion, type Region, type Ts, type TxnCommand, type TxnRead, type TxnResult, type VersionedPair, type KeyError } from '@flotilla/proto';
import { ClientError } from '../errors';
import type { RetryState } from '../retry';
import type { GroupResult, KeyGroup, ReadResult, ScanPage, TxnTransport } from './transport';

/** TxnRequestBody is a transactional request before routing adds its header. */
export type TxnRequestBody = { op: 'txn'; txn: TxnCommand } | { op: 'txnRead'; read: TxnRead };

/**
 * TxnRouting is the slice of FlotillaClient's routing the transport uses:
 * call() sends the request build(region) to the Region holding key (the
 * cached leader, else its peers), retrying Region errors within st's
 * budget, and rebuilding the request for the Region it tries each time.
 */
export interface TxnRouting {
  newState(op: string): RetryState;
  call(key: Uint8Array, build: (region: Region) => TxnRequestBody, st: RetryState, idempotent: boolean): Promise<{ resp: { txn?: TxnResult }; region: Region }>;
  /** locate: the Region the cache (or placement) has for key, for grouping. */
  locate(key: Uint8Array, st: RetryState): Promise<Region>;
  timestamp(): Promise<Ts>;
}

/**
 * ClientTxnTransport is TxnTransport over FlotillaClient's routing. A group
 * goes to the Region of its first key; each attempt sends only the group's
 * keys that Region holds (after a split, the others), and the keys left
 * out are grouped again against the refreshed cache and sent in turn.
 */
export class ClientTxnTransport implements TxnTransport {
  constructor(private readonly r: TxnRouting) {}

  timestamp(): Promise<Ts> {
    return this.r.timestamp();
  }

  async forKeys(keys: readonly Uint8Array[], build: (regionKeys: Uint8Array[], group: KeyGroup) => TxnCommand): Promise<GroupResult[]> {
    const st = this.r.newState('txn');
    const out: GroupResult[] = [];
    await this.grouped([...keys], keys.length, (ks, g) => ({ op: 'txn', txn: build(ks, g) }), st, out);
    return out;
  }

  async forKey(key: Uint8Array, cmd: TxnCommand): Promise<TxnResult> {
    const st = this.r.newState(`txn ${cmd.type}`);
    const { resp } = await this.r.call(key, () => ({ op: 'txn', txn: cmd }), st, !isOnePc(cmd));
    return resultOf(resp, cmd.type);
  }

  async batchGet(keys: readonly Uint8Array[], ts: Ts): Promise<ReadResult> {
    const st = this.r.newState('snapshot batchGet');
    const out: GroupResult[] = [];
    await this.grouped([...keys], keys.length, (ks) => ({ op: 'txnRead', read: { type: 'batchGet', keys: ks, ts } }), st, out);
    const pairs: VersionedPair[] = [];
    const errors: KeyError[] = [];
    for (const { result } of out) {
      if (result.type !== 'read') throw new ClientError('Unavailable', `store answered a snapshot batchGet with a ${result.type} result`);
      pairs.push(...result.pairs);
      errors.push(...result.errors);
    }
    return { pairs, errors };
  }

  async scanPage(start: Uint8Array, end: Uint8Array, limit: number, ts: Ts, keyOnly?: boolean): Promise<ScanPage> {
    const st = this.r.newState('snapshot scan');
    const { resp, region } = await this.r.call(
      start,
      (rg) => ({
        op: 'txnRead',
        read: { type: 'scan', startKey: maxKey(start, rg.startKey), endKey: minEnd(end, rg.endKey), limit, ts, ...(keyOnly ? { keyOnly: true } : {}) },
      }),
      st,
      true,
    );
    const r = resultOf(resp, 'scan');
    if (r.type !== 'read') throw new ClientError('Unavailable', `store answered a snapshot scan with a ${r.type} result`);
    if (r.errors.length > 0) return { pairs: [], errors: r.errors, resumeKey: start };
    let resumeKey: Uint8Array | null;
    if (r.pairs.length >= limit) resumeKey = successor(r.pairs[r.pairs.length - 1]!.key);
    else if (region.endKey.length === 0 || (end.length > 0 && compareKeys(region.endKey, end) >= 0)) resumeKey = null;
    else resumeKey = region.endKey;
    return { pairs: r.pairs, errors: [], resumeKey };
  }

  /**
   * grouped sends keys grouped by Region, in parallel (each group with its
   * own copy of the budget), and sends again whatever a group's Region did
   * not hold when it answered.
   */
  private async grouped(
    keys: Uint8Array[],
    total: number,
    build: (ks: Uint8Array[], g: KeyGroup) => TxnRequestBody,
    st: RetryState,
    out: GroupResult[],
  ): Promise<void> {
    const groups = new Map<number, Uint8Array[]>();
    for (const k of keys) {
      const region = await this.r.locate(k, st);
      const g = groups.get(region.id);
      if (g) g.push(k);
      else groups.set(region.id, [k]);
    }
    const tasks = [...groups.values()].map(async (ks) => {
      const branch: RetryState = { ...st };
      let sent: Uint8Array[] = [];
      let body: TxnRequestBody | undefined;
      let refused = false;
      const mk = (region: Region): TxnRequestBody => {
        // Sticky: once busy, this group is rebuilt as 2PC (branch starts with no region error of its own at the top level).
        if (branch.lastRegionError?.type === 'ServerIsBusy') refused = true;
        sent = ks.filter((k) => keyInRegion(k, region));
        body = build(sent, { regionId: region.id, allKeys: sent.length === total, ...(refused ? { onePcRefused: true } : {}) });
        return body;
      };
      // Whether the command may be resent is decided by its first build: only a 1PC prewrite may not.
      const first = build(ks, { regionId: 0, allKeys: ks.length === total });
      const { resp } = await this.r.call(ks[0]!, mk, branch, !(first.op === 'txn' && isOnePc(first.txn)));
      out.push({ keys: sent, result: resultOf(resp, body!.op === 'txn' ? body!.txn.type : body!.read.type) });
      const rest = ks.filter((k) => !sent.includes(k));
      if (rest.length > 0) await this.grouped(rest, total, build, branch, out);
    });
    const results = await Promise.allSettled(tasks);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
}

function isOnePc(cmd: TxnCommand): boolean {
  return cmd.type === 'prewrite' && cmd.onePc === true;
}

function resultOf(resp: { txn?: TxnResult }, what: string): TxnResult {
  if (!resp.txn) throw new ClientError('Unavailable', `store answered a transactional ${what} without a result`);
  return resp.txn;
}

function maxKey(a: Uint8Array, b: Uint8Array): Uint8Array {
  return compareKeys(a, b) >= 0 ? a : b;
}

/** minEnd is the smaller of two end keys, where empty means +infinity. */
function minEnd(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  if (b.length === 0) return a;
  return compareKeys(a, b) <= 0 ? a : b;
}

function successor(k: Uint8Array): Uint8Array {
  const out = new Uint8Array(k.length + 1);
  out.set(k);
  return out;
}
