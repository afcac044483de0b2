import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import {
  compareKeys,
  decode,
  encode,
  keyInRange,
  keyInRegion,
  parseWith,
  clientRequestSchema,
  type ClientRequest,
  type ClientResponse,
  type KvPair,
  type Peer,
  type Region,
  type RegionError,
} from '@flotilla/proto';
import type { RegionWithLeader } from '@flotilla/placement/client';
import type { RouteProvider, StoreAddress } from '../src/route-provider';

// FakeCluster: real WebSocket servers on 127.0.0.1 standing in for stores,
// sharing one in-memory "truth" (Regions, leaders, the KV map), plus a fake
// placement (RouteProvider) whose view can be made stale on purpose. Each
// store checks requests the way the real store's contract says (epoch,
// leadership, key range) and answers with the RegionErrors of
// @flotilla/proto. A per-store `script` hook can override any answer.

export type ScriptAnswer = ClientResponse | RegionError | 'drop' | 'ignore' | 'garbage' | undefined;
export type Script = (req: ClientRequest, store: FakeStore) => ScriptAnswer | Promise<ScriptAnswer>;

const enc = new TextEncoder();
export const b = (s: string): Uint8Array => enc.encode(s);
export const s = (x: Uint8Array | null | undefined): string | null => (x ? Buffer.from(x).toString('utf8') : null);

export class FakeStore {
  readonly received: ClientRequest[] = [];
  connections = 0;
  script: Script | undefined;
  private constructor(
    readonly id: number,
    readonly address: string,
    private readonly wss: WebSocketServer,
  ) {}

  static async start(id: number, cluster: FakeCluster): Promise<FakeStore> {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/client' });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    const store = new FakeStore(id, `127.0.0.1:${(wss.address() as AddressInfo).port}`, wss);
    wss.on('connection', (ws: WebSocket) => {
      store.connections++;
      ws.on('message', (data: Buffer) => {
        const req = parseWith(clientRequestSchema, decode(data), 'request') as ClientRequest;
        store.received.push(req);
        void (async () => {
          let answer: ScriptAnswer = store.script ? await store.script(req, store) : undefined;
          if (answer === 'drop') return ws.terminate();
          if (answer === 'ignore') return;
          if (answer === 'garbage') return ws.send(Buffer.from([0xc1, 0xc1, 0xc1]));
          if (answer === undefined) answer = cluster.serve(store.id, req);
          const resp: ClientResponse = 'ok' in answer ? answer : { id: req.id, ok: false, error: answer };
          ws.send(encode({ ...resp, id: req.id }));
        })();
      });
    });
    return store;
  }

  /** requestsFor: what this store was asked, as [op-ish, regionId] for assertions. */
  keysOf(req: ClientRequest): string[] {
    if (req.op === 'write') return req.writes.map((w) => ('key' in w ? s(w.key)! : `${s(w.startKey)}..${s(w.endKey)}`));
    if (req.op === 'read') {
      if (req.read.type === 'get') return [s(req.read.key)!];
      if (req.read.type === 'batchGet') return req.read.keys.map((k) => s(k)!);
      return [`${s(req.read.startKey)}..${s(req.read.endKey)}`];
    }
    return [];
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    await new Promise<void>((r) => this.wss.close(() => r()));
  }
}

export class FakeCluster implements RouteProvider {
  stores: FakeStore[] = [];
  /** regions: the truth, in key order. */
  regions: { region: Region; leaderStoreId: number }[] = [];
  /** placementView: what getRegion/scanRegions answer (may lag behind the truth). */
  placementView: RegionWithLeader[] = [];
  readonly kv = new Map<string, Uint8Array>();
  getRegionCalls = 0;
  getStoreCalls = 0;
  private nextId = 1000;

  static async start(storeCount: number): Promise<FakeCluster> {
    const c = new FakeCluster();
    for (let i = 1; i <= storeCount; i++) c.stores.push(await FakeStore.start(i, c));
    const peers = c.stores.map((st, i): Peer => ({ id: 100 + i, storeId: st.id, role: 'voter' }));
    c.regions = [{ region: { id: 1, startKey: new Uint8Array(0), endKey: new Uint8Array(0), epoch: { confVer: 1, version: 1 }, peers }, leaderStoreId: 1 }];
    c.syncPlacement();
    return c;
  }

