import { boolFlag, type CommandSpec } from '../args';
import { EXIT, type Command, type CommandContext } from '../command';
import { formatBytes, renderRange, table } from '../format';
import { processNames, storeLabel } from '../process-names';
import { placementClient, resolvePlacement, security, targetFlags } from '../target';
import { httpGet, httpScheme, type ClientSecurity } from '../security';

// `flotilla regions` and `flotilla stores`: tables of placement's view.

/** RegionRow is one Region as placement's HTTP API renders it (/regions). */
export interface RegionRow {
  id: number;
  startKey: string;
  endKey: string;
  epoch: { confVer: number; version: number };
  peers: { id: number; storeId: number; role: string }[];
  leader: { id: number; storeId: number } | null;
  approximateSizeBytes?: number;
  approximateKeys?: number;
  /** pendingPeers: peers the leader reports as lagging (not caught up). */
  pendingPeers?: { id: number; storeId: number; role: string }[];
  downPeers?: { peer: { id: number; storeId: number; role: string }; downSeconds: number }[];
  /** flow: client traffic over the leader's last heartbeat interval, per second (absent before the first report). */
  flow?: { readKeysPerSec: number; readBytesPerSec: number; writeKeysPerSec: number; writeBytesPerSec: number };
}

const PAGE = 1000;

/** fetchRegions pages through placement's GET /regions (it carries the approximate sizes the WebSocket scan does not). */
export async function fetchRegions(placement: string, timeoutMs: number, sec: ClientSecurity = {}): Promise<RegionRow[]> {
  const addresses = placement.split(',').map((a) => a.trim());
  let address = addresses[0]!;
  const out: RegionRow[] = [];
  let start = '';
  for (let page = 0; page < 10_000; page++) {
    let url = `${httpScheme(sec)}://${address}/regions?limit=${PAGE}&start=${encodeURIComponent(start)}`;
    let res: Awaited<ReturnType<typeof httpGet>> | undefined;
    let lastError: unknown;
    // Any member answers (a follower relays to the leader); one that is down or knows no leader: the next.
    for (const a of [address, ...addresses.filter((x) => x !== address)]) {
      url = `${httpScheme(sec)}://${a}/regions?limit=${PAGE}&start=${encodeURIComponent(start)}`;
      res = await httpGet(url, sec, timeoutMs).catch((err: unknown) => void (lastError = err));
      if (res !== undefined && res.status < 500) {
        address = a;
        break;
      }
    }
    if (res === undefined) throw new Error(`placement ${url}: ${(lastError as Error | undefined)?.message ?? 'no answer'}${addresses.length > 1 ? ` (nor did any other of ${addresses.join(',')})` : ''}`);
    let body: { regions?: RegionRow[]; error?: { message?: string } };
    try {
      body = JSON.parse(res.body) as typeof body;
    } catch {
      body = {};
    }
    if (res.status !== 200 || !body.regions) throw new Error(`placement ${url}: ${res.status} ${body.error?.message ?? ''}`);
    for (const r of body.regions) if (!out.some((x) => x.id === r.id)) out.push(r);
    const last = body.regions[body.regions.length - 1];
    if (body.regions.length < PAGE || !last || last.endKey === '') break;
    start = last.endKey;
  }
  return out;
}

/** regionTable renders Regions; names (store ID -> `up` process name) labels the leader's store when known. */
export function regionTable(rows: RegionRow[], names: Map<number, string> = new Map()): string {
  return table(
    ['REGION', 'KEY RANGE', 'EPOCH', 'LEADER', 'PEERS (peer@store)', 'APPROX SIZE', 'APPROX KEYS'],
    rows.map((r) => [
      r.id,
      renderRange(r.startKey, r.endKey),
      `${r.epoch.confVer}/${r.epoch.version}`,
      r.leader ? `store ${storeLabel(names, r.leader.storeId)}` : '-',
      r.peers.map((p) => `${p.id}@${p.storeId}${p.role === 'learner' ? 'L' : ''}`).join(','),
      r.approximateSizeBytes === undefined ? '-' : formatBytes(r.approximateSizeBytes),
      r.approximateKeys ?? '-',
    ]),
  );
}

/** flowOf is a Region's traffic, bytes per second read plus written (what --hot sorts by). */
const flowOf = (r: RegionRow): number => (r.flow ? r.flow.readBytesPerSec + r.flow.writeBytesPerSec : 0);

