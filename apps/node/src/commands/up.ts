import { readFileSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import { UsageError, enumFlag, intFlag, pathFlag, type CommandSpec, type FlagSpec } from '../args';
import { clusterFilePath } from '../cluster-file';
import { EXIT, waitForShutdown, type Command, type CommandContext } from '../command';
import { table } from '../format';
import { LocalCluster, logTail, type Profile } from '../local-cluster';
import { describeReplication, isReplicated, replicationStatus, waitReplicated, watchReplication } from '../replication';
import { redisKeyspaceFlag, redisMaxConnectionsFlag, redisPortFlag, startUpRedis, type RedisUp } from './redis';
import { serverSecurity, serverSecurityFlags, storeSecurity, storeSecurityFlags, type ClientSecurity } from '../security';

/** clusterFlags: how `up` and `demo` shape a local cluster. */
export function clusterFlags(defaults: { dataDir: string; profile: Profile; basePort: number }): FlagSpec[] {
  return [
    { name: 'stores', type: 'string', placeholder: 'N', description: 'number of stores', default: '3', schema: intFlag(1, 9) },
    { name: 'placements', type: 'string', placeholder: 'N', description: 'placement members: 1, or 3 or 5 for a replicated placement (pK on PORT+10·(K−1))', default: '1', schema: intFlag(1, 7) },
    { name: 'data-dir', type: 'string', placeholder: 'DIR', description: 'cluster directory: placement/, store-N/, logs/, cluster.json', default: defaults.dataDir, schema: pathFlag() },
    { name: 'profile', type: 'string', placeholder: 'NAME', description: 'store tuning profile: production or demo (tiny split thresholds)', default: defaults.profile, schema: enumFlag(['production', 'demo'] as const satisfies readonly Profile[]) },
    { name: 'base-port', type: 'string', placeholder: 'PORT', description: 'placement listens on PORT, store i on PORT+i (0: free ports, reused on restart)', default: String(defaults.basePort), schema: intFlag(0, 65_000) },
  ];
}

/** upOnlyFlags: what `up` passes to its children beyond clusterFlags (demo runs with the defaults). */
const upOnlyFlags: FlagSpec[] = [
  { name: 'max-replicas', type: 'string', placeholder: 'N', description: "placement's --max-replicas: voters per Region (default min(3, --stores); at most --stores)", schema: intFlag(1, 7) },
  { name: 'tuning', type: 'string', placeholder: 'FILE', description: 'store tuning JSON file handed to every store as --tuning (keys in docs/operations.md); a bad key stops the first store with its message', schema: pathFlag() },
];

/** checkedTuning resolves --tuning and checks it holds a JSON object (the stores check its keys). */
function checkedTuning(path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  const abs = resolve(path);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(abs, 'utf8'));
  } catch (err) {
    throw new UsageError(`--tuning: cannot read ${path} as JSON: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new UsageError(`--tuning: ${path} must hold a JSON object of tuning keys`);
  return abs;
}

/** startLocal starts a LocalCluster from the clusterFlags (and up's own flags) of ctx, reporting children that die unexpectedly. */
export async function startLocal(ctx: CommandContext): Promise<LocalCluster> {
  const v = ctx.parsed.values;
  const maxReplicas = v['maxReplicas'] as number | undefined;
  if (maxReplicas !== undefined && maxReplicas > (v['stores'] as number)) throw new UsageError(`--max-replicas ${maxReplicas} needs at least ${maxReplicas} stores (--stores is ${v['stores'] as number}): a Region can hold one replica per store`);
  const tuningPath = checkedTuning(v['tuning'] as string | undefined);
  const security = serverSecurity(v);
  const cluster = await LocalCluster.start({
    dataDir: v['dataDir'] as string,
    stores: v['stores'] as number,
    placements: v['placements'] as number,
    profile: v['profile'] as Profile,
    basePort: v['basePort'] as number,
    logLevel: (v['logLevel'] as string) === 'silent' ? 'info' : (v['logLevel'] as string),
    logger: ctx.logger,
    security,
    ...storeSecurity(v, security),
    ...(maxReplicas !== undefined ? { maxReplicas } : {}),
    ...(tuningPath ? { tuningPath } : {}),
    logFormat: v['logFormat'] as string,
  });
  cluster.onUnexpectedExit = (p, code, signal) => {
    ctx.logger.error({ name: p.name, pid: p.proc.pid, code, signal, log: p.log }, `${p.name} exited unexpectedly`);
    ctx.io.stderr.write(`${p.name} (pid ${p.proc.pid}) exited unexpectedly (${signal ?? `code ${code}`}); last lines of ${p.log}:\n${logTail(p.log)}\n`);
  };
  return cluster;
}

export function endpointsTable(cluster: LocalCluster): string {
  // Paths under the working directory read best relative; anything else stays absolute.
  const rel = (p: string): string => {
    const r = relative(process.cwd(), p);
    return r === '' || r.startsWith('..') ? p : r;
  };
  return table(
    ['PROCESS', 'STORE ID', 'ADDRESS', 'HEALTH', 'PID', 'LOG'],
    cluster.processes.map((p) => [p.name, p.storeId ?? '-', p.address, cluster.healthUrl(p), p.proc.pid ?? 0, rel(p.log)]),
  );
}

const upSpec: CommandSpec = {
  path: ['up'],
  summary: 'Start a local cluster: placement plus N stores as child processes on 127.0.0.1.',
  description:
    'Waits until every process is healthy and writes <data-dir>/cluster.json so other commands find the cluster, then until every Region has its full replica count (up to 30 s; past that it says it is still replicating, and prints a line when it is done) before it reports "up" and prints the endpoints. Running it again on the same --data-dir resumes with the same data and ports. Ctrl-C (SIGINT) or SIGTERM stops every child (SIGTERM, then SIGKILL after 10 s) and exits 0; more signals while it stops are ignored.',
  positionals: [],
  flags: [...clusterFlags({ dataDir: './data', profile: 'production', basePort: 20160 }), ...upOnlyFlags, redisPortFlag, redisMaxConnectionsFlag, redisKeyspaceFlag, ...serverSecurityFlags, ...storeSecurityFlags('a random secret made on the first start and kept in <data-dir>/cluster-secret (mode 0600)')],
  examples: ['flotilla up', 'flotilla up --redis-port 6379        # then: redis-cli -p 6379 set greeting hello', 'flotilla up --stores 5 --profile demo --data-dir /tmp/flotilla --base-port 30160', 'flotilla up --placements 3 --data-dir /tmp/flotilla-ha', 'flotilla up --stores 5 --max-replicas 5 --tuning ./store-tuning.json --log-format pretty'],
};

/** REPLICATION_WAIT_MS: how long `up` waits for full replication before it says it is serving but still replicating. */
export const REPLICATION_WAIT_MS = 30_000;

/** clusterClientSecurity: how `up` itself reads placement's HTTP API (the token and CA its children got). */
function clusterClientSecurity(ctx: CommandContext): ClientSecurity {
  const s = serverSecurity(ctx.parsed.values);
  return { ...(s.token ? { token: s.token } : {}), ...(s.tls ? { tls: s.tls.caPath ? { caPath: s.tls.caPath } : {} } : {}) };
}

/**
 * upCommand: start, wait for every Region to reach its replica count (or
 * say it is still replicating and report when it is done), then serve until
 * a signal. Signals are handled from the moment the children run.
 */
export const upCommand: Command = {
  spec: upSpec,
  async run(ctx) {
    const cluster = await startLocal(ctx);
    const dataDirFlag = ctx.parsed.values['dataDir'] as string;
    const dataDir = resolve(dataDirFlag);
    const sec = clusterClientSecurity(ctx);
    let redis: RedisUp | undefined;
    try {
      redis = await startUpRedis(ctx, cluster.placement.address, sec);
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    // Whichever placement member leads answers (p1 may be down or a follower).
    const check = () => replicationStatus(cluster.placements.map((p) => p.address), sec, 2_000);
    const stopping = new AbortController();
    let watch: { stop: () => void } | undefined;
    const shutdown = waitForShutdown(ctx, () => {
      stopping.abort();
      watch?.stop();
      // The Redis front first: its connections finish before the stores they write to stop.
      const front = redis ? redis.close().catch((err: unknown) => ctx.logger.warn({ err: (err as Error).message }, 'redis: close failed')) : Promise.resolve();
      return front.then(() => cluster.stop());
    });
    const status = await Promise.race([waitReplicated(check, REPLICATION_WAIT_MS, stopping.signal), shutdown.then(() => 'stopped' as const)]);
    if (status === 'stopped') return finish(ctx, await shutdown);
    const members = cluster.placements.length;
    const stores = `${members === 1 ? 'placement' : `${members} placement members`} + ${cluster.stores.length} store${cluster.stores.length === 1 ? '' : 's'}, profile ${ctx.parsed.values['profile'] as string}, data in ${dataDir}`;
    const replicated = status !== null && isReplicated(status);
    ctx.io.stdout.write(
      (replicated ? `Flotilla is up: ${stores}; ${describeReplication(status)}\n\n` : `Flotilla is serving, still replicating: ${stores}; ${status ? describeReplication(status) : 'placement did not answer'}. A line follows when every Region has its replicas.\n\n`) +
        endpointsTable(cluster) +
        `\nCluster file: ${clusterFilePath(dataDir)}\n` +
        (redis ? `Redis: ${redis.address}  (redis-cli -p ${redis.port})\n` : '') +
        `Try:  flotilla put hello world --data-dir ${dataDirFlag} && flotilla get hello --data-dir ${dataDirFlag}\n` +
        'Press Ctrl-C to stop.\n',
    );
    if (!replicated) watch = watchReplication(check, (s) => ctx.io.stdout.write(`Replication done: ${describeReplication(s)}.\n`));
    return finish(ctx, await shutdown);
  },
};

function finish(ctx: CommandContext, code: number): number {
  if (code === EXIT.ok) ctx.io.stdout.write('Stopped.\n');
  return code;
}
