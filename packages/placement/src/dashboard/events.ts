import type { IncomingMessage, ServerResponse } from 'node:http';
import type { PlacementCluster } from '../cluster';
import { buildSnapshot, type DashboardSnapshot } from './snapshot';

/** RegionChange is a split or merge the dashboard saw between two snapshots (Regions appearing or disappearing). */
export interface RegionChange {
  kind: 'split' | 'merge';
  regionId: number;
  description: string;
  atMs: number;
}

/** DashboardHubOptions bounds the live feed. */
export interface DashboardHubOptions {
  /** intervalMs: one snapshot per interval to every client, never one per event (default 1,000). */
  intervalMs?: number;
  /** maxClients: event streams open at once; one more is answered 503 (default 16). */
  maxClients?: number;
  /** maxBufferedBytes: a client with this much unsent is skipped until it drains (default 4 MiB). */
  maxBufferedBytes?: number;
}

const RECENT_CHANGES = 64;

/**
 * DashboardHub serves /dashboard/events: server-sent events carrying a full
 * snapshot every intervalMs while at least one page is open (no timer runs
 * otherwise). A snapshot replaces the page's state, so a missed one costs
 * nothing; a slow reader is skipped rather than buffered without bound.
 */
export class DashboardHub {
  private readonly clients = new Set<ServerResponse>();
  private timer: NodeJS.Timeout | undefined;
  private readonly intervalMs: number;
  private readonly maxClients: number;
  private readonly maxBufferedBytes: number;
  private readonly changes: RegionChange[] = [];
  private known: Map<number, string> | undefined;

  constructor(
    private readonly cluster: PlacementCluster,
    opts: DashboardHubOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 1_000;
    this.maxClients = opts.maxClients ?? 16;
    this.maxBufferedBytes = opts.maxBufferedBytes ?? 4 * 1024 * 1024;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** snapshot builds the current state plus the Region changes seen so far, newest first. */
  snapshot(): DashboardSnapshot & { regionChanges: RegionChange[] } {
    const snap = buildSnapshot(this.cluster);
    this.observe(snap);
    return { ...snap, regionChanges: [...this.changes].reverse() };
  }

  /** attach turns the response into an event stream, or answers 503 when maxClients streams are open. */
  attach(req: IncomingMessage, res: ServerResponse): void {
    if (this.clients.size >= this.maxClients) {
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '5' });
      res.end(JSON.stringify({ ok: false, error: { code: 'Unavailable', message: `${this.maxClients} dashboard event streams already open; close one or retry later` } }));
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write(`retry: 2000\n\n`);
    this.clients.add(res);
    const drop = (): void => {
      this.clients.delete(res);
      if (this.clients.size === 0 && this.timer !== undefined) {
        clearInterval(this.timer);
        this.timer = undefined;
      }
    };
    res.on('close', drop);
    req.on('error', drop);
    this.send(res, this.frame());
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.tick(), this.intervalMs);
      this.timer.unref();
    }
  }

  private frame(): string {
    return `event: snapshot\ndata: ${JSON.stringify(this.snapshot())}\n\n`;
  }

  private send(res: ServerResponse, frame: string): void {
    if (res.writableLength > this.maxBufferedBytes) return;
    res.write(frame);
  }

  private tick(): void {
    if (this.clients.size === 0) return;
    const frame = this.frame();
    for (const res of this.clients) this.send(res, frame);
  }

  /** observe records Regions that appeared (a split) or disappeared (a merge) since the previous snapshot. */
  private observe(snap: DashboardSnapshot): void {
    const now = new Map(snap.regions.map((r) => [r.id, `[${JSON.stringify(r.startKey)}, ${JSON.stringify(r.endKey)})`] as const));
    const before = this.known;
    this.known = now;
    if (before === undefined || snap.regions.length < snap.regionTotal) return;
    const add = (c: RegionChange): void => {
      this.changes.push(c);
      if (this.changes.length > RECENT_CHANGES) this.changes.shift();
    };
    for (const [id, range] of now) if (!before.has(id)) add({ kind: 'split', regionId: id, description: `Region ${id} split off, now ${range}`, atMs: snap.atMs });
    for (const [id, range] of before) if (!now.has(id)) add({ kind: 'merge', regionId: id, description: `Region ${id} ${range} merged away`, atMs: snap.atMs });
  }
}
