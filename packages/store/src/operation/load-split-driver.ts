import { compareKeys, type ClientRequest, type KvRead, type KvWrite } from '@flotilla/proto';
import type { StoreConfig } from '../config';
import type { StoreContext } from '../context';
import type { Peer } from '../raft/peer';
import { startSplit } from './command/admin/split';
import { LoadSplitRecorder } from './load-split';

/**
 * The load-based split driver: it feeds each led Region's requests to a
 * LoadSplitRecorder (load-split.ts) and, every loadSplitWindowMs, closes
 * the windows and asks for a split through the same path as the
 * size-based split (startSplit → askBatchSplit → BatchSplit). Off when
 * both loadSplitQps and loadSplitBytesPerSec are 0.
 *
 * Recorders live in a WeakMap keyed by the Peer object, so a destroyed or
 * replaced peer takes its recorder with it; a peer that is not leader, or
 * whose Region changed epoch (it split, merged), starts over.
 */

interface Entry {
  recorder: LoadSplitRecorder;
  epochVersion: number;
  windowStartMs: number;
  bytesAtStart: number;
}

const entries = new WeakMap<Peer, Entry>();

/** loadSplitEnabled: either threshold is set. */
export function loadSplitEnabled(cfg: StoreConfig): boolean {
  return cfg.loadSplitQps > 0 || cfg.loadSplitBytesPerSec > 0;
}

function entryOf(ctx: StoreContext, peer: Peer): Entry {
  let e = entries.get(peer);
  if (!e || e.epochVersion !== peer.region.epoch.version) {
    const cfg = ctx.config;
    e = {
      recorder: new LoadSplitRecorder({ qpsThreshold: cfg.loadSplitQps, bytesPerSecThreshold: cfg.loadSplitBytesPerSec, hotWindows: cfg.loadSplitWindows }, ctx.random),
      epochVersion: peer.region.epoch.version,
      windowStartMs: ctx.now(),
      bytesAtStart: peer.flow.totalBytes,
    };
    entries.set(peer, e);
  }
  return e;
}

/** recordLoad counts one client read or write on a leader (called once per request, after the Region checks). */
export function recordLoad(ctx: StoreContext, peer: Peer, req: ClientRequest): void {
  if (!loadSplitEnabled(ctx.config)) return;
  if (req.op === 'read') recordRead(entryOf(ctx, peer).recorder, req.read);
  else if (req.op === 'write') recordWrites(entryOf(ctx, peer).recorder, req.writes);
}

function recordRead(r: LoadSplitRecorder, read: KvRead): void {
  switch (read.type) {
    case 'get':
      return r.record(read.key);
    case 'batchGet':
      return recordSpan(r, read.keys);
    case 'scan':
      return r.record(read.startKey, read.endKey.length === 0 ? null : read.endKey);
  }
}

function recordWrites(r: LoadSplitRecorder, writes: KvWrite[]): void {
  const keys: Uint8Array[] = [];
  for (const w of writes) {
    if (w.type === 'deleteRange') {
      keys.push(w.startKey);
      if (w.endKey.length === 0) return void r.record(minKey(keys), null);
      keys.push(w.endKey);
    } else keys.push(w.key);
  }
  recordSpan(r, keys);
}

/** recordSpan records a multi-key request as the span from its lowest to its highest key. */
function recordSpan(r: LoadSplitRecorder, keys: Uint8Array[]): void {
  if (keys.length === 0) return;
  let lo = keys[0]!;
  let hi = lo;
  for (const k of keys) {
    if (compareKeys(k, lo) < 0) lo = k;
    if (compareKeys(k, hi) > 0) hi = k;
  }
  r.record(lo, compareKeys(lo, hi) === 0 ? undefined : hi);
}

function minKey(keys: Uint8Array[]): Uint8Array {
  return keys.reduce((a, b) => (compareKeys(a, b) <= 0 ? a : b));
}

/**
 * loadSplitCheck closes every led Region's window (the tick table runs it
 * every loadSplitWindowMs) and splits the Regions that stayed hot with a
 * key that balances their load. A split already asked for at this epoch
 * is not asked again before splitRetryAfterMs, as in splitCheck.
 */
export function loadSplitCheck(ctx: StoreContext): void {
  if (ctx.closed || !loadSplitEnabled(ctx.config)) return;
  const now = ctx.now();
  for (const p of ctx.peers.values()) {
    const e = entries.get(p);
    if (!e) continue;
    if (!p.isLeader || !p.initialized || e.epochVersion !== p.region.epoch.version) {
      entries.delete(p);
      continue;
    }
    const verdict = e.recorder.closeWindow(now - e.windowStartMs, p.flow.totalBytes - e.bytesAtStart, p.region);
    e.windowStartMs = now;
    e.bytesAtStart = p.flow.totalBytes;
    if (verdict.kind === 'cold') {
      entries.delete(p); // nothing kept for a Region gone quiet
      continue;
    }
    if (verdict.kind !== 'split') continue;
    if (p.splitInFlightVersion === p.region.epoch.version && now - p.splitAskedAtMs < ctx.config.splitRetryAfterMs) continue;
    p.splitInFlightVersion = p.region.epoch.version;
    p.splitAskedAtMs = now;
    ctx.metrics.loadSplits++;
    ctx.logger.info({ regionId: p.regionId, splitKey: Buffer.from(verdict.key).toString('hex') }, 'region hot by load; splitting at a load-balanced key');
    void startSplit(ctx, p, [verdict.key], (r) => {
      if (!r.ok) {
        p.splitInFlightVersion = 0;
        ctx.logger.warn({ regionId: p.regionId, err: r.error.type }, 'load split failed');
      }
    });
  }
}
