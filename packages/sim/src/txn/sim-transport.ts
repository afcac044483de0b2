// SimTxnTransport: @flotilla/client's TxnTransport (txn/transport.ts) over
// the simulated cluster, so the real Percolator driver runs in the
// simulation. It routes like SimClient (Region from placement or from an
// EpochNotMatch answer, leader from hints, a random voter 10 % of the time)
// and calls each store's handleClientRequest directly. Error contract as
// the interface states: KeyErrors ride in the result; Region errors are
// absorbed by re-routing (and re-grouping, for forKeys); the deadline
// passing is ClientError('Timeout'); a 1PC prewrite whose fate is unknown
// (no answer, Undetermined, Unavailable) is ClientError('Undetermined');
// a request the store calls malformed is ClientError('InvalidArgument').
import { ClientError, type GroupResult, type KeyGroup, type ReadResult, type ScanPage, type TxnTransport } from '@flotilla/client';
import { compareKeys, keyInRegion, type ClientRequest, type KeyError, type Region, type RegionEpoch, type Ts, type TxnCommand, type TxnRead, type TxnResult, type VersionedPair } from '@flotilla/proto';
import type { SimCluster } from '../cluster';
import type { Rng } from '../keys';

type Body = { op: 'txn'; txn: TxnCommand } | { op: 'txnRead'; read: TxnRead };
type Answer = { kind: 'ok'; txn: TxnResult | undefined } | { kind: 'error'; type: string; leaderStore?: number; regions?: Region[] } | { kind: 'timeout' };

/** NOT_APPLIED: Region errors a store gives only for a command that was not (and will not be) applied: safe to send again. */
const NOT_APPLIED = new Set(['NotLeader', 'EpochNotMatch', 'KeyNotInRegion', 'RegionNotFound', 'ServerIsBusy', 'StaleCommand', 'StoreNotMatch', 'Unreachable']);
/** ATTEMPT_TIMEOUT_MS: one attempt waits this long for an answer before it is sent again (or declared undetermined). */
const ATTEMPT_TIMEOUT_MS = 2_000;

export interface SimTxnTransportOptions {
  /** timeoutMs bounds one transport call (all its re-routing). */
  timeoutMs: number;
  /** timestamp is the oracle (the cluster's, shared with the stores' 1PC commits). */
  timestamp: () => Promise<Ts>;
}

export class SimTxnTransport implements TxnTransport {
  private readonly leaderHint = new Map<number, number>();
  private regionHint: Region[] = [];
  /** requests counts the requests sent (the run's report). */
  requests = 0;

  constructor(
    private readonly cluster: SimCluster,
    private readonly rng: Rng,
    private readonly o: SimTxnTransportOptions,
  ) {}

  timestamp(): Promise<Ts> {
    return this.o.timestamp();
  }

  async forKeys(keys: readonly Uint8Array[], build: (regionKeys: Uint8Array[], group: KeyGroup) => TxnCommand): Promise<GroupResult[]> {
    const out: GroupResult[] = [];
    const deadline = Date.now() + this.o.timeoutMs;
    const first = keys.length > 0 ? build([...keys], { regionId: 0, allKeys: true }) : undefined;
    const resendable = !(first?.type === 'prewrite' && first.onePc === true);
    await this.grouped([...keys], keys.length, (ks, g) => ({ op: 'txn', txn: build(ks, g) }), resendable, deadline, out);
    return out;
  }

  async forKey(key: Uint8Array, cmd: TxnCommand): Promise<TxnResult> {
    const resendable = !(cmd.type === 'prewrite' && cmd.onePc === true);
    return (await this.call(key, () => ({ op: 'txn', txn: cmd }), resendable, Date.now() + this.o.timeoutMs)).result;
  }

  async batchGet(keys: readonly Uint8Array[], ts: Ts): Promise<ReadResult> {
    const out: GroupResult[] = [];
    await this.grouped([...keys], keys.length, (ks) => ({ op: 'txnRead', read: { type: 'batchGet', keys: ks, ts } }), true, Date.now() + this.o.timeoutMs, out);
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
    const mk = (rg: Region): Body => ({
      op: 'txnRead',
      read: { type: 'scan', startKey: compareKeys(start, rg.startKey) >= 0 ? start : rg.startKey, endKey: minEnd(end, rg.endKey), limit, ts, ...(keyOnly ? { keyOnly: true } : {}) },
    });
    const { result: r, region } = await this.call(start, mk, true, Date.now() + this.o.timeoutMs);
    if (r.type !== 'read') throw new ClientError('Unavailable', `store answered a snapshot scan with a ${r.type} result`);
    if (r.errors.length > 0) return { pairs: [], errors: r.errors, resumeKey: start };
    let resumeKey: Uint8Array | null;
    if (r.pairs.length >= limit) resumeKey = successor(r.pairs[r.pairs.length - 1]!.key);
    else if (region.endKey.length === 0 || (end.length > 0 && compareKeys(region.endKey, end) >= 0)) resumeKey = null;
    else resumeKey = region.endKey;
    return { pairs: r.pairs, errors: [], resumeKey };
  }

