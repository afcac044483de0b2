import { StateRole, type Entry, type Ready } from '@flotilla/raft-core';
import type { LogBatch } from '@flotilla/log-engine';
import { assert, type StoreContext } from '../../context';
import type { Peer } from '../../raft/peer';
import { applyEntries } from '../command/apply';
import type { ApplyContext } from '../command/apply-context';
import { err } from '../command/command';
import { failPending } from '../command/propose';
import { regionHeartbeat } from '../pd';
import { onReadStates } from '../query';
import { sendRaft } from '../send';
import { applySnapshot } from './snapshot';
import { watchLeadershipLost } from '../../watch/hub';

/**
 * handleReadyBeforePersist takes what a Ready asks for before its log
 * write: role changes, an incoming snapshot, entries and hard state into
 * the round's log batch, the messages that may leave before persistence,
 * and read indexes.
 */
export function handleReadyBeforePersist(ctx: StoreContext, peer: Peer, rd: Ready, logBatch: LogBatch): void {
  if (rd.softState) onSoftState(ctx, peer, rd.softState);
  if (rd.snapshot && rd.snapshot.metadata.index > 0) applySnapshot(ctx, peer, rd, logBatch);
  if (rd.entries.length > 0) logBatch.append(peer.regionId, rd.entries);
  if (rd.hardState) {
    logBatch.setHardState(peer.regionId, rd.hardState);
    const commit = rd.hardState.commit;
    if (commit > peer.commitSeen) {
      if (peer.isLeader && peer.commitSeen > 0) ctx.metrics.entriesCommitted += commit - peer.commitSeen;
      peer.commitSeen = commit;
    }
  }
  for (const m of rd.messages) sendRaft(ctx, peer, m);
  if (rd.readStates.length > 0) onReadStates(ctx, peer, rd.readStates);
}

function onSoftState(ctx: StoreContext, peer: Peer, ss: NonNullable<Ready['softState']>): void {
  const wasLeader = peer.isLeader;
  peer.leaderId = ss.leaderId;
  peer.isLeader = ss.raftState === StateRole.Leader;
  if (wasLeader && !peer.isLeader) {
    failPending(peer, err.notLeader(peer.regionId, peer.leaderMeta()));
    watchLeadershipLost(ctx, peer);
  }
  if (!wasLeader && peer.isLeader) {
    peer.splitCheckDirty = true;
    peer.flow.restart(ctx.now());
    ctx.logger.info({ regionId: peer.regionId, peerId: peer.peerId, term: peer.raw.raft.term }, 'became leader');
    void regionHeartbeat(ctx, peer);
  }
  ctx.metrics.leaders = countLeaders(ctx.peers);
}

/** applyCommitted applies one peer's committed entries into the round's batch. */
export function applyCommitted(ctx: StoreContext, peer: Peer, entries: Entry[], apply: ApplyContext): void {
  if (!peer.initialized) return;
  // Invariant: applied <= commit. Raft hands out only committed entries.
  const last = entries[entries.length - 1];
  assert(last === undefined || last.index <= peer.raw.raft.raftLog.committed, `region ${peer.regionId}: applying ${last?.index} beyond commit ${peer.raw.raft.raftLog.committed}`);
  applyEntries(peer, entries, apply);
  peer.splitCheckDirty = true;
  ctx.metrics.entriesApplied += entries.length;
}

export function countLeaders(peers: Map<number, Peer>): number {
  let n = 0;
  for (const p of peers.values()) if (p.isLeader) n++;
  return n;
}
