import { boolFlag, type CommandSpec } from '../args';
import { EXIT, type Command, type CommandContext } from '../command';
import { table } from '../format';
import { placementClient, targetFlags } from '../target';

// `flotilla gc status`: the cluster's GC safe point, the service safe
// points holding it back, and each store's reported GC progress.

const gcStatusSpec: CommandSpec = {
  path: ['gc', 'status'],
  summary: 'Show the GC safe point, service safe points (ts, TTL left) and per-store GC progress.',
  description:
    'Asks the placement leader. The safe point is the timestamp below which stores remove old versions of transactional keys (the newest version at or below it is kept); it trails now by the GC life time and never passes a live service safe point (a backup or watch registers one so GC cannot remove what it reads). Timestamps print as decimal 64-bit numbers with their physical time (UTC).',
  positionals: [],
  flags: [...targetFlags, { name: 'json', type: 'boolean', description: 'print the status as JSON (timestamps as decimal strings)', schema: boolFlag() }],
  examples: ['flotilla gc status', 'flotilla gc status --json --placement 127.0.0.1:2379'],
};

/** showTs: a hybrid timestamp with its physical time (0 shows as "none"). */
function showTs(ts: bigint): string {
  if (ts === 0n) return '0 (none yet)';
  return `${ts} (${new Date(Number(ts >> 18n)).toISOString()})`;
}

function showMs(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${(ms / 60_000).toFixed(1)} min`;
}

export const gcStatusCommand: Command = {
  spec: gcStatusSpec,
  async run(ctx: CommandContext) {
    const { client } = await placementClient(ctx);
    try {
      const s = await client.getGcStatus();
      if (ctx.parsed.values['json'] === true) {
        const text = JSON.stringify(s, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
        ctx.io.stdout.write(text + '\n');
        return EXIT.ok;
      }
      const out = ctx.io.stdout;
      out.write(`safe point          ${showTs(s.safePoint)}\n`);
      out.write(`cluster safe point  ${showTs(s.clusterSafePoint)}\n`);
      out.write(`gc life time        ${showMs(s.gcLifeTimeMs)} (advanced every ${showMs(s.gcIntervalMs)})\n`);
      out.write('\nservice safe points\n');
      out.write(s.services.length === 0 ? '  (none)\n' : table(['SERVICE', 'TS', 'TTL LEFT'], s.services.map((x) => [x.serviceId, showTs(x.ts), showMs(x.ttlLeftMs)])));
      out.write('\nstore GC progress\n');
      out.write(
        s.stores.length === 0
          ? '  (no store has reported yet)\n'
          : table(['STORE', 'DONE TO', 'REGIONS DONE', 'VERSIONS REMOVED', 'REPORTED'], s.stores.map((x) => [x.storeId, showTs(x.safePoint), x.regionsDone, x.versionsRemoved, `${showMs(x.reportedAgoMs)} ago`])),
      );
      return EXIT.ok;
    } finally {
      client.close();
    }
  },
};
