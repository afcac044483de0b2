// SimPlacementGroup: placement as a Raft group of 3 members inside the
// simulation. Each member is the production PlacementMember (its raft node,
// log engine, state machine, leadership, TSO) on real SQLite files in the
// run's directory; only its peer transport is the simulation's: raft
// messages between members travel over a LocalNetwork of their own (the
// stores' network class, with the same seeded drop / duplicate / reorder /
// delay faults and its own partitions), and every timer runs on the
// virtual clock. Members crash (PlacementMember.crash: no hand-over, the
// databases keep what they hold) and restart from the same directory.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PlacementMember, type MemberOptions, type MemberPeerTransport, type PeerTransportOptions, type PlacementCluster } from '@flotilla/placement/internal';
import type { Logger, RaftMessage } from '@flotilla/proto';
import { MessageType, type Message } from '@flotilla/raft-core';
import { LocalNetwork, mulberry32, type LocalFaults, type LocalTransport } from '@flotilla/transport';

/** MEMBER_COUNT: the placement group's size in the simulation. */
export const MEMBER_COUNT = 3;

/** MemberSlot is one member's place: its name, address and directory, and the live member while it is up. */
export interface MemberSlot {
  readonly index: number;
  readonly name: string;
  readonly address: string;
  readonly dir: string;
  member: PlacementMember | undefined;
  /** incarnation counts starts (each start draws its own raft seed). */
  incarnation: number;
  downSince: number;
  /** clockOffsetMs: this member's wall clock minus the virtual clock (a clock-jump fault sets it back). */
  clockOffsetMs: number;
}

const EMPTY = new Uint8Array(0);

/**
 * SimPeerTransport is a member's MemberPeerTransport over the placement
 * LocalNetwork: each raft message rides in a RaftMessage envelope (Region 1,
 * peers named by member ID) through the network's codec and faults.
 */
class SimPeerTransport implements MemberPeerTransport {
  private readonly addresses = new Map<number, string>();
  private readonly local: LocalTransport;

  constructor(
    network: LocalNetwork,
    private readonly opts: PeerTransportOptions,
  ) {
    this.local = network.transport(opts.selfId);
    void this.local.start();
    this.local.onMessages((msgs) => {
      const mine = msgs.map((m) => m.message).filter((m) => m.to === opts.selfId);
      if (mine.length > 0) opts.onMessages(mine);
    });
    this.local.onUnreachable((id) => opts.onUnreachable(id));
  }

  setAddress(id: number, address: string): void {
    if (id !== this.opts.selfId) this.addresses.set(id, address);
  }
  addressOf(id: number): string | undefined {
    return this.addresses.get(id);
  }
  forget(id: number): void {
    this.addresses.delete(id);
  }
  send(msgs: readonly Message[]): void {
    if (this.local.closed) return;
    for (const m of msgs) {
      const envelope: RaftMessage = {
        regionId: 1,
        fromPeer: { id: m.from, storeId: m.from, role: 'voter' },
        toPeer: { id: m.to, storeId: m.to, role: 'voter' },
        regionEpoch: { version: 0, confVer: 0 },
        message: m,
        startKey: EMPTY,
        endKey: EMPTY,
        isTombstone: false,
      };
      this.local.send(m.to, envelope);
      // A snapshot is reported sent once it leaves (as PeerTransport does when the frame is written).
      if (m.msgType === MessageType.MsgSnapshot) queueMicrotask(() => this.opts.onSnapshotSent(m.to, true));
    }
    this.local.flush();
  }
  accept(): void {
    throw new Error('SimPeerTransport takes no sockets');
  }
  close(): void {
    void this.local.close();
  }
}

export interface GroupOptions {
  dir: string;
  seed: number;
  cluster: Omit<MemberOptions, 'dataDir'>;
  logger: Logger;
}

/** SimPlacementGroup holds the three members, their network and what the fault plan does to them. */
export class SimPlacementGroup {
  readonly network: LocalNetwork;
  readonly slots: MemberSlot[] = [];
  private readonly initialCluster: string;

  constructor(private readonly opts: GroupOptions) {
    this.network = new LocalNetwork({ seed: opts.seed ^ 0x9e3779b1, mode: 'auto' });
    for (let i = 0; i < MEMBER_COUNT; i++) {
      const name = `p${i + 1}`;
      const dir = join(opts.dir, `placement-${name}`);
      mkdirSync(dir, { recursive: true });
      this.slots.push({ index: i, name, address: `${name}.sim:2379`, dir, member: undefined, incarnation: 0, downSince: 0, clockOffsetMs: 0 });
    }
    this.initialCluster = this.slots.map((s) => `${s.name}=${s.address}`).join(',');
  }

  /** startMember opens the member of slot i from its directory and starts it (start resolves once a leader is known). */
  startMember(i: number): Promise<void> {
    const slot = this.slots[i]!;
    if (slot.member) return Promise.resolve();
    slot.incarnation++;
    const member = new PlacementMember({
      ...this.opts.cluster,
      dataDir: slot.dir,
      name: slot.name,
      initialCluster: this.initialCluster,
      // The member's wall clock (TSO physical part, store liveness): the virtual clock, plus what clock jumps did.
      clock: () => Date.now() + slot.clockOffsetMs,
      random: mulberry32((this.opts.seed * 7919 + i * 104729 + slot.incarnation * 1299709) >>> 0),
      peerTransport: (o) => new SimPeerTransport(this.network, o),
      logger: this.opts.logger,
    });
    slot.member = member;
    return member.start(slot.address);
  }

  /** crashMember kills the member of slot i (no hand-over); its directory stays for the restart. */
  async crashMember(i: number): Promise<void> {
    const slot = this.slots[i]!;
    const m = slot.member;
    if (!m) return;
    slot.member = undefined;
    slot.downSince = Date.now();
    await m.crash();
  }

  up(): MemberSlot[] {
    return this.slots.filter((s) => s.member !== undefined);
  }

  down(): MemberSlot[] {
    return this.slots.filter((s) => s.member === undefined);
  }

  /** memberAt is the live member serving at address (undefined while it is down or unknown). */
  memberAt(address: string): PlacementMember | undefined {
    return this.slots.find((s) => s.address === address)?.member;
  }

  /** serving lists the members that hold a leadership now (two for a moment: a deposed leader that has not noticed). */
  serving(): PlacementMember[] {
    return this.up()
      .map((s) => s.member!)
      .filter((m) => m.isServing);
  }

  /** leader is the serving member of the highest term (the one a quorum follows), or undefined during an election. */
  leader(): PlacementMember | undefined {
    let best: PlacementMember | undefined;
    for (const m of this.serving()) if (!best || termOf(m) > termOf(best)) best = m;
    return best;
  }

  /** leaderCluster is the leader's in-memory cluster (its routing table, stores, operators). */
  leaderCluster(): PlacementCluster | undefined {
    return this.leader()?.leaderCluster;
  }

  setFaults(f: LocalFaults): void {
    this.network.setFaults(f);
  }

  /** flush / runSchedulers: what the placement server runs on timers, on every live member (followers do nothing). */
  flush(): void {
    for (const s of this.up()) s.member!.flush();
  }

  runSchedulers(): void {
    for (const s of this.up()) s.member!.runSchedulers();
  }

  async close(): Promise<void> {
    for (const s of this.slots) await this.crashMember(s.index);
    this.network.close();
  }
}

/** termOf reads a member's raft term from its health (the member's public face). */
export function termOf(m: PlacementMember): number {
  return Number(m.health()['term']);
}
