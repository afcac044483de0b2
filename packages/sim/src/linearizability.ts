// Linearizability checking (Wing & Gong's search with Lowe's memoisation, the
// algorithm Porcupine and Knossos use), with a KV model for get / put /
// delete / cas.
//
// A history is a list of operations, each with the time its client invoked
// it and the time the answer came back. An operation whose outcome is
// unknown (the client timed out, or the store answered with an error after
// the command may already have been proposed) has `returnTime = Infinity`
// and `output = undefined`: it may have taken effect at any point after its
// invocation, or never. Reads with unknown outcome carry no information and
// callers may leave them out.
//
// The KV model is P-compositional: a history is linearizable iff its
// sub-history on every key is (Herlihy & Wing, locality), so the checker
// partitions per key, as Porcupine does, and searches each key on its own
// with a bound on the work, so a pathological history cannot hang a test.

/** Operation is one invoke/complete pair of a history. */
export interface Operation<I, O> {
  clientId: number;
  /** op names the operation (for messages): 'get', 'put', ... */
  op: string;
  input: I;
  /** output is undefined when the outcome is unknown (then returnTime is Infinity). */
  output: O | undefined;
  invokeTime: number;
  /** returnTime is Infinity for an operation whose outcome is unknown. */
  returnTime: number;
}

/**
 * Model is a sequential specification. `step` returns the next state when
 * the operation with this input could have produced this output from
 * `state` (an undefined output means unknown: any output is acceptable),
 * or undefined when it could not. States must be immutable values.
 */
export interface Model<S, I, O> {
  init(): S;
  step(state: S, input: I, output: O | undefined): S | undefined;
  /** stateKey renders a state for the memo table; equal states must give equal keys. */
  stateKey(state: S): string;
}

export type Verdict = 'ok' | 'illegal' | 'unknown';

export interface CheckOptions {
  /** maxStepsPerPartition bounds the search per partition; past it the verdict is 'unknown'. */
  maxStepsPerPartition?: number;
}

export interface PartitionResult {
  partition: string;
  verdict: Verdict;
  operations: number;
  steps: number;
  /** longestPrefix is the longest sequence of operations the search could linearize (on 'illegal'). */
  longestPrefix?: number[];
}

export interface CheckResult {
  verdict: Verdict;
  partitions: PartitionResult[];
  operations: number;
}

interface Entry {
  /** isCall: a call event (otherwise a return event). */
  isCall: boolean;
  id: number;
  time: number;
  pending: boolean;
  match: Entry | undefined;
  prev: Entry | undefined;
  next: Entry | undefined;
}

/** Bitset is a fixed-size set of operation indexes; its string form is the memo key. */
class Bitset {
  readonly words: Uint32Array;
  constructor(n: number) {
    this.words = new Uint32Array(Math.ceil(n / 32) || 1);
  }
  set(i: number): void {
    this.words[i >>> 5]! |= 1 << (i & 31);
  }
  clear(i: number): void {
    this.words[i >>> 5]! &= ~(1 << (i & 31));
  }
  key(): string {
    return this.words.join(',');
  }
}

/**
 * eventList links the calls and returns of ops into one doubly linked list
 * in time order, behind a sentinel head. At equal times calls come first,
 * so operations that touch at an instant are treated as concurrent (the
 * permissive choice).
 */
function eventList<I, O>(ops: readonly Operation<I, O>[]): Entry {
  const events: Entry[] = [];
  for (let id = 0; id < ops.length; id++) {
    const o = ops[id]!;
    if (!(o.invokeTime <= o.returnTime)) throw new RangeError(`operation ${id} returns (${o.returnTime}) before it is invoked (${o.invokeTime})`);
    const pending = o.returnTime === Infinity;
    const call: Entry = { isCall: true, id, time: o.invokeTime, pending, match: undefined, prev: undefined, next: undefined };
    const ret: Entry = { isCall: false, id, time: o.returnTime, pending, match: call, prev: undefined, next: undefined };
    call.match = ret;
    events.push(call, ret);
  }
  events.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? a.id - b.id : a.isCall ? -1 : 1));
  const head: Entry = { isCall: false, id: -1, time: -Infinity, pending: false, match: undefined, prev: undefined, next: undefined };
  let prev = head;
  for (const e of events) {
    prev.next = e;
    e.prev = prev;
    prev = e;
  }
  return head;
}

