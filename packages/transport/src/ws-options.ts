// WsTransportOptions: what a WsTransport is configured with, each limit
// with its default in its doc, and resolveOptions, which checks them,
// applies those defaults and reads the TLS files.

import { readFileSync } from 'node:fs';
import { childLogger, silentLogger, type Logger } from '@flotilla/proto';

/** AddressResolver maps a store ID to "host:port" (placement provides it); undefined = unknown store. */
export type AddressResolver = (storeId: number) => Promise<string | undefined>;

export interface WsTransportOptions {
  storeId: number;
  /** clusterId must match on both ends of every connection. */
  clusterId: string | number;
  /** secret is the cluster's shared secret for the HMAC handshake. Never logged. */
  secret: string | Uint8Array;
  resolveAddress: AddressResolver;
  /** listen address (default 127.0.0.1, port 0 = any free port). */
  host?: string;
  port?: number;
  /** logger: @flotilla/proto's Logger (a pino logger fits); each line gets component and store; default silent. */
  logger?: Logger;
  /** maxQueuedMessages per destination store (default 65,536). */
  maxQueuedMessages?: number;
  /** maxQueuedBytes per destination store (default 64 MiB, estimated). */
  maxQueuedBytes?: number;
  /** maxFrameBytes: largest raft frame sent or accepted (default 16 MiB); bigger batches are split. */
  maxFrameBytes?: number;
  /** maxSocketBufferedBytes: while a socket holds more unsent bytes, flush leaves messages queued (default 16 MiB). */
  maxSocketBufferedBytes?: number;
  /**
   * handshakeTimeoutMs for both sides (default 5,000). On the listener it
   * also bounds the HTTP upgrade request's head: a connection that has not
   * sent it whole within this is answered 408 and closed, checked every
   * min(a quarter of it, 1 s).
   */
  handshakeTimeoutMs?: number;
  /** reconnect backoff: base and cap (defaults 100 ms and 5,000 ms), with jitter in [50%, 100%]. */
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
  /** unreachableReportIntervalMs: at most one onUnreachable per store per interval (default 100). */
  unreachableReportIntervalMs?: number;
  /** snapshotChunkBytes: larger chunks are split (default 1 MiB). */
  snapshotChunkBytes?: number;
  /** snapshotWindow: chunks in flight without acknowledgement (default 4). */
  snapshotWindow?: number;
  /** snapshotIdleTimeoutMs: a snapshot with no progress for this long fails (default 30,000). */
  snapshotIdleTimeoutMs?: number;
  /**
   * keepaliveIntervalMs: raft connections are pinged this often; one with no
   * pong (or frame) for a whole interval is closed as dead (default 10,000;
   * 0 disables). Catches half-open TCP connections of crashed machines.
   */
  keepaliveIntervalMs?: number;
  /** maxPendingHandshakes: inbound connections still in their handshake (default 256); more are closed at once. */
  maxPendingHandshakes?: number;
  /**
   * maxInboundConnections bounds open inbound connections (raft and
   * snapshot, authenticated or not; default 512: a raft connection and a
   * few snapshots per peer store, for clusters of a hundred stores and
   * more). One more is answered HTTP 503 with the reason before the
   * upgrade, and closed.
   */
  maxInboundConnections?: number;
  /** maxInboundSnapshots at once (default 4); more are refused with Busy. */
  maxInboundSnapshots?: number;
  /** faults: fault-injection hooks, off unless enabled. */
  faults?: { enabled: boolean };
  /** random for backoff jitter (default Math.random). */
  random?: () => number;
  /**
   * tls switches the whole cluster to wss://: this store serves TLS with
   * cert/key and dials peers with TLS, trusting `caPath` (default: the
   * system roots). The HMAC handshake still authenticates both stores.
   */
  tls?: TlsOptions;
}

export interface TlsOptions {
  certPath: string;
  keyPath: string;
  caPath?: string;
  /** rejectUnauthorized: verify the peer's certificate chain and name (default true). */
  rejectUnauthorized?: boolean;
  /**
   * requireClientCert makes TLS mutual: the listener asks every dialing
   * store for a certificate and refuses, in the TLS handshake, one not
   * signed by `caPath` (required then), before any WebSocket frame. Dials
   * always present cert/key, so stores can switch it on one at a time.
   */
  requireClientCert?: boolean;
}

