import { StoreStartError } from './start-error';

/** WILDCARD_HOSTS bind every interface; none of them is an address another machine can dial. */
const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '[::]', '']);

export function isWildcardHost(host: string): boolean {
  return WILDCARD_HOSTS.has(host);
}

/** AdvertiseFlags are the addresses a store binds and the ones it announces instead. */
export interface AdvertiseFlags {
  listen: string;
  raftListen?: string | undefined;
  advertise?: string | undefined;
  advertiseRaft?: string | undefined;
}

/**
 * checkAdvertised refuses a listener bound to every interface (0.0.0.0,
 * ::) without an address to announce for it: the bound address is not one
 * clients, placement or other stores can dial, and announcing it sent them
 * to their own machine. An announced address must itself be dialable.
 */
export function checkAdvertised(flags: AdvertiseFlags, listenHost: string, raftListenHost: string): void {
  if (isWildcardHost(listenHost) && !flags.advertise) {
    throw new StoreStartError('WildcardAddress', `--listen ${flags.listen} binds every interface, so clients and placement cannot be told where this store is: add --advertise HOST:PORT (the address they reach it at)`);
  }
  if (isWildcardHost(raftListenHost) && !flags.advertiseRaft) {
    const what = flags.raftListen ? `--raft-listen ${flags.raftListen}` : `--raft-listen (default: the --listen host ${listenHost || '*'})`;
    throw new StoreStartError('WildcardAddress', `${what} binds every interface, so other stores cannot be told where to send raft traffic: add --advertise-raft HOST:PORT (the address they reach this store's raft port at), or --raft-listen on one address`);
  }
  for (const [flag, value] of [['--advertise', flags.advertise], ['--advertise-raft', flags.advertiseRaft]] as const) {
    if (value !== undefined && isWildcardHost(hostOf(value))) {
      throw new StoreStartError('WildcardAddress', `${flag} ${value} is not an address anyone can dial: give this machine's address (HOST:PORT)`);
    }
  }
}

function hostOf(hostPort: string): string {
  const i = hostPort.lastIndexOf(':');
  return i >= 0 ? hostPort.slice(0, i) : hostPort;
}
