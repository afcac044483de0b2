import type { FlotillaClient } from '@flotilla/client';
import { LIMITS, compareKeys, keyToString } from '@flotilla/proto';
import { UsageError, boolFlag, intFlag, textFlag, type CommandSpec } from '../args';
import { EXIT, type Command, type CommandContext } from '../command';
import { parseInput, renderBytes } from '../format';
import { connectClient, hexFlag, targetFlags } from '../target';
import { parseTs, snapshotGet, snapshotScan, tsFlag } from './txn';
import { parseId } from './lease';

// Data commands: put, get, del, scan, cas, split. Each connects a
// FlotillaClient to the cluster (--placement or <data-dir>/cluster.json),
// does one thing and exits: 0 on success, 1 on a runtime failure (including
// `get` of a missing key, so scripts can test for it), 2 on a usage error.

function input(ctx: CommandContext, text: string, what: string): Uint8Array {
  try {
    return parseInput(text, ctx.parsed.values['hex'] === true, what);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** keyInput is input() for a key: non-empty and within LIMITS, checked before connecting. */
function keyInput(ctx: CommandContext, text: string, what: string): Uint8Array {
  const k = input(ctx, text, what);
  if (k.length === 0) throw new UsageError(`${what}: must not be empty`);
  if (k.length > LIMITS.maxKeyBytes) throw new UsageError(`${what}: ${k.length} bytes exceeds the limit of ${LIMITS.maxKeyBytes}`);
  return k;
}

/** checkRange: [start, end) with an empty end meaning the end of the key space. */
function checkRange(start: Uint8Array, end: Uint8Array, endWhat: string): void {
  if (end.length > 0 && compareKeys(start, end) >= 0) throw new UsageError(`${endWhat}: must be greater than the start key (or empty for the end of the key space)`);
}

async function withClient(ctx: CommandContext, fn: (c: FlotillaClient) => Promise<number>): Promise<number> {
  const client = await connectClient(ctx);
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

const show = (ctx: CommandContext, b: Uint8Array): string => renderBytes(b, ctx.parsed.values['hex'] === true);

function kvSpec(name: string, summary: string, positionals: CommandSpec['positionals'], extra: CommandSpec['flags'] = [], examples: string[] = []): CommandSpec {
  return { path: [name], summary, positionals, flags: [...targetFlags, hexFlag, ...extra], examples };
}

const putSpec = kvSpec('put', 'Write a value.', [
  { name: 'key', description: 'the key (UTF-8, or hex with --hex)', required: true },
  { name: 'value', description: 'the value (UTF-8, or hex with --hex); - reads the raw bytes from stdin', required: true },
], [{ name: 'lease', type: 'string', placeholder: 'ID', description: 'write the TRANSACTIONAL keyspace, attached to lease ID: the key is deleted when the lease expires or is revoked (read it with get --ts now)', schema: textFlag(), env: false }], ['flotilla put hello world', 'flotilla put --hex 0x00ff 0xcafe', 'flotilla put photo/1 - < photo.jpg', 'flotilla put --lease 7 service/api 10.0.0.5:8080']);

/**
 * readStdinValue reads a value's raw bytes from stdin (never hex), up to the
 * value limit: argv cannot carry large values (Linux caps one argument at
 * 128 KiB), and a pipe can carry any bytes.
 */
export async function readStdinValue(ctx: CommandContext): Promise<Uint8Array> {
  const stdin = ctx.io.stdin?.();
  if (!stdin) throw new UsageError('value -: no stdin to read from');
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stdin) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    total += b.length;
    if (total > LIMITS.maxValueBytes) throw new UsageError(`value from stdin: more than ${LIMITS.maxValueBytes} bytes (the value limit)`);
    chunks.push(b);
  }
  return new Uint8Array(Buffer.concat(chunks, total));
}

export const putCommand: Command = {
  spec: putSpec,
  run: async (ctx) => {
    const [k, v] = ctx.parsed.positionals as [string, string];
    const key = keyInput(ctx, k, 'key');
    const value = v === '-' ? await readStdinValue(ctx) : input(ctx, v, 'value');
    const leaseText = ctx.parsed.values['lease'] as string | undefined;
    const lease = leaseText === undefined ? undefined : parseId(leaseText);
    return withClient(ctx, async (c) => {
      await c.put(key, value, lease === undefined ? undefined : { lease });
      ctx.io.stdout.write('OK\n');
      return EXIT.ok;
    });
  },
};

const getSpec = kvSpec('get', 'Read a value (exit status 1 when the key is absent).', [{ name: 'key', description: 'the key (UTF-8, or hex with --hex)', required: true }], [tsFlag], ['flotilla get hello', 'flotilla get --ts now balance/alice     # the transactional keyspace']);

export const getCommand: Command = {
  spec: getSpec,
  run: (ctx) => {
    const key = keyInput(ctx, ctx.parsed.positionals[0]!, 'key');
    const tsText = ctx.parsed.values['ts'] as string | undefined;
    const ts = tsText === undefined ? undefined : parseTs(tsText);
    return withClient(ctx, async (c) => {
      if (tsText !== undefined) return snapshotGet(ctx, c, key, ts);
      const value = await c.get(key);
      if (value === null) {
        ctx.io.stderr.write(`key ${keyToString(key)} not found\n`);
        return EXIT.failure;
      }
      ctx.io.stdout.write(show(ctx, value) + '\n');
      return EXIT.ok;
    });
  },
};

const delSpec = kvSpec('del', 'Delete a key and say whether it existed, or delete every key in [key, --range-end).', [{ name: 'key', description: 'the key (UTF-8, or hex with --hex)', required: true }], [
  { name: 'range-end', type: 'string', placeholder: 'KEY', description: 'delete the range [key, KEY) instead of one key ("" = to the end)', schema: textFlag(), env: false },
], ['flotilla del hello', 'flotilla del user/ --range-end user0']);

export const delCommand: Command = {
  spec: delSpec,
  run: (ctx) => {
    const endText = ctx.parsed.values['rangeEnd'] as string | undefined;
    const key = endText === undefined ? keyInput(ctx, ctx.parsed.positionals[0]!, 'key') : input(ctx, ctx.parsed.positionals[0]!, 'key');
    const end = endText === undefined ? undefined : input(ctx, endText, '--range-end');
    if (end !== undefined) checkRange(key, end, '--range-end');
    return withClient(ctx, async (c) => {
      if (end !== undefined) {
        await c.deleteRange(key, end); // the store does not count what a range delete removed
        ctx.io.stdout.write('OK\n');
        return EXIT.ok;
      }
      const existed = await deleteReporting(c, key);
      ctx.io.stdout.write(existed ? `deleted ${show(ctx, key)}\n` : `${show(ctx, key)} did not exist: nothing deleted\n`);
      return EXIT.ok;
    });
  },
};

/** DELETE_ATTEMPTS bounds deleteReporting's retries while other writers keep changing the key. */
const DELETE_ATTEMPTS = 8;

/**
 * deleteReporting deletes key and says whether it existed. The store's
 * delete does not report that (it would cost every delete a read at apply
 * time), so the CLI uses compare-and-swap, which decides atomically in the
 * Region's log: cas(absent -> absent) succeeds exactly when the key is
 * absent; otherwise it fails with the current value, and cas(that value ->
 * deleted) removes it unless another writer changed it in between (then it
 * tries again). A connection lost mid-cas ends in Undetermined, as for cas.
 */
async function deleteReporting(c: FlotillaClient, key: Uint8Array): Promise<boolean> {
  let expected: Uint8Array | null = null;
  for (let i = 0; i < DELETE_ATTEMPTS; i++) {
    const r = await c.cas(key, expected, null);
    if (r.succeeded) return expected !== null;
    expected = r.previous;
  }
  throw new Error(`the key kept changing under ${DELETE_ATTEMPTS} attempts to delete it; try again`);
}

const scanSpec = kvSpec('scan', 'List keys in [start, end) in key order, across Regions.', [
  { name: 'start', description: 'first key (default: the beginning of the key space)', required: false },
  { name: 'end', description: 'end key, exclusive (default: the end of the key space)', required: false },
], [
  { name: 'limit', type: 'string', placeholder: 'N', description: 'at most N pairs', default: '100', schema: intFlag(1, 10_000_000), env: false },
  { name: 'keys-only', type: 'boolean', description: 'print keys only', schema: boolFlag() },
  { name: 'json', type: 'boolean', description: 'print one JSON object per line: {"key": ..., "value": ...} (with --ts also "version")', schema: boolFlag() },
  tsFlag,
], ['flotilla scan', 'flotilla scan user/ user0 --limit 10', 'flotilla scan --ts now balance/ balance0']);

export const scanCommand: Command = {
  spec: scanSpec,
  run: (ctx) => {
    const [s, e] = ctx.parsed.positionals;
    const start = input(ctx, s ?? '', 'start');
    const end = input(ctx, e ?? '', 'end');
    checkRange(start, end, 'end');
    const tsText = ctx.parsed.values['ts'] as string | undefined;
    const ts = tsText === undefined ? undefined : parseTs(tsText);
    return withClient(ctx, async (c) => {
      if (tsText !== undefined) return snapshotScan(ctx, c, start, end, ctx.parsed.values['limit'] as number, ts);
      const pairs = await c.scan(start, end, ctx.parsed.values['limit'] as number);
      const keysOnly = ctx.parsed.values['keysOnly'] === true;
      const json = ctx.parsed.values['json'] === true;
      let out = '';
      for (const p of pairs) {
        if (json) out += JSON.stringify(keysOnly ? { key: show(ctx, p.key) } : { key: show(ctx, p.key), value: show(ctx, p.value) }) + '\n';
        else out += keysOnly ? `${show(ctx, p.key)}\n` : `${show(ctx, p.key)}\t${show(ctx, p.value)}\n`;
      }
      ctx.io.stdout.write(out);
      return EXIT.ok;
    });
  },
};

const casSpec = kvSpec('cas', 'Compare-and-swap: set key to --value only if it currently equals --expected.', [{ name: 'key', description: 'the key (UTF-8, or hex with --hex)', required: true }], [
  { name: 'expected', type: 'string', placeholder: 'VALUE', description: 'the value the key must have now (omit: the key must be absent)', schema: textFlag(), env: false },
  { name: 'value', type: 'string', placeholder: 'VALUE', description: 'the new value (omit: delete the key)', schema: textFlag(), env: false },
], ['flotilla cas lock --value me            # take a lock if free', 'flotilla cas lock --expected me          # release it', 'flotilla cas counter --expected 1 --value 2']);

export const casCommand: Command = {
  spec: casSpec,
  run: (ctx) => {
    const key = keyInput(ctx, ctx.parsed.positionals[0]!, 'key');
    const exp = ctx.parsed.values['expected'] as string | undefined;
    const val = ctx.parsed.values['value'] as string | undefined;
    const expected = exp === undefined ? null : input(ctx, exp, '--expected');
    const value = val === undefined ? null : input(ctx, val, '--value');
    return withClient(ctx, async (c) => {
      const r = await c.cas(key, expected, value);
      const previous = r.previous === null ? '(absent)' : show(ctx, r.previous);
      if (r.succeeded) {
        ctx.io.stdout.write(`OK (previous: ${previous})\n`);
        return EXIT.ok;
      }
      ctx.io.stderr.write(`cas failed: current value is ${previous}\n`);
      return EXIT.failure;
    });
  },
};

const splitSpec = kvSpec('split', 'Split the Region holding key at key (an admin command to the Region leader).', [{ name: 'key', description: 'split key: the first key of the new right-hand Region', required: true }], [], ['flotilla split m']);

export const splitCommand: Command = {
  spec: splitSpec,
  run: (ctx) => {
    const key = keyInput(ctx, ctx.parsed.positionals[0]!, 'key');
    return withClient(ctx, async (c) => {
      const regions = await c.split(key);
      if (regions.length === 1) ctx.io.stderr.write('already a Region boundary: nothing to split\n');
      for (const r of regions) ctx.io.stdout.write(`region ${r.id}  [${r.startKey.length === 0 ? '-inf' : show(ctx, r.startKey)}, ${r.endKey.length === 0 ? '+inf' : show(ctx, r.endKey)})  epoch ${r.epoch.confVer}/${r.epoch.version}\n`);
      return EXIT.ok;
    });
  },
};

const mergeSpec = kvSpec(
  'merge',
  'Merge the Region holding <source-key> into the adjacent Region holding <target-key> (both need voters on the same stores).',
  [
    { name: 'source-key', description: 'a key of the Region to merge away', required: true },
    { name: 'target-key', description: 'a key of the adjacent Region that absorbs it', required: true },
  ],
  [],
  ['flotilla merge m a        # after `flotilla split m`: merge [m, +inf) back into [-inf, m)'],
);

export const mergeCommand: Command = {
  spec: mergeSpec,
  run: (ctx) => {
    const source = keyInput(ctx, ctx.parsed.positionals[0]!, 'source-key');
    const target = keyInput(ctx, ctx.parsed.positionals[1]!, 'target-key');
    return withClient(ctx, async (c) => {
      const r = await c.merge(source, target);
      ctx.io.stdout.write(`OK: region ${r.sourceRegionId} merged into region ${r.targetRegionId}\n`);
      return EXIT.ok;
    });
  },
};
