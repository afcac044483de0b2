// format: stable, etcd-like text for the values the interaction tests print.
// The harness owns these (rather than using src/util's describe*) so that
// the expected outputs in testdata/ change only when raft's behaviour does.
import {
  ConfChangeTransition,
  ConfChangeType,
  EntryType,
  MessageType,
  entryConfChange,
} from './core';
import type { ConfChangeSingle, ConfChangeV2, ConfState, Entry, HardState, Message, Ready, Snapshot } from './core';

const messageTypeNames = new Map<number, string>(Object.entries(MessageType).map(([k, v]) => [v, k]));
const entryTypeNames = new Map<number, string>(Object.entries(EntryType).map(([k, v]) => [v, k]));

const textDecoder = new TextDecoder();
const textEncoder = new TextEncoder();

/** bytes encodes a test string as entry/context data. */
export function bytes(s: string): Uint8Array {
  return textEncoder.encode(s);
}

/** text decodes entry data written by the tests back to a string. */
export function text(b: Uint8Array | undefined): string {
  return b === undefined ? '' : textDecoder.decode(b);
}

export function messageTypeName(t: number): string {
  return messageTypeNames.get(t) ?? `MsgType(${t})`;
}

/** describeConfChanges prints changes as etcd does: v2 (voter), l3 (learner), r4 (remove). */
export function describeConfChanges(changes: ConfChangeSingle[]): string {
  return changes
    .map((c) => {
      switch (c.changeType) {
        case ConfChangeType.AddNode:
          return `v${c.nodeId}`;
        case ConfChangeType.AddLearnerNode:
          return `l${c.nodeId}`;
        case ConfChangeType.RemoveNode:
          return `r${c.nodeId}`;
        default:
          return `?${c.nodeId}`;
      }
    })
    .join(' ');
}

const transitionNames = new Map<number, string>(Object.entries(ConfChangeTransition).map(([k, v]) => [v, k]));

function describeConfChangeV2(cc: ConfChangeV2): string {
  const body = describeConfChanges(cc.changes);
  const tr = cc.transition === ConfChangeTransition.Auto ? '' : ` transition=${transitionNames.get(cc.transition)}`;
  return body === '' ? `(leave joint)${tr}` : body + tr;
}

export function describeEntry(e: Entry): string {
  const typ = entryTypeNames.get(e.entryType) ?? `EntryType(${e.entryType})`;
  let data: string;
  try {
    const cc = entryConfChange(e);
    if (cc === undefined && e.entryType !== EntryType.EntryNormal) {
      data = '(empty)';
    } else if (cc !== undefined) {
      data = 'changes' in cc ? describeConfChangeV2(cc) : describeConfChanges([cc]);
    } else {
      data = JSON.stringify(text(e.data));
    }
  } catch (err) {
    data = `(undecodable: ${(err as Error).name})`;
  }
  return `${e.term}/${e.index} ${typ} ${data}`;
}

function ids(xs: readonly number[] | undefined): string {
  return `[${[...(xs ?? [])].sort((a, b) => a - b).join(' ')}]`;
}

export function describeConfState(cs: ConfState): string {
  let s = `Voters:${ids(cs.voters)}`;
  if (cs.votersOutgoing.length > 0) s += ` VotersOutgoing:${ids(cs.votersOutgoing)}`;
  s += ` Learners:${ids(cs.learners)}`;
  if (cs.learnersNext.length > 0) s += ` LearnersNext:${ids(cs.learnersNext)}`;
  if (cs.autoLeave) s += ' AutoLeave:true';
  return s;
}

export function describeSnapshot(s: Snapshot): string {
  return `Index:${s.metadata.index} Term:${s.metadata.term} ConfState:${describeConfState(s.metadata.confState)}`;
}

export function describeHardState(hs: HardState): string {
  return `HardState Term:${hs.term} Vote:${hs.vote} Commit:${hs.commit}`;
}

export function describeMessage(m: Message): string {
  let s = `${m.from}->${m.to} ${messageTypeName(m.msgType)} Term:${m.term} Log:${m.logTerm}/${m.index}`;
  if (m.reject) s += ` Rejected (Hint: ${m.rejectHint})`;
  if (m.commit !== 0) s += ` Commit:${m.commit}`;
  if (m.requestSnapshot !== 0) s += ` RequestSnapshot:${m.requestSnapshot}`;
  if (m.entries.length > 0) s += ` Entries:[${m.entries.map(describeEntry).join(', ')}]`;
  if (m.snapshot !== undefined && m.snapshot.metadata.index !== 0) s += ` Snapshot: ${describeSnapshot(m.snapshot)}`;
  if (m.context !== undefined && m.context.length > 0) s += ` Context:${JSON.stringify(text(m.context))}`;
  return s;
}

/** describeReady prints a Ready in etcd's DescribeReady layout, one item per line. */
export function describeReady(rd: Ready): string[] {
  const out: string[] = [];
  out.push(`Ready MustSync=${rd.mustSync}:`);
  if (rd.softState !== undefined) out.push(`Lead:${rd.softState.leaderId} State:${rd.softState.raftState}`);
  if (rd.hardState !== undefined) out.push(describeHardState(rd.hardState));
  if (rd.readStates.length > 0) {
    out.push('ReadStates:');
    for (const rs of rd.readStates) out.push(`  Index:${rs.index} RequestCtx:${JSON.stringify(text(rs.requestCtx))}`);
  }
  if (rd.entries.length > 0) {
    out.push('Entries:');
    for (const e of rd.entries) out.push(describeEntry(e));
  }
  if (rd.snapshot !== undefined && rd.snapshot.metadata.index !== 0) out.push(`Snapshot ${describeSnapshot(rd.snapshot)}`);
  if (rd.committedEntries.length > 0) {
    out.push('CommittedEntries:');
    for (const e of rd.committedEntries) out.push(describeEntry(e));
  }
  if (rd.messages.length > 0) {
    out.push('Messages:');
    for (const m of rd.messages) out.push(describeMessage(m));
  }
  if (rd.persistedMessages.length > 0) {
    out.push('PersistedMessages:');
    for (const m of rd.persistedMessages) out.push(describeMessage(m));
  }
  return out;
}