/** lift takes an operation (its call and its return) out of the event list: it is linearized. */
function lift(call: Entry): void {
  call.prev!.next = call.next;
  if (call.next) call.next.prev = call.prev;
  const ret = call.match!;
  ret.prev!.next = ret.next;
  if (ret.next) ret.next.prev = ret.prev;
}

/** unlift puts a lifted operation back where it was (backtracking); the inverse of lift. */
function unlift(call: Entry): void {
  const ret = call.match!;
  ret.prev!.next = ret;
  if (ret.next) ret.next.prev = ret;
  call.prev!.next = call;
  if (call.next) call.next.prev = call;
}

/**
 * checkOperations searches for a linearization of one partition's
 * operations (Lowe's just-in-time linearization with memoisation: the
 * pair (set of linearized operations, model state) is tried only once).
 */
export function checkOperations<S, I, O>(
  model: Model<S, I, O>,
  ops: readonly Operation<I, O>[],
  maxSteps = 2_000_000,
): { verdict: Verdict; steps: number; longestPrefix: number[] } {
  const n = ops.length;
  if (n === 0) return { verdict: 'ok', steps: 0, longestPrefix: [] };
  const head = eventList(ops);
  const linearized = new Bitset(n);
  const cache = new Set<string>();
  const stack: { call: Entry; state: S }[] = [];
  let longest: number[] = [];
  let state = model.init();
  let entry = head.next;
  let steps = 0;
  for (;;) {
    // Done when no operation with a known outcome is left: every remaining
    // event belongs to a pending operation, which may never have happened.
    if (entry === undefined || (!entry.isCall && entry.pending)) return { verdict: 'ok', steps, longestPrefix: [] };
    if (++steps > maxSteps) return { verdict: 'unknown', steps, longestPrefix: longest };
    if (entry.isCall) {
      const o = ops[entry.id]!;
      const next = model.step(state, o.input, o.output);
      if (next !== undefined) {
        linearized.set(entry.id);
        const key = linearized.key() + '|' + model.stateKey(next);
        if (!cache.has(key)) {
          cache.add(key);
          stack.push({ call: entry, state });
          if (stack.length > longest.length) longest = stack.map((s) => s.call.id);
          state = next;
          lift(entry);
          entry = head.next;
          continue;
        }
        linearized.clear(entry.id);
      }
      entry = entry.next;
    } else {
      // A return event of an operation not yet linearized: backtrack.
      const top = stack.pop();
      if (!top) return { verdict: 'illegal', steps, longestPrefix: longest };
      state = top.state;
      linearized.clear(top.call.id);
      unlift(top.call);
      entry = top.call.next;
    }
  }
}

/**
 * checkPartitioned checks each partition on its own (P-compositionality):
 * the history is illegal if any partition is, unknown if any search ran
 * out of budget and none is illegal, ok otherwise.
 */
export function checkPartitioned<S, I, O>(
  model: Model<S, I, O>,
  history: readonly Operation<I, O>[],
  partitionOf: (op: Operation<I, O>) => string,
  options: CheckOptions = {},
): CheckResult {
  const parts = new Map<string, Operation<I, O>[]>();
  for (const o of history) {
    const k = partitionOf(o);
    let p = parts.get(k);
    if (!p) parts.set(k, (p = []));
    p.push(o);
  }
  const results: PartitionResult[] = [];
  let verdict: Verdict = 'ok';
  for (const [partition, ops] of [...parts].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    const r = checkOperations(model, ops, options.maxStepsPerPartition);
    const pr: PartitionResult = { partition, verdict: r.verdict, operations: ops.length, steps: r.steps };
    if (r.verdict === 'illegal') pr.longestPrefix = r.longestPrefix;
    results.push(pr);
    if (r.verdict === 'illegal') verdict = 'illegal';
    else if (r.verdict === 'unknown' && verdict === 'ok') verdict = 'unknown';
  }
  return { verdict, partitions: results, operations: history.length };
}

// ------------------------------------------------------------------ KV model

/** KvInput is one KV operation on a key (values are strings; null = absent). */
export type KvInput =
  | { type: 'get'; key: string }
  | { type: 'put'; key: string; value: string }
  | { type: 'delete'; key: string }
  | { type: 'cas'; key: string; expected: string | null; value: string | null };

