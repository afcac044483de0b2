import { describeRegionError, type RegionError } from '@flotilla/proto';

/**
 * ClientErrorCode names every way a client call can fail for a reason the
 * caller is expected to handle:
 *   InvalidArgument   the arguments were rejected before anything was sent (or the store rejected the request as invalid)
 *   Timeout           the per-request deadline passed while retrying
 *   RetriesExhausted  maxRetries attempts all failed with retryable errors
 *   Undetermined      a non-idempotent write (cas) was on the wire when its connection failed: it may or may not have applied
 *   TooManyPending    the connection to a store already has maxPendingPerStore requests in flight
 *   Unavailable       placement could not be reached or answered with a non-retryable error
 *   Unauthorized      a store or placement requires an API token and the client sent none or a wrong one (not retried)
 *   Closed            the client was closed
 *   SpansRegions      a batch sent with oneRequest holds keys of more than one Region (or more than one request's worth); nothing of it applied
 *   TxnAborted        a transaction did not commit and never will (TxnAbortedError says why: txn/errors.ts)
 *   Compacted         a watch's start revision is below the GC safe point (CompactedError carries the oldest available: watch/watch.ts)
 *   FutureRevision    a watch's start revision is above every timestamp the oracle handed out
 *   WatcherTooSlow    a watch did not keep up and was cancelled (by the store, or by its own buffer bound)
 *   LeaseNotFound     the lease expired or was revoked (or never existed): keepalive, revoke and a put with it are refused; a lock or leadership on it is lost
 */
export type ClientErrorCode =
  | 'InvalidArgument'
  | 'Timeout'
  | 'RetriesExhausted'
  | 'Undetermined'
  | 'TooManyPending'
  | 'Unavailable'
  | 'Unauthorized'
  | 'Closed'
  | 'SpansRegions'
  | 'TxnAborted'
  | 'Compacted'
  | 'FutureRevision'
  | 'WatcherTooSlow'
  | 'LeaseNotFound';

/**
 * ClientError is the one error type FlotillaClient methods throw for expected
 * failures. `lastRegionError` is the last RegionError a store answered while
 * retrying (when there was one) and `cause` the last transport or placement
 * error, so a caller can tell "no leader" from "store unreachable".
 */
export class ClientError extends Error {
  constructor(
    readonly code: ClientErrorCode,
    message: string,
    readonly lastRegionError?: RegionError,
    override readonly cause?: unknown,
  ) {
    super(lastRegionError ? `${message} (last region error: ${describeRegionError(lastRegionError)})` : message);
    this.name = `ClientError(${code})`;
  }
}

/**
 * ConnectionError is internal: a request failed at the socket level.
 * `sent` says whether its frame may have reached the store, which matters
 * for writes that must not be applied twice (cas).
 */
export class ConnectionError extends Error {
  constructor(
    readonly address: string,
    message: string,
    readonly sent: boolean,
    /** unauthorized: the store answered the upgrade with 401 (missing or wrong API token). */
    readonly unauthorized = false,
  ) {
    super(`store ${address}: ${message}`);
    this.name = 'ConnectionError';
  }
}