  store(id: number): FakeStore {
    return this.stores.find((x) => x.id === id)!;
  }

  leaderPeer(r: { region: Region; leaderStoreId: number }): Peer {
    return r.region.peers.find((p) => p.storeId === r.leaderStoreId)!;
  }

  /** syncPlacement makes placement's view equal the truth. */
  syncPlacement(): void {
    this.placementView = this.regions.map((r) => ({ region: structuredClone(r.region), leader: this.leaderPeer(r) }));
  }

  /** splitAt splits the truth (not placement's view) at key; both halves get version+1, the left keeps the id. */
  splitAt(key: string): void {
    const k = b(key);
    const i = this.regions.findIndex((r) => keyInRegion(k, r.region));
    const old = this.regions[i]!;
    const version = old.region.epoch.version + 1;
    const left: Region = { ...old.region, endKey: k, epoch: { ...old.region.epoch, version } };
    const right: Region = {
      id: this.nextId++,
      startKey: k,
      endKey: old.region.endKey,
      epoch: { ...old.region.epoch, version },
      peers: old.region.peers.map((p) => ({ ...p, id: this.nextId++ })),
    };
    this.regions.splice(i, 1, { region: left, leaderStoreId: old.leaderStoreId }, { region: right, leaderStoreId: old.leaderStoreId });
  }

  setLeader(regionId: number, storeId: number): void {
    this.regions.find((r) => r.region.id === regionId)!.leaderStoreId = storeId;
  }

  /** serve answers a request the way the store contract says. */
  serve(storeId: number, req: ClientRequest): ClientResponse | RegionError {
    const r = this.regions.find((x) => x.region.id === req.header.regionId);
    if (!r || !r.region.peers.some((p) => p.storeId === storeId)) return { type: 'RegionNotFound', regionId: req.header.regionId };
    if (r.leaderStoreId !== storeId) return { type: 'NotLeader', regionId: r.region.id, leader: this.leaderPeer(r) };
    const e = req.header.regionEpoch;
    if (e.version !== r.region.epoch.version || e.confVer !== r.region.epoch.confVer) {
      return { type: 'EpochNotMatch', currentRegions: this.regions.map((x) => x.region).filter((x) => x.id === r.region.id || overlaps(x, r.region) || touches(x, req)) };
    }
    const inRegion = (k: Uint8Array): boolean => keyInRegion(k, r.region);
    const notIn = (k: Uint8Array): RegionError => ({ type: 'KeyNotInRegion', key: k, regionId: r.region.id, startKey: r.region.startKey, endKey: r.region.endKey });
    const id = req.id;
    switch (req.op) {
      case 'read': {
        const rd = req.read;
        if (rd.type === 'get') return inRegion(rd.key) ? { id, ok: true, value: this.kv.get(hex(rd.key)) ?? null } : notIn(rd.key);
        if (rd.type === 'batchGet') {
          for (const k of rd.keys) if (!inRegion(k)) return notIn(k);
          return { id, ok: true, values: rd.keys.map((k) => this.kv.get(hex(k)) ?? null) };
        }
        if (!inRegion(rd.startKey) && !(rd.startKey.length === 0 && r.region.startKey.length === 0)) return notIn(rd.startKey);
        if (r.region.endKey.length > 0 && (rd.endKey.length === 0 || compareKeys(rd.endKey, r.region.endKey) > 0)) return notIn(rd.endKey);
        const pairs: KvPair[] = [...this.kv.entries()]
          .map(([k, v]) => ({ key: Buffer.from(k, 'hex') as Uint8Array, value: v }))
          .filter((p) => keyInRange(p.key, rd.startKey, rd.endKey))
          .sort((a, c) => compareKeys(a.key, c.key))
          .slice(0, rd.limit);
        return { id, ok: true, pairs };
      }
      case 'write': {
        const cas: { succeeded: boolean; previous: Uint8Array | null }[] = [];
        for (const w of req.writes) if ('key' in w && !inRegion(w.key)) return notIn(w.key);
        for (const w of req.writes) {
          if (w.type === 'put') this.kv.set(hex(w.key), w.value);
          else if (w.type === 'delete') this.kv.delete(hex(w.key));
          else if (w.type === 'deleteRange') {
            for (const k of [...this.kv.keys()]) if (keyInRange(Buffer.from(k, 'hex'), w.startKey, w.endKey)) this.kv.delete(k);
          } else {
            const cur = this.kv.get(hex(w.key)) ?? null;
            const same = cur === null || w.expected === null ? cur === w.expected : compareKeys(cur, w.expected) === 0;
            if (same) {
              if (w.value === null) this.kv.delete(hex(w.key));
              else this.kv.set(hex(w.key), w.value);
            }
            cas.push({ succeeded: same, previous: cur });
          }
        }
        return cas.length > 0 ? { id, ok: true, cas } : { id, ok: true };
      }
      case 'split': {
        const key = req.splitKeys[0]!;
        if (!inRegion(key)) return notIn(key);
        this.splitAt(Buffer.from(key).toString('utf8'));
        const i = this.regions.findIndex((x) => x.region.id === r.region.id);
        return { id, ok: true, regions: [this.regions[i]!.region, this.regions[i + 1]!.region] };
      }
      case 'merge': {
        const t = this.regions.find((x) => x.region.id === req.targetRegionId);
        if (!t) return { type: 'InvalidRequest', message: `target region ${req.targetRegionId} unknown` };
        const a = r.region;
        const tr = t.region;
        const leftOfTarget = a.endKey.length > 0 && compareKeys(a.endKey, tr.startKey) === 0;
        const rightOfTarget = tr.endKey.length > 0 && compareKeys(tr.endKey, a.startKey) === 0;
        if (!leftOfTarget && !rightOfTarget) return { type: 'InvalidRequest', message: 'regions are not adjacent' };
        const version = Math.max(a.epoch.version, tr.epoch.version) + 1;
        t.region = { ...tr, startKey: leftOfTarget ? a.startKey : tr.startKey, endKey: leftOfTarget ? tr.endKey : a.endKey, epoch: { ...tr.epoch, version } };
        this.regions = this.regions.filter((x) => x !== r);
        return { id, ok: true };
      }
      default:
        return { type: 'InvalidRequest', message: 'unsupported op' };
    }
  }

