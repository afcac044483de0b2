import { isIP } from 'node:net';
import type { AddressResolver } from '@flotilla/transport';
import type { StoreLogger } from './context';
import { StoreStartError } from './start-error';

// cluster-secret.ts: which secret authenticates this store to its peers,
// and the rule that keeps the development secret on one machine.
//
// The raft port's handshake proves that both ends know the cluster secret.
// A store started without one uses DEVELOPMENT_CLUSTER_SECRET, which is in
// the source for anyone to read; with it, anyone who can reach the raft
// port passes the handshake and can forge raft messages (one heartbeat at a
// high term deposes a leader). So that secret is only accepted while every
// address the store binds and dials is loopback: a laptop's cluster. The
// dial side is checked again for each peer address (loopbackOnly).

/** DEVELOPMENT_CLUSTER_SECRET is the secret of a store given none: public, so loopback only. */
export const DEVELOPMENT_CLUSTER_SECRET = 'flotilla-dev-secret';

/** hostOf is the host of "host:port" ("[v6]:port" too), without brackets. */
export function hostOf(address: string): string {
  const i = address.lastIndexOf(':');
  const host = i > 0 ? address.slice(0, i) : address;
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** isLoopbackHost: 127.0.0.0/8, ::1 (and its IPv4-mapped forms), or the name localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  const v = isIP(h);
  if (v === 4) return h.startsWith('127.');
  if (v === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(h);
  return false;
}

/** NamedAddress is one address the store binds or dials, with the flag that set it (for the message). */
export interface NamedAddress {
  what: string;
  address: string;
}

/**
 * clusterSecret returns the secret to authenticate with: the configured
 * one, or the development secret when every address is loopback. Otherwise
 * it throws StoreStartError('InsecureSecret') naming the addresses.
 */
export function clusterSecret(configured: string | undefined, addresses: NamedAddress[]): string {
  if (configured !== undefined && configured !== DEVELOPMENT_CLUSTER_SECRET) return configured;
  const offending = addresses.filter((a) => !isLoopbackHost(hostOf(a.address)));
  if (offending.length > 0) {
    const list = offending.map((a) => `${a.what} ${a.address}`).join(', ');
    throw new StoreStartError(
      'InsecureSecret',
      `refusing to start with the development cluster secret: ${list} ${offending.length === 1 ? 'is' : 'are'} not loopback. ` +
        'That secret is public (it is in the source), so anyone who can reach the raft port could pass its handshake and forge raft messages. ' +
        'Give every store the same secret with --cluster-secret or FLOTILLA_CLUSTER_SECRET (e.g. `openssl rand -hex 32`; `flotilla up` makes one for you), ' +
        'or bind and dial loopback addresses only. See docs/security.md.',
    );
  }
  return DEVELOPMENT_CLUSTER_SECRET;
}

/**
 * loopbackOnly wraps a peer resolver for a store running on the development
 * secret: a peer address that is not loopback is never dialed (the store
 * is then unreachable, and raft is told so); the first refusal per store
 * is logged as an error.
 */
export function loopbackOnly(resolve: AddressResolver, logger: StoreLogger): AddressResolver {
  const reported = new Set<number>();
  return async (storeId) => {
    const address = await resolve(storeId);
    if (address === undefined || isLoopbackHost(hostOf(address))) return address;
    if (!reported.has(storeId)) {
      reported.add(storeId);
      logger.error({ peerStore: storeId, address }, 'not dialing a peer on a non-loopback address with the development cluster secret; set --cluster-secret on every store');
    }
    return undefined;
  };
}
