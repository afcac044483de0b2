import { dirname } from 'node:path';
import { StorageCorruptError, StorageFaultError, StorageOpenError, storageFaultKind, type StorageFaultKind } from '@flotilla/log-engine';
import type { StoreContext } from './context';
import { err } from './operation/command/command';
import { failPending } from './operation/command/propose';
import { failMailbox } from './operation/life';

// storage-fault: what the store does when its disk or one of its database
// files fails (issue #15 items 3 and 4). The choice, and why, is in
// docs/operations.md ("Full disk"): the store STOPS. A failed log write in
// a poll round means that round's Ready was not persisted; raft-core has
// not been advanced for it and must not be, the log engine is poisoned,
// and the only state worth trusting is what is on disk. A restart is the
// crash-recovery path every test already exercises, so stopping keeps
// every acknowledged write by the same argument, while the Region's other
// replicas (with disk space) keep serving it. The store answers what it
// was holding with typed errors, says what to do, and its process exits
// with a code of its own (the CLI's EXIT.diskFull / EXIT.storage).

/**
 * StoreStorageError: this store stopped, or refused to start, because of
 * its storage. `kind` says what (a full disk, a damaged file, a failing
 * device), `path` which file, `detail` what happened in one sentence and
 * `remedy` what the operator should do. It is never a bug: assertions and
 * other programming errors are not turned into it.
 */
export class StoreStorageError extends Error {
  constructor(
    readonly kind: StorageFaultKind,
    readonly path: string,
    readonly detail: string,
    readonly remedy: string,
    override readonly cause?: unknown,
  ) {
    super(`${detail}. ${remedy}`);
    this.name = 'StoreStorageError';
  }
}

/** remedyFor says what an operator does about a storage failure of the store in data directory `dir`. */
export function remedyFor(kind: StorageFaultKind, dir: string): string {
  switch (kind) {
    case 'disk-full':
      return `Free space on the file system holding ${dir} (or grow it), then start the store again: it recovers from what is on disk, and no acknowledged write was lost`;
    case 'corrupt':
      return (
        `Do not start this store on that file. Restore ${dir} from a copy taken while the store was stopped, ` +
        `or remove the store: delete ${dir} and start a fresh store in its place; placement re-creates its Region replicas ` +
        `from the other stores once the old store is down (--max-store-down-time-ms)`
      );
    case 'io':
      return `Check the device holding ${dir} (kernel log, SMART); once it is healthy, start the store again, or replace it as for a corrupted file`;
  }
}

/**
 * asStoreStorageError turns an engine's storage failure (a StorageFaultError,
 * a StorageCorruptError from the integrity check, or a raw SQLite or file
 * system error with a fault code) into a StoreStorageError; anything else
 * gives undefined, so the caller rethrows it as it was. `dataDir` is the
 * store's directory: the path of an error that names no file. `phase`
 * words the message: a store that 'start'ed refuses to start, a running
 * one stopped.
 */
export function asStoreStorageError(e: unknown, storeId: number | undefined, dataDir: string, phase: 'start' | 'run' = 'run'): StoreStorageError | undefined {
  if (e instanceof StoreStorageError) return e;
  const kind = storageFaultKind(e);
  if (kind === undefined) return undefined;
  const typed = e instanceof StorageFaultError || e instanceof StorageCorruptError || e instanceof StorageOpenError;
  const path = typed ? e.path : dataDir;
  const who = storeId === undefined ? 'store' : `store ${storeId}`;
  const what = phase === 'start' || e instanceof StorageCorruptError || e instanceof StorageOpenError ? 'refuses to start' : 'stopped';
  return new StoreStorageError(kind, path, `${who} ${what}: ${(e as Error).message}`, remedyFor(kind, typed ? dirname(path) : dataDir), e);
}

/**
 * guardStorage runs one entry into the store (a poll round, a timer task,
 * a transport callback) and stops the store when it throws a storage
 * failure. Any other error is rethrown untouched: a broken invariant still
 * crashes the process.
 */
export function guardStorage(ctx: StoreContext, fn: () => void): void {
  try {
    fn();
  } catch (e) {
    onStorageError(ctx, e);
  }
}

/** onStorageError stops the store for a storage failure and rethrows anything else. */
export function onStorageError(ctx: StoreContext, e: unknown): void {
  const failure = asStoreStorageError(e, ctx.storeId, dirname(ctx.log.options.path));
  if (failure === undefined) throw e;
  haltStore(ctx, failure);
}

/**
 * haltStore stops the store for good: no more poll rounds, ticks or
 * proposals (ctx.closed). Commands waiting in mailboxes are answered
 * Unavailable with the reason; proposals already in the log are answered
 * Undetermined (their entries may have reached the other replicas and
 * commit there). Then the host is told (StoreDeps.onHalt), which exits.
 */
export function haltStore(ctx: StoreContext, failure: StoreStorageError): void {
  if (ctx.halted !== undefined) return;
  ctx.halted = failure;
  ctx.closed = true;
  ctx.logger.error({ storeId: ctx.storeId, kind: failure.kind, path: failure.path, err: failure.detail, remedy: failure.remedy }, 'store stopped: storage failure');
  const answer = err.unavailable(failure.detail);
  for (const p of ctx.peers.values()) {
    failPending(p, answer);
    failMailbox(p.mailbox.splice(0), answer);
  }
  ctx.dirty.clear();
  ctx.onHalt(failure);
}
