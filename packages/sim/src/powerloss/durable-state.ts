// What a store's data directory holds after a power loss, read offline
// from a copy (so the experiment's files stay as the crash left them):
// per Region, the KV engine's durable apply state beside the raft log's
// durable state. This is where the power-loss run checks the invariant the
// architecture states: the raft log is never purged past what the KV engine
// has durably applied (log truncated index <= KV applied index).
import { copyFileSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { LogEngine } from '@flotilla/log-engine';
import { KvEngineStateMachine } from '@flotilla/store';

/** RegionDurability is one Region's durable state in both engines. */
export interface RegionDurability {
  regionId: number;
  /** kvApplied: the KV engine's durable applied index. */
  kvApplied: number;
  /** log: the log engine's durable state of the Region (undefined: the log has no such Region). */
  log: { truncatedIndex: number; commit: number; lastIndex: number } | undefined;
}

/** DurableReport is the check of one crash point. */
export interface DurableReport {
  regions: RegionDurability[];
  /** violations: broken invariants (the log compacted past the durable apply, a database missing). */
  violations: string[];
  /** kvBehindLog: some Region's durable KV applied index is below its durable log commit (the restart replays entries). */
  kvBehindLog: boolean;
  /** minSlack: the least (KV applied - log truncated index) over the Regions in both engines; >= 0 by the invariant. */
  minSlack: number | undefined;
}

const DATABASE_FILES = ['raft.db', 'raft.db-wal', 'kv.db', 'kv.db-wal'];

/** inspectDurableState copies dataDir's databases into scratchDir, opens them and checks them (scratchDir is removed after). */
export async function inspectDurableState(dataDir: string, scratchDir: string): Promise<DurableReport> {
  const report: DurableReport = { regions: [], violations: [], kvBehindLog: false, minSlack: undefined };
  const hasLog = existsSync(join(dataDir, 'raft.db'));
  const hasKv = existsSync(join(dataDir, 'kv.db'));
  if (!hasLog || !hasKv) {
    if (hasLog !== hasKv) report.violations.push(`only ${hasLog ? 'raft.db' : 'kv.db'} survived: the other database's name was never made durable`);
    return report;
  }
  rmSync(scratchDir, { recursive: true, force: true });
  mkdirSync(scratchDir, { recursive: true });
  for (const f of DATABASE_FILES) if (existsSync(join(dataDir, f))) copyFileSync(join(dataDir, f), join(scratchDir, f));
  const log = LogEngine.open({ path: join(scratchDir, 'raft.db') });
  try {
    const sm = new KvEngineStateMachine(join(scratchDir, 'kv.db'), (regionId, index) => log.term(regionId, index));
    try {
      const inKv = new Set<number>();
      for (const r of sm.engine.loadRegionStates()) {
        inKv.add(r.regionId);
        if (r.regionState.state === 'tombstone' || r.applyState === undefined) continue;
        const s = log.hasRegion(r.regionId) ? log.raftState(r.regionId) : undefined;
        report.regions.push({
          regionId: r.regionId,
          kvApplied: r.applyState.appliedIndex,
          log: s ? { truncatedIndex: s.truncatedIndex, commit: s.hardState.commit, lastIndex: s.lastIndex } : undefined,
        });
      }
      for (const id of log.regionIds()) {
        const s = log.raftState(id);
        // An uninitialized peer (created by a message, no snapshot yet) has raft state but no log; an initialized one starts at RAFT_INIT_LOG_INDEX (5) or a snapshot.
        if (!inKv.has(id) && Math.max(s.truncatedIndex, s.lastIndex) >= 5) {
          report.violations.push(`region ${id}: the raft log holds it (truncated ${s.truncatedIndex}, last ${s.lastIndex}, commit ${s.hardState.commit}) but the KV engine lost it: the store restarts without this replica`);
        }
      }
    } finally {
      sm.close();
    }
  } finally {
    await log.close();
    rmSync(scratchDir, { recursive: true, force: true });
  }
  judge(report);
  return report;
}

/** judge fills in the verdicts of a report from its Regions. */
function judge(report: DurableReport): void {
  for (const r of report.regions) {
    if (!r.log) continue; // the log lost the Region: recovery restarts its log at the applied index (ensureLogMatchesApply)
    const slack = r.kvApplied - r.log.truncatedIndex;
    report.minSlack = report.minSlack === undefined ? slack : Math.min(report.minSlack, slack);
    if (slack < 0) {
      report.violations.push(`region ${r.regionId}: the raft log is compacted to ${r.log.truncatedIndex}, past the KV engine's durable applied index ${r.kvApplied} (entries ${r.kvApplied + 1}..${r.log.truncatedIndex} are gone from both)`);
    }
    if (r.kvApplied < Math.min(r.log.commit, r.log.lastIndex)) report.kvBehindLog = true;
  }
}