/** WsSettings are the options a WsTransport reads after construction, every default applied. */
export type WsSettings = Required<Omit<WsTransportOptions, 'logger' | 'faults' | 'secret' | 'clusterId' | 'storeId' | 'resolveAddress' | 'random' | 'tls'>>;

/** TlsMaterial is TlsOptions with its files read. */
export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca: Buffer | undefined;
  rejectUnauthorized: boolean;
  requireClientCert: boolean;
}

/** ResolvedOptions are WsTransportOptions checked, with every default applied. */
export interface ResolvedOptions {
  storeId: number;
  clusterId: string;
  secret: Buffer;
  resolveAddress: AddressResolver;
  random: () => number;
  log: Logger;
  settings: WsSettings;
  tls: TlsMaterial | undefined;
  faultsEnabled: boolean;
}

/** resolveOptions throws RangeError for an option no transport can run with. */
export function resolveOptions(options: WsTransportOptions): ResolvedOptions {
  if (!Number.isSafeInteger(options.storeId) || options.storeId <= 0) throw new RangeError(`storeId must be a positive integer, got ${options.storeId}`);
  const secret = typeof options.secret === 'string' ? Buffer.from(options.secret, 'utf8') : Buffer.from(options.secret);
  if (secret.length === 0) throw new RangeError('secret must not be empty');
  const log = childLogger(options.logger ?? silentLogger, { component: 'transport', store: options.storeId });
  const settings: WsSettings = {
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 0,
    maxQueuedMessages: options.maxQueuedMessages ?? 65_536,
    maxQueuedBytes: options.maxQueuedBytes ?? 64 * 1024 * 1024,
    maxFrameBytes: options.maxFrameBytes ?? 16 * 1024 * 1024,
    maxSocketBufferedBytes: options.maxSocketBufferedBytes ?? 16 * 1024 * 1024,
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? 5_000,
    reconnectBaseMs: options.reconnectBaseMs ?? 100,
    reconnectMaxMs: options.reconnectMaxMs ?? 5_000,
    unreachableReportIntervalMs: options.unreachableReportIntervalMs ?? 100,
    snapshotChunkBytes: options.snapshotChunkBytes ?? 1024 * 1024,
    snapshotWindow: options.snapshotWindow ?? 4,
    snapshotIdleTimeoutMs: options.snapshotIdleTimeoutMs ?? 30_000,
    maxInboundSnapshots: options.maxInboundSnapshots ?? 4,
    keepaliveIntervalMs: options.keepaliveIntervalMs ?? 10_000,
    maxPendingHandshakes: options.maxPendingHandshakes ?? 256,
    maxInboundConnections: options.maxInboundConnections ?? 512,
  };
  if (settings.maxFrameBytes < 1024) throw new RangeError('maxFrameBytes must be at least 1 KiB');
  if (settings.snapshotWindow < 1) throw new RangeError('snapshotWindow must be at least 1');
  let tls: TlsMaterial | undefined;
  if (options.tls) {
    // Without a CA of its own, a listener would accept any certificate a public CA ever signed.
    if (options.tls.requireClientCert && !options.tls.caPath) throw new RangeError("tls.requireClientCert needs tls.caPath: the CA that signs the stores' certificates");
    // Read at construction: a missing file is a configuration error, reported at once.
    tls = {
      cert: readFileSync(options.tls.certPath),
      key: readFileSync(options.tls.keyPath),
      ca: options.tls.caPath ? readFileSync(options.tls.caPath) : undefined,
      rejectUnauthorized: options.tls.rejectUnauthorized ?? true,
      requireClientCert: options.tls.requireClientCert ?? false,
    };
  }
  return {
    storeId: options.storeId,
    clusterId: String(options.clusterId),
    secret,
    resolveAddress: options.resolveAddress,
    random: options.random ?? Math.random,
    log,
    settings,
    tls,
    faultsEnabled: options.faults?.enabled ?? false,
  };
}
