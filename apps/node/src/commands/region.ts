import { boolFlag, UsageError, type CommandSpec } from '../args';
import { EXIT, type Command } from '../command';
import { formatBytes, renderRange, table } from '../format';
import { processNames, storeLabel } from '../process-names';
import { targetFlags } from '../target';
import { placementJson, type OperatorRow, type StoreRow } from './admin';
import type { RegionRow } from './info';

// `flotilla region ID`: one Region as placement knows it, with the stores
// behind each peer (pd-ctl's `region ID`).

/** RegionDetail is /regions/id/:id: a RegionRow plus when its leader last reported. */
type RegionDetail = RegionRow & { lastHeartbeatMs?: number };

const regionSpec: CommandSpec = {
  path: ['region'],
  summary: 'Show one Region in detail: key range, epoch, leader, every peer with its store and address, size, pending and down peers, last heartbeat, operator.',
  positionals: [{ name: 'region-id', description: 'the Region ID (the REGION column of flotilla regions)', required: true }],
  flags: [...targetFlags, { name: 'json', type: 'boolean', description: 'print JSON (the Region, its stores, its operator) instead of text', schema: boolFlag() }],
  examples: ['flotilla region 2', 'flotilla region 2 --json'],
};

/** peerState says what placement knows of one peer: leader, pending (catching up), down for N s, or its role. */
function peerState(r: RegionDetail, p: RegionRow['peers'][number]): string {
  if (r.leader?.id === p.id) return 'leader';
  const down = r.downPeers?.find((d) => d.peer.id === p.id);
  if (down) return `down ${down.downSeconds}s`;
  if (r.pendingPeers?.some((x) => x.id === p.id)) return `${p.role}, pending`;
  return p.role === 'learner' ? 'learner' : 'follower';
}

export const regionCommand: Command = {
  spec: regionSpec,
  async run(ctx) {
    const text = ctx.parsed.positionals[0]!;
    if (!/^[0-9]{1,16}$/.test(text) || Number(text) <= 0) throw new UsageError(`<region-id>: ${JSON.stringify(text)} is not a positive integer`);
    const [{ region: r }, { stores }, { operators }] = await Promise.all([
      placementJson<{ region: RegionDetail }>(ctx, 'GET', `/regions/id/${text}`),
      placementJson<{ stores: StoreRow[] }>(ctx, 'GET', '/stores'),
      placementJson<{ operators: OperatorRow[] }>(ctx, 'GET', '/operators'),
    ]);
    const operator = operators.find((o) => o.regionId === r.id);
    const byId = new Map(stores.map((s) => [s.id, s]));
    if (ctx.parsed.values['json'] === true) {
      const peerStores = r.peers.map((p) => byId.get(p.storeId)).filter((s) => s !== undefined);
      ctx.io.stdout.write(JSON.stringify({ region: r, stores: peerStores, operator: operator ?? null }, null, 2) + '\n');
      return EXIT.ok;
    }
    const names = processNames(ctx, stores);
    const peers = table(
      ['PEER', 'STORE', 'STATE', 'STORE ADDRESS', 'STORE STATE'],
      r.peers.map((p) => [p.id, storeLabel(names, p.storeId), peerState(r, p), byId.get(p.storeId)?.address ?? '-', byId.get(p.storeId)?.state ?? 'unknown']),
    );
    const rows: [string, string][] = [
      ['key range', renderRange(r.startKey, r.endKey)],
      ['epoch', `confVer ${r.epoch.confVer}, version ${r.epoch.version}`],
      ['leader', r.leader ? `peer ${r.leader.id} on store ${storeLabel(names, r.leader.storeId)}` : 'unknown (no heartbeat yet)'],
      ['approx size', r.approximateSizeBytes === undefined ? '-' : `${formatBytes(r.approximateSizeBytes)}, ${r.approximateKeys ?? 0} keys`],
      ['pending peers', r.pendingPeers?.length ? r.pendingPeers.map((p) => String(p.id)).join(', ') : 'none'],
      ['down peers', r.downPeers?.length ? r.downPeers.map((d) => `${d.peer.id} (${d.downSeconds}s)`).join(', ') : 'none'],
      ['last heartbeat', r.lastHeartbeatMs === undefined ? 'none since placement started' : `${Math.max(0, Math.round((Date.now() - r.lastHeartbeatMs) / 1000))}s ago`],
      ['operator', operator ? `${operator.id} ${operator.kind} (by ${operator.scheduler}), step ${operator.currentStep + 1}/${operator.steps.length}: ${operator.description}` : 'none'],
    ];
    ctx.io.stdout.write(`region ${r.id}\n${rows.map(([k, v]) => `  ${k.padEnd(15)} ${v}`).join('\n')}\n\n${peers}`);
    return EXIT.ok;
  },
};
