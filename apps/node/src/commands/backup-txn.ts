import { hostname } from 'node:os';
import type { FlotillaClient } from '@flotilla/client';
import { TXN_LIMITS } from '@flotilla/proto';
import { UsageError } from '../args';
import type { BackupPair } from '../backup-format';
import type { CommandContext } from '../command';
import { placementClient } from '../target';

// The transactional half of `flotilla backup --ts` / `flotilla restore`:
// a consistent snapshot of the transactional keyspace at one timestamp,
// read while a GC service safe point keeps every version it needs, and its
// restore in bounded transactions.

/** SERVICE_TTL_MS: the backup's service safe point lives this long unless renewed (a crashed backup stops holding GC back soon). */
const SERVICE_TTL_MS = 120_000;
const RENEW_EVERY_MS = 30_000;
/** PAGE_TARGET_BYTES: a scan page aims at this many key+value bytes (as the raw backup's pages). */
const PAGE_TARGET_BYTES = 16 * 1024 * 1024;

/** parseTs reads --ts: a decimal hybrid timestamp (from `flotilla tso`) or "now" (a fresh one). */
export async function resolveTs(text: string, client: FlotillaClient): Promise<bigint> {
  if (text === 'now') return client.timestamp();
  if (!/^[1-9][0-9]{0,18}$/.test(text) || BigInt(text) >= 1n << 63n) throw new UsageError(`--ts: ${JSON.stringify(text)} is not a timestamp (a decimal number from flotilla tso, or "now")`);
  return BigInt(text);
}

/**
 * holdGc registers a service safe point at ts for the backup's duration
 * (renewed every 30 s, removed at the end), so GC cannot remove a version
 * the snapshot still has to read. A ts below the cluster's safe point is
 * refused: versions it needs may already be gone.
 */
export async function holdGc<T>(ctx: CommandContext, ts: bigint, fn: () => Promise<T>): Promise<T> {
  const { client: pd } = await placementClient(ctx);
  const serviceId = `backup-${hostname().replace(/[^A-Za-z0-9._:-]/g, '-').slice(0, 48)}-${process.pid}-${Date.now()}`;
  try {
    const r = await pd.updateServiceSafePoint(serviceId, ts, SERVICE_TTL_MS);
    if (!r.accepted) throw new UsageError(`--ts ${ts} is below the GC safe point ${r.gcSafePoint}: versions it needs may be gone; use a newer ts (flotilla tso) or --ts now`);
    ctx.io.stderr.write(`backup: holding GC at ts ${ts} (service safe point ${serviceId})\n`);
    const renew = setInterval(() => {
      pd.updateServiceSafePoint(serviceId, ts, SERVICE_TTL_MS).catch((e: unknown) => ctx.logger.warn({ err: (e as Error).message }, 'backup: renewing the GC service safe point failed; retrying'));
    }, RENEW_EVERY_MS);
    try {
      return await fn();
    } finally {
      clearInterval(renew);
      await pd.updateServiceSafePoint(serviceId, ts, 0).catch((e: unknown) => ctx.logger.warn({ err: (e as Error).message, serviceId }, 'backup: removing the GC service safe point failed; it expires by itself'));
    }
  } finally {
    pd.close();
  }
}

/** exportTxnPairs scans the transactional keyspace at ts page by page (snapshot reads across Regions, locks resolved) and hands each page to onPage. */
export async function exportTxnPairs(client: FlotillaClient, ts: bigint, maxBatch: number, onPage: (pairs: BackupPair[]) => Promise<void>): Promise<void> {
  const snap = await client.snapshot(ts);
  let start: Uint8Array = new Uint8Array(0);
  let limit = Math.min(8, maxBatch);
  let largestPairBytes = 1;
  for (;;) {
    const page = await snap.scan(start, new Uint8Array(0), limit);
    if (page.length > 0) await onPage(page.map((p) => ({ key: p.key, value: p.value })));
    if (page.length < limit) return;
    const last = page[page.length - 1]!.key;
    start = new Uint8Array(last.length + 1);
    start.set(last); // the smallest key after last
    for (const p of page) largestPairBytes = Math.max(largestPairBytes, p.key.length + p.value.length);
    limit = Math.max(1, Math.min(maxBatch, limit * 2, Math.floor(PAGE_TARGET_BYTES / largestPairBytes)));
  }
}

/** putTxnBatch writes one restore batch as one transaction (bounded by the restore's batch flags, well inside TXN_LIMITS). */
export async function putTxnBatch(client: FlotillaClient, batch: BackupPair[]): Promise<void> {
  if (batch.length > TXN_LIMITS.maxKeys) throw new Error(`restore batch of ${batch.length} keys exceeds TXN_LIMITS.maxKeys`);
  await client.txn((tx) => {
    for (const p of batch) tx.put(p.key, p.value);
  });
}
