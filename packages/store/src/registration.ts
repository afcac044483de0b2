import type { StoreMeta } from '@flotilla/placement';
import type { AddressBook } from './address-book';
import type { StoreLogger } from './context';
import type { PlacementApi } from './engines';
import { backoffMs, isPlacementUnreachable } from './placement-wait';

// registration.ts: telling placement where this store now serves (its
// client and raft addresses change on restart), for a store that started
// from its own data while placement did not answer. Its Regions serve in
// the meantime: raft needs only the peers, whose addresses come from the
// address book. The retries back off from 1 s to 30 s, each logged, so an
// operator sees for how long the store has been on its own.

/** REGISTER_BACKOFF: the background registration's retry delays. */
export const REGISTER_BACKOFF = { baseMs: 1_000, maxMs: 30_000 } as const;

export interface RegistrationContext {
  pd: PlacementApi;
  logger: StoreLogger;
  meta: StoreMeta;
  /** clusterId is the one in store.json; placement must serve the same cluster. */
  clusterId: string;
  book: AddressBook | undefined;
  placement: string;
}

type Outcome = 'registered' | 'removed' | 'not-now';

/** registerOnce checks placement's cluster and this store's record there, then registers the store's addresses. */
async function registerOnce(c: RegistrationContext): Promise<Outcome> {
  const info = c.pd.getClusterInfo ? await c.pd.getClusterInfo() : undefined;
  if (info && String(info.clusterId) !== c.clusterId) {
    c.logger.error({ placement: c.placement, placementCluster: info.clusterId, storeCluster: c.clusterId }, "placement serves another cluster; not registering (this store keeps serving its Regions with its own cluster's peers); fix --placement");
    return 'not-now';
  }
  if (info && !info.bootstrapped) {
    c.logger.error({ placement: c.placement, clusterId: info.clusterId }, "placement's cluster is not bootstrapped yet; restart this store once placement is up to finish bootstrapping");
    return 'not-now';
  }
  const known = await c.pd.getStore(c.meta.id);
  if (known?.state === 'tombstone') {
    c.logger.error({ storeId: c.meta.id }, 'placement removed this store (tombstone); not registering. Its Regions have been or will be replaced elsewhere; stop it and wipe its data dir');
    return 'removed';
  }
  await c.pd.putStore(c.meta);
  await c.book?.refresh(c.pd);
  return 'registered';
}

/**
 * keepRegistering retries registerOnce in the background until it
 * registers the store (or learns the store was removed); stop() ends it.
 */
export function keepRegistering(c: RegistrationContext): { stop(): void } {
  const since = Date.now();
  let attempt = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const schedule = (delayMs: number): void => {
    if (stopped) return;
    timer = setTimeout(() => void run(), delayMs);
    timer.unref();
  };
  const run = async (): Promise<void> => {
    attempt++;
    try {
      const outcome = await registerOnce(c);
      if (stopped) return;
      if (outcome === 'registered') c.logger.warn({ placement: c.placement, attempts: attempt, aloneForMs: Date.now() - since }, 'placement is back: registered with placement');
      if (outcome === 'not-now') schedule(REGISTER_BACKOFF.maxMs);
    } catch (e) {
      if (stopped) return;
      const retryInMs = backoffMs(attempt, REGISTER_BACKOFF);
      const msg = isPlacementUnreachable(e) ? 'placement unreachable; serving local Regions, will retry registering' : 'registering with placement failed; will retry';
      c.logger.warn({ placement: c.placement, attempt, retryInMs, aloneForMs: Date.now() - since, err: (e as Error).message }, msg);
      schedule(retryInMs);
    }
  };
  schedule(REGISTER_BACKOFF.baseMs);
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
