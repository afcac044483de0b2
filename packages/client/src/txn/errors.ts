import type { KeyError } from '@flotilla/proto';
import { ClientError } from '../errors';

/**
 * TxnAbortReason says why a transaction ended without committing. Every one
 * of them means nothing of the transaction is or will become visible.
 *   WriteConflict     another transaction committed one of our keys after our start_ts (retried; this is the last try's reason when maxRetries is 0)
 *   RetriesExhausted  every allowed attempt of the function aborted (cause: the last attempt's TxnAbortedError)
 *   Rolledback        a reader found our locks expired and rolled us back before the primary committed
 *   LockTimeout       locks of other live transactions were still in the way at the call's deadline
 *   Timeout           the call's deadline passed before the primary's commit was sent
 *   Failed            the store refused a step with an error no retry can fix (keyError says which)
 */
export type TxnAbortReason = 'WriteConflict' | 'RetriesExhausted' | 'Rolledback' | 'LockTimeout' | 'Timeout' | 'Failed';

/** RETRYABLE_REASONS: aborts after which running the function again at a new start_ts may commit. */
export const RETRYABLE_REASONS: ReadonlySet<TxnAbortReason> = new Set(['WriteConflict', 'Rolledback']);

/** TxnAbortedError is ClientError('TxnAborted') with the reason and, when a store said it, the KeyError behind it. */
export class TxnAbortedError extends ClientError {
  constructor(
    readonly reason: TxnAbortReason,
    message: string,
    readonly keyError?: KeyError,
    cause?: unknown,
  ) {
    super('TxnAborted', `transaction aborted (${reason}): ${message}`, undefined, cause);
  }
}
