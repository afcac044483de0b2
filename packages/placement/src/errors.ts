/**
 * PlacementErrorCode names every expected failure of the placement API.
 * Server-side codes travel in `{ok:false, error:{code, message}}`; the
 * client-only codes (Timeout, Unavailable, TooManyPending, Closed) are raised
 * by PlacementClient itself.
 */
export const PlacementErrorCode = {
  /** MalformedFrame: the bytes were not a msgpack request object. */
  MalformedFrame: 'MalformedFrame',
  /** UnknownMethod: no such API method. */
  UnknownMethod: 'UnknownMethod',
  /** InvalidArgument: params failed validation; the message names the field. */
  InvalidArgument: 'InvalidArgument',
  AlreadyBootstrapped: 'AlreadyBootstrapped',
  NotBootstrapped: 'NotBootstrapped',
  StoreNotFound: 'StoreNotFound',
  /** StoreTombstone: the store was removed and may not come back under the same ID. */
  StoreTombstone: 'StoreTombstone',
  /** RegionNotFound: no Region has that ID (admin requests). */
  RegionNotFound: 'RegionNotFound',
  /** OperatorNotFound: the Region has no operator in flight to cancel. */
  OperatorNotFound: 'OperatorNotFound',
  /** OperatorRefused: an operator asked for by hand failed the controller's checks (another operator holds the Region, it is unsafe); the message says which. */
  OperatorRefused: 'OperatorRefused',
  /** StaleRegion: a reported Region is older than what placement knows. */
  StaleRegion: 'StaleRegion',
  /**
   * NotLeader: this placement member is not the leader of the placement
   * group; `leader` (on the error, and in the wire error) is the leader's
   * address when known. Nothing was done: the request may be sent there.
   */
  NotLeader: 'NotLeader',
  /** Unauthorized: placement requires an API token and the client sent none or a wrong one (HTTP 401 on connect). */
  Unauthorized: 'Unauthorized',
  /** LeaseNotFound: no live lease has that ID (never granted, expired or revoked); keepalive, attach and a put with it are refused. */
  LeaseNotFound: 'LeaseNotFound',
  /** Internal: a bug or storage failure on the server. */
  Internal: 'Internal',
  Timeout: 'Timeout',
  Unavailable: 'Unavailable',
  TooManyPending: 'TooManyPending',
  Closed: 'Closed',
} as const;
export type PlacementErrorCode = (typeof PlacementErrorCode)[keyof typeof PlacementErrorCode];

const RETRYABLE: ReadonlySet<string> = new Set([
  PlacementErrorCode.Timeout,
  PlacementErrorCode.Unavailable,
  PlacementErrorCode.TooManyPending,
  PlacementErrorCode.NotBootstrapped,
  PlacementErrorCode.NotLeader,
]);

/**
 * PlacementError is the one error type the placement API raises for expected
 * failures. `code` is machine-readable; `retryable` says whether trying the
 * same call later can succeed.
 */
export class PlacementError extends Error {
  readonly retryable: boolean;
  constructor(
    readonly code: PlacementErrorCode | string,
    message: string,
    /** leader: for NotLeader, the leader's address when this member knows it (where to retry). */
    readonly leader?: string,
  ) {
    super(message);
    this.name = `PlacementError(${code})`;
    this.retryable = RETRYABLE.has(code);
  }
}

/** PlacementStorageError: the placement database cannot be used (corrupt, newer format, locked). Names the path. */
export class PlacementStorageError extends Error {
  constructor(
    readonly path: string,
    message: string,
    override readonly cause?: unknown,
  ) {
    super(`placement database ${path}: ${message}`);
    this.name = 'PlacementStorageError';
  }
}

/** PlacementInvariantError is a bug. The server lets it crash the process rather than answer with possibly corrupt state. */
export class PlacementInvariantError extends Error {
  constructor(message: string) {
    super(`placement invariant broken: ${message}`);
    this.name = 'PlacementInvariantError';
  }
}

/** assert throws on a broken invariant. It is never caught: a bug must not write corrupt state. */
export function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new PlacementInvariantError(message);
}