  /** grouped sends keys grouped by the Region routing has for each, in parallel; keys a group's Region no longer held are grouped again. */
  private async grouped(keys: Uint8Array[], total: number, build: (ks: Uint8Array[], g: KeyGroup) => Body, resendable: boolean, deadline: number, out: GroupResult[]): Promise<void> {
    const groups = new Map<number, Uint8Array[]>();
    for (const k of keys) {
      const id = this.route(k)?.region.id ?? -1;
      groups.set(id, [...(groups.get(id) ?? []), k]);
    }
    const tasks = [...groups.values()].map(async (ks) => {
      let sent: Uint8Array[] = [];
      const mk = (region: Region): Body => {
        sent = ks.filter((k) => keyInRegion(k, region));
        return build(sent, { regionId: region.id, allKeys: sent.length === total });
      };
      const { result } = await this.call(ks[0]!, mk, resendable, deadline);
      out.push({ keys: sent, result });
      const rest = ks.filter((k) => !sent.includes(k));
      if (rest.length > 0) await this.grouped(rest, total, build, resendable, deadline, out);
    });
    const settled = await Promise.allSettled(tasks);
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /** call sends mk(region) to the Region holding key until it answers, re-routing after Region errors. */
  private async call(key: Uint8Array, mk: (region: Region) => Body, resendable: boolean, deadline: number): Promise<{ result: TxnResult; region: Region }> {
    let last = 'no attempt';
    for (let attempt = 0; ; attempt++) {
      const left = deadline - Date.now();
      if (left <= 0) throw new ClientError('Timeout', `transactional request timed out (last: ${last})`);
      const route = this.route(key);
      if (!route) {
        last = 'no route';
        await this.sleep(20 + Math.floor(this.rng() * 50));
        continue;
      }
      const req = { id: 0, header: { regionId: route.region.id, regionEpoch: route.region.epoch }, ...mk(route.region) } as ClientRequest;
      const a = await this.send(route.storeId, req, Math.min(left, ATTEMPT_TIMEOUT_MS));
      if (a.kind === 'ok') {
        if (!a.txn) throw new ClientError('Unavailable', 'store answered a transactional request without a result');
        return { result: a.txn, region: route.region };
      }
      if (a.kind === 'error' && a.type === 'InvalidRequest') throw new ClientError('InvalidArgument', `store refused the request as malformed`);
      const applied = a.kind === 'timeout' || !NOT_APPLIED.has(a.type);
      if (applied && !resendable) throw new ClientError('Undetermined', `one-phase prewrite: ${a.kind === 'timeout' ? 'no answer' : a.type}; it may have committed`);
      last = a.kind === 'timeout' ? 'timeout' : a.type;
      if (a.kind === 'error') this.learn(route.region.id, a);
      await this.sleep(Math.min(200, 10 * (attempt + 1)) + Math.floor(this.rng() * 20));
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => setTimeout(r, ms));
  }

  /** route finds the Region holding key (newest epoch of hint and placement) and the store to try. */
  private route(key: Uint8Array): { region: Region; storeId: number } | undefined {
    let region = this.regionHint.find((r) => keyInRegion(key, r));
    let leaderStore: number | undefined;
    const known = this.cluster.placementDown ? null : this.cluster.placement.call('getRegion', { key }).region;
    if (known && (!region || epochNewer(known.region.epoch, region.epoch))) {
      region = known.region;
      leaderStore = known.leader?.storeId;
    }
    if (!region) return undefined;
    const voters = region.peers.filter((p) => p.role === 'voter');
    let storeId = this.leaderHint.get(region.id) ?? leaderStore;
    if (storeId === undefined || this.rng() < 0.1) storeId = voters[Math.floor(this.rng() * voters.length)]?.storeId;
    return storeId === undefined ? undefined : { region, storeId };
  }

  private learn(regionId: number, a: { type: string; leaderStore?: number; regions?: Region[] }): void {
    if (a.leaderStore !== undefined) this.leaderHint.set(regionId, a.leaderStore);
    else this.leaderHint.delete(regionId);
    if (a.regions) this.regionHint = a.regions;
    if (a.type === 'RegionNotFound' || a.type === 'KeyNotInRegion' || a.type === 'Unreachable') this.regionHint = [];
  }

  /** send calls one store and waits at most timeoutMs (virtual) for its answer. */
  private send(storeId: number, req: ClientRequest, timeoutMs: number): Promise<Answer> {
    const store = this.cluster.store(storeId);
    if (!store) return Promise.resolve({ kind: 'error', type: 'Unreachable' });
    this.requests++;
    return new Promise((resolve) => {
      let done = false;
      const timer = setTimeout(() => {
        if (!done) resolve({ kind: 'timeout' });
        done = true;
      }, timeoutMs);
      store.handleClientRequest(req, (r) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (r.ok) return resolve({ kind: 'ok', txn: r.txn });
        const e = r.error;
        resolve({ kind: 'error', type: e.type, ...(e.type === 'NotLeader' && e.leader ? { leaderStore: e.leader.storeId } : {}), ...(e.type === 'EpochNotMatch' ? { regions: e.currentRegions } : {}) });
      });
    });
  }
}

function epochNewer(a: RegionEpoch, b: RegionEpoch): boolean {
  return a.version > b.version || (a.version === b.version && a.confVer > b.confVer);
}

/** minEnd is the smaller of two end keys, where empty means +infinity. */
function minEnd(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  if (b.length === 0) return a;
  return compareKeys(a, b) <= 0 ? a : b;
}

/** successor is the smallest key after k (k + 0x00). */
function successor(k: Uint8Array): Uint8Array {
  const out = new Uint8Array(k.length + 1);
  out.set(k);
  return out;
}
