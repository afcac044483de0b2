// main.ts: run the placement service as its own process (until apps/node's
// CLI takes over). Prints one JSON line with the bound address on stdout;
// logs go to stderr.
//   node --import tsx packages/placement/src/main.ts --data-dir D --listen 127.0.0.1:0 [--max-replicas 3] [--max-store-down-time-ms N]
//     [--name p1 --initial-cluster p1=H:P,p2=H:P,p3=H:P | --join H:P,..]   (a member of a replicated placement)
import pino from 'pino';
import { startPlacementServer } from './server';

function parseArgs(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--') || argv[i + 1] === undefined) throw new Error(`bad argument ${JSON.stringify(a)}; usage: --data-dir DIR --listen HOST:PORT [--max-replicas N] [--max-store-down-time-ms MS] [--log-level LEVEL]`);
    out.set(a.slice(2), argv[++i]!);
  }
  return out;
}

function intArg(args: Map<string, string>, name: string): number | undefined {
  const v = args.get(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`--${name}: ${JSON.stringify(v)} is not a positive integer`);
  return n;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const dataDir = args.get('data-dir');
  const listen = args.get('listen') ?? '127.0.0.1:2379';
  if (!dataDir) throw new Error('--data-dir is required');
  const logger = pino({ level: args.get('log-level') ?? 'info' }, pino.destination(2));
  const maxReplicas = intArg(args, 'max-replicas');
  const maxStoreDownTimeMs = intArg(args, 'max-store-down-time-ms');
  const name = args.get('name');
  const initialCluster = args.get('initial-cluster');
  const join = args.get('join');
  const server = await startPlacementServer({
    dataDir,
    listen,
    logger,
    ...(name ? { name } : {}),
    ...(initialCluster ? { initialCluster, advertise: initialCluster.split(',').find((e) => e.startsWith(`${name ?? 'p1'}=`))?.split('=')[1] ?? listen } : {}),
    ...(join ? { join: join.split(',') } : {}),
    ...(maxReplicas !== undefined ? { maxReplicas } : {}),
    ...(maxStoreDownTimeMs !== undefined ? { maxStoreDownTimeMs } : {}),
  });
  process.stdout.write(JSON.stringify({ address: server.address, httpUrl: server.httpUrl, wsUrl: server.wsUrl, clusterId: server.clusterId, pid: process.pid }) + '\n');
  const stop = (signal: string): void => {
    logger.info({ signal }, 'shutting down');
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err: (err as Error).message }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err: unknown) => {
  process.stderr.write(`placement: ${(err as Error).message}\n`);
  process.exit(1);
});
