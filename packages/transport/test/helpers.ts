// Test helpers: message builders, bounded condition waits, log capture.
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { vi } from 'vitest';
import { MessageType, newMessage, type Message } from '@flotilla/raft-core';
import type { RaftMessage } from '@flotilla/proto';

/** raftMsg builds an envelope from store `from` to store `to`; `seq` rides in message.index. */
export function raftMsg(regionId: number, from: number, to: number, seq: number, init: Partial<Message> = {}): RaftMessage {
  return {
    regionId,
    fromPeer: { id: regionId * 10 + from, storeId: from, role: 'voter' },
    toPeer: { id: regionId * 10 + to, storeId: to, role: 'voter' },
    regionEpoch: { confVer: 1, version: 1 },
    message: newMessage(MessageType.MsgHeartbeat, { from: regionId * 10 + from, to: regionId * 10 + to, term: 5, index: seq, commit: 3, ...init }),
    startKey: new Uint8Array(0),
    endKey: new Uint8Array(0),
    isTombstone: false,
  };
}

/** waitFor retries `cond` through vitest's vi.waitFor until it holds or `timeoutMs` passes (then throws with `what` and the last error cond threw). */
export async function waitFor(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  let lastError: unknown;
  try {
    await vi.waitFor(
      () => {
        let ok: boolean;
        try {
          ok = cond();
        } catch (e) {
          lastError = e;
          throw e;
        }
        if (!ok) throw new Error(`not yet: ${what}`);
      },
      { timeout: timeoutMs, interval: 5 },
    );
  } catch {
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}`);
  }
}

/** captureLogger returns a pino logger at debug level whose JSON lines land in `lines`. */
export function captureLogger(): { logger: Logger; lines: Record<string, unknown>[]; text: () => string } {
  const lines: Record<string, unknown>[] = [];
  let raw = '';
  const stream = new Writable({
    write(chunk, _enc, cb) {
      raw += chunk.toString();
      let nl: number;
      while ((nl = raw.indexOf('\n')) >= 0) {
        const line = raw.slice(0, nl);
        raw = raw.slice(nl + 1);
        if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      cb();
    },
  });
  const logger = pino({ level: 'debug' }, stream);
  return { logger, lines, text: () => lines.map((l) => JSON.stringify(l)).join('\n') };
}
