import { z } from 'zod';
import type { Compare, TxnOp } from '@flotilla/client';
import { UsageError } from '../args';
import { parseInput } from '../format';

// txn-script.ts: the two spellings of a `flotilla txn` script, parsed into
// the compares and the two branches of client.txnIf.
//
// Arguments, one step per argument (tokens split on spaces; use --file for
// keys or values with spaces):
//   if KEY = VALUE         value compare; also != < >
//   if KEY exists          the key has a value; `if KEY missing` for the opposite
//   if KEY version OP N    version compare (N: a commit ts; 0 = absent)
//   put KEY VALUE | del KEY | get KEY
//   else                   the steps after it run when a compare fails
// JSON (--file FILE, - for stdin):
//   {"if": [{"key":"k","target":"value"|"version"|"exists","op":"=","value":...}],
//    "then": [{"op":"put","key":"k","value":"v"}, {"op":"get","key":"k"}, {"op":"delete","key":"k"}],
//    "else": [...]}

export interface TxnScript {
  compares: Compare[];
  then: TxnOp[];
  else: TxnOp[];
}

const OPS = ['=', '!=', '<', '>'] as const;
type Op = (typeof OPS)[number];
const isOp = (s: string | undefined): s is Op => (OPS as readonly string[]).includes(s ?? '');

/** parseArgvScript parses the argument form; asHex reads keys and values as hex. */
export function parseArgvScript(steps: readonly string[], asHex: boolean): TxnScript {
  const script: TxnScript = { compares: [], then: [], else: [] };
  let branch: 'then' | 'else' = 'then';
  steps.forEach((step, i) => {
    const what = `step ${i + 1} (${JSON.stringify(step)})`;
    const t = step.trim().split(/\s+/);
    const bytes = (s: string | undefined, name: string): Uint8Array => {
      if (s === undefined) throw new UsageError(`${what}: missing ${name}`);
      try {
        return parseInput(s, asHex, `${what}: ${name}`);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
    };
    const arity = (n: number): void => {
      if (t.length !== n) throw new UsageError(`${what}: expected ${n} words, got ${t.length} (use --file for values with spaces)`);
    };
    switch (t[0]) {
      case 'if':
        if (branch === 'else' || script.then.length > 0) throw new UsageError(`${what}: compares come first, before any put/del/get and else`);
        script.compares.push(parseCompare(t, what, bytes));
        return;
      case 'put':
        arity(3);
        script[branch].push({ op: 'put', key: bytes(t[1], 'key'), value: bytes(t[2], 'value') });
        return;
      case 'del':
      case 'delete':
        arity(2);
        script[branch].push({ op: 'delete', key: bytes(t[1], 'key') });
        return;
      case 'get':
        arity(2);
        script[branch].push({ op: 'get', key: bytes(t[1], 'key') });
        return;
      case 'else':
        arity(1);
        if (branch === 'else') throw new UsageError(`${what}: a second else`);
        branch = 'else';
        return;
      default:
        throw new UsageError(`${what}: expected if, put, del, get or else`);
    }
  });
  return script;
}

function parseCompare(t: string[], what: string, bytes: (s: string | undefined, name: string) => Uint8Array): Compare {
  const key = bytes(t[1], 'key');
  if (t.length === 3 && (t[2] === 'exists' || t[2] === 'missing')) return { key, target: 'exists', op: '=', value: t[2] === 'exists' };
  if (t.length === 5 && t[2] === 'version' && isOp(t[3])) {
    if (!/^\d+$/.test(t[4]!)) throw new UsageError(`${what}: version must be a non-negative integer, got ${t[4]}`);
    return { key, target: 'version', op: t[3], value: BigInt(t[4]!) };
  }
  if (t.length === 4 && isOp(t[2])) return { key, target: 'value', op: t[2], value: bytes(t[3], 'value') };
  throw new UsageError(`${what}: expected "if KEY = VALUE" (= != < >), "if KEY exists", "if KEY missing" or "if KEY version OP N"`);
}

const text = z.string();
const opSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('put'), key: text, value: text }).strict(),
  z.object({ op: z.literal('delete'), key: text }).strict(),
  z.object({ op: z.literal('get'), key: text }).strict(),
]);
const compareSchema = z.discriminatedUnion('target', [
  z.object({ key: text, target: z.literal('value'), op: z.enum(OPS), value: text }).strict(),
  z.object({ key: text, target: z.literal('version'), op: z.enum(OPS), value: z.union([z.number().int().nonnegative(), z.string().regex(/^\d+$/)]) }).strict(),
  z.object({ key: text, target: z.literal('exists'), op: z.enum(['=', '!=']), value: z.boolean() }).strict(),
]);
const fileSchema = z
  .object({ if: z.array(compareSchema).max(10_000).default([]), then: z.array(opSchema).max(10_000).default([]), else: z.array(opSchema).max(10_000).default([]) })
  .strict();

/** parseJsonScript parses the JSON form (source names the file in errors). */
export function parseJsonScript(json: string, asHex: boolean, source: string): TxnScript {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (err) {
    throw new UsageError(`${source}: not JSON: ${(err as Error).message}`);
  }
  const r = fileSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new UsageError(`${source}: ${i.path.join('.') || '(root)'}: ${i.message}`);
  }
  const b = (s: string, what: string): Uint8Array => {
    try {
      return parseInput(s, asHex, `${source}: ${what}`);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  };
  const ops = (list: z.infer<typeof opSchema>[], name: string): TxnOp[] =>
    list.map((o, i) => (o.op === 'put' ? { op: 'put', key: b(o.key, `${name}[${i}].key`), value: b(o.value, `${name}[${i}].value`) } : { op: o.op, key: b(o.key, `${name}[${i}].key`) }));
  const compares = r.data.if.map((c, i): Compare => {
    const key = b(c.key, `if[${i}].key`);
    if (c.target === 'value') return { key, target: 'value', op: c.op, value: b(c.value, `if[${i}].value`) };
    if (c.target === 'version') return { key, target: 'version', op: c.op, value: BigInt(c.value) };
    return { key, target: 'exists', op: c.op, value: c.value };
  });
  return { compares, then: ops(r.data.then, 'then'), else: ops(r.data.else, 'else') };
}
