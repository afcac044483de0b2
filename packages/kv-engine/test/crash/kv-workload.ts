import { newSeededRandom } from '@flotilla/raft-core';
import { KvWriteBatch } from '../../src/index';
import type { KvEngine } from '../../src/index';

// kv-workload: the deterministic apply sequence of the KV crash test. Batch
// `seq` applies one raft entry's worth of changes to one of four Regions and
// advances that Region's applied index by one, in the same batch.

export interface Model {
  data: Map<string, string>;
  applied: Map<number, number>;
}

const REGIONS = 4;
const regionPrefix = (r: number) => `r${r}/`;

export function newModel(): Model {
  return { data: new Map(), applied: new Map() };
}

export function nextBatch(seq: number, model: Model): KvWriteBatch {
  const rnd = newSeededRandom(seq * 104729);
  const r = 1 + Math.floor(rnd() * REGIONS);
  const b = new KvWriteBatch();
  const p = regionPrefix(r);
  const n = 1 + Math.floor(rnd() * 40);
  for (let i = 0; i < n; i++) {
    const key = `${p}k${String(Math.floor(rnd() * 200)).padStart(3, '0')}`;
    const roll = rnd();
    if (roll < 0.8) {
      const value = `s${seq}i${i}`.padEnd(64, '~');
      b.put(Buffer.from(key), Buffer.from(value));
      model.data.set(key, value);
    } else if (roll < 0.97) {
      b.delete(Buffer.from(key));
      model.data.delete(key);
    } else {
      const end = `${p}k${String(Math.floor(rnd() * 200)).padStart(3, '0')}`;
      if (end > key) {
        b.deleteRange(Buffer.from(key), Buffer.from(end));
        for (const k of [...model.data.keys()]) if (k >= key && k < end) model.data.delete(k);
      }
    }
  }
  const applied = (model.applied.get(r) ?? 0) + 1;
  model.applied.set(r, applied);
  b.setApplyState(r, { appliedIndex: applied, truncatedIndex: Math.max(0, applied - 10), truncatedTerm: 1 });
  return b;
}

export function modelAfter(n: number): Model {
  const m = newModel();
  for (let s = 1; s <= n; s++) nextBatch(s, m);
  return m;
}

export function cloneModel(m: Model): Model {
  return { data: new Map(m.data), applied: new Map(m.applied) };
}

/** describeDifference returns undefined when the engine holds exactly the model (data and applied indexes). */
export function describeDifference(engine: KvEngine, model: Model): string | undefined {
  for (let r = 1; r <= REGIONS; r++) {
    const got = engine.applyState(r)?.appliedIndex ?? 0;
    const want = model.applied.get(r) ?? 0;
    if (got !== want) return `region ${r}: applied ${got} != ${want}`;
  }
  const pairs = engine.scan(Buffer.alloc(0), Buffer.alloc(0), 100_000);
  if (pairs.length !== model.data.size) return `${pairs.length} keys != ${model.data.size}`;
  for (const [k, v] of pairs) {
    const key = Buffer.from(k).toString();
    if (model.data.get(key) !== Buffer.from(v).toString()) return `key ${key}: ${Buffer.from(v).toString()} != ${model.data.get(key)}`;
  }
  return undefined;
}
