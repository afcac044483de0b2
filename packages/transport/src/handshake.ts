// The connection handshake: mutual authentication of two stores of one
// cluster with a shared secret, without ever sending the secret.
//
//   server -> client  Challenge { t:'challenge', v, clusterId, storeId, nonce }
//   client -> server  Hello     { t:'hello', v, clusterId, from, to, channel, nonce, mac }
//   server -> client  Welcome   { t:'welcome', mac }
//
// Hello.mac   = HMAC-SHA256(secret, transcript('client', ...))
// Welcome.mac = HMAC-SHA256(secret, transcript('server', ...))
// The transcript binds cluster, channel, both store IDs and both nonces, so
// a MAC cannot be replayed on another connection, channel or store. MACs
// are compared with timingSafeEqual. Frames are msgpack maps (the proto
// codec), validated field by field before use.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { decode, encode } from '@flotilla/proto';

export const PROTOCOL_VERSION = 1;
export const NONCE_BYTES = 32;
/** MAX_HANDSHAKE_FRAME_BYTES: a handshake frame larger than this is garbage. */
export const MAX_HANDSHAKE_FRAME_BYTES = 4096;

/** Channel: 'raft' carries message batches, 'snap' one snapshot stream. */
export type Channel = 'raft' | 'snap';

/** Close codes the transport uses (4000-4999 are application codes). */
export const CloseCode = {
  /** Normal shutdown of a store. */
  GoingAway: 1001,
  /** Handshake failed: wrong cluster, wrong store, bad MAC, malformed frame. */
  HandshakeRejected: 4001,
  /** Handshake did not finish in time. */
  HandshakeTimeout: 4002,
  /** An established connection sent a frame that does not decode. */
  ProtocolError: 4003,
  /** A second connection between the same two stores lost the tie-break. */
  Duplicate: 4009,
  /** Too many inbound snapshots at once. */
  Busy: 4010,
  /** Fault injection blocked this store. */
  Blocked: 4011,
} as const;

export interface Challenge {
  t: 'challenge';
  v: number;
  clusterId: string;
  storeId: number;
  nonce: Uint8Array;
}

export interface Hello {
  t: 'hello';
  v: number;
  clusterId: string;
  from: number;
  to: number;
  channel: Channel;
  nonce: Uint8Array;
  mac: Uint8Array;
}

export interface Welcome {
  t: 'welcome';
  mac: Uint8Array;
}

/** HandshakeError carries the reason a connection is closed during the handshake. */
export class HandshakeError extends Error {
  constructor(
    message: string,
    readonly closeCode: number = CloseCode.HandshakeRejected,
  ) {
    super(message);
    this.name = 'HandshakeError';
  }
}

export function newNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

function transcript(role: 'client' | 'server', clusterId: string, channel: Channel, from: number, to: number, serverNonce: Uint8Array, clientNonce: Uint8Array): Buffer {
  // JSON array: unambiguous whatever characters the cluster ID holds.
  const text = JSON.stringify(['flotilla-transport', PROTOCOL_VERSION, role, clusterId, channel, from, to]);
  return Buffer.concat([Buffer.from(text, 'utf8'), serverNonce, clientNonce]);
}

export function computeMac(
  secret: Uint8Array,
  role: 'client' | 'server',
  clusterId: string,
  channel: Channel,
  from: number,
  to: number,
  serverNonce: Uint8Array,
  clientNonce: Uint8Array,
): Buffer {
  return createHmac('sha256', secret).update(transcript(role, clusterId, channel, from, to, serverNonce, clientNonce)).digest();
}

/** macEquals compares in constant time (length is public: always 32). */
export function macEquals(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function decodeFrame(data: Uint8Array): Record<string, unknown> {
  if (data.length > MAX_HANDSHAKE_FRAME_BYTES) throw new HandshakeError(`handshake frame of ${data.length} bytes is too large`);
  let v: unknown;
  try {
    v = decode(data);
  } catch (err) {
    throw new HandshakeError(`handshake frame does not decode: ${(err as Error).message}`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new HandshakeError('handshake frame is not a map');
  return v as Record<string, unknown>;
}

const isId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
const isBytes = (v: unknown, n: number): v is Uint8Array => v instanceof Uint8Array && v.length === n;

export function encodeChallenge(c: Omit<Challenge, 't' | 'v'>): Uint8Array {
  return encode({ t: 'challenge', v: PROTOCOL_VERSION, clusterId: c.clusterId, storeId: c.storeId, nonce: c.nonce });
}

export function parseChallenge(data: Uint8Array): Challenge {
  const v = decodeFrame(data);
  if (v['t'] !== 'challenge') throw new HandshakeError(`expected a challenge, got ${JSON.stringify(v['t'])}`);
  if (v['v'] !== PROTOCOL_VERSION) throw new HandshakeError(`protocol version ${String(v['v'])} is not ${PROTOCOL_VERSION}`);
  if (typeof v['clusterId'] !== 'string' || !isId(v['storeId']) || !isBytes(v['nonce'], NONCE_BYTES)) throw new HandshakeError('malformed challenge');
  return v as unknown as Challenge;
}

export function encodeHello(h: Omit<Hello, 't' | 'v'>): Uint8Array {
  return encode({ t: 'hello', v: PROTOCOL_VERSION, clusterId: h.clusterId, from: h.from, to: h.to, channel: h.channel, nonce: h.nonce, mac: h.mac });
}

export function parseHello(data: Uint8Array): Hello {
  const v = decodeFrame(data);
  if (v['t'] !== 'hello') throw new HandshakeError(`expected a hello, got ${JSON.stringify(v['t'])}`);
  if (v['v'] !== PROTOCOL_VERSION) throw new HandshakeError(`protocol version ${String(v['v'])} is not ${PROTOCOL_VERSION}`);
  if (
    typeof v['clusterId'] !== 'string' ||
    !isId(v['from']) ||
    !isId(v['to']) ||
    (v['channel'] !== 'raft' && v['channel'] !== 'snap') ||
    !isBytes(v['nonce'], NONCE_BYTES) ||
    !isBytes(v['mac'], 32)
  ) {
    throw new HandshakeError('malformed hello');
  }
  return v as unknown as Hello;
}

export function encodeWelcome(mac: Uint8Array): Uint8Array {
  return encode({ t: 'welcome', mac });
}

export function parseWelcome(data: Uint8Array): Welcome {
  const v = decodeFrame(data);
  if (v['t'] !== 'welcome' || !isBytes(v['mac'], 32)) throw new HandshakeError('malformed welcome');
  return v as unknown as Welcome;
}
