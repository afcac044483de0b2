import { decode, encode } from '@flotilla/proto';
import type { ConfState } from '@flotilla/raft-core';
import { assert } from '../errors';

/**
 * MemberRecord is one placement member as the replicated state knows it:
 * its Raft ID, its name (`--name`), and the address it serves both the
 * client API (/ws, HTTP) and peer traffic (/raft) on. A removed member's
 * record stays (removed: true), so its ID is never handed out again.
 */
export interface MemberRecord {
  id: number;
  name: string;
  address: string;
  removed: boolean;
}

/** MemberRole is what `flotilla placement members` shows. */
export type MemberRole = 'leader' | 'voter' | 'learner' | 'removed';

/** InitialMember is one `name=host:port` of `--initial-cluster`. */
export interface InitialMember {
  name: string;
  address: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** checkMemberName: names are what operators type; keep them to a safe alphabet. */
export function checkMemberName(name: string): string | null {
  return NAME.test(name) ? null : `member name ${JSON.stringify(name)} must be 1-64 letters, digits, '.', '_' or '-' (starting with a letter or digit)`;
}

/**
 * parseInitialCluster reads `p1=host:port,p2=host:port,...` (etcd's and PD's
 * --initial-cluster; the address is the member's --listen address, which
 * serves clients and peers on different WebSocket paths). Names and
 * addresses must be unique. Throws with the entry at fault.
 */
export function parseInitialCluster(text: string): InitialMember[] {
  const out: InitialMember[] = [];
  for (const part of text.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new Error(`--initial-cluster: ${JSON.stringify(part)} is not NAME=HOST:PORT`);
    const name = part.slice(0, eq);
    const address = part.slice(eq + 1).replace(/^(?:https?|wss?):\/\//, '').replace(/\/+$/, '');
    const bad = checkMemberName(name);
    if (bad) throw new Error(`--initial-cluster: ${bad}`);
    if (!/^\[?[^\]\s]+\]?:\d{1,5}$/.test(address)) throw new Error(`--initial-cluster: ${JSON.stringify(part)}: ${JSON.stringify(address)} is not HOST:PORT`);
    if (out.some((m) => m.name === name)) throw new Error(`--initial-cluster: member ${name} is named twice`);
    if (out.some((m) => m.address === address)) throw new Error(`--initial-cluster: address ${address} is given twice`);
    out.push({ name, address });
  }
  if (out.length === 0) throw new Error('--initial-cluster: names no member');
  if (out.length > 7) throw new Error(`--initial-cluster: ${out.length} members; a placement group has at most 7 (3 or 5 is usual)`);
  return out;
}

/**
 * initialMemberRecords gives the initial members their Raft IDs: 1..n in
 * name order, so every member computes the same IDs whatever order its
 * --initial-cluster lists them in.
 */
export function initialMemberRecords(members: InitialMember[]): MemberRecord[] {
  return [...members].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map((m, i) => ({ id: i + 1, name: m.name, address: m.address, removed: false }));
}

/** encodeMemberContext / decodeMemberContext: the member a conf change adds travels in its context (as etcd's does). */
export function encodeMemberContext(m: { name: string; address: string }): Uint8Array {
  return encode({ name: m.name, address: m.address });
}
export function decodeMemberContext(bytes: Uint8Array | undefined): { name: string; address: string } {
  const v = bytes && bytes.length > 0 ? (decode(bytes) as { name?: unknown; address?: unknown }) : {};
  assert(typeof v.name === 'string' && typeof v.address === 'string', 'conf change without a member context');
  return { name: v.name, address: v.address };
}

/** roleOf says what a member is in the current configuration. */
export function roleOf(m: MemberRecord, conf: ConfState, leaderId: number): MemberRole {
  if (m.removed) return 'removed';
  if (m.id === leaderId) return 'leader';
  if (conf.voters.includes(m.id) || conf.votersOutgoing.includes(m.id)) return 'voter';
  if (conf.learners.includes(m.id) || conf.learnersNext.includes(m.id)) return 'learner';
  return 'removed';
}
