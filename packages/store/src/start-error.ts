/**
 * StoreStartErrorCode names each reason a store refuses to start because of
 * how it was configured or which data dir it was given. None of them is
 * fixed by retrying: the operator has to change a flag or a directory.
 */
export type StoreStartErrorCode =
  /** InsecureSecret: the development cluster secret with a non-loopback address. */
  | 'InsecureSecret'
  /** WrongCluster: the data dir belongs to another cluster than placement's. */
  | 'WrongCluster'
  /** UnknownStore: the data dir's store ID was never registered with this cluster. */
  | 'UnknownStore'
  /** RemovedStore: placement removed this store (tombstone); it may not come back. */
  | 'RemovedStore'
  /** MissingIdentity: the data dir holds databases but no store.json. */
  | 'MissingIdentity'
  /** UnreadableIdentity: store.json is not valid. */
  | 'UnreadableIdentity'
  /** WildcardAddress: a listener bound to every interface with no address to announce for it. */
  | 'WildcardAddress';

/**
 * StoreStartError is startStore's typed refusal. It is thrown before the
 * store changes anything on disk; the message says what is wrong and what
 * to do, and the CLI prints it as is (exit 2, no stack trace).
 */
export class StoreStartError extends Error {
  constructor(
    readonly code: StoreStartErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'StoreStartError';
  }
}
