import { createHmac, randomBytes } from 'node:crypto';
import { WebSocket } from 'ws';
import { decode, encode, type Peer, type RaftMessage, type Region } from '@flotilla/proto';
import { encodeRaftFrame, PROTOCOL_VERSION } from '@flotilla/transport';

// forge.ts: the forged-heartbeat attack of issue #15, as a stranger would
// run it. A raw WebSocket client dials a store's raft port, reads the
// challenge (which names the cluster and the store), answers with a hello
// whose MAC it computed itself, and, pipelined right behind it, sends one
// raft frame holding a MsgHeartbeat at term 1000 for a Region's leader. A
// store that let the hello through would step the heartbeat into raft and
// its leader would become a follower at term 1000.
//
// The handshake is built here from its documented layout
// (packages/transport/src/handshake.ts), not with the transport's own
// helpers, so a bug there cannot hide itself: only the raft frame codec
// and the msgpack codec come from the packages.

/** DEVELOPMENT_SECRET is the constant a store used when no secret was configured: public, as it is in the source. */
export const DEVELOPMENT_SECRET = 'flotilla-dev-secret';
const MSG_HEARTBEAT = 8; // raft-core MessageType.MsgHeartbeat
const FORGED_TERM = 1000;
const INTRUDER_ID = 999_999;

export interface ForgeTarget {
  /** raftAddress is host:port of the store's raft listener (placement's raftAddress label). */
  raftAddress: string;
  region: Region;
  leader: Peer;
}

export interface ForgeOptions {
  /** mac: 'development-secret' signs the hello with the public constant; 'random' sends 32 random bytes. */
  mac: 'development-secret' | 'random';
  /** tls dials wss:// trusting ca; cert/key make the intruder present a certificate of its own. */
  tls?: { ca: Buffer; cert?: Buffer; key?: Buffer };
  timeoutMs?: number;
}

/** ForgeOutcome says how far the intruder got: challenged (TCP+TLS+upgrade done), welcomed (the hello passed), and how the socket ended. */
export interface ForgeOutcome {
  challenged: boolean;
  welcomed: boolean;
  closeCode?: number;
  closeReason?: string;
  error?: string;
}

function helloMac(secret: string, clusterId: string, from: number, to: number, serverNonce: Uint8Array, clientNonce: Uint8Array): Buffer {
  const text = JSON.stringify(['flotilla-transport', PROTOCOL_VERSION, 'client', clusterId, 'raft', from, to]);
  return createHmac('sha256', secret).update(Buffer.concat([Buffer.from(text, 'utf8'), serverNonce, clientNonce])).digest();
}

function forgedHeartbeat(t: ForgeTarget): Buffer {
  const m: RaftMessage = {
    regionId: t.region.id,
    fromPeer: { id: INTRUDER_ID, storeId: INTRUDER_ID, role: 'voter' },
    toPeer: t.leader,
    regionEpoch: t.region.epoch,
    message: { msgType: MSG_HEARTBEAT, to: t.leader.id, from: INTRUDER_ID, term: FORGED_TERM, logTerm: 0, index: 0, entries: [], commit: 0, commitTerm: 0, requestSnapshot: 0, reject: false, rejectHint: 0, priority: 0 },
    startKey: t.region.startKey,
    endKey: t.region.endKey,
    isTombstone: false,
  };
  return encodeRaftFrame([m]);
}

/** forgeHeartbeat runs the attack once and resolves with how far it got (bounded by timeoutMs). */
export function forgeHeartbeat(target: ForgeTarget, opts: ForgeOptions): Promise<ForgeOutcome> {
  return new Promise((resolve) => {
    const out: ForgeOutcome = { challenged: false, welcomed: false };
    const tls = opts.tls;
    const ws = new WebSocket(`${tls ? 'wss' : 'ws'}://${target.raftAddress}/flotilla/raft`, {
      perMessageDeflate: false,
      ...(tls ? { ca: tls.ca, ...(tls.cert ? { cert: tls.cert } : {}), ...(tls.key ? { key: tls.key } : {}) } : {}),
    });
    const timer = setTimeout(() => {
      out.error = `no close within ${opts.timeoutMs ?? 10_000} ms`;
      ws.terminate();
    }, opts.timeoutMs ?? 10_000);
    const clientNonce = randomBytes(32);
    ws.on('message', (data: Buffer) => {
      // Once welcomed, the store treats the intruder as a peer and sends it raft frames: not handshake frames, ignored.
      if (out.welcomed) return;
      const frame = decode(data) as Record<string, unknown>;
      if (frame['t'] === 'challenge') {
        out.challenged = true;
        const clusterId = String(frame['clusterId']);
        const storeId = Number(frame['storeId']);
        const mac = opts.mac === 'random' ? randomBytes(32) : helloMac(DEVELOPMENT_SECRET, clusterId, INTRUDER_ID, storeId, frame['nonce'] as Uint8Array, clientNonce);
        ws.send(encode({ t: 'hello', v: PROTOCOL_VERSION, clusterId, from: INTRUDER_ID, to: storeId, channel: 'raft', nonce: clientNonce, mac }));
        ws.send(forgedHeartbeat(target));
      } else if (frame['t'] === 'welcome') {
        out.welcomed = true;
        ws.send(forgedHeartbeat(target));
        ws.close(1000); // sent after the frame: the store reads the heartbeat first
      }
    });
    ws.on('error', (err) => (out.error = err.message));
    ws.on('close', (code, reason) => {
      clearTimeout(timer);
      out.closeCode = code;
      out.closeReason = reason.toString();
      resolve(out);
    });
  });
}