/** hotTable renders the Regions with traffic, hottest first (read + write bytes per second). */
export function hotTable(rows: RegionRow[], names: Map<number, string> = new Map()): string {
  const rate = (n: number): string => (n < 10 ? String(Math.round(n * 10) / 10) : String(Math.round(n)));
  return table(
    ['REGION', 'KEY RANGE', 'LEADER', 'READ KEYS/S', 'READ/S', 'WRITE KEYS/S', 'WRITE/S'],
    rows.map((r) => [
      r.id,
      renderRange(r.startKey, r.endKey),
      r.leader ? `store ${storeLabel(names, r.leader.storeId)}` : '-',
      rate(r.flow!.readKeysPerSec),
      formatBytes(r.flow!.readBytesPerSec),
      rate(r.flow!.writeKeysPerSec),
      formatBytes(r.flow!.writeBytesPerSec),
    ]),
  );
}

const regionsSpec: CommandSpec = {
  path: ['regions'],
  summary: 'List every Region: key range, epoch (confVer/version), leader, peers, approximate size and keys.',
  positionals: [],
  flags: [
    ...targetFlags,
    { name: 'json', type: 'boolean', description: 'print JSON instead of a table', schema: boolFlag() },
    { name: 'hot', type: 'boolean', description: "only Regions with client traffic, hottest first (read + write bytes/s over each leader's last heartbeat interval)", schema: boolFlag() },
  ],
  examples: ['flotilla regions', 'flotilla regions --hot', 'flotilla regions --placement 127.0.0.1:20160 --json'],
};

export const regionsCommand: Command = {
  spec: regionsSpec,
  async run(ctx: CommandContext) {
    const all = await fetchRegions(resolvePlacement(ctx), ctx.parsed.values['timeoutMs'] as number, security(ctx));
    if (ctx.parsed.values['hot'] === true) {
      const hot = all.filter((r) => flowOf(r) > 0).sort((a, b) => flowOf(b) - flowOf(a) || a.id - b.id);
      if (ctx.parsed.values['json'] === true) ctx.io.stdout.write(JSON.stringify(hot, null, 2) + '\n');
      else ctx.io.stdout.write(hotTable(hot, processNames(ctx)) + `${hot.length} of ${all.length} region${all.length === 1 ? '' : 's'} with traffic\n`);
      return EXIT.ok;
    }
    const rows = all;
    if (ctx.parsed.values['json'] === true) ctx.io.stdout.write(JSON.stringify(rows, null, 2) + '\n');
    else ctx.io.stdout.write(regionTable(rows, processNames(ctx)) + `${rows.length} region${rows.length === 1 ? '' : 's'}\n`);
    return EXIT.ok;
  },
};

/**
 * available renders a store's available disk with its share of capacity,
 * marked "low space" when placement places no new replica there.
 */
function available(s: { stats?: { capacityBytes: number; availableBytes: number }; lowSpace?: boolean }): string {
  if (!s.stats || s.stats.capacityBytes <= 0) return '-';
  const pct = Math.floor((s.stats.availableBytes / s.stats.capacityBytes) * 100);
  return `${formatBytes(s.stats.availableBytes)} (${pct}%)${s.lowSpace ? ' low space' : ''}`;
}

const storesSpec: CommandSpec = {
  path: ['stores'],
  summary: 'List every store: ID, `flotilla up` process name, address, state, Region and leader counts, last heartbeat, disk capacity, used and available.',
  positionals: [],
  flags: [...targetFlags, { name: 'json', type: 'boolean', description: 'print JSON instead of a table', schema: boolFlag() }],
  examples: ['flotilla stores'],
};

export const storesCommand: Command = {
  spec: storesSpec,
  async run(ctx: CommandContext) {
    const { client } = await placementClient(ctx);
    try {
      const stores = (await client.getAllStores()).sort((a, b) => a.id - b.id);
      if (ctx.parsed.values['json'] === true) {
        ctx.io.stdout.write(JSON.stringify(stores, null, 2) + '\n');
        return EXIT.ok;
      }
      const now = Date.now();
      const names = processNames(ctx, stores);
      ctx.io.stdout.write(
        table(
          ['STORE', 'PROCESS', 'ADDRESS', 'RAFT ADDRESS', 'STATE', 'REGIONS', 'LEADERS', 'LAST HEARTBEAT', 'CAPACITY', 'USED', 'AVAILABLE'],
          stores.map((s) => [
            s.id,
            names.get(s.id) ?? '-',
            s.address,
            s.labels?.['raftAddress'] ?? '-',
            s.state,
            s.regionCount,
            s.leaderCount,
            `${Math.max(0, Math.round((now - s.lastHeartbeatMs) / 1000))}s ago`,
            s.stats && s.stats.capacityBytes > 0 ? formatBytes(s.stats.capacityBytes) : '-',
            s.stats ? formatBytes(s.stats.usedBytes) : '-',
            available(s),
          ]),
        ) + `${stores.length} store${stores.length === 1 ? '' : 's'}\n`,
      );
      return EXIT.ok;
    } finally {
      client.close();
    }
  },
};
