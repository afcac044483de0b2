import { readFileSync } from 'node:fs';
import type { FlotillaClient, OpResult, TxnIfResult } from '@flotilla/client';
import { keyToString } from '@flotilla/proto';
import { UsageError, boolFlag, pathFlag, textFlag, type FlagSpec } from '../args';
import { EXIT, type Command, type CommandContext } from '../command';
import { renderBytes } from '../format';
import { connectClient, hexFlag, targetFlags } from '../target';
import { parseArgvScript, parseJsonScript, type TxnScript } from './txn-script';

// Transactional commands: `flotilla txn` runs a small script atomically
// (client.txnIf), and the snapshot reads behind `get --ts` / `scan --ts`
// (kv.ts calls them). They use the transactional keyspace, which never
// aliases the raw one `put`/`get`/`scan` use without --ts.

/** tsFlag: `--ts TS` on get and scan reads the transactional keyspace at timestamp TS ("now": a fresh one). */
export const tsFlag: FlagSpec = {
  name: 'ts',
  type: 'string',
  placeholder: 'TS',
  description: 'read the transactional keyspace as of timestamp TS (a commit ts from `flotilla txn`/`flotilla tso`, or "now"); without --ts the raw keyspace is read',
  schema: textFlag(),
  env: false,
};

/** parseTs reads --ts: a positive decimal hybrid timestamp, or "now" (undefined: take one from the oracle). */
export function parseTs(text: string): bigint | undefined {
  if (text === 'now') return undefined;
  if (!/^\d{1,19}$/.test(text)) throw new UsageError(`--ts: expected a timestamp (a positive integer) or "now", got ${JSON.stringify(text)}`);
  const ts = BigInt(text);
  if (ts <= 0n || ts >= 1n << 63n) throw new UsageError(`--ts: ${text} is out of range (1 .. 2^63-1)`);
  return ts;
}

/** snapshotGet is `flotilla get --ts`: exit 1 when the key has no value at ts. */
export async function snapshotGet(ctx: CommandContext, c: FlotillaClient, key: Uint8Array, ts: bigint | undefined): Promise<number> {
  const snap = await c.snapshot(ts);
  const v = await snap.getWithVersion(key);
  if (v === null) {
    ctx.io.stderr.write(`key ${keyToString(key)} not found at ts ${snap.ts}\n`);
    return EXIT.failure;
  }
  ctx.io.stdout.write(renderBytes(v.value, ctx.parsed.values['hex'] === true) + '\n');
  return EXIT.ok;
}

/** snapshotScan is `flotilla scan --ts`; --json lines carry each pair's version too. */
export async function snapshotScan(ctx: CommandContext, c: FlotillaClient, start: Uint8Array, end: Uint8Array, limit: number, ts: bigint | undefined): Promise<number> {
  const snap = await c.snapshot(ts);
  const pairs = await snap.scan(start, end, limit);
  const hex = ctx.parsed.values['hex'] === true;
  const keysOnly = ctx.parsed.values['keysOnly'] === true;
  const json = ctx.parsed.values['json'] === true;
  let out = '';
  for (const p of pairs) {
    const k = renderBytes(p.key, hex);
    if (json) out += JSON.stringify(keysOnly ? { key: k, version: String(p.version) } : { key: k, value: renderBytes(p.value, hex), version: String(p.version) }) + '\n';
    else out += keysOnly ? `${k}\n` : `${k}\t${renderBytes(p.value, hex)}\n`;
  }
  ctx.io.stdout.write(out);
  return EXIT.ok;
}

