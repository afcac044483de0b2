import { CompactedError, ClientError, type WatchItem } from '@flotilla/client';
import { UsageError, boolFlag, intFlag, textFlag, type CommandSpec } from '../args';
import { EXIT, type Command } from '../command';
import { parseInput, renderBytes } from '../format';
import { connectClient, hexFlag, targetFlags } from '../target';

// `flotilla watch PREFIX`: the committed changes under a prefix of the
// transactional keyspace, as they arrive, in revision order (etcd's
// `etcdctl watch --prefix`; client.watch, docs/watch-and-leases.md).

const watchSpec: CommandSpec = {
  path: ['watch'],
  summary: 'Print the committed changes under a prefix of the transactional keyspace as they arrive (one line per change).',
  description:
    'Streams every put and delete committed under PREFIX (an empty prefix watches everything) across all its Regions, in revision (commit ts) order, none missed and none twice, also across leader changes, splits and merges. ' +
    'Without --rev it starts now; --rev N starts at revision N (inclusive, as etcdctl watch --rev), replaying the history above it first; below the GC safe point it fails and names the oldest revision available. ' +
    'Each line is REVISION<TAB>put<TAB>KEY<TAB>VALUE or REVISION<TAB>delete<TAB>KEY; with --json one JSON object per line (revision as a decimal string). ' +
    'Runs until interrupted (SIGINT/SIGTERM exit 0) or until --count changes were printed.',
  positionals: [{ name: 'prefix', description: 'the key prefix to watch (UTF-8, or hex with --hex); "" for every key', required: true }],
  flags: [
    ...targetFlags,
    hexFlag,
    { name: 'rev', type: 'string', placeholder: 'N', description: 'start at revision N (inclusive): print the changes committed at or after it', schema: textFlag() },
    { name: 'count', type: 'string', placeholder: 'N', description: 'exit 0 after printing N changes', schema: intFlag(1, Number.MAX_SAFE_INTEGER) },
    { name: 'progress', type: 'boolean', description: 'also print a line each time the watched range is complete up to a revision (REVISION<TAB>progress)', schema: boolFlag() },
    { name: 'json', type: 'boolean', description: 'print one JSON object per line: {"type","key","value","revision"} (progress: {"type":"progress","revision"})', schema: boolFlag() },
    { name: 'prev-kv', type: 'boolean', description: 'with --json, add "prevValue": the key\'s value just before each change (absent when it had none)', schema: boolFlag() },
  ],
  examples: ['flotilla watch config/', 'flotilla watch --rev 470861886912987136 --json service/', 'flotilla watch --count 1 leader'],
};

/** parseRev reads --rev: a positive decimal revision (a commit ts). */
function parseRev(text: string | undefined): bigint | undefined {
  if (text === undefined) return undefined;
  if (!/^[0-9]{1,19}$/.test(text) || BigInt(text) <= 0n || BigInt(text) >= 1n << 63n) throw new UsageError(`--rev: expected a positive revision (a decimal commit ts), got ${JSON.stringify(text)}`);
  return BigInt(text);
}

export const watchCommand: Command = {
  spec: watchSpec,
  async run(ctx) {
    const hex = ctx.parsed.values['hex'] === true;
    const json = ctx.parsed.values['json'] === true;
    let prefix: Uint8Array;
    try {
      prefix = parseInput(ctx.parsed.positionals[0]!, hex, 'prefix');
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const rev = parseRev(ctx.parsed.values['rev'] as string | undefined);
    const count = ctx.parsed.values['count'] as number | undefined;
    const client = await connectClient(ctx);
    const line = (item: WatchItem): string => {
      if (item.type === 'progress') return json ? JSON.stringify({ type: 'progress', revision: String(item.revision) }) : `${item.revision}\tprogress`;
      const key = renderBytes(item.key, hex);
      const value = item.value === undefined ? undefined : renderBytes(item.value, hex);
      const prevValue = item.prevValue === undefined ? undefined : renderBytes(item.prevValue, hex);
      if (json) return JSON.stringify({ type: item.type, key, ...(value !== undefined ? { value } : {}), revision: String(item.revision), ...(prevValue !== undefined ? { prevValue } : {}) });
      return value === undefined ? `${item.revision}\t${item.type}\t${key}` : `${item.revision}\t${item.type}\t${key}\t${value}`;
    };
    try {
      const prevValue = ctx.parsed.values['prevKv'] === true;
      if (prevValue && !json) throw new UsageError('--prev-kv needs --json (the tab form has no column for it)');
      const w = await client.watch(prefix, { ...(rev !== undefined ? { fromRevision: rev - 1n } : {}), progressNotify: ctx.parsed.values['progress'] === true, prevValue });
      const stop = (): void => w.close();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        let printed = 0;
        for await (const item of w) {
          ctx.io.stdout.write(line(item) + '\n');
          if (item.type !== 'progress' && count !== undefined && ++printed >= count) break;
        }
        return EXIT.ok;
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    } catch (e) {
      if (e instanceof CompactedError) {
        ctx.io.stderr.write(`flotilla watch: revision ${rev} was compacted by GC; the oldest revision still available is ${e.compactRevision + 1n} (use --rev ${e.compactRevision + 1n})\n`);
        return EXIT.failure;
      }
      if (e instanceof ClientError && (e.code === 'FutureRevision' || e.code === 'WatcherTooSlow')) {
        ctx.io.stderr.write(`flotilla watch: ${e.message}\n`);
        return EXIT.failure;
      }
      throw e;
    } finally {
      client.close();
    }
  },
};
