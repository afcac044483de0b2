import type { Watch } from '@flotilla/client';
import type { WatchEvent } from '@flotilla/proto';
import { CommandError } from '../context';
import { Glob } from '../glob';
import type { Reply } from '../resp';
import { channelMessages, channelPrefix, isInternal, patternMessages, patternPrefix } from './channels';
import type { PubSubHub } from './hub';

// subscriber.ts: one connection's subscriptions and the watches behind
// them. A subscription needs at most one key prefix watched; subscriptions
// needing the same prefix share one watch, opened by the first and closed
// with the last. Every message goes out through the connection's sink,
// whose unsent bytes are held to Redis' pubsub output-buffer limits.

/** PushSink: what the connection gives its subscriber. */
export interface PushSink {
  /** push queues a message to be written (RESP3: a `>` push; RESP2: an array). */
  push(r: Reply): void;
  /** unsentBytes: output queued on the connection and not yet taken by the client. */
  unsentBytes(): number;
  /** drop closes the connection (a subscriber past its output limit, or a watch that failed). */
  drop(reason: string): void;
}

/** Sub is one subscription: a channel or a pattern, and the prefix watch that feeds it (none: PUBLISH only). */
interface Sub {
  name: Buffer;
  glob: Glob | undefined;
  prefix: string | undefined;
}

/** PrefixWatch is one watch of a key prefix and the subscriptions it feeds, in subscription order. */
interface PrefixWatch {
  watch: Watch;
  users: Set<Sub>;
}

/**
 * Subscriber holds a connection's channels and patterns. Keyspace
 * messages of one subscription come in the watch's order (commit order,
 * keys of one commit by key), none missed from its SUBSCRIBE's reply on:
 * a new watch starts at a fresh timestamp taken before the reply, so any
 * write begun after the reply commits above it.
 */
export class Subscriber {
  readonly channels = new Map<string, Sub>();
  readonly patterns = new Map<string, Sub>();
  private readonly watches = new Map<string, PrefixWatch>();
  private softSince: number | undefined;
  private closed = false;

  constructor(
    private readonly hub: PubSubHub,
    private readonly sink: PushSink,
  ) {}

  /** count: channels plus patterns (the number Redis puts in (un)subscribe replies; non-zero = subscribed mode). */
  get count(): number {
    return this.channels.size + this.patterns.size;
  }

  /** watchCount: distinct prefixes watched by this connection now. */
  get watchCount(): number {
    return this.watches.size;
  }

  /** prepare opens the watches the given channels or patterns need and do not have yet, all or none (a failure closes what it opened). */
  async prepare(names: Buffer[], patterns: boolean): Promise<void> {
    const need = new Map<string, Buffer>();
    for (const n of names) {
      if ((patterns ? this.patterns : this.channels).has(n.toString('latin1'))) continue;
      const p = patterns ? patternPrefix(new Glob(n)) : channelPrefix(n);
      if (p !== null && !this.watches.has(p.toString('latin1'))) need.set(p.toString('latin1'), p);
    }
    const limit = this.hub.limits.watchesPerConnection;
    if (this.watches.size + need.size > limit) {
      throw new CommandError(`ERR more than ${limit} distinct watched key prefixes on one connection (each keyspace channel or pattern prefix is one Flotilla watch): use a PSUBSCRIBE pattern over their common prefix`);
    }
    const opened = await Promise.allSettled([...need].map(async ([k, p]) => [k, await this.hub.openWatch(p)] as const));
    const failed = opened.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    const ok = opened.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    if (failed || this.closed) {
      for (const [, w] of ok) this.closeWatch(w);
      if (failed) throw failed.reason;
      return;
    }
    for (const [k, w] of ok) {
      const pw: PrefixWatch = { watch: w, users: new Set() };
      this.watches.set(k, pw);
      void this.pump(pw);
    }
  }

