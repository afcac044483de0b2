import type { KeyError, Ts, TxnCommand, TxnResult, VersionedPair } from '@flotilla/proto';

// TxnTransport is the boundary between the Percolator driver (txn.ts,
// snapshot.ts, resolver.ts) and routing. The driver decides WHAT to send
// (which keys, which command, what to do with every KeyError); the
// transport decides WHERE: it groups keys by Region, sends each group to
// the Region's leader, and absorbs everything Raft and splits make routine
// (NotLeader, EpochNotMatch, KeyNotInRegion, unreachable stores) by
// re-grouping the keys a failed group carried and sending them again.
//
// FlotillaClient implements it over its routing (client-transport.ts); the
// simulation implements it over its in-memory cluster; the driver's unit
// tests use an in-memory Percolator (test/txn-fake.ts).
//
// Error contract: every method resolves with what the Region(s) answered
// (KeyErrors ride inside TxnResult: the Region served the command, the
// transaction hit something) or rejects with a ClientError: Timeout /
// RetriesExhausted / Closed / Unavailable / Unauthorized when routing gave
// up, InvalidArgument when a store refused the request as malformed, and
// Undetermined only for a command the transport may not resend (see
// KeyGroup.resendable) whose connection failed with it in flight.

/**
 * KeyGroup tells build() about the group it builds a command for.
 *   regionId   the Region the command goes to
 *   allKeys    this group holds every key of the forKeys call (it is the
 *              only group): the one case where a 1PC prewrite is allowed
 *              (a re-grouping after a split builds smaller groups with
 *              allKeys false, so a 1PC attempt turns into 2PC prewrites)
 *   onePcRefused  the Region refused this group's last attempt with
 *              ServerIsBusy (a store answers a 1PC prewrite that way when it
 *              cannot take a commit ts or has too many 1PCs in flight): the
 *              rebuilt command should be a 2PC prewrite
 */
export interface KeyGroup {
  readonly regionId: number;
  readonly allKeys: boolean;
  readonly onePcRefused?: boolean;
}

/** GroupResult is one Region's answer to the command built for its keys (keys in the order given to build). */
export interface GroupResult {
  readonly keys: Uint8Array[];
  readonly result: TxnResult;
}

/** ReadResult merges the answers of a batchGet over every Region it touched. */
export interface ReadResult {
  /** pairs: the keys that exist at ts, any order. */
  readonly pairs: VersionedPair[];
  /** errors: KeyIsLocked for keys a lock hides (their pairs are missing; resolve and read them again). */
  readonly errors: KeyError[];
}

/** ScanPage is what one Region answered to a scan of its share of [start, end). */
export interface ScanPage {
  readonly pairs: VersionedPair[];
  readonly errors: KeyError[];
  /**
   * resumeKey is where the scan continues (the next Region's start, or just
   * after the last pair when the Region filled the limit); null when the
   * range is exhausted. With errors, the page is to be scanned again from
   * the same start after resolving.
   */
  readonly resumeKey: Uint8Array | null;
}

export interface TxnTransport {
  /** timestamp returns a fresh timestamp from placement's oracle (start_ts, commit_ts, currentTs). */
  timestamp(): Promise<Ts>;

  /**
   * forKeys groups keys by Region, calls build once per group and sends the
   * command to that Region's leader, all groups in parallel. A group that
   * fails with a Region error is re-grouped against fresh routing and its
   * commands rebuilt (build may be called again for any subset of keys).
   * Resolves with one GroupResult per group that answered; every key of the
   * call is in exactly one of them. A command is resent after a connection
   * failure with it in flight unless it is a 1PC prewrite (onePc: true),
   * which is not idempotent: that one rejects with Undetermined.
   */
  forKeys(keys: readonly Uint8Array[], build: (regionKeys: Uint8Array[], group: KeyGroup) => TxnCommand): Promise<GroupResult[]>;

  /** forKey sends one command to the Region holding key (the primary's commit, checkTxnStatus, txnHeartBeat); retried like forKeys. */
  forKey(key: Uint8Array, cmd: TxnCommand): Promise<TxnResult>;

  /** batchGet reads keys at ts (snapshot read after the Region's ReadIndex / lease check), grouped by Region, in parallel. */
  batchGet(keys: readonly Uint8Array[], ts: Ts): Promise<ReadResult>;

  /**
   * scanPage reads the pairs of [start, end) at ts that lie in the Region
   * holding start, at most limit of them (empty end = to the end of the key
   * space). The driver walks Regions by calling it again at resumeKey.
   */
  scanPage(start: Uint8Array, end: Uint8Array, limit: number, ts: Ts, keyOnly?: boolean): Promise<ScanPage>;
}
