// Cycle search and classification: Tarjan's strongly connected components
// of the dependency graph, then, inside each component, the shortest cycle
// of each class by breadth-first search over the edge types the class allows:
//   G0        ww only
//   G1c       ww and wr, at least one wr
//   G-single  exactly one rw, the rest ww / wr
//   G2        a cycle the others do not explain: two or more rw (allowed under SI)
import { ALL, RW, WR, WW, type DepGraph } from './graph';
import type { Anomaly, AnomalyType, Edge, EdgeType } from './types';

/** MAX_TRIES bounds the BFS runs per component and class (each is linear in the component's edges). */
const MAX_TRIES = 2_000;
/** MAX_VISITS: once a cycle is found, stop looking for a shorter one after this many node expansions. */
const MAX_VISITS = 200_000;

/** tarjan returns the strongly connected components with more than one node (iteratively: histories have thousands of nodes). */
export function tarjan(g: DepGraph, mask: number, within?: ReadonlySet<number>): number[][] {
  const index = new Map<number, number>();
  const low = new Map<number, number>();
  const onStack = new Set<number>();
  const stack: number[] = [];
  const out: number[][] = [];
  let next = 0;
  const succ = (n: number): number[] => [...(g.out.get(n) ?? [])].filter(([m, bits]) => bits & mask && (!within || within.has(m))).map(([m]) => m);
  for (const root of within ? [...within] : g.nodes()) {
    if (index.has(root)) continue;
    const work: { node: number; succ: number[]; i: number }[] = [];
    const visit = (n: number) => {
      index.set(n, next);
      low.set(n, next++);
      stack.push(n);
      onStack.add(n);
      work.push({ node: n, succ: succ(n), i: 0 });
    };
    visit(root);
    while (work.length > 0) {
      const top = work[work.length - 1]!;
      if (top.i < top.succ.length) {
        const m = top.succ[top.i++]!;
        if (!index.has(m)) visit(m);
        else if (onStack.has(m)) low.set(top.node, Math.min(low.get(top.node)!, index.get(m)!));
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(top.node)!));
      if (low.get(top.node) !== index.get(top.node)) continue;
      const comp: number[] = [];
      let m: number;
      do {
        m = stack.pop()!;
        onStack.delete(m);
        comp.push(m);
      } while (m !== top.node);
      if (comp.length > 1) out.push(comp);
    }
  }
  return out;
}

/**
 * shortestPath finds the fewest-hop path from → to over edges in mask,
 * inside within (nodes, from first, to last), of at most maxHops hops.
 * budget.visits counts the nodes it expands (the caller's work bound).
 */
export function shortestPath(g: DepGraph, from: number, to: number, mask: number, within: ReadonlySet<number>, maxHops = Infinity, budget = { visits: 0 }): number[] | undefined {
  const prev = new Map<number, number>([[from, from]]);
  let frontier = [from];
  for (let hops = 1; frontier.length > 0 && hops <= maxHops; hops++) {
    const nextFrontier: number[] = [];
    for (const n of frontier) {
      budget.visits++;
      for (const [m, bits] of g.out.get(n) ?? []) {
        if (!(bits & mask) || !within.has(m) || prev.has(m)) continue;
        prev.set(m, n);
        if (m === to) {
          const path = [to];
          for (let x = to; x !== from; ) path.push((x = prev.get(x)!));
          return path.reverse();
        }
        nextFrontier.push(m);
      }
    }
    frontier = nextFrontier;
  }
  return undefined;
}

/** edgesOf turns a closed path of nodes into witness edges, each hop taking the first type in prefer that it has. */
function edgesOf(g: DepGraph, cycle: number[], prefer: EdgeType[]): Edge[] {
  const out: Edge[] = [];
  for (let i = 0; i < cycle.length; i++) {
    const a = cycle[i]!;
    const b = cycle[(i + 1) % cycle.length]!;
    const type = prefer.find((t) => g.witness(a, b, t))!;
    out.push(g.witness(a, b, type)!);
  }
  return out;
}

/** anomaly renders a cycle: "T1 -ww(x)-> T2 -wr(y)-> T1; T2 appended ...". */
function anomaly(type: AnomalyType, edges: Edge[]): Anomaly {
  const chain = edges.map((e) => `T${e.from} -${e.type}(${e.key})-> `).join('') + `T${edges[0]!.from}`;
  return { type, txns: edges.map((e) => e.from), edges, explanation: `${type} cycle ${chain}: ${edges.map((e) => e.why).join('; ')}` };
}

/**
 * viaEdge: the shortest cycle that takes one edge of kind bit (a → b, and of
 * none of the kinds in exclude) and returns b → a over edges in rest. The
 * path comes back as b … a.
 */
function viaEdge(g: DepGraph, comp: ReadonlySet<number>, bit: number, rest: number, exclude = 0): number[] | undefined {
  let best: number[] | undefined;
  let tries = 0;
  const budget = { visits: 0 };
  for (const a of comp) {
    for (const [b, bits] of g.out.get(a) ?? []) {
      if (!(bits & bit) || bits & exclude || !comp.has(b) || tries++ >= MAX_TRIES) continue;
      const back = shortestPath(g, b, a, rest, comp, best ? best.length - 2 : Infinity, budget);
      if (back && (!best || back.length < best.length)) best = back;
      if (best && (best.length === 2 || budget.visits > MAX_VISITS)) return best;
    }
  }
  return best;
}

/** classifyComponent finds one shortest cycle of each class inside a strongly connected component of the full graph. */
function classifyComponent(g: DepGraph, comp: ReadonlySet<number>): Anomaly[] {
  const found: Anomaly[] = [];
  const wwOnly = tarjan(g, WW, comp)[0];
  const g0 = wwOnly && viaEdge(g, new Set(wwOnly), WW, WW);
  if (g0) found.push(anomaly('G0', edgesOf(g, rotate(g0), ['ww'])));
  const g1c = viaEdge(g, comp, WR, WW | WR);
  if (g1c) found.push(anomaly('G1c', edgesOf(g, rotate(g1c), ['wr', 'ww'])));
  // An rw edge that is also ww or wr closes a G0 / G1c cycle, reported above.
  const single = viaEdge(g, comp, RW, WW | WR, WW | WR);
  if (single) found.push(anomaly('G-single', edgesOf(g, rotate(single), ['ww', 'wr', 'rw'])));
  if (found.length === 0) {
    const g2 = viaEdge(g, comp, RW, ALL);
    if (g2) found.push(anomaly('G2', edgesOf(g, rotate(g2), ['ww', 'wr', 'rw'])));
  }
  return found;
}

/** rotate turns a path b … a (found for an edge a → b) into the cycle a, b, … so edgesOf starts with the chosen edge. */
function rotate(path: number[]): number[] {
  return [path[path.length - 1]!, ...path.slice(0, -1)];
}

/** findCycles classifies every cycle class present in every strongly connected component of g. */
export function findCycles(g: DepGraph): { anomalies: Anomaly[]; components: number } {
  const comps = tarjan(g, ALL);
  const anomalies: Anomaly[] = [];
  for (const c of comps) anomalies.push(...classifyComponent(g, new Set(c)));
  return { anomalies, components: comps.length };
}
