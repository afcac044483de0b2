import { INTERNAL_PREFIX } from '@flotilla/client';
import { LIMITS, type WatchEvent } from '@flotilla/proto';
import type { Glob } from '../glob';
import { reply, type Reply } from '../resp';

// channels.ts: Redis keyspace notification channels on Flotilla watch.
// Redis with notify-keyspace-events "KEA" publishes, for every change of
// key K by event E, `E` on `__keyspace@0__:K` and `K` on
// `__keyevent@0__:E`. Watch sees committed writes, not commands, so E is
// `set` for a put and `del` for a delete (docs/redis.md "Pub/sub"). Here:
// which key prefix a channel or pattern needs watched, and the messages
// one watch event makes for it.

/** KEYSPACE / KEYEVENT: the two channel prefixes of database 0 (the only one). */
export const KEYSPACE = Buffer.from('__keyspace@0__:');
export const KEYEVENT = Buffer.from('__keyevent@0__:');

/** EVENTS: the event names watch can produce. */
export const EVENTS = ['set', 'del'] as const;
export type EventName = (typeof EVENTS)[number];

/** eventName: a put is Redis' `set`, a delete its `del`. */
export function eventName(e: WatchEvent): EventName {
  return e.type === 'put' ? 'set' : 'del';
}

/** isInternal: the key lies in Flotilla's reserved prefix (lease guards), which subscribers never see. */
export function isInternal(key: Uint8Array): boolean {
  return startsWith(key, INTERNAL_PREFIX);
}

function startsWith(b: Uint8Array, prefix: Uint8Array): boolean {
  if (b.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (b[i] !== prefix[i]) return false;
  return true;
}

/** usableKeyPrefix: a prefix some user key can start with (not longer than a key, not inside the reserved prefix), else null. */
function usableKeyPrefix(p: Buffer): Buffer | null {
  if (p.length > LIMITS.maxKeyBytes || isInternal(p)) return null;
  return p;
}

/**
 * channelPrefix: the key prefix a SUBSCRIBE to this channel needs watched,
 * or null when no watch event can reach it (a channel of its own, served
 * by PUBLISH only). `__keyspace@0__:K` needs K itself (the watch of prefix
 * K is filtered to K exactly); `__keyevent@0__:set` and `:del` need every
 * user key; other event names never occur here.
 */
export function channelPrefix(channel: Buffer): Buffer | null {
  if (startsWith(channel, KEYSPACE)) {
    const key = channel.subarray(KEYSPACE.length);
    return key.length === 0 ? null : usableKeyPrefix(key);
  }
  if (startsWith(channel, KEYEVENT)) {
    const ev = channel.subarray(KEYEVENT.length).toString('latin1');
    return (EVENTS as readonly string[]).includes(ev) ? Buffer.alloc(0) : null;
  }
  return null;
}

/**
 * patternPrefix: the key prefix a PSUBSCRIBE needs watched, or null when
 * the pattern can match no notification channel. A keyevent channel is one
 * of two names, so the pattern is tried on both: matching either needs
 * every user key. Otherwise the pattern's literal prefix decides: past
 * `__keyspace@0__:` its rest is the key prefix (`__keyspace@0__:user:*`
 * watches `user:`); a literal prefix that `__keyspace@0__:` starts with
 * (`__key*`, `*`) needs every key; any other cannot match a keyspace channel.
 */
export function patternPrefix(glob: Glob): Buffer | null {
  if (EVENTS.some((ev) => glob.matches(Buffer.concat([KEYEVENT, Buffer.from(ev)])))) return Buffer.alloc(0);
  const lit = Buffer.from(glob.literalPrefix());
  if (startsWith(lit, KEYSPACE)) return usableKeyPrefix(lit.subarray(KEYSPACE.length));
  if (startsWith(KEYSPACE, lit)) return Buffer.alloc(0);
  return null;
}

/** channelMessages: the `message` replies one event makes for a SUBSCRIBE to channel (none when it is not about this event). */
export function channelMessages(channel: Buffer, e: WatchEvent, out: Reply[]): void {
  const ev = eventName(e);
  if (startsWith(channel, KEYSPACE)) {
    if (Buffer.compare(channel.subarray(KEYSPACE.length), e.key) === 0) out.push(reply.push([MESSAGE, reply.bulk(channel), reply.bulk(ev)]));
  } else if (startsWith(channel, KEYEVENT) && channel.length === KEYEVENT.length + ev.length && channel.toString('latin1', KEYEVENT.length) === ev) {
    out.push(reply.push([MESSAGE, reply.bulk(channel), reply.bulk(e.key)]));
  }
}

/** patternMessages: the `pmessage` replies one event makes for a PSUBSCRIBE: its keyspace channel first, then its keyevent channel, as Redis sends them. */
export function patternMessages(pattern: Buffer, glob: Glob, e: WatchEvent, out: Reply[]): void {
  const ev = eventName(e);
  const space = Buffer.concat([KEYSPACE, e.key]);
  if (glob.matches(space)) out.push(reply.push([PMESSAGE, reply.bulk(pattern), reply.bulk(space), reply.bulk(ev)]));
  const event = Buffer.concat([KEYEVENT, Buffer.from(ev)]);
  if (glob.matches(event)) out.push(reply.push([PMESSAGE, reply.bulk(pattern), reply.bulk(event), reply.bulk(e.key)]));
}

export const MESSAGE = reply.bulk('message');
export const PMESSAGE = reply.bulk('pmessage');