const txnDescription = `Runs the script as one transaction (snapshot isolation, across Regions): the compares are read at the transaction's start, then the steps of the chosen branch apply atomically; a compared key changed by someone else before the commit makes it run again. It prints SUCCESS (the compares held: the steps before else ran) or FAILURE (the steps after else ran), the commit ts (the version of every key written), and one line per get.

Script steps, one per argument (keys and values without spaces; --file for anything else):
  if KEY = VALUE          compare the value (also !=, <, >: byte order); an absent key is only != anything
  if KEY exists           the key has a value (if KEY missing: it has none)
  if KEY version OP N     compare the version (the commit ts of its last write; 0 when absent)
  put KEY VALUE           write
  del KEY                 delete
  get KEY                 read (as the transaction sees it, its own earlier writes included)
  else                    the steps after it run when any compare fails

--file FILE (or - for stdin) holds the same as JSON:
  {"if":   [{"key": "k1", "target": "value", "op": "=", "value": "v1"}],   target: value | version | exists
   "then": [{"op": "put", "key": "k2", "value": "v2"}, {"op": "get", "key": "k2"}],
   "else": [{"op": "delete", "key": "k2"}]}

Exit status: 0 when the transaction committed (either branch), 1 when it aborted (the message says why; nothing was written) or its outcome is unknown (Undetermined), 2 on a bad script. These keys are the transactional keyspace: read them with get --ts / scan --ts, not with plain get.`;

export const txnCommand: Command = {
  spec: {
    path: ['txn'],
    summary: 'Run a small script of compares, puts, deletes and gets atomically (an etcd-style If/Then/Else transaction).',
    description: txnDescription,
    positionals: [{ name: 'step...', description: 'script steps (see above); none with --file', required: false, variadic: true }],
    flags: [
      ...targetFlags,
      hexFlag,
      { name: 'file', type: 'string', placeholder: 'FILE', description: 'read the script as JSON from FILE (- = stdin)', schema: pathFlag(), env: false },
      { name: 'json', type: 'boolean', description: 'print the outcome as one JSON object', schema: boolFlag() },
    ],
    examples: [
      "flotilla txn 'put a 1' 'put b 2'                               # two keys, atomically",
      "flotilla txn 'if leader missing' 'put leader n1' else 'get leader'",
      "flotilla txn 'if balance/alice = 10' 'put balance/alice 5' 'put balance/bob 15'",
      'flotilla txn --file transfer.json --json',
      'flotilla get --ts now leader',
    ],
  },
  run: async (ctx) => {
    const script = await readScript(ctx);
    if (script.compares.length === 0 && script.then.length === 0 && script.else.length === 0) throw new UsageError('an empty script: give steps as arguments or --file (see --help)');
    const client = await connectClient(ctx);
    try {
      const r = await client.txnIf(script.compares).then(script.then).else(script.else).commit({ waitForSecondaries: true });
      ctx.io.stdout.write(render(ctx, r));
      return EXIT.ok;
    } finally {
      client.close();
    }
  },
};

async function readScript(ctx: CommandContext): Promise<TxnScript> {
  const hex = ctx.parsed.values['hex'] === true;
  const file = ctx.parsed.values['file'] as string | undefined;
  if (file === undefined) return parseArgvScript(ctx.parsed.positionals, hex);
  if (ctx.parsed.positionals.length > 0) throw new UsageError('--file: give the script either as a file or as arguments, not both');
  let text: string;
  if (file === '-') {
    const stdin = ctx.io.stdin?.();
    if (!stdin) throw new UsageError('--file -: no stdin to read from');
    const chunks: Buffer[] = [];
    for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
    text = Buffer.concat(chunks).toString('utf8');
  } else {
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new UsageError(`--file: cannot read ${file}: ${(err as Error).message}`);
    }
  }
  return parseJsonScript(text, hex, file === '-' ? 'stdin' : file);
}

function render(ctx: CommandContext, r: TxnIfResult): string {
  const hex = ctx.parsed.values['hex'] === true;
  const show = (b: Uint8Array): string => renderBytes(b, hex);
  if (ctx.parsed.values['json'] === true) {
    const results = r.results.map((o: OpResult) =>
      o.op === 'get' ? { op: 'get', key: show(o.key), value: o.value === null ? null : show(o.value), version: o.version === null ? null : String(o.version) } : { op: o.op, key: show(o.key) },
    );
    return JSON.stringify({ succeeded: r.succeeded, commitTs: String(r.commitTs), results }) + '\n';
  }
  let out = `${r.succeeded ? 'SUCCESS' : 'FAILURE'}\ncommit_ts ${r.commitTs}\n`;
  for (const o of r.results) if (o.op === 'get') out += `${show(o.key)}\t${o.value === null ? '(absent)' : show(o.value)}\n`;
  return out;
}
