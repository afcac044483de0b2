import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, createWriteStream, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Logger } from '@flotilla/proto';
import type { ProfileName } from '@flotilla/store';
import { loadOrCreateClusterSecret } from './cluster-secret';
import { markClusterStopped, processAlive, readClusterFile, writeClusterFile, type ClusterFile } from './cluster-file';
import { placementArgs, placementSlots } from './local-placements';
import { httpGet, type ClientSecurity, type ServerSecurity } from './security';

/** Profile is the store's tuning profile, passed to each store child as --profile (a type-only import: the supervisor never loads the store). */
export type Profile = ProfileName;

export interface LocalClusterOptions {
  dataDir: string;
  stores: number;
  /** placements: placement members (default 1; 3 or 5 for a replicated placement). */
  placements?: number;
  profile: Profile;
  /** basePort: placement listens on basePort, store i on basePort + i. 0 picks free ports (or reuses cluster.json's). */
  basePort: number;
  host?: string;
  logLevel: string;
  logger: Logger;
  /** startTimeoutMs bounds the wait for every process to report healthy (default 90 s). */
  startTimeoutMs?: number;
  /** stopTimeoutMs: how long a child gets after SIGTERM before SIGKILL (default 10 s). */
  stopTimeoutMs?: number;
  /**
   * security: the API token (handed to children as FLOTILLA_TOKEN, never on
   * their command line) and the certificate every child serves with.
   */
  security?: ServerSecurity;
  /**
   * clusterSecret authenticates the stores to each other (handed to store
   * children as FLOTILLA_CLUSTER_SECRET). Default: the secret kept in
   * <dataDir>/cluster-secret, made on the first start (cluster-secret.ts).
   */
  clusterSecret?: string;
  /** tlsClientAuth: stores require a certificate signed by security.tls.caPath on the raft port (mutual TLS). */
  tlsClientAuth?: boolean;
  /** maxReplicas: placement's --max-replicas (default min(3, stores)). */
  maxReplicas?: number;
  /** tuningPath: a store tuning file (`flotilla store --tuning`) handed to every store (absolute). */
  tuningPath?: string;
  /** logFormat: every child's --log-format (its log file gets JSON unless this is pretty). */
  logFormat?: string;
}

/** LocalProcess is one child of the local cluster. */
export interface LocalProcess {
  name: string;
  /** index: 0 for placement (p1), 1-K for placement member pK, i for store-i. */
  index: number;
  /** storeId: the ID placement gave a store, from its announcement (undefined for placement, and until the store announces). */
  storeId?: number;
  address: string;
  dataDir: string;
  log: string;
  /** argsFor builds the child's command line for a listen address (restart reuses the bound one). */
  argsFor: (listen: string) => string[];
  proc: ChildProcess;
  exited: boolean;
  /** announced: the child printed its JSON line (it serves; `address` is the bound one). */
  announced: boolean;
}

const require = createRequire(import.meta.url);

/** MAIN_TS: this CLI's entry, which children run through tsx. */
export const MAIN_TS = fileURLToPath(new URL('./main.ts', import.meta.url));

/**
 * cliCommand is how to run this same CLI as a child process: from source,
 * node with tsx's loader, then main.ts; from the bundle (dist/, the packed
 * @flotilla/node, scripts/build.mjs), plain node and dist/flotilla.js, which
 * sits beside whichever dist/ chunk holds this code.
 */
export function cliCommand(args: string[]): { command: string; args: string[] } {
  // FLOTILLA_CLI_JS: a bundle built from this same source (the test suite's
  // global setup builds one, scripts/vitest-setup.mjs), which starts in a
  // third of tsx's CPU time; every test spawns dozens of children.
  const bundle = process.env['FLOTILLA_CLI_JS'];
  if (bundle) return { command: process.execPath, args: [bundle, ...args] };
  if (!import.meta.url.endsWith('.ts')) return { command: process.execPath, args: [fileURLToPath(new URL('./flotilla.js', import.meta.url)), ...args] };
  const tsx = pathToFileURL(require.resolve('tsx')).href;
  return { command: process.execPath, args: ['--import', tsx, MAIN_TS, ...args] };
}

