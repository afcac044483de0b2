import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ProfileName, StoreHandle, StoreOptions, storeConfigOverridesSchema } from '@flotilla/store';
import { boolFlag, enumFlag, fractionFlag, hostPortFlag, hostPortListFlag, intFlag, pathFlag, required, type CommandSpec } from '../args';
import { EXIT, waitForShutdown, type Command } from '../command';
import { reportStorageFailure, serveUntilStopped } from '../storage-exit';
import { serverSecurity, serverSecurityFlags, storeSecurity, storeSecurityFlags } from '../security';
import { placementGroup, placementGroupFlags } from './placement-group';

// `flotilla placement` and `flotilla store`: the two long-running server
// processes. Each prints one JSON line with its endpoints on stdout once it
// serves (scripts read it), logs on stderr, and closes cleanly on SIGINT or
// SIGTERM (exit 0).

const placementSpec: CommandSpec = {
  path: ['placement'],
  summary: 'Run the placement service (routing table, ID allocation, schedulers).',
  description: 'Serves the placement WebSocket API on /ws and read-only HTTP JSON (/health, /status, /stores, /regions) on one port. State lives in SQLite under --data-dir; restarting on the same directory loses nothing.',
  positionals: [],
  flags: [
    { name: 'data-dir', type: 'string', placeholder: 'DIR', description: 'directory for the placement database (created if missing)', schema: pathFlag() },
    { name: 'listen', type: 'string', placeholder: 'HOST:PORT', description: "address to serve clients (/ws, HTTP) and peers (/raft) on (port 0 picks a free port; default: this member's --initial-cluster address, else 127.0.0.1:20160)", schema: hostPortFlag(true) },
    ...placementGroupFlags,
    { name: 'max-replicas', type: 'string', placeholder: 'N', description: 'replicas per Region the replica checker maintains', default: '3', schema: intFlag(1, 7) },
    { name: 'max-store-down-time-ms', type: 'string', placeholder: 'MS', description: 'a store silent this long is down and its replicas are replaced (default: the placement default, 30 min)', schema: intFlag(1000, 7 * 24 * 3600 * 1000) },
    { name: 'low-space-ratio', type: 'string', placeholder: 'RATIO', description: "a store with less than (1 - RATIO) of its disk available is low on space and gets no new replica (TiKV PD's low-space-ratio)", default: '0.8', schema: fractionFlag() },
    { name: 'gc-life-time-ms', type: 'string', placeholder: 'MS', description: 'versions of transactional keys younger than this are never removed by GC: the GC safe point trails now by MS (TiDB\'s gc life time; default 10 min)', schema: intFlag(1, 30 * 24 * 3600 * 1000) },
    { name: 'heatmap-interval-ms', type: 'string', placeholder: 'MS', description: "time one column of the dashboard's key visualizer covers (default 10 s)", schema: intFlag(100, 3600 * 1000) },
    { name: 'heatmap-columns', type: 'string', placeholder: 'N', description: 'key visualizer columns kept on the leader, the oldest dropped beyond (default 360: an hour at 10 s)', schema: intFlag(1, 100_000) },
    { name: 'heatmap-rows', type: 'string', placeholder: 'N', description: 'rows of one key visualizer column at most; adjacent Regions are merged beyond (default 256)', schema: intFlag(2, 4096) },
    { name: 'hot-region', type: 'boolean', description: "run the hot-region scheduler: move hot leaders (or peers) off stores whose hot Regions' reported flow is well above the mean (off by default; docs/placement.md)", schema: boolFlag() },
    ...serverSecurityFlags,
  ],
  examples: [
    'flotilla placement --data-dir ./data/placement --listen 127.0.0.1:20160',
    'flotilla placement --data-dir ./data/placement --heatmap-interval-ms 60000 --heatmap-columns 1440',
    'flotilla placement --name p1 --initial-cluster p1=127.0.0.1:20160,p2=127.0.0.1:20170,p3=127.0.0.1:20180 --data-dir ./data/p1',
    'flotilla placement --name p4 --join 127.0.0.1:20160,127.0.0.1:20170 --listen 127.0.0.1:20190 --data-dir ./data/p4',
  ],
};

