// Limits every HTTP/WebSocket server of Flotilla applies the same way (the
// client API, placement, the raft port): how long a connection may take to
// send its request head, and how many connections are served at once.
// Types only from node:net: proto itself opens no socket.
import type { Server, Socket } from 'node:net';
import { realLogClock, type LogClock, type RateLimitedLog } from './rate-limited-log';

/** DEFAULT_HEADERS_TIMEOUT_MS: a connection gets this long to send a whole request head (an upgrade's too). */
export const DEFAULT_HEADERS_TIMEOUT_MS = 10_000;
/** DEFAULT_REQUEST_TIMEOUT_MS bounds a whole HTTP request (head and body); every route here is a small GET. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** MAX_TIMEOUT_CHECK_INTERVAL_MS: Node checks the two timeouts above this often at most, so they hold to within it. */
export const MAX_TIMEOUT_CHECK_INTERVAL_MS = 1_000;

/** HttpTimeoutOptions is what node:http / node:https createServer take to enforce a header timeout that holds. */
export interface HttpTimeoutOptions {
  headersTimeout: number;
  requestTimeout: number;
  connectionsCheckingInterval: number;
  /** handshakeTimeout bounds the TLS handshake (https only; node:http ignores it). */
  handshakeTimeout: number;
}

/**
 * httpTimeoutOptions turns a header timeout into createServer options.
 * Node answers 408 and closes a connection whose request head (request
 * line and headers, for an upgrade too; also a connection that sends
 * nothing) is not complete within headersTimeout, but it looks only every
 * connectionsCheckingInterval (default 30 s), so that interval is set to a
 * quarter of the timeout, at most 1 s: a slow client is closed within
 * headersTimeoutMs + min(headersTimeoutMs / 4, 1 s). Once a connection is
 * upgraded to a WebSocket, neither timeout applies to it any more.
 */
export function httpTimeoutOptions(headersTimeoutMs: number = DEFAULT_HEADERS_TIMEOUT_MS, requestTimeoutMs: number = DEFAULT_REQUEST_TIMEOUT_MS): HttpTimeoutOptions {
  if (!Number.isSafeInteger(headersTimeoutMs) || headersTimeoutMs <= 0) throw new RangeError(`headersTimeoutMs must be a positive integer, got ${headersTimeoutMs}`);
  return {
    headersTimeout: headersTimeoutMs,
    // Node refuses a request timeout shorter than the header timeout.
    requestTimeout: Math.max(requestTimeoutMs, headersTimeoutMs),
    connectionsCheckingInterval: Math.max(10, Math.min(MAX_TIMEOUT_CHECK_INTERVAL_MS, Math.floor(headersTimeoutMs / 4))),
    handshakeTimeout: headersTimeoutMs,
  };
}

export interface ConnectionGuardOptions {
  /** maxConnections: connections served at once; one accepted beyond it is answered 503 and closed. */
  maxConnections: number;
  /** secure: the server is https (count TLS sockets once their handshake is done: those are the sockets requests arrive on). */
  secure: boolean;
  /** what names the port in messages: "too many <what> connections" ("client", "placement", "raft"). */
  what: string;
  /** log takes the refusal lines, at most one per source and window. */
  log: RateLimitedLog;
  /** hint names the setting that raises the limit, for the refusal message. */
  hint: string;
}

/**
 * ConnectionGuard enforces a connection limit with a clear refusal. It
 * counts the connections it admitted; one accepted while maxConnections are
 * open is marked, and the server answers that connection's first request
 * or upgrade with HTTP 503 and the reason refusal() returns, then closes
 * it: an admitted client never loses its connection to a newcomer, and a
 * refused one learns why. Marked connections are bounded in time by the
 * header timeout; a flood beyond twice the limit (plus 16) is closed
 * unanswered as soon as it is accepted (net.Server.maxConnections). Both
 * are logged at most once per source address and window (RateLimitedLog).
 */
export class ConnectionGuard {
  private admitted = 0;
  private readonly refused = new WeakSet<Socket>();
  readonly maxConnections: number;
  private readonly log: RateLimitedLog;
  private readonly what: string;
  private readonly hint: string;

  constructor(server: Server, opts: ConnectionGuardOptions) {
    if (!Number.isSafeInteger(opts.maxConnections) || opts.maxConnections < 1) throw new RangeError(`maxConnections must be a positive integer, got ${opts.maxConnections}`);
    this.maxConnections = opts.maxConnections;
    this.log = opts.log;
    this.what = opts.what;
    this.hint = opts.hint;
    server.maxConnections = 2 * opts.maxConnections + 16;
    server.on(opts.secure ? 'secureConnection' : 'connection', (socket: Socket) => {
      if (this.admitted >= this.maxConnections) {
        this.refused.add(socket);
        return;
      }
      this.admitted++;
      socket.once('close', () => this.admitted--);
    });
    server.on('drop', (data?: { remoteAddress?: string }) => {
      const remote = data?.remoteAddress ?? 'unknown';
      this.log.warn(`drop|${remote}`, { remote, limit: server.maxConnections }, `${this.what} connection dropped unanswered: over twice the connection limit`);
    });
  }

