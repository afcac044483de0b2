// util: entry sizing, size limiting, the seeded random source and the stable
// text descriptions of raft data used by tests' expected output.
import { decodeConfChange, decodeConfChangeV2 } from './confchange-codec';
import { ConfChangeTransition, ConfChangeType, EntryType, MessageType } from './types';
import type { ConfChangeSingle, ConfState, Entry, HardState, Message, Snapshot } from './types';

/**
 * ENTRY_OVERHEAD_BYTES is added to every entry's payload when limiting
 * message sizes, so that a run of empty entries is still bounded.
 */
export const ENTRY_OVERHEAD_BYTES = 16;

/** entrySize is the size an entry counts for against maxSizePerMsg and friends. */
export function entrySize(e: Entry): number {
  return e.data.length + (e.context === undefined ? 0 : e.context.length) + ENTRY_OVERHEAD_BYTES;
}

/** payloadSize is the size an entry counts for against maxUncommittedEntriesSize (data only, like etcd). */
export function payloadSize(e: Entry): number {
  return e.data.length;
}

/**
 * limitSize returns the longest prefix of ents whose total entrySize is at
 * most maxSize, but always at least one entry. It returns ents itself (no
 * copy) when nothing is cut.
 */
export function limitSize(ents: Entry[], maxSize: number | undefined): Entry[] {
  if (ents.length <= 1 || maxSize === undefined || maxSize === Infinity) return ents;
  let size = entrySize(ents[0]!);
  let i = 1;
  for (; i < ents.length; i++) {
    size += entrySize(ents[i]!);
    if (size > maxSize) break;
  }
  return i === ents.length ? ents : ents.slice(0, i);
}

/**
 * newSeededRandom returns a deterministic source of numbers in [0,1)
 * (mulberry32). Raft takes randomness only through Config.random so that a
 * seed replays a run exactly.
 */
export function newSeededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const messageTypeNames: string[] = [];
for (const [name, v] of Object.entries(MessageType)) messageTypeNames[v] = name;
const entryTypeNames: string[] = [];
for (const [name, v] of Object.entries(EntryType)) entryTypeNames[v] = name;

/** messageTypeName returns e.g. "MsgApp". */
export function messageTypeName(t: MessageType): string {
  return messageTypeNames[t] ?? `MsgUnknown(${t})`;
}

/** entryTypeName returns e.g. "EntryNormal". */
export function entryTypeName(t: EntryType): string {
  return entryTypeNames[t] ?? `EntryUnknown(${t})`;
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

/** describeData quotes bytes as a JSON string of their UTF-8 text. */
export function describeData(data: Uint8Array | undefined): string {
  return JSON.stringify(data ? utf8.decode(data) : '');
}

/** describeConfChanges renders changes as etcd does: "v2 l3 r4". */
export function describeConfChanges(changes: ConfChangeSingle[]): string {
  const parts: string[] = [];
  for (const c of changes) {
    const p = c.changeType === ConfChangeType.AddNode ? 'v' : c.changeType === ConfChangeType.RemoveNode ? 'r' : 'l';
    parts.push(`${p}${c.nodeId}`);
  }
  return parts.join(' ');
}

const transitionNames = ['', ' (implicit)', ' (explicit)'];

function describeEntryData(e: Entry): string {
  try {
    if (e.entryType === EntryType.EntryConfChange) {
      const cc = decodeConfChange(e.data);
      return describeConfChanges([cc]);
    }
    if (e.entryType === EntryType.EntryConfChangeV2) {
      const cc = decodeConfChangeV2(e.data);
      const s = describeConfChanges(cc.changes);
      const tr = transitionNames[cc.transition] ?? '';
      return s === '' && cc.transition === ConfChangeTransition.Auto ? '(leave joint)' : s + tr;
    }
  } catch {
    return `<undecodable ${e.data.length} bytes>`;
  }
  return describeData(e.data);
}

/** describeEntry renders "term/index EntryType data", e.g. `1/3 EntryNormal "foo"`. */
export function describeEntry(e: Entry): string {
  return `${e.term}/${e.index} ${entryTypeName(e.entryType)} ${describeEntryData(e)}`;
}

/** describeEntries renders one entry per line. */
export function describeEntries(ents: Entry[]): string {
  return ents.map(describeEntry).join('\n');
}

/** describeConfState renders e.g. "Voters:[1 2 3] VotersOutgoing:[] Learners:[] LearnersNext:[] AutoLeave:false". */
export function describeConfState(cs: ConfState): string {
  const l = (a: number[]): string => `[${[...a].sort((x, y) => x - y).join(' ')}]`;
  return `Voters:${l(cs.voters)} VotersOutgoing:${l(cs.votersOutgoing)} Learners:${l(cs.learners)} LearnersNext:${l(cs.learnersNext)} AutoLeave:${cs.autoLeave}`;
}

/** describeSnapshot renders the snapshot metadata. */
export function describeSnapshot(s: Snapshot): string {
  const m = s.metadata;
  return `Index:${m.index} Term:${m.term} ConfState:${describeConfState(m.confState)}`;
}

/** describeHardState renders e.g. "Term:1 Vote:1 Commit:3". */
export function describeHardState(hs: HardState): string {
  return `Term:${hs.term} Vote:${hs.vote} Commit:${hs.commit}`;
}

/**
 * describeMessage renders a message in etcd's DescribeMessage format, e.g.
 * `1->2 MsgApp Term:1 Log:1/3 Commit:3 Entries:[1/4 EntryNormal "foo"]`.
 */
export function describeMessage(m: Message): string {
  let s = `${m.from}->${m.to} ${messageTypeName(m.msgType)} Term:${m.term} Log:${m.logTerm}/${m.index}`;
  if (m.reject) s += ` Rejected (Hint: ${m.rejectHint})`;
  if (m.commit !== 0) s += ` Commit:${m.commit}`;
  if (m.entries.length > 0) s += ` Entries:[${m.entries.map(describeEntry).join(', ')}]`;
  if (m.context !== undefined && m.context.length > 0) s += ` Context:${describeData(m.context)}`;
  if (m.snapshot !== undefined) s += ` Snapshot: ${describeSnapshot(m.snapshot)}`;
  return s;
}
