import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { DecodeError, decode, encode, silentLogger, type Logger } from '@flotilla/proto';
import { MessageType, type Message } from '@flotilla/raft-core';

/** PEER_PATH: where members accept each other's Raft traffic, on the same port as the client API. */
export const PEER_PATH = '/raft';

/**
 * REMOVED_CLOSE_CODE: a member closes a peer's connection with it when that
 * peer was removed from the group (etcd answers 410 Gone). A removed member
 * may never receive the entry that removes it; this is how it learns.
 */
export const REMOVED_CLOSE_CODE = 4410;

/** PeerFrame is one WebSocket frame between members: the sender, its group token and address, and raft messages. */
interface PeerFrame {
  from: number;
  group: string;
  address: string;
  msgs: Message[];
}

export interface PeerTransportOptions {
  selfId: number;
  /** selfAddress: where this member serves (peers learn it from every frame). */
  selfAddress: () => string;
  /** group: the cluster token; a frame from another group is refused (etcd's --initial-cluster-token). */
  group: string;
  token?: string;
  tls?: { caPath?: string; rejectUnauthorized?: boolean };
  logger?: Logger;
  onMessages: (msgs: Message[]) => void;
  onUnreachable: (id: number) => void;
  onSnapshotSent: (id: number, ok: boolean) => void;
  /** isRemoved: member id was removed from the group (its frames are refused with REMOVED_CLOSE_CODE). */
  isRemoved: (id: number) => boolean;
  /** onRemoved: a peer refused this member's frames because this member was removed from the group. */
  onRemoved: () => void;
  /** maxQueuedMessages bounds what waits for one peer's connection (default 4096); past it messages are dropped (raft resends). */
  maxQueuedMessages?: number;
  /** maxFrameBytes bounds one frame (default 512 MiB: a snapshot of a large routing table travels in one). */
  maxFrameBytes?: number;
}

/**
 * MemberPeerTransport is what a member needs from its transport: member
 * addresses, sending raft messages (one-way, may be dropped: raft resends),
 * and closing. PeerTransport is the WebSocket one; a simulation brings its own.
 */
export interface MemberPeerTransport {
  setAddress(id: number, address: string): void;
  addressOf(id: number): string | undefined;
  forget(id: number): void;
  send(msgs: readonly Message[]): void;
  /** accept serves an incoming peer WebSocket (only a socket transport has them). */
  accept(ws: WebSocket): void;
  close(): void;
}

/**
 * PeerLink is the outgoing WebSocket to one member. Messages queue (bounded)
 * while it connects and go out as one frame per event-loop turn. A broken
 * link drops what it held and reports the peer unreachable, and waits a
 * growing backoff before dialling again; raft resends whatever mattered.
 */
class PeerLink {
  private ws: WebSocket | null = null;
  private open = false;
  private queue: Message[] = [];
  private flushScheduled = false;
  private retryAtMs = 0;
  private failures = 0;

  constructor(
    readonly id: number,
    private address: string,
    private readonly t: PeerTransport,
  ) {}

  setAddress(address: string): void {
    if (address === this.address) return;
    this.address = address;
    this.ws?.terminate();
  }

