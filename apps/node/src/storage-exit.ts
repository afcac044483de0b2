import type { StoreHandle } from '@flotilla/store';
import { EXIT, waitForShutdown, type CommandContext } from './command';

// storage-exit: how `flotilla store` ends on a storage failure (issue #15
// items 3 and 4): one message naming the file and what to do, never a stack
// trace, and an exit status of its own: 4 for a full disk, 3 for a damaged
// file or a failing device (docs/operations.md, "Full disk" and "Corrupt
// databases"). The store package's StoreStorageError carries the message;
// it is recognised by name so this file does not load the store package.

/** StorageFailureLike is the part of @flotilla/store's StoreStorageError the CLI reads. */
interface StorageFailureLike {
  name: string;
  kind: 'disk-full' | 'corrupt' | 'io';
  message: string;
}

function isStorageFailure(err: unknown): err is StorageFailureLike {
  return err instanceof Error && err.name === 'StoreStorageError' && typeof (err as Partial<StorageFailureLike>).kind === 'string';
}

/** storageExitCode: EXIT.diskFull for a full disk, EXIT.storage for a damaged file or a failing device. */
export function storageExitCode(kind: StorageFailureLike['kind']): number {
  return kind === 'disk-full' ? EXIT.diskFull : EXIT.storage;
}

/**
 * reportStorageFailure prints a storage failure of startStore (a damaged
 * database refused on open, a disk too full to recover) and returns its
 * exit status; undefined for any other error, which the caller rethrows.
 */
export function reportStorageFailure(err: unknown, ctx: CommandContext): number | undefined {
  if (!isStorageFailure(err)) return undefined;
  ctx.io.stderr.write(`flotilla store: ${err.message}\n`);
  return storageExitCode(err.kind);
}

/**
 * serveUntilStopped runs a started store until a signal stops it (exit 0,
 * waitForShutdown) or a storage failure does (StoreHandle.halted): then it
 * prints the failure, closes what can be closed and returns its status.
 */
export function serveUntilStopped(ctx: CommandContext, handle: StoreHandle): Promise<number> {
  const halted = handle.halted.then(async (failure) => {
    ctx.io.stderr.write(`flotilla store: ${failure.message}\n`);
    try {
      await handle.close();
    } catch (e) {
      ctx.logger.warn({ err: (e as Error).message }, 'closing the stopped store failed');
    }
    return storageExitCode(failure.kind);
  });
  return Promise.race([waitForShutdown(ctx, () => handle.close()), halted]);
}