export const placementCommand: Command = {
  spec: placementSpec,
  async run(ctx) {
    const dataDir = resolve(required<string>(ctx.parsed, placementSpec, 'data-dir'));
    const sec = serverSecurity(ctx.parsed.values);
    const group = placementGroup(ctx.parsed.values);
    const { startPlacementServer } = await import('@flotilla/placement');
    // Lease expiry deletes keys in the transactional keyspace through a client of this very cluster,
    // made on first use (this member's address is known once it serves; the client follows redirects).
    let selfAddress = '';
    const reaper = await placementLeaseReaper(() => selfAddress, sec);
    const server = await startPlacementServer({
      lease: { reaper },
      dataDir,
      ...sec,
      ...group,
      maxReplicas: ctx.parsed.values['maxReplicas'] as number,
      ...(ctx.parsed.values['maxStoreDownTimeMs'] !== undefined ? { maxStoreDownTimeMs: ctx.parsed.values['maxStoreDownTimeMs'] as number } : {}),
      lowSpaceRatio: ctx.parsed.values['lowSpaceRatio'] as number,
      ...(ctx.parsed.values['hotRegion'] === true ? { hotRegion: true } : {}),
      ...(ctx.parsed.values['gcLifeTimeMs'] !== undefined ? { gc: { lifeTimeMs: ctx.parsed.values['gcLifeTimeMs'] as number } } : {}),
      heatmap: {
        ...(ctx.parsed.values['heatmapIntervalMs'] !== undefined ? { intervalMs: ctx.parsed.values['heatmapIntervalMs'] as number } : {}),
        ...(ctx.parsed.values['heatmapColumns'] !== undefined ? { maxColumns: ctx.parsed.values['heatmapColumns'] as number } : {}),
        ...(ctx.parsed.values['heatmapRows'] !== undefined ? { maxRows: ctx.parsed.values['heatmapRows'] as number } : {}),
      },
      logger: ctx.logger,
    });
    selfAddress = server.address;
    ctx.io.stdout.write(JSON.stringify({ service: 'placement', name: server.member.name, address: server.address, httpUrl: server.httpUrl, wsUrl: server.wsUrl, clusterId: server.clusterId, pid: process.pid, dataDir }) + '\n');
    return waitForShutdown(ctx, async () => {
      await server.close();
      await reaper.close();
    });
  },
};

/** placementLeaseReaper: placement's LeaseReaper, a FlotillaClient of this cluster (with the server's token; over TLS trusting its CA, or its certificate). */
async function placementLeaseReaper(address: () => string, sec: { token?: string; tls?: { certPath: string; caPath?: string } }): Promise<import('@flotilla/client').ClientLeaseReaper> {
  const { ClientLeaseReaper, FlotillaClient } = await import('@flotilla/client');
  return new ClientLeaseReaper(() =>
    FlotillaClient.connect({
      placement: address(),
      timeoutMs: 10_000,
      ...(sec.token ? { token: sec.token } : {}),
      ...(sec.tls ? { tls: { caPath: sec.tls.caPath ?? sec.tls.certPath } } : {}),
    }),
  );
}

const storeSpec: CommandSpec = {
  path: ['store'],
  summary: 'Run a store: hosts Region replicas and serves the client API.',
  description:
    'Joins the cluster through placement (the first store of a new cluster bootstraps it), recovers its Regions from --data-dir and serves the client API (ws /client), /status and /metrics on --listen; store-to-store raft traffic uses --raft-listen.',
  positionals: [],
  flags: [
    { name: 'placement', type: 'string', placeholder: 'HOST:PORT[,..]', description: 'placement address(es)', schema: hostPortListFlag() },
    { name: 'data-dir', type: 'string', placeholder: 'DIR', description: 'directory for raft.db, kv.db and store.json (created if missing)', schema: pathFlag() },
    { name: 'listen', type: 'string', placeholder: 'HOST:PORT', description: 'client API / HTTP address (port 0 picks a free port)', default: '127.0.0.1:20161', schema: hostPortFlag(true) },
    { name: 'raft-listen', type: 'string', placeholder: 'HOST:PORT', description: 'store-to-store raft address (default: the --listen host, any free port)', schema: hostPortFlag(true) },
    { name: 'advertise', type: 'string', placeholder: 'HOST:PORT', description: 'address clients and placement use to reach this store (default: the bound --listen address; required when --listen binds 0.0.0.0 or ::)', schema: hostPortFlag() },
    { name: 'advertise-raft', type: 'string', placeholder: 'HOST:PORT', description: 'address other stores dial for raft traffic (default: the bound --raft-listen address; required when it binds 0.0.0.0 or ::)', schema: hostPortFlag() },
    { name: 'profile', type: 'string', placeholder: 'NAME', description: 'tuning profile: production (TiKV-sized Regions) or demo (tiny split thresholds)', default: 'production', schema: enumFlag(['production', 'demo'] as const satisfies readonly ProfileName[]) },
    ...serverSecurityFlags,
    ...storeSecurityFlags('the development secret, accepted only while every address this store binds and dials is loopback'),
    {
      name: 'tuning',
      type: 'string',
      placeholder: 'FILE',
      description: 'JSON object of store tuning overrides applied on top of --profile (e.g. {"raftLogGcCountLimit": 2000, "readOnly": "lease-based"}; keys in docs/operations.md); an unknown key or bad value is a usage error naming it',
      schema: pathFlag(),
    },
    { name: 'enable-admin-api', type: 'boolean', description: "accept raw admin commands (op 'admin': conf changes, log compaction, merge steps) on the client API; off by default, for tests and tools", schema: boolFlag() },
  ],
  examples: ['flotilla store --placement 127.0.0.1:20160 --data-dir ./data/store-1 --listen 127.0.0.1:20161 --profile demo', 'flotilla store --placement 127.0.0.1:20160 --data-dir ./data/store-1 --tuning ./store-tuning.json'],
};