  /**
   * refusal returns undefined for an admitted socket; for one accepted past
   * the limit it logs the refusal (rate-limited) and returns the reason to
   * answer with HTTP 503 before closing it.
   */
  refusal(socket: Socket): string | undefined {
    if (!this.refused.has(socket)) return undefined;
    const remote = socket.remoteAddress ?? 'unknown';
    this.log.warn(`limit|${remote}`, { remote, limit: this.maxConnections }, `${this.what} connection refused: connection limit reached`);
    return `too many ${this.what} connections (limit ${this.maxConnections}); retry later or raise ${this.hint}`;
  }

  /** open is how many admitted connections are open now. */
  get open(): number {
    return this.admitted;
  }
}

/** Pausable is the part of a ws WebSocket AnswerWindow drives: stop and restart reading the socket. */
export interface Pausable {
  pause(): void;
  resume(): void;
}

export interface AnswerWindowLimits {
  /** maxInFlight: requests read and not yet answered; at it, reading stops (Infinity: no count limit, the server answers busy itself). */
  maxInFlight: number;
  /** maxBufferedBytes: bytes of answers not yet written to the socket (the client is not reading them); at it, reading stops. */
  maxBufferedBytes: number;
  /** stallAfterMs: reading stopped this long calls onStall (default 1,000). */
  stallAfterMs?: number;
}

/**
 * AnswerWindow keeps one connection's unanswered work bounded by reading
 * less, never by buffering more. A request is in flight from when it is
 * handled until it is answered; an answer's bytes are buffered until ws
 * hands them to the kernel (the send callback). When either limit is
 * reached the window stops reading the socket (the client's writes then
 * back up in TCP) and holds, in order, the frames ws had already read;
 * once both are down to half it reads again and handles those first (in a
 * microtask, never inside the answer that freed the room). So a client
 * that pipelines faster than the server answers, or faster than it reads
 * its answers, costs the server about the limits plus one socket read of
 * requests. A pause is normal (one large answer waits for the kernel to
 * take it); `onStall` runs when reading has stayed stopped for
 * stallAfterMs, to log a client that really is not keeping up.
 */
export class AnswerWindow {
  private inFlight = 0;
  private bufferedBytes = 0;
  private paused = false;
  /** reading: the socket is being read (paused stays false while held frames drain before reading resumes). */
  private reading = true;
  private draining = false;
  private readonly held: (() => void)[] = [];
  private cancelStall: (() => void) | undefined;

  constructor(
    private readonly socket: Pausable,
    private readonly limits: AnswerWindowLimits,
    private readonly onStall: (state: { inFlight: number; bufferedBytes: number; held: number }) => void = () => {},
    private readonly clock: LogClock = realLogClock,
  ) {}

  /**
   * request handles one request read from the socket: `handle` runs now,
   * or, while reading is stopped (or earlier frames still wait), later in
   * arrival order. `handle` must end with answer(), now or later.
   */
  request(handle: () => void): void {
    if (this.paused || this.held.length > 0) {
      this.held.push(handle);
      return;
    }
    this.run(handle);
  }

  /**
   * answer ends a request with an answer of `bytes` about to be sent and
   * returns the callback to pass to ws.send, which releases those bytes.
   */
  answer(bytes: number): (err?: Error) => void {
    this.inFlight--;
    this.bufferedBytes += bytes;
    this.check();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.bufferedBytes -= bytes;
      this.check();
    };
  }

  /** close forgets the held frames and cancels the stall report: the connection is gone. */
  close(): void {
    this.cancelStall?.();
    this.cancelStall = undefined;
    this.held.length = 0;
  }

  /** isPaused says whether reading is stopped now. */
  get isPaused(): boolean {
    return this.paused;
  }

  /** waiting is how many frames already read wait for room. */
  get waiting(): number {
    return this.held.length;
  }

  private run(handle: () => void): void {
    this.inFlight++;
    this.check();
    handle();
  }

  private check(): void {
    const { maxInFlight, maxBufferedBytes } = this.limits;
    if (!this.paused && (this.inFlight >= maxInFlight || this.bufferedBytes >= maxBufferedBytes)) {
      this.paused = true;
      if (this.reading) this.socket.pause();
      this.reading = false;
      this.cancelStall = this.clock.schedule(() => {
        this.cancelStall = undefined;
        if (this.paused) this.onStall({ inFlight: this.inFlight, bufferedBytes: this.bufferedBytes, held: this.held.length });
      }, this.limits.stallAfterMs ?? 1_000);
    } else if (this.paused && this.inFlight <= maxInFlight / 2 && this.bufferedBytes <= maxBufferedBytes / 2) {
      this.paused = false;
      this.cancelStall?.();
      this.cancelStall = undefined;
      if (this.held.length === 0) this.resumeReading();
      else if (!this.draining) {
        this.draining = true;
        queueMicrotask(() => this.drain());
      }
    }
  }

  /** drain handles held frames until the window stops again; the socket is read again only once none is left. */
  private drain(): void {
    this.draining = false;
    while (!this.paused && this.held.length > 0) this.run(this.held.shift()!);
    if (!this.paused) this.resumeReading();
  }

  private resumeReading(): void {
    if (this.reading) return;
    this.reading = true;
    this.socket.resume();
  }
}