  // ---- RouteProvider ----
  async getRegion(key: Uint8Array): Promise<RegionWithLeader | null> {
    this.getRegionCalls++;
    const r = this.placementView.find((x) => keyInRegion(key, x.region));
    return r ? structuredClone(r) : null;
  }
  async scanRegions(startKey: Uint8Array, endKey: Uint8Array, limit: number): Promise<RegionWithLeader[]> {
    return this.placementView
      .filter((x) => (x.region.endKey.length === 0 || compareKeys(x.region.endKey, startKey) > 0) && (endKey.length === 0 || compareKeys(x.region.startKey, endKey) < 0))
      .slice(0, limit)
      .map((x) => structuredClone(x));
  }
  async getStore(storeId: number): Promise<StoreAddress | null> {
    this.getStoreCalls++;
    const st = this.stores.find((x) => x.id === storeId);
    return st ? { id: st.id, address: st.address, state: 'up' } : null;
  }
  close(): void {}

  async shutdown(): Promise<void> {
    await Promise.all(this.stores.map((x) => x.close()));
  }
}

function hex(k: Uint8Array): string {
  return Buffer.from(k).toString('hex');
}

function overlaps(a: Region, c: Region): boolean {
  return (a.endKey.length === 0 || compareKeys(a.endKey, c.startKey) > 0) && (c.endKey.length === 0 || compareKeys(c.endKey, a.startKey) > 0);
}

function touches(x: Region, req: ClientRequest): boolean {
  const keys: Uint8Array[] = [];
  if (req.op === 'write') for (const w of req.writes) if ('key' in w) keys.push(w.key);
  if (req.op === 'read' && req.read.type === 'get') keys.push(req.read.key);
  if (req.op === 'read' && req.read.type === 'batchGet') keys.push(...req.read.keys);
  return keys.some((k) => keyInRegion(k, x));
}