  send(m: Message): void {
    if (!this.open && Date.now() < this.retryAtMs) return this.dropped([m]);
    if (this.queue.length >= this.t.maxQueued) return this.dropped([m]);
    this.queue.push(m);
    if (!this.ws) this.connect();
    else if (this.open && !this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private connect(): void {
    const url = `${this.t.opts.tls ? 'wss' : 'ws'}://${this.address}${PEER_PATH}`;
    const ws = new WebSocket(url, { ...this.t.dialOptions, maxPayload: this.t.maxFrameBytes, handshakeTimeout: 2000 });
    this.ws = ws;
    ws.on('open', () => {
      if (this.ws !== ws) return;
      this.open = true;
      this.failures = 0;
      this.flush();
    });
    ws.on('message', () => {}); // peers answer on their own links
    ws.on('error', (err) => this.t.logger.debug({ peer: this.id, url, err: err.message }, 'placement peer link error'));
    ws.on('close', (code: number) => {
      if (code === REMOVED_CLOSE_CODE) this.t.opts.onRemoved();
      if (this.ws !== ws) return;
      this.ws = null;
      this.open = false;
      this.failures++;
      this.retryAtMs = Date.now() + Math.min(2000, 50 * 2 ** Math.min(this.failures, 6));
      const lost = this.queue;
      this.queue = [];
      this.dropped(lost);
      this.t.opts.onUnreachable(this.id);
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const ws = this.ws;
    if (!ws || !this.open || this.queue.length === 0) return;
    const msgs = this.queue;
    this.queue = [];
    const frame: PeerFrame = { from: this.t.opts.selfId, group: this.t.opts.group, address: this.t.opts.selfAddress(), msgs };
    const snapshots = msgs.filter((m) => m.msgType === MessageType.MsgSnapshot);
    ws.send(encode(frame), (err) => {
      for (const s of snapshots) this.t.opts.onSnapshotSent(s.to, !err);
      if (err) this.t.opts.onUnreachable(this.id);
    });
  }

  private dropped(msgs: Message[]): void {
    for (const m of msgs) if (m.msgType === MessageType.MsgSnapshot) this.t.opts.onSnapshotSent(m.to, false);
  }

  close(): void {
    const ws = this.ws;
    this.ws = null;
    this.open = false;
    ws?.terminate();
  }
}

/**
 * PeerTransport carries the placement group's raft messages between
 * members over WebSocket (`/raft` on each member's listen address, with the
 * API token when one is set). It knows each member's address from the
 * replicated member list, from the join answer, and from the frames peers
 * send (each frame names its sender's address).
 */
export class PeerTransport implements MemberPeerTransport {
  readonly logger: Logger;
  readonly maxQueued: number;
  readonly maxFrameBytes: number;
  readonly dialOptions: WebSocket.ClientOptions;
  private readonly links = new Map<number, PeerLink>();
  private readonly addresses = new Map<number, string>();
  private readonly inbound = new Set<WebSocket>();
  private closed = false;

  constructor(readonly opts: PeerTransportOptions) {
    this.logger = opts.logger ?? silentLogger;
    this.maxQueued = opts.maxQueuedMessages ?? 4096;
    this.maxFrameBytes = opts.maxFrameBytes ?? 512 * 1024 * 1024;
    this.dialOptions = {
      ...(opts.token ? { headers: { authorization: `Bearer ${opts.token}` } } : {}),
      ...(opts.tls ? { rejectUnauthorized: opts.tls.rejectUnauthorized ?? true, ...(opts.tls.caPath ? { ca: readFileSync(opts.tls.caPath) } : {}) } : {}),
    };
  }

  /** setAddress records where member id serves (the replicated member list has the last word). */
  setAddress(id: number, address: string): void {
    if (id === this.opts.selfId) return;
    this.addresses.set(id, address);
    this.links.get(id)?.setAddress(address);
  }

  addressOf(id: number): string | undefined {
    return this.addresses.get(id);
  }

  /** forget drops a removed member's link. */
  forget(id: number): void {
    this.links.get(id)?.close();
    this.links.delete(id);
    this.addresses.delete(id);
  }

  send(msgs: readonly Message[]): void {
    if (this.closed) return;
    for (const m of msgs) {
      let link = this.links.get(m.to);
      if (!link) {
        const address = this.addresses.get(m.to);
        if (address === undefined) {
          this.opts.onUnreachable(m.to);
          if (m.msgType === MessageType.MsgSnapshot) this.opts.onSnapshotSent(m.to, false);
          continue;
        }
        link = new PeerLink(m.to, address, this);
        this.links.set(m.to, link);
      }
      link.send(m);
    }
  }

  /** accept serves one incoming peer connection (the server routes `/raft` upgrades here). */
  accept(ws: WebSocket): void {
    if (this.closed) return void ws.terminate();
    this.inbound.add(ws);
    ws.on('close', () => this.inbound.delete(ws));
    ws.on('error', (err) => this.logger.debug({ err: err.message }, 'placement peer connection error'));
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      let frame: PeerFrame;
      try {
        if (!isBinary) throw new DecodeError('text frame');
        frame = decode(data, this.maxFrameBytes) as PeerFrame;
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, 'undecodable placement peer frame; closing the connection');
        return void ws.terminate();
      }
      if (typeof frame !== 'object' || frame === null || !Array.isArray(frame.msgs) || typeof frame.from !== 'number') return void ws.terminate();
      if (frame.group !== this.opts.group) {
        this.logger.error({ from: frame.from, theirs: frame.group, ours: this.opts.group }, 'placement peer of another cluster (different --initial-cluster-token); refused');
        return void ws.close(1008, 'different placement cluster');
      }
      if (this.opts.isRemoved(frame.from)) return void ws.close(REMOVED_CLOSE_CODE, 'removed from the placement group');
      if (typeof frame.address === 'string' && !this.addresses.has(frame.from)) this.setAddress(frame.from, frame.address);
      // Peers are authenticated members, but a message meant for another member or without a type is still dropped.
      const msgs = frame.msgs.filter((m) => typeof m === 'object' && m !== null && m.to === this.opts.selfId && typeof m.msgType === 'number' && Array.isArray(m.entries));
      if (msgs.length > 0) this.opts.onMessages(msgs);
    });
  }

  close(): void {
    this.closed = true;
    for (const l of this.links.values()) l.close();
    this.links.clear();
    for (const ws of this.inbound) ws.terminate();
  }
}