/** StoreTuning is what --tuning holds: StoreOptions.config, as the store's override schema checks it. */
type StoreTuning = NonNullable<StoreOptions['config']>;

/**
 * readTuning reads --tuning: a JSON object checked against the store's
 * override schema (passed in, so the store package loads only when the
 * command runs), so errors name the file and the key.
 */
function readTuning(path: string, schema: typeof storeConfigOverridesSchema): StoreTuning | string {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    return `--tuning ${path}: ${(err as Error).message}`;
  }
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const where = issue.code === 'unrecognized_keys' ? `unknown key ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}` : issue.path.length > 0 ? issue.path.map(String).join('.') : 'file';
  return `--tuning ${path}: ${where}: ${issue.message}`;
}

export const storeCommand: Command = {
  spec: storeSpec,
  async run(ctx) {
    const v = ctx.parsed.values;
    const placement = required<string>(ctx.parsed, storeSpec, 'placement');
    const dataDir = resolve(required<string>(ctx.parsed, storeSpec, 'data-dir'));
    const sec = serverSecurity(v);
    const storeSec = storeSecurity(v, sec);
    const profile = v['profile'] as ProfileName;
    // Loaded on demand: only this command needs the store (and SQLite); ctl commands start faster without it.
    // The types above are imported type-only, so a change to StoreOptions still fails tsc here.
    const { startStore, storeConfigOverridesSchema, resolveConfig, StoreStartError } = await import('@flotilla/store');
    let tuning: StoreTuning | undefined;
    if (v['tuning'] !== undefined) {
      const t = readTuning(resolve(v['tuning'] as string), storeConfigOverridesSchema);
      if (typeof t === 'string') {
        ctx.io.stderr.write(`flotilla store: ${t}\n`);
        return EXIT.usage;
      }
      try {
        // Rules across keys (electionTicks > heartbeatTicks, split below max size) against the profile.
        resolveConfig(profile, t);
      } catch (err) {
        ctx.io.stderr.write(`flotilla store: --tuning ${v['tuning'] as string}: ${(err as Error).message.replace(/^store config: /, '')}\n`);
        return EXIT.usage;
      }
      tuning = t;
    }
    const opts: StoreOptions = {
      dataDir,
      listen: v['listen'] as string,
      placement,
      profile,
      logger: ctx.logger,
      // The transport's own lines (refused handshakes, dial failures) go to the same log.
      transportLogger: ctx.logger,
      ...(v['raftListen'] ? { raftListen: v['raftListen'] as string } : {}),
      ...(v['advertise'] ? { advertise: v['advertise'] as string } : {}),
      ...(v['advertiseRaft'] ? { advertiseRaft: v['advertiseRaft'] as string } : {}),
      ...(storeSec.clusterSecret ? { clusterSecret: storeSec.clusterSecret } : {}),
      ...(storeSec.tlsClientAuth ? { tlsClientAuth: true } : {}),
      ...(sec.token ? { clientToken: sec.token } : {}),
      ...(sec.tls ? { tls: sec.tls } : {}),
      enableAdminApi: v['enableAdminApi'] === true,
      ...(tuning ? { config: tuning } : {}),
    };
    let handle: StoreHandle;
    try {
      handle = await startStore(opts);
    } catch (err) {
      // A damaged database refused on open, a disk too full to recover: a message and EXIT.storage / EXIT.diskFull.
      const storageExit = reportStorageFailure(err, ctx);
      if (storageExit !== undefined) return storageExit;
      // A refusal of this configuration or data dir (docs/operations.md): retrying cannot help, so the usage status.
      if (!(err instanceof StoreStartError)) throw err;
      ctx.io.stderr.write(`flotilla store: ${err.message}\n`);
      return EXIT.usage;
    }
    ctx.io.stdout.write(JSON.stringify({ service: 'store', storeId: handle.storeId, address: handle.address, raftAddress: handle.raftAddress, statusUrl: `${sec.tls ? 'https' : 'http'}://${handle.address}/status`, pid: process.pid, dataDir }) + '\n');
    // Until a signal, or a storage failure that stops the store (exit 3 or 4 with its message).
    return serveUntilStopped(ctx, handle);
  },
};