  /** add subscribes to a channel or pattern (prepare opened its watch); false when it already was. */
  add(name: Buffer, pattern: boolean): boolean {
    const k = name.toString('latin1');
    const map = pattern ? this.patterns : this.channels;
    if (map.has(k)) return false;
    const glob = pattern ? new Glob(name) : undefined;
    const p = pattern ? patternPrefix(glob!) : channelPrefix(name);
    const prefix = p === null ? undefined : p.toString('latin1');
    const sub: Sub = { name, glob, prefix };
    if (prefix !== undefined) {
      const pw = this.watches.get(prefix);
      // prepare ran just before, on this connection's one command at a time.
      if (!pw) throw new Error(`redis pubsub: no watch of prefix for ${k}`);
      pw.users.add(sub);
    }
    map.set(k, sub);
    if (pattern) this.hub.addPattern(name, glob!, this);
    else this.hub.addChannel(name, this);
    return true;
  }

  /** remove unsubscribes; the watch closes with its last subscription. False when it was not subscribed. */
  remove(name: Buffer, pattern: boolean): boolean {
    const k = name.toString('latin1');
    const map = pattern ? this.patterns : this.channels;
    const sub = map.get(k);
    if (!sub) return false;
    map.delete(k);
    if (pattern) this.hub.removePattern(name, this);
    else this.hub.removeChannel(name, this);
    this.release(sub);
    return true;
  }

  /** close ends every subscription and watch (the connection closed, or RESET). */
  close(): void {
    for (const s of [...this.channels.values()]) this.remove(s.name, false);
    for (const s of [...this.patterns.values()]) this.remove(s.name, true);
    for (const pw of this.watches.values()) this.closeWatch(pw.watch);
    this.watches.clear();
  }

  /** shutdown: close() for good (the connection is gone; a prepare still in flight closes what it opens). */
  shutdown(): void {
    this.closed = true;
    this.close();
  }

  /**
   * deliver writes one message and holds the connection to the output
   * limits: past hardBytes, or past softBytes for softMs, it is dropped.
   * Checked as messages arrive (a stalled subscriber that gets no more
   * messages holds what it has, at most hardBytes).
   */
  deliver(r: Reply): void {
    if (this.closed) return;
    this.sink.push(r);
    const bytes = this.sink.unsentBytes();
    const { hardBytes, softBytes, softMs } = this.hub.limits;
    if (bytes <= softBytes) {
      this.softSince = undefined;
      return;
    }
    const now = Date.now();
    this.softSince ??= now;
    if (bytes > hardBytes || now - this.softSince >= softMs) {
      const why = bytes > hardBytes ? `more than ${hardBytes} bytes` : `more than ${softBytes} bytes for ${softMs} ms`;
      this.hub.logger.warn({ unsentBytes: bytes }, `redis: a subscriber did not read its messages (${why} unsent, client-output-buffer-limit pubsub); disconnecting it`);
      this.shutdown();
      this.sink.drop(`pubsub output buffer limit: ${why} unsent`);
    }
  }

  private release(sub: Sub): void {
    if (sub.prefix === undefined) return;
    const pw = this.watches.get(sub.prefix);
    if (!pw) return;
    pw.users.delete(sub);
    if (pw.users.size === 0) {
      this.watches.delete(sub.prefix);
      this.closeWatch(pw.watch);
    }
  }

  private closeWatch(w: Watch): void {
    w.close();
    this.hub.watchClosed();
  }

  /** pump turns one watch's events into messages for its subscriptions; a watch that fails drops the connection (its subscriber would otherwise miss changes silently). */
  private async pump(pw: PrefixWatch): Promise<void> {
    try {
      for await (const item of pw.watch) {
        if (item.type === 'progress' || isInternal(item.key)) continue;
        const out: Reply[] = [];
        for (const sub of pw.users) messagesFor(sub, item, out);
        for (const r of out) this.deliver(r);
      }
    } catch (err) {
      if (this.closed || !this.isOpen(pw)) return;
      this.hub.logger.warn({ err: (err as Error).message }, 'redis: a keyspace notification watch failed; disconnecting its subscriber so it subscribes again');
      this.shutdown();
      this.sink.drop(`keyspace notification watch failed: ${(err as Error).message}`);
    }
  }

  private isOpen(pw: PrefixWatch): boolean {
    for (const w of this.watches.values()) if (w === pw) return true;
    return false;
  }
}

function messagesFor(sub: Sub, e: WatchEvent, out: Reply[]): void {
  if (sub.glob) patternMessages(sub.name, sub.glob, e, out);
  else channelMessages(sub.name, e, out);
}
