import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { DecodeError, ValidationError, decode, encode, parseWith, watchClientFrameSchema, type WatchClientFrame, type WatchServerFrame } from '@flotilla/proto';
import type { Store, StoreLogger } from '../store';
import type { WatchConn } from '../watch/feed';
import { closeGracefully } from './close';

/** MAX_WATCH_CLIENT_FRAME_BYTES bounds one frame a watcher sends (a subscribe carries two keys). */
const MAX_WATCH_CLIENT_FRAME_BYTES = 64 * 1024;

/**
 * WatchServer serves change feeds at /watch on the client port (the client
 * server hands it the upgrade after its token and connection checks). A
 * watch gets its own connection rather than riding /client so that a
 * watcher that stops reading its events is cut on its own (WatcherTooSlow)
 * and never stalls request answers, whose window stops reading requests.
 * Every frame is decoded and validated; a bad one ends the connection's
 * feed with InvalidRequest (or, unattributable, closes the connection).
 */
export class WatchServer {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_WATCH_CLIENT_FRAME_BYTES });

  constructor(
    private readonly getStore: () => Store | undefined,
    private readonly logger: StoreLogger,
  ) {}

  /** upgrade takes one WebSocket upgrade of /watch (already authorized by the caller). */
  upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean {
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws));
    return true;
  }

  async close(): Promise<void> {
    await Promise.all([...this.wss.clients].map(closeGracefully));
    await new Promise<void>((r) => this.wss.close(() => r()));
  }

  private onConnection(ws: WebSocket): void {
    const conn: WatchConn = {
      send: (frame: WatchServerFrame) => {
        if (ws.readyState === ws.OPEN) ws.send(encode(frame));
      },
      // A msgpack array of frames in one message: a resolved-ts pass over a Region with thousands of feeds is one write.
      sendMany: (frames: WatchServerFrame[]) => {
        if (ws.readyState === ws.OPEN) ws.send(encode(frames));
      },
      bufferedBytes: () => ws.bufferedAmount,
      tooSlow: () => ws.close(1008, 'watcher too slow'),
    };
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onFrame(conn, ws, data, isBinary));
    ws.on('close', () => this.getStore()?.watch.connectionClosed(conn));
    ws.on('error', () => {});
  }

  private onFrame(conn: WatchConn, ws: WebSocket, data: Buffer, isBinary: boolean): void {
    let frame: WatchClientFrame;
    let raw: unknown;
    try {
      if (!isBinary) throw new DecodeError('frames must be binary msgpack');
      raw = decode(data);
      frame = parseWith(watchClientFrameSchema, raw, 'watch frame') as WatchClientFrame;
    } catch (e) {
      const message = e instanceof DecodeError || e instanceof ValidationError ? e.message : 'malformed watch frame';
      const id = raw && typeof raw === 'object' && typeof (raw as { id?: unknown }).id === 'number' ? (raw as { id: number }).id : 0;
      if (Number.isSafeInteger(id) && id > 0) return conn.send({ t: 'end', id, error: { type: 'InvalidRequest', message } });
      this.logger.debug({ err: message }, 'unattributable watch frame; closing the connection');
      ws.close(1003, message.slice(0, 120));
      return;
    }
    const store = this.getStore();
    if (frame.t === 'unsubscribe') return store?.watch.unsubscribe(conn, frame.id);
    if (!store) return conn.send({ t: 'end', id: frame.id, error: { type: 'Unavailable', message: 'store is starting' } });
    store.watch.subscribe(conn, frame);
  }
}