/** KvOutput: get answers value; cas answers succeeded (and, when known, the value it saw); put/delete answer nothing. */
export interface KvOutput {
  value?: string | null;
  succeeded?: boolean;
  previous?: string | null;
}

export type KvOperation = Operation<KvInput, KvOutput>;

/** kvModel is the sequential spec of one key: the state is its value (null = absent). */
export const kvModel: Model<string | null, KvInput, KvOutput> = {
  init: () => null,
  step(state, input, output) {
    switch (input.type) {
      case 'get':
        if (output === undefined) return state;
        return output.value === state ? state : undefined;
      case 'put':
        return input.value;
      case 'delete':
        return null;
      case 'cas': {
        const hit = state === input.expected;
        if (output !== undefined) {
          if (output.succeeded !== undefined && output.succeeded !== hit) return undefined;
          if (output.previous !== undefined && output.previous !== state) return undefined;
        }
        return hit ? input.value : state;
      }
    }
  },
  // A leading marker keeps null apart from the string "null".
  stateKey: (s) => (s === null ? '0' : '1' + s),
};

/**
 * checkKvHistory checks a KV history per key with the KV model. Before the
 * search it rejects, in linear time, any read of a value that no write of
 * that key invoked before the read returned could have produced (the
 * commonest symptom of a bug, and one that would otherwise cost the search
 * an exponential walk over concurrent writes).
 */
export function checkKvHistory(history: readonly KvOperation[], options: CheckOptions = {}): CheckResult {
  const firstWrite = new Map<string, number>();
  for (const o of history) {
    const i = o.input;
    const v = i.type === 'put' ? i.value : i.type === 'cas' ? i.value : null;
    if (v === null) continue;
    const k = i.key + '\u0000' + v;
    const t = firstWrite.get(k);
    if (t === undefined || o.invokeTime < t) firstWrite.set(k, o.invokeTime);
  }
  for (const o of history) {
    if (o.input.type !== 'get' || o.output === undefined) continue;
    const v = o.output.value;
    if (v === null || v === undefined) continue;
    const t = firstWrite.get(o.input.key + '\u0000' + v);
    if (t === undefined || t > o.returnTime) {
      const key = o.input.key;
      const ops = history.filter((x) => x.input.key === key).length;
      const partitions: PartitionResult[] = [{ partition: key, verdict: 'illegal', operations: ops, steps: 0, longestPrefix: [] }];
      return { verdict: 'illegal', partitions, operations: history.length };
    }
  }
  return checkPartitioned(kvModel, history, (o) => o.input.key, options);
}

/** describeOperation renders one operation for failure reports. */
export function describeOperation(o: KvOperation): string {
  const i = o.input;
  const args = i.type === 'get' || i.type === 'delete' ? '' : i.type === 'put' ? ` ${JSON.stringify(i.value)}` : ` ${JSON.stringify(i.expected)}->${JSON.stringify(i.value)}`;
  const out = o.output === undefined ? '?' : JSON.stringify(o.output);
  const end = o.returnTime === Infinity ? '∞' : String(o.returnTime);
  return `c${o.clientId} ${i.type}(${i.key}${args}) -> ${out} [${o.invokeTime}, ${end}]`;
}

/** explainFailure lists a failing key's operations in invocation order, for a report. */
export function explainFailure(history: readonly KvOperation[], result: CheckResult, maxLines = 60): string {
  const bad = result.partitions.find((p) => p.verdict === 'illegal');
  if (!bad) return 'no illegal partition';
  const ops = history.filter((o) => o.input.key === bad.partition).sort((a, b) => a.invokeTime - b.invokeTime);
  // Show the operations around where the longest linearizable prefix ends:
  // that is where the history stops making sense.
  const at = bad.longestPrefix?.length ?? 0;
  const from = Math.max(0, Math.min(at - Math.floor(maxLines / 2), ops.length - maxLines));
  const lines = ops.slice(from, from + maxLines).map(describeOperation);
  if (from > 0) lines.unshift(`... ${from} earlier`);
  if (ops.length > from + maxLines) lines.push(`... ${ops.length - from - maxLines} more`);
  return `key ${bad.partition}: ${bad.operations} operations, no linearization (longest linearizable prefix ${bad.longestPrefix?.length ?? 0})\n  ${lines.join('\n  ')}`;
}
