import { EntryType, decodeConfChangeEntry, type ConfChangeV2, type ConfState, type Entry } from '@flotilla/raft-core';
import { silentLogger, type Logger } from '@flotilla/proto';
import { assert } from '../errors';
import type { PlacementStorage } from '../storage';
import { decodeCommand, type PlacementCommand } from './command';
import { FsmStore } from './fsm-store';
import { decodeMemberContext } from './members';

/** ApplyOutcome tells the member what a round of applied entries changed beyond the tables. */
export interface ApplyOutcome {
  /** confChanged: the membership changed (the transport and roles need a look). */
  confChanged: boolean;
  /** clusterIdSet: the cluster ID became known in this round. */
  clusterIdSet: boolean;
}

/**
 * PlacementFsm is the placement Raft group's state machine: it applies
 * committed entries to this member's own SQLite database, every member
 * alike, in one transaction per round together with the applied index
 * (so a restart resumes exactly after the last applied entry). The leader
 * builds its in-memory cluster from these tables when it takes over.
 */
export class PlacementFsm {
  readonly store: FsmStore;
  /**
   * clusterWrites counts applied commands that change what a leader loads
   * into its PlacementCluster (IDs, stores, Regions, operators): a new
   * leader loading in slices checks that none was applied meanwhile.
   */
  clusterWrites = 0;

  constructor(
    readonly storage: PlacementStorage,
    private readonly logger: Logger = silentLogger,
  ) {
    this.store = new FsmStore(storage);
  }

  get clusterId(): number {
    return this.storage.readMetaNumber('cluster_id');
  }

  /**
   * applyEntries applies committed entries in order. Conf changes go
   * through applyConfChange (RawNode's) and the resulting ConfState is kept
   * with the applied index. Entries at or below the applied index (already
   * applied before a restart) are skipped.
   */
  applyEntries(entries: readonly Entry[], applyConfChange: (cc: ConfChangeV2) => ConfState): ApplyOutcome {
    const out: ApplyOutcome = { confChanged: false, clusterIdSet: false };
    if (entries.length === 0) return out;
    const applied = this.store.appliedIndex;
    const hadClusterId = this.clusterId !== 0;
    this.store.transaction(() => {
      let last: Entry | undefined;
      for (const e of entries) {
        if (e.index <= applied) continue;
        assert(last === undefined || e.index === last.index + 1, `applied entries not contiguous: ${last?.index} then ${e.index}`);
        if (e.entryType === EntryType.EntryNormal) {
          if (e.data.length > 0) this.applyCommand(decodeCommand(e.data));
        } else {
          this.applyMembership(decodeConfChangeEntry(e.entryType, e.data), applyConfChange);
          out.confChanged = true;
        }
        last = e;
      }
      if (last !== undefined) this.store.setApplied(last.index, last.term);
    });
    out.clusterIdSet = !hadClusterId && this.clusterId !== 0;
    return out;
  }

  private applyMembership(cc: ConfChangeV2, applyConfChange: (cc: ConfChangeV2) => ConfState): void {
    for (const ch of cc.changes) {
      const existing = this.store.members().find((m) => m.id === ch.nodeId);
      if (ch.changeType === 1) {
        // RemoveNode: the record stays, so the ID is never reused.
        if (existing) this.store.putMember({ ...existing, removed: true });
      } else {
        const { name, address } = decodeMemberContext(cc.context);
        this.store.putMember({ id: ch.nodeId, name, address, removed: false });
      }
    }
    this.store.setConfState(applyConfChange(cc));
  }

  private applyCommand(cmd: PlacementCommand): void {
    const s = this.storage;
    if (cmd.t === 'idHighWater' || cmd.t === 'maxReplicas' || cmd.t === 'bootstrap' || cmd.t === 'store' || cmd.t === 'batch') this.clusterWrites++;
    switch (cmd.t) {
      case 'init':
        // Only the first init counts: the cluster ID never changes.
        if (s.readMetaNumber('cluster_id') === 0) {
          s.putMeta('cluster_id', cmd.clusterId);
          s.saveMaxReplicas(cmd.maxReplicas);
          this.logger.info({ clusterId: cmd.clusterId }, 'placement cluster ID chosen');
        }
        return;
      case 'idHighWater':
        if (cmd.highWater > s.readMetaNumber('id_high_water')) s.saveIdHighWater(cmd.highWater);
        return;
      case 'tsoUpper':
        if (cmd.upperMs > s.readMetaNumber('tso_upper_ms')) s.saveTsoUpper(cmd.upperMs);
        return;
      case 'maxReplicas':
        s.saveMaxReplicas(cmd.maxReplicas);
        return;
      case 'bootstrap':
        if (s.readMetaNumber('bootstrapped') !== 1) s.saveBootstrap(cmd.store, cmd.region);
        return;
      case 'store':
        s.saveStore(cmd.store);
        return;
      case 'batch':
        s.writeBatch(new Map(cmd.regions), new Map(cmd.stats.map((i) => [i.region.id, i])), new Map(cmd.operators), cmd.statRows);
        return;
      case 'gcSafePoint':
        this.store.gc.raiseClusterSafePoint(BigInt(cmd.ts));
        return;
      case 'serviceSafePoint':
        this.store.gc.putService(cmd.serviceId, BigInt(cmd.ts), cmd.expireAtMs);
        return;
      case 'leaseGrant':
        this.store.leases.grant(cmd.id, cmd.ttlMs);
        return;
      case 'leaseAttach':
        this.store.leases.attach(cmd.id, cmd.key);
        return;
      case 'leaseAttachMany':
        for (const [id, key] of cmd.items) this.store.leases.attach(id, key);
        return;
      case 'leaseRevoke':
        this.store.leases.revoke(cmd.id);
        return;
      case 'leaseDrop':
        this.store.leases.drop(cmd.id);
        return;
      case 'memberAddress': {
        const m = this.store.members().find((x) => x.id === cmd.memberId);
        if (m && !m.removed) this.store.putMember({ ...m, address: cmd.address });
        return;
      }
    }
  }
}
