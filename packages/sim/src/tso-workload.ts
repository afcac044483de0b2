// TSO clients of the 3-member simulation: each asks the placement group
// for timestamps (getTimestamps, 1-16 at a time) over its own simulated
// link, one request at a time with a short random pause, and records when
// it sent each request and when the answer came (the Recorder's global
// event order, finer than virtual ms) for checkTso. A request that fails or
// times out is not recorded: it returned nothing.
import { composeTs, type PlacementError } from '@flotilla/placement';
import { mulberry32 } from '@flotilla/transport';
import type { SimCluster } from './cluster';
import type { TsoRecord } from './placement-checkers';
import { GroupCaller } from './placement-rpc';
import type { Recorder } from './report';

export class TsoWorkload {
  readonly records: TsoRecord[] = [];
  failed = 0;
  private stopped = false;
  readonly finished: Promise<void>;

  constructor(cluster: SimCluster, rec: Recorder, seed: number, clients: number) {
    const rpc = cluster.rpc!;
    const runs: Promise<void>[] = [];
    for (let c = 0; c < clients; c++) runs.push(this.run(c, new GroupCaller(rpc, `tso#${c}`, (seed * 131 + c * 7) >>> 0), mulberry32((seed ^ (0x7150 + c)) >>> 0), rec));
    this.finished = Promise.all(runs).then(() => {});
  }

  stop(): void {
    this.stopped = true;
  }

  private async run(client: number, caller: GroupCaller, rng: () => number, rec: Recorder): Promise<void> {
    while (!this.stopped) {
      const count = 1 + Math.floor(rng() * 16);
      const sentSeq = rec.nextEvent();
      try {
        const r = (await caller.call('getTimestamps', { count })) as { physicalMs: number; firstLogical: number; count: number };
        const answeredSeq = rec.nextEvent();
        this.records.push({ client, sentSeq, answeredSeq, first: composeTs(r.physicalMs, r.firstLogical), last: composeTs(r.physicalMs, r.firstLogical + r.count - 1) });
      } catch (err) {
        this.failed++;
        if (!(err as PlacementError).code) throw err;
      }
      await new Promise<void>((r) => setTimeout(r, Math.floor(rng() * 40)));
    }
  }
}
