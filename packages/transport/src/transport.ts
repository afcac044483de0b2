// The contract between a store and its transport. Both WsTransport (real
// sockets) and LocalTransport (in-memory, fault injection) implement it, so
// the store, its tests and the simulation drive the same code.

import type { RaftMessage } from '@flotilla/proto';

/**
 * SnapshotHeader is what precedes a snapshot's data: the MsgSnapshot
 * envelope (region, peers, epoch, and the raft message whose
 * `snapshot.metadata` names index/term/conf state). The receiver steps it
 * into raft once the streamed data has been applied.
 */
export type SnapshotHeader = RaftMessage;

/** MessagesHandler receives one inbound batch (one frame) from one store. */
export type MessagesHandler = (msgs: RaftMessage[], fromStoreId: number) => void;

/** UnreachableHandler is told a store could not be reached; the store then calls reportUnreachable on the peers it hosts there. */
export type UnreachableHandler = (storeId: number) => void;

/**
 * SnapshotHandler consumes one inbound snapshot. Pulling chunks from the
 * iterator acknowledges them (flow control); the sender's promise resolves
 * when the returned promise resolves and rejects if it rejects.
 */
export type SnapshotHandler = (header: SnapshotHeader, chunks: AsyncIterable<Uint8Array>, fromStoreId: number) => Promise<void>;

/** SnapshotChunks is what sendSnapshot streams: any (async) iterable of byte chunks. */
export type SnapshotChunks = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/** TransportStats are monotonic counters (plus two gauges) for metrics and tests. */
export interface TransportStats {
  /** framesSent/framesReceived count raft frames (one per destination per flush). */
  framesSent: number;
  framesReceived: number;
  messagesSent: number;
  messagesReceived: number;
  /** bytesSent/bytesReceived count raft frame payload bytes (not WebSocket headers). */
  bytesSent: number;
  bytesReceived: number;
  /** messagesDropped is the sum of every drop reason below. */
  messagesDropped: number;
  /** droppedQueueFull: the per-destination queue was at its message or byte limit. */
  droppedQueueFull: number;
  /** droppedUnreachable: no address, dial failed, in backoff, or the connection was lost with the message queued. */
  droppedUnreachable: number;
  /** droppedTooLarge: one message alone exceeded the frame size limit. */
  droppedTooLarge: number;
  /** droppedFault: dropped by fault injection (blockStore / partition / drop probability). */
  droppedFault: number;
  /** connectionsOpened: raft connections that completed the handshake (either direction). */
  connectionsOpened: number;
  /** reconnects: successful dials to a store after an earlier connection to it was lost. */
  reconnects: number;
  dialFailures: number;
  /** handshakesRejected: inbound or outbound connections closed during the handshake (bad cluster, MAC, timeout, garbage). */
  handshakesRejected: number;
  /** protocolErrors: established connections closed for an undecodable or oversized frame. */
  protocolErrors: number;
  unreachableReports: number;
  snapshotsSent: number;
  snapshotsReceived: number;
  snapshotsFailed: number;
  snapshotChunksSent: number;
  snapshotChunksReceived: number;
  snapshotBytesSent: number;
  snapshotBytesReceived: number;
  /** queuedMessages/queuedBytes are gauges: messages waiting for the next flush or a connection. */
  queuedMessages: number;
  queuedBytes: number;
}

export function emptyStats(): TransportStats {
  return {
    framesSent: 0,
    framesReceived: 0,
    messagesSent: 0,
    messagesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    messagesDropped: 0,
    droppedQueueFull: 0,
    droppedUnreachable: 0,
    droppedTooLarge: 0,
    droppedFault: 0,
    connectionsOpened: 0,
    reconnects: 0,
    dialFailures: 0,
    handshakesRejected: 0,
    protocolErrors: 0,
    unreachableReports: 0,
    snapshotsSent: 0,
    snapshotsReceived: 0,
    snapshotsFailed: 0,
    snapshotChunksSent: 0,
    snapshotChunksReceived: 0,
    snapshotBytesSent: 0,
    snapshotBytesReceived: 0,
    queuedMessages: 0,
    queuedBytes: 0,
  };
}

/**
 * Transport moves RaftMessages between stores. Call pattern of a store's
 * poll round: `send` for every message of every Ready, then one `flush`,
 * which puts everything queued for one destination store into one frame.
 * Sending never blocks and never throws for network trouble: a message
 * that cannot go is dropped, counted, and the destination reported through
 * onUnreachable (raft retries; every raft message may be dropped).
 */
export interface Transport {
  readonly storeId: number;
  /** start opens the listener (WsTransport) or joins the network (LocalTransport). */
  start(): Promise<void>;
  /** close drops queued messages, closes every connection and fails in-flight snapshots. Idempotent. */
  close(): Promise<void>;
  /** send queues msg for toStoreId; false if it was dropped at once (queue full, store unreachable or blocked). */
  send(toStoreId: number, msg: RaftMessage): boolean;
  /** flush sends everything queued, one frame per destination store (split only at the frame size limit). */
  flush(): void;
  /** onMessages sets the (single) handler for inbound batches. */
  onMessages(handler: MessagesHandler): void;
  onUnreachable(handler: UnreachableHandler): void;
  /**
   * sendSnapshot streams a snapshot on its own channel with a window of
   * unacknowledged chunks; resolves when the receiver's handler finished,
   * rejects with TransportError otherwise (an error thrown by `chunks`
   * itself is passed through unchanged).
   */
  sendSnapshot(toStoreId: number, header: SnapshotHeader, chunks: SnapshotChunks): Promise<void>;
  onSnapshot(handler: SnapshotHandler): void;
  stats(): TransportStats;
}

export type TransportErrorCode = 'Unreachable' | 'Closed' | 'Rejected' | 'Timeout' | 'Protocol' | 'Blocked';

/** TransportError is the typed failure of sendSnapshot and start. */
export class TransportError extends Error {
  constructor(
    readonly code: TransportErrorCode,
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'TransportError';
  }
}
