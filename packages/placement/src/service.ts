import { silentLogger, type Logger } from '@flotilla/proto';
import type { PlacementCluster } from './cluster';
import { PlacementError, PlacementErrorCode } from './errors';
import { parseParams } from './schema';
import { TimestampOracle } from './tso/oracle';

/**
 * PlacementService is what the server hands every request to: the cluster
 * state machine plus what lives around it (the timestamp oracle). dispatch
 * returns the result, or a promise of it for requests that wait for
 * something durable (a timestamp window).
 */
export interface PlacementService {
  readonly clusterId: number;
  /** cluster answers the read-only HTTP routes. */
  readonly cluster: PlacementCluster;
  readonly oracle: TimestampOracle;
  dispatch(method: string, params: unknown): unknown;
  /** tick runs periodic upkeep (the oracle's next window). */
  tick(): void;
  close(): void;
}

export interface SingleServiceOptions {
  clock?: () => number;
  /** tsoSaveIntervalMs: how far ahead each persisted timestamp bound reaches (default 3000). */
  tsoSaveIntervalMs?: number;
  logger?: Logger;
}

/** SingleService serves one placement process: the oracle persists its bound in the cluster's own database. */
export class SingleService implements PlacementService {
  readonly oracle: TimestampOracle;

  constructor(
    readonly cluster: PlacementCluster,
    opts: SingleServiceOptions = {},
  ) {
    this.oracle = new TimestampOracle({
      clock: opts.clock ?? Date.now,
      persist: (upperMs) => {
        cluster.saveTsoUpper(upperMs);
        return Promise.resolve();
      },
      ...(opts.tsoSaveIntervalMs !== undefined ? { saveIntervalMs: opts.tsoSaveIntervalMs } : {}),
      logger: opts.logger ?? silentLogger,
    });
    this.oracle.start(cluster.tsoUpperMs);
  }

  get clusterId(): number {
    return this.cluster.clusterId;
  }

  dispatch(method: string, params: unknown): unknown {
    if (method === 'getTimestamps') return this.oracle.getTimestamps(parseParams('getTimestamps', params).count);
    return this.cluster.dispatch(method, params);
  }

  tick(): void {
    this.oracle.maybeExtend();
  }

  close(): void {
    this.oracle.stop(new PlacementError(PlacementErrorCode.Unavailable, 'placement is closing'));
    this.cluster.close();
  }
}
