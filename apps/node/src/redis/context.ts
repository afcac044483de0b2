import type { ExpiringWriteGroup } from './expiring-group';
import { ClientError } from '@flotilla/client';
import { LIMITS, type CasResult } from '@flotilla/proto';
import type { CursorTable } from './cursor';
import type { PubSubHub } from './pubsub/hub';
import type { Subscriber } from './pubsub/subscriber';
import { reply, type Protocol, type Reply } from './resp';
import { ConflictError, type RmwRunner } from './rmw';
import type { Keyspace, TxnClient, TxnScope } from './txn';

// context.ts: what a command handler sees (the front, its connection) and
// the argument checks and error replies every handler shares.

/**
 * KvClient: the key-value calls the front makes, on one keyspace: the raw
 * FlotillaClient, or txn.ts TxnKeyspace/TxnScope on transactions (an
 * interface, so unit tests can pass a fake).
 */
export interface KvClient {
  get(key: Uint8Array): Promise<Uint8Array | null>;
  batchGet(keys: readonly Uint8Array[], opts?: { oneRequest?: boolean }): Promise<(Uint8Array | null)[]>;
  put(key: Uint8Array, value: Uint8Array): Promise<unknown>;
  batchPut(pairs: readonly { key: Uint8Array; value: Uint8Array }[], opts?: { oneRequest?: boolean }): Promise<unknown>;
  /** scan: pairs in key order; expired marks a key past its expiry (txn front), which SCAN skips but still takes its cursor from. */
  scan(start: Uint8Array, end: Uint8Array, limit: number): Promise<{ key: Uint8Array; value: Uint8Array; expired?: boolean }[]>;
  cas(key: Uint8Array, expected: Uint8Array | null, value: Uint8Array | null): Promise<CasResult>;
}

/** Watched: a key WATCH recorded, with its version then (the commit ts of its last write; null = absent). */
export interface Watched {
  key: Buffer;
  version: bigint | null;
}

/** MultiState: the commands a connection queued since MULTI; dirty = one was refused at queue time (EXEC answers EXECABORT). */
export interface MultiState {
  queue: Buffer[][];
  dirty: boolean;
}

/** ConnState is one client connection's session: protocol, name, authentication. */
export interface ConnState {
  id: number;
  protocol: Protocol;
  name: Buffer | null;
  authenticated: boolean;
  libName: string | null;
  libVersion: string | null;
  remote: string;
  local: string;
  connectedAt: number;
  /** lastCommand: the name of the last command run (CLIENT LIST cmd=). */
  lastCommand: string;
  /** closeAfterReply: QUIT asked to close once its reply is written. */
  closeAfterReply: boolean;
  /** multi: set between MULTI and EXEC/DISCARD (commands are queued, not run). */
  multi: MultiState | null;
  /** watched: WATCH's keys by latin1 key, until EXEC, DISCARD or UNWATCH. */
  watched: Map<string, Watched>;
  /** pubsub: the connection's channels, patterns and their watches (txn keyspace fronts; pubsub/subscriber.ts). */
  pubsub?: Subscriber;
}

/** FrontStats: counters INFO reports. */
export interface FrontStats {
  connectionsReceived: number;
  connectionsRejected: number;
  commandsProcessed: number;
  errorReplies: number;
  protocolErrors: number;
  /** batchedCommands: pipelined GETs and SETs answered by one request of a run (batch.ts). */
  batchedCommands: number;
}

/** KeyEstimate: the key count placement knows from Region heartbeats (approximate, and late by a heartbeat or a split check). */
export interface KeyEstimate {
  keys: number;
  regions: number;
}

/** FrontContext is the front as handlers see it. */
export interface FrontContext {
  client: KvClient;
  rmw: RmwRunner;
  /** keyspace the front serves; MULTI/EXEC/WATCH need 'txn'. */
  keyspace: Keyspace;
  /** txnClient: the transactions EXEC runs in (set in txn mode). */
  txnClient: TxnClient | undefined;
  /**
   * atomic runs fn in one transaction (txn mode only: undefined on raw):
   * a new one outside MULTI, EXEC's own inside it. Multi-key commands
   * (DEL, MSETNX) use it to be all-or-nothing across Regions.
   */
  atomic: (<T>(fn: (scope: TxnScope) => Promise<T>) => Promise<T>) | undefined;
  /** expiringWrites: group commit of blind expiring SETs outside MULTI (txn mode; undefined inside EXEC, on raw, or with FLOTILLA_REDIS_EXPIRY_GROUP=off). */
  expiringWrites?: ExpiringWriteGroup | undefined;
  cursors: CursorTable;
  /** token: the API token AUTH must present (none: no AUTH needed). */
  token: string | undefined;
  stats: FrontStats;
  startedAt: number;
  listen: { host: string; port: number };
  placement: string;
  maxConnections: number;
  /** connections lists the open connections' sessions (CLIENT LIST, INFO). */
  connections(): ConnState[];
  /** keyEstimate: placement's approximate key count, cached for a few seconds. */
  keyEstimate(): Promise<KeyEstimate>;
  /** pubsub: the front's subscriptions for PUBLISH and its watch bounds (txn keyspace only; pubsub/hub.ts). */
  pubsub?: PubSubHub;
}