/** httpOk: GET url answers 2xx within timeoutMs (https trusts sec.tls.caPath when given). */
export async function httpOk(url: string, timeoutMs = 1000, sec: ClientSecurity = {}): Promise<boolean> {
  try {
    const res = await httpGet(url, sec, timeoutMs);
    return res.status >= 200 && res.status < 300;
  } catch {
    return false;
  }
}

/** logTail returns the last lines of a child's log, for error messages. */
export function logTail(path: string, lines = 15): string {
  try {
    const text = readFileSync(path, 'utf8').trimEnd().split('\n');
    return text.slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * LocalCluster runs placement plus N stores on one machine as child
 * processes of this CLI (TiUP playground's shape): placement in
 * <dataDir>/placement, store i in <dataDir>/store-i, logs in
 * <dataDir>/logs, fixed ports so that starting again resumes on the same
 * data. Children are told to stop when their stdin closes, so they do not
 * outlive a supervisor that was killed.
 */
export class LocalCluster {
  readonly processes: LocalProcess[] = [];
  /** onUnexpectedExit is called when a child exits while the cluster is not stopping. */
  onUnexpectedExit: ((p: LocalProcess, code: number | null, signal: NodeJS.Signals | null) => void) | undefined;
  private stopping: Promise<void> | undefined;

  private constructor(
    private readonly opts: LocalClusterOptions,
    readonly startedAt: string,
  ) {}

  get placement(): LocalProcess {
    return this.processes.find((p) => p.index === 0)!;
  }

  /** placements: every placement member, p1 first. */
  get placements(): LocalProcess[] {
    return this.processes.filter((p) => p.index <= 0).sort((a, b) => b.index - a.index);
  }

  /** placementAddresses: what stores and clients are given (--placement a,b,c). */
  get placementAddresses(): string {
    return this.placements.map((p) => p.address).join(',');
  }

  get stores(): LocalProcess[] {
    return this.processes.filter((p) => p.index > 0);
  }

  static async start(opts: LocalClusterOptions): Promise<LocalCluster> {
    const host = opts.host ?? '127.0.0.1';
    const dataDir = resolve(opts.dataDir);
    const existing = readClusterFile(dataDir);
    if (existing && !existing.stoppedAt && existing.pid !== process.pid && processAlive(existing.pid)) {
      throw new Error(`a cluster is already running in ${dataDir} (supervised by pid ${existing.pid}, placement ${existing.placement.address}); stop it first (Ctrl-C in its terminal, or kill ${existing.pid})`);
    }
    mkdirSync(join(dataDir, 'logs'), { recursive: true });
    const clusterSecret = opts.clusterSecret ?? loadOrCreateClusterSecret(dataDir, opts.logger);
    // With --base-port 0 a child binds port 0 itself and announces the port it got (no window for another
    // process to take a port picked here); a restart reuses the ports recorded in cluster.json.
    const ports: number[] = [];
    const slots = await placementSlots(dataDir, host, opts.placements ?? 1, opts.basePort, existing);
    for (let i = 0; i <= opts.stores; i++) {
      if (opts.basePort !== 0) ports.push(opts.basePort + i);
      else {
        const previous = i === 0 ? existing?.placement.address : existing?.stores.find((s) => s.index === i)?.address;
        const port = previous ? Number(previous.split(':').pop()) : NaN;
        ports.push(Number.isInteger(port) && port > 0 ? port : 0);
      }
    }
    const cluster = new LocalCluster({ ...opts, dataDir, host, clusterSecret }, new Date().toISOString());
    try {
      const tlsArgs = opts.security?.tls
        ? ['--tls-cert', opts.security.tls.certPath, '--tls-key', opts.security.tls.keyPath, ...(opts.security.tls.caPath ? ['--tls-ca', opts.security.tls.caPath] : [])]
        : [];
      const extra = ['--max-replicas', String(opts.maxReplicas ?? Math.min(3, opts.stores)), ...tlsArgs];
      for (const slot of slots) cluster.spawnChild(slot.processName, slot.index, `${host}:${slot.port}`, slot.dataDir, (listen) => placementArgs(slot, slots, host, listen, extra));
      await cluster.waitHealthy(cluster.placements, (p) => cluster.healthUrl(p));
      const placementAddress = cluster.placementAddresses;
      opts.logger.info({ address: placementAddress }, 'placement is up');
      for (let i = 1; i <= opts.stores; i++) {
        const dir = join(dataDir, `store-${i}`);
        const storeArgs = [...tlsArgs, ...(opts.tlsClientAuth ? ['--tls-client-auth'] : []), ...(opts.tuningPath ? ['--tuning', opts.tuningPath] : [])];
        cluster.spawnChild(`store-${i}`, i, `${host}:${ports[i]}`, dir, (listen) => ['store', '--placement', placementAddress, '--data-dir', dir, '--listen', listen, '--profile', opts.profile, ...storeArgs]);
      }
      await cluster.waitHealthy(cluster.stores, (p) => cluster.healthUrl(p));
      opts.logger.info({ stores: opts.stores }, 'stores are up');
      writeClusterFile(dataDir, cluster.file());
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /** file is what cluster.json records about this cluster. */
  file(): ClusterFile {
    const rec = (p: LocalProcess) => ({ address: p.address, pid: p.proc.pid ?? 0, dataDir: p.dataDir, log: p.log });
    return {
      version: 1,
      pid: process.pid,
      profile: this.opts.profile,
      startedAt: this.startedAt,
      placement: rec(this.placement),
      ...(this.placements.length > 1 ? { placements: this.placements.map((p) => ({ name: p.index === 0 ? 'p1' : `p${1 - p.index}`, ...rec(p) })) } : {}),
      stores: this.stores.map((p) => ({ index: p.index, ...(p.storeId !== undefined ? { storeId: p.storeId } : {}), ...rec(p) })),
      ...(this.opts.security?.tls ? { tls: this.opts.security.tls.caPath ? { caPath: this.opts.security.tls.caPath } : {} } : {}),
    };
  }

  private spawnChild(name: string, index: number, address: string, dataDir: string, argsFor: (listen: string) => string[]): LocalProcess {
    const log = join(this.opts.dataDir, 'logs', `${name}.log`);
    const fd = openSync(log, 'a');
    const { command, args: argv } = cliCommand([...argsFor(address), '--log-level', this.opts.logLevel, ...(this.opts.logFormat ? ['--log-format', this.opts.logFormat] : [])]);
    let proc: ChildProcess;
    try {
      // Own process group: a terminal's Ctrl-C reaches only the supervisor, which stops stores before placement.
      // A --config file meant for the supervisor (FLOTILLA_CONFIG) has fields children do not accept: children get explicit flags only.
      const env: NodeJS.ProcessEnv = { ...process.env, FLOTILLA_STOP_ON_STDIN_EOF: '1' };
      delete env['FLOTILLA_CONFIG'];
      // Children get exactly the security settings of this cluster, none inherited by accident.
      for (const k of ['FLOTILLA_TOKEN', 'FLOTILLA_TLS_CERT', 'FLOTILLA_TLS_KEY', 'FLOTILLA_TLS_CA', 'FLOTILLA_CLUSTER_SECRET']) delete env[k];
      // The token and the cluster secret travel in the environment: a command line is readable by every user through ps.
      if (this.opts.security?.token) env['FLOTILLA_TOKEN'] = this.opts.security.token;
      if (index > 0 && this.opts.clusterSecret) env['FLOTILLA_CLUSTER_SECRET'] = this.opts.clusterSecret;
      proc = spawn(command, argv, { stdio: ['pipe', 'pipe', fd], detached: true, env });
    } finally {
      closeSync(fd);
    }
    const p: LocalProcess = { name, index, address, dataDir, log, argsFor, proc, exited: false, announced: false };
    // stdout: the child's one JSON line saying where it serves, copied to its log like everything else.
    const logStream = createWriteStream(log, { flags: 'a' });
    let pendingText = '';
    proc.stdout?.on('data', (chunk: Buffer) => {
      logStream.write(chunk);
      if (p.announced) return;
      pendingText = (pendingText + chunk.toString('utf8')).slice(-65_536);
      for (const line of pendingText.split('\n').slice(0, -1)) {
        try {
          const info = JSON.parse(line) as { address?: unknown; storeId?: unknown };
          if (typeof info.address === 'string') {
            p.address = info.address;
            if (typeof info.storeId === 'number') p.storeId = info.storeId;
            p.announced = true;
            break;
          }
        } catch {
          // not the announcement line
        }
      }
    });
    proc.stdout?.on('end', () => logStream.end());
    proc.stdin?.on('error', () => {}); // EPIPE when the child is gone; its exit is reported below
    proc.on('exit', (code, signal) => {
      p.exited = true;
      if (!this.stopping) this.onUnexpectedExit?.(p, code, signal);
    });
    const i = this.processes.findIndex((x) => x.index === index);
    if (i >= 0) this.processes[i] = p;
    else this.processes.push(p);
    this.opts.logger.debug({ name, pid: proc.pid, address, log }, 'started');
    return p;
  }

  /** restart starts a child again with the arguments it had (after it died or was killed). */
  async restart(index: number): Promise<LocalProcess> {
    const old = this.processes.find((x) => x.index === index);
    if (!old) throw new Error(`no process with index ${index}`);
    if (!old.exited) throw new Error(`${old.name} is still running (pid ${old.proc.pid})`);
    const p = this.spawnChild(old.name, old.index, old.address, old.dataDir, old.argsFor);
    await this.waitHealthy([p], (x) => this.healthUrl(x));
    writeClusterFile(this.opts.dataDir, this.file());
    return p;
  }

  /** healthUrl: /health answers without the token (placement and stores alike). */
  healthUrl(p: LocalProcess): string {
    return `${this.opts.security?.tls ? 'https' : 'http'}://${p.address}/health`;
  }

  /** clientSecurity: how the supervisor itself reaches its children (the CA they were given). */
  private get healthSecurity(): ClientSecurity {
    const tls = this.opts.security?.tls;
    return tls ? { tls: tls.caPath ? { caPath: tls.caPath } : {} } : {};
  }

  private async waitHealthy(list: LocalProcess[], url: (p: LocalProcess) => string): Promise<void> {
    const deadline = Date.now() + (this.opts.startTimeoutMs ?? 90_000);
    const pending = new Set(list);
    while (pending.size > 0) {
      for (const p of pending) {
        if (p.exited) {
          const tail = logTail(p.log);
          const hint = tail.includes('EADDRINUSE') ? `\n${p.address} is already in use: pick other ports with --base-port PORT (or --base-port 0 for free ones)` : '';
          throw new Error(`${p.name} exited during startup (exit code ${p.proc.exitCode ?? p.proc.signalCode}); last lines of ${p.log}:\n${tail}${hint}`);
        }
        if (p.announced && (await httpOk(url(p), 1000, this.healthSecurity))) pending.delete(p);
      }
      if (pending.size === 0) break;
      if (Date.now() > deadline) {
        const names = [...pending].map((p) => `${p.name} (${url(p)}, log ${p.log})`).join(', ');
        throw new Error(`not healthy within ${this.opts.startTimeoutMs ?? 90_000} ms: ${names}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** stop sends SIGTERM to the stores, then placement, escalating to SIGKILL after stopTimeoutMs; idempotent. */
  stop(): Promise<void> {
    return (this.stopping ??= (async () => {
      await Promise.all(this.stores.map((p) => this.stopChild(p)));
      await Promise.all(this.placements.map((p) => this.stopChild(p)));
      markClusterStopped(this.opts.dataDir, process.pid);
    })());
  }

  private async stopChild(p: LocalProcess): Promise<void> {
    if (p.exited) return;
    const exited = new Promise<void>((r) => p.proc.once('exit', () => r()));
    p.proc.kill('SIGTERM');
    const bound = this.opts.stopTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([exited.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), bound)))]);
    clearTimeout(timer);
    if (timedOut && !p.exited) {
      this.opts.logger.warn({ name: p.name, pid: p.proc.pid, boundMs: bound }, 'did not stop after SIGTERM; sending SIGKILL');
      p.proc.kill('SIGKILL');
      await exited;
    }
  }
}

/** runningCluster: the cluster.json of dataDir when its supervisor is alive and its placement answers /health. */
export async function runningCluster(dataDir: string): Promise<ClusterFile | null> {
  if (!existsSync(dataDir)) return null;
  const f = readClusterFile(dataDir);
  if (!f || f.stoppedAt || !processAlive(f.pid)) return null;
  return (await httpOk(`${f.tls ? 'https' : 'http'}://${f.placement.address}/health`, 1000, f.tls ? { tls: f.tls } : {})) ? f : null;
}
