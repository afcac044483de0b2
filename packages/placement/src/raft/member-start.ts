import type { LogEngine } from '@flotilla/log-engine';
import { type Logger } from '@flotilla/proto';
import { PlacementClient } from '../client';
import { PlacementError } from '../errors';
import type { MemberInfo } from '../types';
import type { PlacementFsm } from './fsm';
import { readIdentity, writeIdentity, type MemberIdentity } from './identity';
import { encodeMemberContext, initialMemberRecords, parseInitialCluster } from './members';
import { PLACEMENT_GROUP_ID, logIsBehindFsm, markSnapshotInLog, writeInitialLog } from './node';

/** StartSpec is what a member needs to know who it is on its first start. */
export interface StartSpec {
  dataDir: string;
  name: string;
  /** address: where this member serves (its --initial-cluster entry, or its bound --listen address). */
  address: string;
  initialCluster?: string;
  join?: string[];
  clusterToken: string;
  token?: string;
  tls?: { caPath?: string };
  logger: Logger;
}

/** StartError: this data directory cannot start as asked; the message says why and what to do. */
export class MemberStartError extends Error {}

/**
 * establishIdentity finds out which member this data directory is: from
 * member.json after the first start; otherwise as an initial member (its
 * --initial-cluster entry; the initial log is written here) or as a new
 * member joining a running group (--join: it adds itself through the
 * leader). Returns the identity and, after a join, the members to dial.
 */
export async function establishIdentity(spec: StartSpec, engine: LogEngine, fsm: PlacementFsm): Promise<{ ident: MemberIdentity; seeds: MemberInfo[] }> {
  checkLogAgainstState(spec, engine, fsm);
  const existing = readIdentity(spec.dataDir);
  if (existing) {
    if (existing.name !== spec.name) throw new MemberStartError(`${spec.dataDir} belongs to placement member ${existing.name}, not ${spec.name}; pass --name ${existing.name} or use another --data-dir`);
    if (existing.clusterToken !== spec.clusterToken) throw new MemberStartError(`${spec.dataDir} belongs to the placement group with token ${JSON.stringify(existing.clusterToken)}, not ${JSON.stringify(spec.clusterToken)} (--initial-cluster-token)`);
    if (!existing.joined && engine.lastIndex(PLACEMENT_GROUP_ID) === 0) writeInitial(spec, engine, fsm); // a crash between member.json and the first log write
    return { ident: existing, seeds: [] };
  }
  if (engine.lastIndex(PLACEMENT_GROUP_ID) > 0) throw new MemberStartError(`${spec.dataDir} holds a placement raft log but no member.json; restore member.json, or remove this member and add it again with a fresh --data-dir`);
  if (spec.join && spec.join.length > 0) return joinGroup(spec);
  const self = writeInitial(spec, engine, fsm);
  const ident: MemberIdentity = { version: 1, name: spec.name, id: self, clusterToken: spec.clusterToken, joined: false };
  writeIdentity(spec.dataDir, ident);
  return { ident, seeds: [] };
}

/** writeInitial writes the initial members' log (etcd's bootstrap) and returns this member's ID. */
function writeInitial(spec: StartSpec, engine: LogEngine, fsm: PlacementFsm): number {
  let records;
  try {
    records = initialMemberRecords(parseInitialCluster(spec.initialCluster ?? `${spec.name}=${spec.address}`));
  } catch (err) {
    throw new MemberStartError((err as Error).message);
  }
  const self = records.find((r) => r.name === spec.name);
  if (!self) throw new MemberStartError(`--name ${spec.name} is not one of --initial-cluster's members (${records.map((r) => r.name).join(', ')})`);
  const legacy = fsm.clusterId !== 0;
  if (legacy && records.length > 1) {
    throw new MemberStartError(`${spec.dataDir} holds a placement database from before replication (cluster ${fsm.clusterId}); start it alone (no --initial-cluster), then add members with --join`);
  }
  writeInitialLog(engine, records.map((r) => ({ id: r.id, context: encodeMemberContext(r) })));
  spec.logger.info({ members: records.map((r) => `${r.name}=${r.address}`), self: self.id, upgradedDatabase: legacy }, 'placement raft log initialized');
  return self.id;
}

/**
 * checkLogAgainstState refuses a state machine that has applied entries
 * its log no longer has (the raft log was lost), and repairs a crash
 * between a snapshot reaching the state machine and the log recording it.
 */
function checkLogAgainstState(spec: StartSpec, engine: LogEngine, fsm: PlacementFsm): void {
  if (!logIsBehindFsm(engine, fsm)) return;
  const raft = engine.raftState(PLACEMENT_GROUP_ID);
  if (raft.lastIndex === 0 && raft.hardState.term === 0) {
    throw new MemberStartError(`${spec.dataDir}: placement.db has applied ${fsm.store.appliedIndex} raft entries but raft.db is empty (lost?); remove this member and add it again with a fresh --data-dir`);
  }
  markSnapshotInLog(engine, fsm, fsm.store.confState());
  spec.logger.warn({ applied: fsm.store.appliedIndex }, 'placement raft log was behind its state (crash while applying a snapshot); repaired');
}

/** joinGroup adds this member to a running group through any member (the leader answers), retrying until it does. */
async function joinGroup(spec: StartSpec): Promise<{ ident: MemberIdentity; seeds: MemberInfo[] }> {
  const client = new PlacementClient({ addresses: spec.join!, requestTimeoutMs: 10_000, ...(spec.token ? { token: spec.token } : {}), ...(spec.tls ? { tls: spec.tls } : {}) });
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        const r = await client.call('addMember', { name: spec.name, address: spec.address });
        const ident: MemberIdentity = { version: 1, name: spec.name, id: r.member.id, clusterToken: spec.clusterToken, joined: true };
        writeIdentity(spec.dataDir, ident);
        spec.logger.info({ id: r.member.id, role: r.member.role, members: r.members.map((m) => m.name) }, 'joined the placement group');
        return { ident, seeds: r.members };
      } catch (err) {
        if (err instanceof PlacementError && !err.retryable && err.code !== 'Unavailable') throw new MemberStartError(`--join: ${err.message}`);
        if (attempt % 5 === 1) spec.logger.warn({ join: spec.join, attempt, err: (err as Error).message }, 'waiting to join the placement group');
        await new Promise((r) => setTimeout(r, Math.min(2000, 100 * attempt)));
      }
    }
  } finally {
    client.close();
  }
}
