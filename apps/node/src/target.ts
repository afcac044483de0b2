import { resolve } from 'node:path';
import { FlotillaClient, type FlotillaClientOptions } from '@flotilla/client';
import type { PlacementClient } from '@flotilla/placement/client';
import { boolFlag, hostPortListFlag, intFlag, pathFlag, type FlagSpec } from './args';
import { clusterFilePath, processAlive, readClusterFile } from './cluster-file';
import type { CommandContext } from './command';
import { clientSecurity, clientSecurityFlags, type ClientSecurity } from './security';

/** targetFlags: how ctl commands find the cluster: --placement, else <data-dir>/cluster.json written by `flotilla up`. */
export const targetFlags: FlagSpec[] = [
  { name: 'placement', type: 'string', placeholder: 'HOST:PORT[,..]', description: 'placement address(es); default: read from <data-dir>/cluster.json', schema: hostPortListFlag() },
  { name: 'data-dir', type: 'string', placeholder: 'DIR', description: 'data directory of a cluster started with flotilla up (to find its cluster.json)', default: './data', schema: pathFlag() },
  { name: 'timeout-ms', type: 'string', placeholder: 'MS', description: 'deadline of each request, retries included', default: '10000', schema: intFlag(100, 600_000) },
  ...clientSecurityFlags,
];

/** security: the token and TLS trust of a ctl command (flags, else what `flotilla up` recorded in cluster.json; never a token from a file). */
export function security(ctx: CommandContext): ClientSecurity {
  const explicit = ctx.parsed.values['placement'] as string | undefined;
  const file = explicit ? null : readClusterFile(resolve(ctx.parsed.values['dataDir'] as string));
  return clientSecurity(ctx.parsed.values, file?.tls ? { tls: true, ...(file.tls.caPath ? { tlsCaPath: file.tls.caPath } : {}) } : undefined);
}

/** hexFlag: keys and values given and shown as hex. */
export const hexFlag: FlagSpec = { name: 'hex', type: 'boolean', description: 'keys and values on the command line are hex (0x optional); output shows them as hex', schema: boolFlag() };

/** TargetError: no cluster could be found; a runtime failure (exit 1), with the way out in the message. */
export class TargetError extends Error {}

export function resolvePlacement(ctx: CommandContext): string {
  const explicit = ctx.parsed.values['placement'] as string | undefined;
  if (explicit) return explicit;
  const dataDir = resolve(ctx.parsed.values['dataDir'] as string);
  const file = readClusterFile(dataDir);
  const start = `start it with \`flotilla up --data-dir ${ctx.parsed.values['dataDir'] as string}\` or pass --placement HOST:PORT`;
  if (!file) throw new TargetError(`no --placement given and no ${clusterFilePath(dataDir)}; ${start}`);
  if (file.stoppedAt) throw new TargetError(`the cluster in ${dataDir} was stopped at ${file.stoppedAt}; ${start}`);
  if (!processAlive(file.pid)) throw new TargetError(`the cluster in ${dataDir} is not running (its supervisor, pid ${file.pid}, is gone); ${start}`);
  // Every member of a replicated placement: the client finds the leader among them.
  return file.placements ? file.placements.map((p) => p.address).join(',') : file.placement.address;
}

/** connectClient connects to the cluster ctx targets; extra sets client options a command needs (restore retries its idempotent puts). */
export async function connectClient(ctx: CommandContext, extra: Pick<FlotillaClientOptions, 'retryWritesInFlight'> = {}): Promise<FlotillaClient> {
  return FlotillaClient.connect({ placement: resolvePlacement(ctx), timeoutMs: ctx.parsed.values['timeoutMs'] as number, logger: ctx.logger, ...security(ctx), ...extra });
}

/** placementClient connects to placement directly (stores table); placement's client face (no SQLite) is loaded on demand. */
export async function placementClient(ctx: CommandContext): Promise<{ client: PlacementClient; address: string }> {
  const address = resolvePlacement(ctx);
  const { PlacementClient } = await import('@flotilla/placement/client');
  const addresses = address.split(',').map((a) => a.trim());
  return { client: new PlacementClient({ addresses, requestTimeoutMs: ctx.parsed.values['timeoutMs'] as number, logger: ctx.logger, ...security(ctx) }), address: addresses[0]! };
}