/** Handler runs one command; args[0] is the command name as sent. */
export type Handler = (ctx: FrontContext, conn: ConnState, args: Buffer[]) => Reply | Promise<Reply>;

/** CommandDef is one row of the command table: what COMMAND and COMMAND DOCS report, and the handler. */
export interface CommandDef {
  name: string;
  /** arity as Redis counts it: the command name included; negative = at least that many. */
  arity: number;
  flags: string[];
  firstKey: number;
  lastKey: number;
  keyStep: number;
  group: 'string' | 'generic' | 'connection' | 'server' | 'transactions' | 'pubsub';
  since: string;
  summary: string;
  complexity?: string;
  /** noAuth: may run before AUTH (AUTH, HELLO, QUIT). */
  noAuth?: boolean;
  /**
   * keyRmw: the command is a read-modify-write of the one key args[1],
   * always through the RmwCombiner, whose queue per key is first in, first
   * out. A pipeline's run of such commands on one key may therefore start
   * without waiting for each other: they still apply in order.
   */
  keyRmw?: boolean;
  run: Handler;
}

/** CommandError carries a Redis error reply (`ERR ...`, `WRONGPASS ...`) out of a handler's argument checks. */
export class CommandError extends Error {
  constructor(readonly reply: string) {
    super(reply);
    this.name = 'CommandError';
  }
}

export const SYNTAX_ERROR = 'ERR syntax error';
export const NOT_INTEGER = 'ERR value is not an integer or out of range';

/** keyArg checks a key against Flotilla's limits: Redis allows an empty key, Flotilla does not. */
export function keyArg(b: Buffer): Buffer {
  if (b.length === 0) throw new CommandError(`ERR empty keys are not supported (Flotilla keys are 1 to ${LIMITS.maxKeyBytes} bytes)`);
  if (b.length > LIMITS.maxKeyBytes) throw new CommandError(`ERR key of ${b.length} bytes exceeds Flotilla's key limit of ${LIMITS.maxKeyBytes} bytes`);
  return b;
}

/** checkValueSize: a value a command computed (APPEND, SETRANGE) must fit Flotilla's value limit. */
export function valueTooLarge(bytes: number): Reply | null {
  return bytes > LIMITS.maxValueBytes ? reply.error(`ERR string exceeds maximum allowed size (${LIMITS.maxValueBytes} bytes, Flotilla's value limit)`) : null;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** parseInt64 reads a signed 64-bit decimal exactly as Redis does: no spaces, no '+', no leading zeros, no "-0"; null when it is not one. */
export function parseInt64(b: Uint8Array): bigint | null {
  if (b.length === 0 || b.length > 20) return null;
  const s = Buffer.from(b.buffer, b.byteOffset, b.length).toString('latin1');
  if (!/^(0|-?[1-9][0-9]*)$/.test(s)) return null;
  const n = BigInt(s);
  return n < INT64_MIN || n > INT64_MAX ? null : n;
}

export function inInt64(n: bigint): boolean {
  return n >= INT64_MIN && n <= INT64_MAX;
}

/** intArg parses an integer argument or throws Redis' "not an integer" error. */
export function intArg(b: Buffer): bigint {
  const n = parseInt64(b);
  if (n === null) throw new CommandError(NOT_INTEGER);
  return n;
}

/** upper: an argument (option, subcommand) in upper case, for case-insensitive matching. */
export const upper = (b: Buffer): string => b.toString('latin1').toUpperCase();

/**
 * errorReply turns a failure into the error reply a Redis client sees.
 * The first word is the error code clients switch on: ERR for bad input,
 * TRYAGAIN for failures that applied nothing and may be retried (the
 * cluster timed out or is unavailable, or a compare-and-swap kept losing),
 * UNDETERMINED for a write that was in flight when its connection failed
 * (it may or may not have applied: read before retrying).
 */
export function errorReply(err: unknown): Reply {
  if (err instanceof CommandError) return reply.error(err.reply);
  if (err instanceof ConflictError) return reply.error(`TRYAGAIN ${err.message}`);
  if (err instanceof ClientError) {
    switch (err.code) {
      case 'InvalidArgument':
        return reply.error(`ERR ${err.message}`);
      case 'Undetermined':
        return reply.error(`UNDETERMINED the write may or may not have applied (its connection to the store failed in flight); read the key before retrying: ${err.message}`);
      case 'Unauthorized':
        return reply.error(`ERR the cluster refused this front's API token: ${err.message}`);
      case 'Closed':
        return reply.error('ERR the Redis front is shutting down');
      default:
        return reply.error(`TRYAGAIN the cluster did not answer (${err.code}); nothing was applied: ${err.message}`);
    }
  }
  return reply.error(`ERR internal error: ${(err as Error)?.message ?? String(err)}`);
}
