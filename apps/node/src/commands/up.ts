import { relative, resolve } from 'node:path';
import { enumFlag, intFlag, pathFlag, type CommandSpec, type FlagSpec } from '../args';
import { clusterFilePath } from '../cluster-file';
import { EXIT, waitForShutdown, type Command, type CommandContext } from '../command';
import { table } from '../format';
import { LocalCluster, logTail, type Profile } from '../local-cluster';
import { serverSecurity, serverSecurityFlags } from '../security';

/** clusterFlags: how `up` and `demo` shape a local cluster. */
export function clusterFlags(defaults: { dataDir: string; profile: Profile; basePort: number }): FlagSpec[] {
  return [
    { name: 'stores', type: 'string', placeholder: 'N', description: 'number of stores', default: '3', schema: intFlag(1, 9) },
    { name: 'data-dir', type: 'string', placeholder: 'DIR', description: 'cluster directory: placement/, store-N/, logs/, cluster.json', default: defaults.dataDir, schema: pathFlag() },
    { name: 'profile', type: 'string', placeholder: 'NAME', description: 'store tuning profile: production or demo (tiny split thresholds)', default: defaults.profile, schema: enumFlag(['production', 'demo'] as const satisfies readonly Profile[]) },
    { name: 'base-port', type: 'string', placeholder: 'PORT', description: 'placement listens on PORT, store i on PORT+i (0: free ports, reused on restart)', default: String(defaults.basePort), schema: intFlag(0, 65_000) },
  ];
}

/** startLocal starts a LocalCluster from the clusterFlags of ctx, reporting children that die unexpectedly. */
export async function startLocal(ctx: CommandContext): Promise<LocalCluster> {
  const v = ctx.parsed.values;
  const cluster = await LocalCluster.start({
    dataDir: v['dataDir'] as string,
    stores: v['stores'] as number,
    profile: v['profile'] as Profile,
    basePort: v['basePort'] as number,
    logLevel: (v['logLevel'] as string) === 'silent' ? 'info' : (v['logLevel'] as string),
    logger: ctx.logger,
    security: serverSecurity(v),
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
    ['PROCESS', 'ADDRESS', 'HEALTH', 'PID', 'LOG'],
    cluster.processes.map((p) => [p.name, p.address, cluster.healthUrl(p), p.proc.pid ?? 0, rel(p.log)]),
  );
}

const upSpec: CommandSpec = {
  path: ['up'],
  summary: 'Start a local cluster: placement plus N stores as child processes on 127.0.0.1.',
  description:
    'Waits until every process is healthy, prints the endpoints and writes <data-dir>/cluster.json so other commands find the cluster. Running it again on the same --data-dir resumes with the same data and ports. Ctrl-C (SIGINT) or SIGTERM stops every child (SIGTERM, then SIGKILL after 10 s) and exits 0; more signals while it stops are ignored.',
  positionals: [],
  flags: [...clusterFlags({ dataDir: './data', profile: 'production', basePort: 20160 }), ...serverSecurityFlags],
  examples: ['flotilla up', 'flotilla up --stores 5 --profile demo --data-dir /tmp/flotilla --base-port 30160'],
};

export const upCommand: Command = {
  spec: upSpec,
  async run(ctx) {
    const cluster = await startLocal(ctx);
    const dataDir = resolve(ctx.parsed.values['dataDir'] as string);
    ctx.io.stdout.write(
      `Flotilla is up: placement + ${cluster.stores.length} store${cluster.stores.length === 1 ? '' : 's'}, profile ${ctx.parsed.values['profile'] as string}, data in ${dataDir}\n\n` +
        endpointsTable(cluster) +
        `\nCluster file: ${clusterFilePath(dataDir)}\n` +
        `Try:  flotilla put hello world --data-dir ${ctx.parsed.values['dataDir'] as string} && flotilla get hello --data-dir ${ctx.parsed.values['dataDir'] as string}\n` +
        'Press Ctrl-C to stop.\n',
    );
    const code = await waitForShutdown(ctx, () => cluster.stop());
    if (code === EXIT.ok) ctx.io.stdout.write('Stopped.\n');
    return code;
  },
};
