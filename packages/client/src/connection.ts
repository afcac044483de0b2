import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { DecodeError, decode, encode, type ClientRequest, type ClientResponse, type Logger } from '@flotilla/proto';
import { ClientError, ConnectionError } from './errors';
import { parseClientResponse } from './response';

/** ClientRequestBody is a ClientRequest before the connection assigns its id. */
export type ClientRequestBody = ClientRequest extends unknown ? Omit<ClientRequest, 'id'> : never;

export interface ConnectionOptions {
  /** maxPending bounds requests in flight (or waiting for the socket to open) on one connection. */
  maxPending: number;
  /** maxFrameBytes bounds one response frame. */
  maxFrameBytes: number;
  /** connectTimeoutMs bounds the WebSocket handshake. */
  connectTimeoutMs: number;
  logger: Logger;
  /** token is sent as `Authorization: Bearer <token>` when the connection opens. */
  token?: string;
  /** tls dials wss://, trusting caPath (default: the system roots); rejectUnauthorized=false skips certificate checks. */
  tls?: { caPath?: string; rejectUnauthorized?: boolean };
}

/** dialOptions turns the token and TLS settings into ws client options (the CA file is read once per pool). */
function dialOptions(opts: ConnectionOptions): { scheme: 'ws' | 'wss'; options: WebSocket.ClientOptions } {
  const options: WebSocket.ClientOptions = {
    ...(opts.token ? { headers: { authorization: `Bearer ${opts.token}` } } : {}),
    ...(opts.tls ? { rejectUnauthorized: opts.tls.rejectUnauthorized ?? true, ...(opts.tls.caPath ? { ca: readFileSync(opts.tls.caPath) } : {}) } : {}),
  };
  return { scheme: opts.tls ? 'wss' : 'ws', options };
}

interface Pending {
  frame: Uint8Array;
  resolve: (r: ClientResponse) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  sent: boolean;
}

/**
 * StoreConnection is one WebSocket to one store's `/client` endpoint.
 * Requests get connection-local IDs and wait in a bounded pending map until
 * the response with the same ID arrives, their timeout fires, or the socket
 * closes (then every pending request fails with a ConnectionError saying
 * whether its frame had been handed to the socket). A closed connection is
 * not reopened; the pool replaces it on the next request.
 */
export class StoreConnection {
  private readonly ws: WebSocket;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private open = false;
  private closedReason: string | null = null;
  private unauthorized = false;

  constructor(
    readonly address: string,
    private readonly opts: ConnectionOptions,
    dial: { scheme: 'ws' | 'wss'; options: WebSocket.ClientOptions } = dialOptions(opts),
  ) {
    this.ws = new WebSocket(`${dial.scheme}://${address}/client`, { ...dial.options, maxPayload: opts.maxFrameBytes, handshakeTimeout: opts.connectTimeoutMs });
    this.ws.binaryType = 'nodebuffer';
    this.ws.on('unexpected-response', (_req, res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      this.unauthorized = status === 401;
      this.fail(status === 401 ? 'the store refused the connection: missing or wrong API token (HTTP 401)' : `the store answered the upgrade with HTTP ${status}`);
      this.ws.terminate();
    });
    this.ws.on('open', () => {
      this.open = true;
      for (const p of this.pending.values()) this.write(p);
    });
    this.ws.on('message', (data: Buffer, isBinary: boolean) => this.onFrame(data, isBinary));
    this.ws.on('error', (err) => {
      this.opts.logger.debug({ address, err: err.message }, 'store socket error');
      this.fail(err.message);
    });
    this.ws.on('close', (code, reason) => this.fail(`connection closed (${code}${reason.length > 0 ? ` ${reason.toString()}` : ''})`));
  }

  /** usable: the connection has not failed (it may still be opening). */
  get usable(): boolean {
    return this.closedReason === null;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /** send writes one request and resolves with its response, or rejects with ConnectionError / ClientError(TooManyPending). */
  send(body: ClientRequestBody, timeoutMs: number): Promise<ClientResponse> {
    if (this.closedReason !== null) return Promise.reject(new ConnectionError(this.address, this.closedReason, false, this.unauthorized));
    if (this.pending.size >= this.opts.maxPending) {
      return Promise.reject(new ClientError('TooManyPending', `store ${this.address}: ${this.pending.size} requests already in flight (limit ${this.opts.maxPending})`));
    }
    const id = this.nextId++;
    const frame = encode({ ...body, id });
    return new Promise<ClientResponse>((resolve, reject) => {
      const p: Pending = {
        frame,
        resolve,
        reject,
        sent: false,
        timer: setTimeout(() => {
          if (this.pending.get(id) !== p) return;
          this.pending.delete(id);
          reject(new ConnectionError(this.address, `no response within ${timeoutMs} ms${this.open ? '' : ' (not connected)'}`, p.sent));
        }, timeoutMs),
      };
      this.pending.set(id, p);
      if (this.open) this.write(p);
    });
  }

  private write(p: Pending): void {
    if (p.sent) return;
    p.sent = true;
    this.ws.send(p.frame);
  }

  private onFrame(data: Buffer, isBinary: boolean): void {
    let resp: ClientResponse;
    try {
      if (!isBinary) throw new DecodeError('text frame from store');
      resp = parseClientResponse(decode(data, this.opts.maxFrameBytes));
    } catch (err) {
      // A store that sends garbage cannot be trusted with the other responses either.
      this.opts.logger.warn({ address: this.address, err: (err as Error).message }, 'bad frame from store; dropping the connection');
      this.fail(`bad frame: ${(err as Error).message}`);
      this.ws.terminate();
      return;
    }
    const p = this.pending.get(resp.id);
    if (!p) return; // its request timed out already
    this.pending.delete(resp.id);
    clearTimeout(p.timer);
    p.resolve(resp);
  }

  private fail(reason: string): void {
    if (this.closedReason === null) this.closedReason = reason;
    this.open = false;
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new ConnectionError(this.address, reason, p.sent, this.unauthorized));
    }
  }

  close(): void {
    this.fail('client closed');
    this.ws.terminate();
  }
}

/** ConnectionPool keeps one StoreConnection per store address and replaces failed ones on demand. */
export class ConnectionPool {
  private readonly conns = new Map<string, StoreConnection>();
  private readonly dial: { scheme: 'ws' | 'wss'; options: WebSocket.ClientOptions };

  constructor(private readonly opts: ConnectionOptions) {
    this.dial = dialOptions(opts);
  }

  get(address: string): StoreConnection {
    let c = this.conns.get(address);
    if (!c || !c.usable) {
      c?.close();
      c = new StoreConnection(address, this.opts, this.dial);
      this.conns.set(address, c);
    }
    return c;
  }

  /** drop closes the connection to address (after a timeout, so the next request starts a fresh socket). */
  drop(address: string): void {
    const c = this.conns.get(address);
    if (c) {
      c.close();
      this.conns.delete(address);
    }
  }

  closeAll(): void {
    for (const c of this.conns.values()) c.close();
    this.conns.clear();
  }
}
