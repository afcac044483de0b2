import { closeSync, createReadStream, existsSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { FlotillaClient } from '@flotilla/client';
import { LIMITS } from '@flotilla/proto';
import { UsageError, intFlag, textFlag, type CommandSpec } from '../args';
import { BackupFormatError, BackupReader, headerLine, lines, pairLine, trailerLine, type BackupPair, type BackupTotals } from '../backup-format';
import { EXIT, type Command, type CommandContext } from '../command';
import { formatBytes } from '../format';
import { connectClient, targetFlags } from '../target';
import { exportTxnPairs, holdGc, putTxnBatch, resolveTs } from './backup-txn';

// `flotilla backup FILE` and `flotilla restore FILE`: a logical export of the
// whole key space through the client (every Region, in key order) in the
// format of backup-format.ts, and its import. Progress goes to stderr, so
// `backup -` can stream the file itself on stdout.

const progressFlag = { name: 'progress-ms', type: 'string', placeholder: 'MS', description: 'print progress to stderr at most every MS (0: after every batch)', default: '1000', schema: intFlag(0, 3_600_000), env: false } as const;

/** Progress prints "<verb>: N pairs, X MiB, T s" to stderr at most every everyMs, and a final line. */
class Progress {
  private readonly startedAt = Date.now();
  private lastAt = Date.now();

  constructor(
    private readonly ctx: CommandContext,
    private readonly verb: string,
    private readonly everyMs: number,
  ) {}

  seconds(): string {
    return `${((Date.now() - this.startedAt) / 1000).toFixed(1)} s`;
  }

  tick(t: BackupTotals): void {
    if (Date.now() - this.lastAt < this.everyMs) return;
    this.lastAt = Date.now();
    this.ctx.io.stderr.write(`${this.verb}: ${t.pairs.toLocaleString('en-US')} pairs, ${formatBytes(t.keyBytes + t.valueBytes)}, ${this.seconds()}\n`);
  }
}

/** Sink is where a backup goes: a file that appears only once complete and synced, or stdout. */
interface Sink {
  write(text: string): Promise<void>;
  /** commit makes the written file the backup (fsync, rename into place). */
  commit(): Promise<void>;
  /** abandon removes what a failed backup wrote. */
  abandon(): void;
}

function fileSink(path: string): Sink {
  const partial = `${path}.partial`;
  const fd = openSync(partial, 'w', 0o600);
  let open = true;
  const close = (): void => {
    if (open) closeSync(fd);
    open = false;
  };
  return {
    write: async (text) => void writeSync(fd, text),
    commit: async () => {
      fsyncSync(fd);
      close();
      renameSync(partial, path);
      const dir = openSync(dirname(path), 'r');
      try {
        fsyncSync(dir);
      } finally {
        closeSync(dir);
      }
    },
    abandon: () => {
      close();
      rmSync(partial, { force: true });
    },
  };
}

function streamSink(out: NodeJS.WritableStream): Sink {
  return {
    write: (text) => new Promise((r) => (out.write(text) ? r() : out.once('drain', () => r()))),
    commit: async () => {},
    abandon: () => {},
  };
}

/**
 * PAGE_TARGET_BYTES: a scan page aims at this many key+value bytes, so a
 * page of the largest values stays far below the client's 128 MiB frame.
 */
const PAGE_TARGET_BYTES = 16 * 1024 * 1024;

/**
 * exportPairs scans the whole key space page by page (each page one scan
 * call: linearizable reads of each Region it crosses) and hands each page to
 * onPage. The page size starts small and grows to maxBatch while the values
 * seen stay small enough for PAGE_TARGET_BYTES.
 */
export async function exportPairs(client: FlotillaClient, maxBatch: number, onPage: (pairs: BackupPair[]) => Promise<void>): Promise<void> {
  let start: Uint8Array = new Uint8Array(0);
  let limit = Math.min(8, maxBatch);
  let largestPairBytes = 1;
  for (;;) {
    const page = await client.scan(start, new Uint8Array(0), limit);
    if (page.length > 0) await onPage(page);
    if (page.length < limit) return;
    const last = page[page.length - 1]!.key;
    start = new Uint8Array(last.length + 1);
    start.set(last); // the smallest key after last
    for (const p of page) largestPairBytes = Math.max(largestPairBytes, p.key.length + p.value.length);
    limit = Math.max(1, Math.min(maxBatch, limit * 2, Math.floor(PAGE_TARGET_BYTES / largestPairBytes)));
  }
}

const backupSpec: CommandSpec = {
  path: ['backup'],
  summary: 'Export every key and value to FILE (JSON lines, base64; see docs/operations.md), in key order.',
  description:
    'A logical backup through the client: binary keys and values round-trip exactly. FILE is written as FILE.partial, synced and renamed when complete (an existing FILE is never overwritten); - writes to stdout. Without --ts it exports the raw keyspace and is not a point-in-time snapshot: each page is a linearizable read, so writes made during the backup may or may not be in it. With --ts it exports the transactional keyspace as a consistent snapshot at that one timestamp (writes after it are never in it), holding a GC service safe point while it reads. Progress goes to stderr.',
  positionals: [{ name: 'file', description: 'where to write the backup (- for stdout)', required: true }],
  flags: [
    ...targetFlags,
    { name: 'batch', type: 'string', placeholder: 'N', description: 'at most N pairs per scan request', default: '1000', schema: intFlag(1, LIMITS.maxScanLimit), env: false },
    { name: 'ts', type: 'string', placeholder: 'TS', description: 'back up the transactional keyspace as of timestamp TS (decimal, from flotilla tso; or "now"): a consistent snapshot', schema: textFlag(), env: false },
    progressFlag,
  ],
  examples: ['flotilla backup cluster.backup', 'flotilla backup - | gzip > cluster.backup.gz', 'flotilla backup --ts now txn.backup', 'flotilla backup --ts 470861546608132096 txn.backup'],
};

export const backupCommand: Command = {
  spec: backupSpec,
  async run(ctx) {
    const file = ctx.parsed.positionals[0]!;
    const path = file === '-' ? null : resolve(file);
    if (path && existsSync(path)) throw new UsageError(`${file} exists; remove it or choose another name (a backup never overwrites a file)`);
    const client = await connectClient(ctx);
    const sink = path ? fileSink(path) : streamSink(ctx.io.stdout);
    const progress = new Progress(ctx, 'backup', ctx.parsed.values['progressMs'] as number);
    const totals: BackupTotals = { pairs: 0, keyBytes: 0, valueBytes: 0 };
    const tsText = ctx.parsed.values['ts'] as string | undefined;
    try {
      const ts = tsText === undefined ? undefined : await resolveTs(tsText, client);
      const onPage = async (page: BackupPair[]): Promise<void> => {
        await sink.write(page.map(pairLine).join(''));
        for (const p of page) {
          totals.pairs++;
          totals.keyBytes += p.key.length;
          totals.valueBytes += p.value.length;
        }
        progress.tick(totals);
      };
      const batch = ctx.parsed.values['batch'] as number;
      if (ts === undefined) {
        await sink.write(headerLine(new Date()));
        await exportPairs(client, batch, onPage);
      } else {
        await holdGc(ctx, ts, async () => {
          await sink.write(headerLine(new Date(), ts));
          await exportTxnPairs(client, ts, batch, onPage);
        });
      }
      await sink.write(trailerLine(totals));
      await sink.commit();
    } catch (err) {
      sink.abandon();
      throw err;
    } finally {
      client.close();
    }
    const what = tsText === undefined ? '' : ' of the transactional keyspace';
    ctx.io.stderr.write(`backup: wrote ${totals.pairs.toLocaleString('en-US')} pairs${what} (${formatBytes(totals.keyBytes + totals.valueBytes)} of keys and values) to ${path ?? 'stdout'} in ${progress.seconds()}\n`);
    return EXIT.ok;
  },
};

/** readBackup feeds every pair of source to onPair in order, and returns the checked totals (BackupFormatError on any defect). */
async function readBackup(input: AsyncIterable<Buffer | string>, source: string, onPair: (p: BackupPair, r: BackupReader) => Promise<void>): Promise<BackupTotals> {
  const reader = new BackupReader(source);
  for await (const text of lines(input, source)) {
    const pair = reader.line(text);
    if (pair) await onPair(pair, reader);
  }
  return reader.finish();
}

const restoreSpec: CommandSpec = {
  path: ['restore'],
  summary: 'Write every pair of a backup made by flotilla backup into the cluster.',
  description:
    'Checks the whole FILE first (format version, base64, key order, the trailer counts) and writes nothing if it is damaged, truncated or of an unknown version; then writes the pairs in batches (a backup made with --ts goes back into the transactional keyspace, one transaction per batch). Keys in the cluster that the backup does not hold are left alone: restore into an empty cluster for an exact copy. With - it reads stdin in one pass, so a defect found late leaves the pairs before it written (it says how many). Restore can be run again: it only puts. Progress goes to stderr.',
  positionals: [{ name: 'file', description: 'the backup to read (- for stdin)', required: true }],
  flags: [...targetFlags, { name: 'batch', type: 'string', placeholder: 'N', description: 'at most N pairs per write batch', default: '256', schema: intFlag(1, LIMITS.maxBatchKeys), env: false }, progressFlag],
  examples: ['flotilla restore cluster.backup', 'gunzip -c cluster.backup.gz | flotilla restore -'],
};

/** BATCH_BYTES bounds one restore batch's key+value bytes (the client cuts requests at 4 MiB anyway). */
const BATCH_BYTES = 8 * 1024 * 1024;

export const restoreCommand: Command = {
  spec: restoreSpec,
  async run(ctx) {
    const file = ctx.parsed.positionals[0]!;
    const open = (): AsyncIterable<Buffer | string> => {
      if (file !== '-') return createReadStream(resolve(file));
      const stdin = ctx.io.stdin?.();
      if (!stdin) throw new UsageError('restore -: no stdin to read from');
      return stdin as AsyncIterable<Buffer | string>;
    };
    const source = file === '-' ? 'stdin' : file;
    if (file !== '-') {
      if (!existsSync(file)) throw new UsageError(`${file}: no such file`);
      // The check pass only reads; its progress comes at most once a second even with --progress-ms 0.
      const checking = new Progress(ctx, 'restore (checking)', Math.max(1000, ctx.parsed.values['progressMs'] as number));
      const checked = await readBackup(open(), source, async (_, r) => checking.tick(r.totals));
      ctx.io.stderr.write(`restore: ${source} is a complete backup of ${checked.pairs.toLocaleString('en-US')} pairs (${formatBytes(checked.keyBytes + checked.valueBytes)})\n`);
    }
    // Restore only puts the same bytes again, so a write whose connection broke in flight is safe to resend.
    const client = await connectClient(ctx, { retryWritesInFlight: true });
    try {
      return await writeBackup(ctx, client, open(), source);
    } finally {
      client.close();
    }
  },
};

/** warnIfNotEmpty: before the first batch, say when the keyspace the backup goes into already holds keys. */
async function warnIfNotEmpty(ctx: CommandContext, client: FlotillaClient, txn: boolean): Promise<void> {
  const none = new Uint8Array(0);
  const any = txn ? await (await client.snapshot()).scan(none, none, 1) : await client.scan(none, none, 1);
  if (any.length > 0) ctx.io.stderr.write(`restore: the cluster already holds ${txn ? 'transactional ' : ''}keys; the backup's keys are overwritten and the others left as they are\n`);
}

/** writeBackup streams the pairs of input into the cluster in bounded batches, with progress. */
async function writeBackup(ctx: CommandContext, client: FlotillaClient, input: AsyncIterable<Buffer | string>, source: string): Promise<number> {
  const progress = new Progress(ctx, 'restore', ctx.parsed.values['progressMs'] as number);
  const maxBatch = ctx.parsed.values['batch'] as number;
  const written: BackupTotals = { pairs: 0, keyBytes: 0, valueBytes: 0 };
  let batch: BackupPair[] = [];
  let batchBytes = 0;
  let reader: BackupReader | undefined;
  let checkedEmpty = false;
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    if (!checkedEmpty) {
      checkedEmpty = true;
      await warnIfNotEmpty(ctx, client, reader?.header?.keyspace === 'txn');
    }
    if (reader?.header?.keyspace === 'txn') await putTxnBatch(client, batch);
    else await client.batchPut(batch);
    for (const p of batch) {
      written.pairs++;
      written.keyBytes += p.key.length;
      written.valueBytes += p.value.length;
    }
    batch = [];
    batchBytes = 0;
    progress.tick(written);
  };
  try {
    await readBackup(input, source, async (p, r) => {
      reader = r;
      if (batch.length >= maxBatch || (batch.length > 0 && batchBytes + p.key.length + p.value.length > BATCH_BYTES)) await flush();
      batch.push(p);
      batchBytes += p.key.length + p.value.length;
    });
    await flush();
  } catch (err) {
    if (err instanceof BackupFormatError && written.pairs > 0) throw new BackupFormatError(`${err.message} (${written.pairs} pairs before it were already written)`);
    throw err;
  }
  ctx.io.stderr.write(`restore: wrote ${written.pairs.toLocaleString('en-US')} pairs (${formatBytes(written.keyBytes + written.valueBytes)}) from ${source} in ${progress.seconds()}\n`);
  return EXIT.ok;
}
