import type { FlotillaClient, Watch } from '@flotilla/client';
import type { Logger } from '@flotilla/proto';
import { CommandError } from '../context';
import { Glob, prefixEnd } from '../glob';
import { reply } from '../resp';
import { MESSAGE, PMESSAGE } from './channels';
import type { Subscriber } from './subscriber';

// hub.ts: what the front's connections share for pub/sub: who subscribes
// to which channel and pattern (PUBLISH delivers within this front, PUBSUB
// lists them), the bounds, and how a connection opens a watch.

/** WatchClient: the FlotillaClient call keyspace notifications need. */
export type WatchClient = Pick<FlotillaClient, 'watch'>;

/** PubSubLimits: docs/redis.md "Limits". */
export interface PubSubLimits {
  /** hardBytes: a subscriber with more unsent output than this is disconnected at once (Redis' client-output-buffer-limit pubsub hard limit, 32 MiB). */
  hardBytes: number;
  /** softBytes / softMs: ... or above softBytes for softMs in a row (Redis: 8 MiB for 60 s). */
  softBytes: number;
  softMs: number;
  /** watchesPerConnection: distinct key prefixes one connection may have watched (each is one Flotilla watch). */
  watchesPerConnection: number;
  /** watchesPerFront: watches open on the whole front. */
  watchesPerFront: number;
}

export const DEFAULT_PUBSUB_LIMITS: PubSubLimits = {
  hardBytes: 32 * 1024 * 1024,
  softBytes: 8 * 1024 * 1024,
  softMs: 60_000,
  watchesPerConnection: 128,
  watchesPerFront: 2048,
};

/**
 * PubSubHub is the front's registry. Keyspace notifications do not pass
 * through it (each connection reads its own watches); PUBLISH does, and
 * reaches every connection of this front subscribed to the channel or a
 * pattern matching it, as one Redis server would. Fronts do not share
 * PUBLISHed messages with each other.
 */
export class PubSubHub {
  private readonly channels = new Map<string, Set<Subscriber>>();
  private readonly patterns = new Map<string, { glob: Glob; subs: Set<Subscriber> }>();
  private openWatches = 0;

  constructor(
    private readonly client: WatchClient | undefined,
    readonly limits: PubSubLimits,
    readonly logger: Logger,
  ) {}

  /** watches: Flotilla watches open on this front now (INFO, tests). */
  get watches(): number {
    return this.openWatches;
  }

  /** openWatch watches every key with the prefix from now on; refused past watchesPerFront. */
  async openWatch(prefix: Buffer): Promise<Watch> {
    if (!this.client) throw new CommandError('ERR keyspace notifications need a client that can watch (this front was started without one)');
    if (this.openWatches >= this.limits.watchesPerFront) {
      throw new CommandError(`ERR this front has ${this.limits.watchesPerFront} watches open (one per distinct key prefix per connection); unsubscribe elsewhere, share patterns, or run another front`);
    }
    this.openWatches++;
    try {
      return await this.client.watch({ start: Uint8Array.from(prefix), end: prefixEnd(prefix) });
    } catch (err) {
      this.openWatches--;
      throw err;
    }
  }

  /** watchClosed: a watch openWatch returned was closed. */
  watchClosed(): void {
    this.openWatches--;
  }

  addChannel(name: Buffer, s: Subscriber): void {
    const k = name.toString('latin1');
    let set = this.channels.get(k);
    if (!set) this.channels.set(k, (set = new Set()));
    set.add(s);
  }

  removeChannel(name: Buffer, s: Subscriber): void {
    const k = name.toString('latin1');
    const set = this.channels.get(k);
    if (set?.delete(s) && set.size === 0) this.channels.delete(k);
  }

  addPattern(pattern: Buffer, glob: Glob, s: Subscriber): void {
    const k = pattern.toString('latin1');
    let p = this.patterns.get(k);
    if (!p) this.patterns.set(k, (p = { glob, subs: new Set() }));
    p.subs.add(s);
  }

  removePattern(pattern: Buffer, s: Subscriber): void {
    const k = pattern.toString('latin1');
    const p = this.patterns.get(k);
    if (p?.subs.delete(s) && p.subs.size === 0) this.patterns.delete(k);
  }

  /** publish delivers message to this front's subscribers of channel and of patterns matching it; answers how many received it. */
  publish(channel: Buffer, message: Buffer): number {
    let n = 0;
    for (const s of [...(this.channels.get(channel.toString('latin1')) ?? [])]) {
      s.deliver(reply.push([MESSAGE, reply.bulk(channel), reply.bulk(message)]));
      n++;
    }
    for (const [k, p] of [...this.patterns]) {
      if (!p.glob.matches(channel)) continue;
      for (const s of [...p.subs]) {
        s.deliver(reply.push([PMESSAGE, reply.bulk(Buffer.from(k, 'latin1')), reply.bulk(channel), reply.bulk(message)]));
        n++;
      }
    }
    return n;
  }

  /** channelNames: PUBSUB CHANNELS: channels with at least one subscriber on this front, filtered by pattern. */
  channelNames(pattern: Glob | undefined): Buffer[] {
    return [...this.channels.keys()].map((k) => Buffer.from(k, 'latin1')).filter((b) => !pattern || pattern.matches(b));
  }

  /** numSub: PUBSUB NUMSUB: subscribers of one channel on this front. */
  numSub(channel: Buffer): number {
    return this.channels.get(channel.toString('latin1'))?.size ?? 0;
  }

  /** numPat: PUBSUB NUMPAT: distinct patterns subscribed on this front. */
  numPat(): number {
    return this.patterns.size;
  }
}
