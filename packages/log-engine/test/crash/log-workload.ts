import { newSeededRandom } from '@flotilla/raft-core';
import { LogBatch } from '../../src/index';
import type { LogEngine } from '../../src/index';

// log-workload: the deterministic write sequence of the crash test. Batch
// `seq` is derived from the seed `seq` and the model state after batches
// 1..seq-1, so the child (which writes) and the parent (which checks) build
// the same batches without talking to each other.

export interface RegionModel {
  terms: Map<number, number>;
  truncated: number;
  truncTerm: number;
  last: number;
  commit: number;
  term: number;
}
export type Model = Map<number, RegionModel>;

const REGIONS = 12;

export function entryData(region: number, index: number, term: number): Buffer {
  return Buffer.from(`r${region}i${index}t${term}`.padEnd(100, '.'));
}

/** nextBatch builds batch `seq` from the model and advances the model to include it. */
export function nextBatch(seq: number, model: Model): LogBatch {
  const rnd = newSeededRandom(seq * 7919);
  const b = new LogBatch();
  const n = 1 + Math.floor(rnd() * 6);
  for (let k = 0; k < n; k++) {
    const r = 1 + Math.floor(rnd() * REGIONS);
    // A Region exists (in the model as in the engine) once a batch touches it.
    const m = model.get(r) ?? { terms: new Map(), truncated: 0, truncTerm: 0, last: 0, commit: 0, term: 1 };
    const roll = rnd();
    if (roll < 0.75) {
      model.set(r, m);
      let from = m.last + 1;
      if (roll < 0.12 && m.last - m.truncated >= 3) {
        from = m.last - 1;
        m.term++;
      }
      const count = 1 + Math.floor(rnd() * 8);
      const entries = [];
      for (let i = from; i < from + count; i++) {
        entries.push({ entryType: 0 as const, term: m.term, index: i, data: entryData(r, i, m.term) });
      }
      for (let i = from; i <= m.last; i++) m.terms.delete(i);
      for (const e of entries) m.terms.set(e.index, e.term);
      m.last = from + count - 1;
      m.commit = Math.max(m.truncated, m.last - 2);
      b.append(r, entries).setHardState(r, { term: m.term, vote: r, commit: m.commit });
    } else if (roll < 0.95) {
      if (m.commit > m.truncated) {
        const t = m.commit;
        b.compact(r, t, m.terms.get(t)!);
        m.truncTerm = m.terms.get(t)!;
        for (let i = m.truncated + 1; i <= t; i++) m.terms.delete(i);
        m.truncated = t;
      }
    } else {
      b.removeRegion(r);
      model.delete(r);
    }
  }
  return b;
}

export function cloneModel(model: Model): Model {
  const out: Model = new Map();
  for (const [r, m] of model) out.set(r, { ...m, terms: new Map(m.terms) });
  return out;
}

/** modelAfter replays batches 1..n into a fresh model. */
export function modelAfter(n: number): Model {
  const model: Model = new Map();
  for (let s = 1; s <= n; s++) nextBatch(s, model);
  return model;
}

/** describeDifference returns undefined when the engine holds exactly the model, else what differs. */
export function describeDifference(engine: LogEngine, model: Model): string | undefined {
  const ids = engine.regionIds();
  const want = [...model.keys()].sort((a, b) => a - b);
  if (ids.join(',') !== want.join(',')) return `regions ${ids.join(',')} != ${want.join(',')}`;
  for (const [r, m] of model) {
    const st = engine.raftState(r);
    if (st.truncatedIndex !== m.truncated || st.lastIndex !== m.last) return `region ${r}: log (${st.truncatedIndex}, ${st.lastIndex}] != (${m.truncated}, ${m.last}]`;
    if (st.hardState.commit !== m.commit || st.hardState.term !== m.term) return `region ${r}: hard state ${JSON.stringify(st.hardState)} != commit ${m.commit} term ${m.term}`;
    if (engine.term(r, m.truncated) !== m.truncTerm) return `region ${r}: dummy term differs`;
    if (m.last > m.truncated) {
      const es = engine.entries(r, m.truncated + 1, m.last + 1);
      for (const e of es) {
        if (e.term !== m.terms.get(e.index)) return `region ${r}: entry ${e.index} term ${e.term} != ${m.terms.get(e.index)}`;
        if (!Buffer.from(e.data).equals(entryData(r, e.index, e.term))) return `region ${r}: entry ${e.index} data differs`;
      }
    }
  }
  return undefined;
}
