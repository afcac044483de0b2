// network: a tiny in-test cluster of Raft state machines (etcd's
// raft_test.go network), with synchronous "persistence" into each peer's
// MemoryStorage after every step so that after-append messages may flow.
import type { Config } from '../../src/config';
import { ProposalDroppedError } from '../../src/errors';
import { MemoryStorage } from '../../src/memory-storage';
import { Raft, makeMessage } from '../../src/raft';
import { EntryType, MessageType } from '../../src/types';
import type { Entry, Message } from '../../src/types';
import { newSeededRandom } from '../../src/util';

export function newTestMemoryStorage(voters: number[], learners: number[] = []): MemoryStorage {
  return new MemoryStorage({ voters, learners });
}

export function newTestConfig(id: number, election: number, heartbeat: number, extra: Partial<Config> = {}): Config {
  return {
    id,
    electionTick: election,
    heartbeatTick: heartbeat,
    maxSizePerMsg: Number.MAX_SAFE_INTEGER,
    maxInflightMsgs: 256,
    random: newSeededRandom(id * 7919),
    ...extra,
  };
}

export function newTestRaft(id: number, election: number, heartbeat: number, storage: MemoryStorage, extra: Partial<Config> = {}): Raft {
  return new Raft(newTestConfig(id, election, heartbeat, extra), storage);
}

/** persist writes r's unstable snapshot, entries and hard state to its MemoryStorage, then acknowledges them. */
export function persist(r: Raft): void {
  const s = r.raftLog.storage as MemoryStorage;
  const snap = r.raftLog.unstable.snapshot;
  if (snap !== undefined) {
    s.applySnapshot(snap);
    r.onPersistSnap(snap.metadata.index);
  }
  const ents = r.raftLog.unstable.entries;
  if (ents.length > 0) {
    s.append(ents);
    const last = ents[ents.length - 1]!;
    r.onPersistEntries(last.index, last.term);
  }
  s.setHardState(r.hardState());
}

/** readMessages persists r and returns (and clears) all its outgoing messages. */
export function readMessages(r: Raft): Message[] {
  persist(r);
  return r.readMessages();
}

export function entry(index: number, term: number, data = ''): Entry {
  return { entryType: EntryType.EntryNormal, index, term, data: new TextEncoder().encode(data) };
}

export function msg(init: Partial<Message> & { msgType: MessageType }): Message {
  const m = makeMessage(init.msgType, init.to ?? 0);
  return Object.assign(m, init);
}

export function propose(r: Raft, data = 'somedata'): void {
  r.step(msg({ msgType: MessageType.MsgProp, from: r.id, entries: [entry(0, 0, data)] }));
}

/** BlackHole swallows every message (a peer that is down). */
export class BlackHole {
  readonly blackHole = true;
}

export type Peer = Raft | BlackHole;

/**
 * Network delivers messages between peers until quiescence, with drop and
 * ignore filters. Peers not supplied are created as fresh voters.
 */
export class Network {
  peers = new Map<number, Peer>();
  storage = new Map<number, MemoryStorage>();
  private dropm = new Map<string, number>();
  private ignorem = new Set<MessageType>();
  /** msgHook, if set, is called on every delivered message; returning false drops it. */
  msgHook: ((m: Message) => boolean) | undefined;
  private rand = newSeededRandom(42);

  constructor(peers: (Peer | undefined)[], configure: (c: Config) => void = () => {}) {
    const ids = peers.map((_, i) => i + 1);
    peers.forEach((p, i) => {
      const id = ids[i]!;
      if (p === undefined) {
        const s = newTestMemoryStorage(ids);
        this.storage.set(id, s);
        const cfg = newTestConfig(id, 10, 1);
        configure(cfg);
        this.peers.set(id, new Raft(cfg, s));
      } else {
        this.peers.set(id, p);
        if (p instanceof Raft) this.storage.set(id, p.raftLog.storage as MemoryStorage);
      }
    });
  }

  raft(id: number): Raft {
    const p = this.peers.get(id);
    if (!(p instanceof Raft)) throw new Error(`peer ${id} is not a Raft`);
    return p;
  }

  /** send delivers msgs and everything they cause, breadth first. */
  send(msgs: Message[]): void {
    const queue = [...msgs];
    let guard = 100_000;
    while (queue.length > 0) {
      if (guard-- === 0) throw new Error('network did not quiesce');
      const m = queue.shift()!;
      const p = this.peers.get(m.to);
      if (!(p instanceof Raft)) continue;
      try {
        p.step(m);
      } catch (e) {
        if (!(e instanceof ProposalDroppedError)) throw e;
      }
      queue.push(...this.filter(readMessages(p)));
    }
  }

  /** hup makes id campaign. */
  campaign(id: number): void {
    this.send([msg({ msgType: MessageType.MsgHup, from: id, to: id })]);
  }

  propose(id: number, data = 'somedata'): void {
    this.send([msg({ msgType: MessageType.MsgProp, from: id, to: id, entries: [entry(0, 0, data)] })]);
  }

  drop(from: number, to: number, perc: number): void {
    this.dropm.set(`${from}-${to}`, perc);
  }

  cut(a: number, b: number): void {
    this.drop(a, b, 2.0);
    this.drop(b, a, 2.0);
  }

  isolate(id: number): void {
    for (const other of this.peers.keys()) {
      if (other !== id) this.cut(id, other);
    }
  }

  ignore(t: MessageType): void {
    this.ignorem.add(t);
  }

  recover(): void {
    this.dropm.clear();
    this.ignorem.clear();
  }

  filter(msgs: Message[]): Message[] {
    const out: Message[] = [];
    for (const m of msgs) {
      if (this.ignorem.has(m.msgType)) continue;
      if (m.msgType === MessageType.MsgHup) throw new Error('unexpected MsgHup on the wire');
      const perc = this.dropm.get(`${m.from}-${m.to}`) ?? 0;
      if (perc > 0 && this.rand() < perc) continue;
      if (this.msgHook && !this.msgHook(m)) continue;
      out.push(m);
    }
    return out;
  }
}
