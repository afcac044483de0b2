import type { KvWrite, RaftCmdRequest, RequestHeader } from '@flotilla/proto';
import type { Callback } from './proposal';

/**
 * BatchedCmd is the Raft command of a proposal batch (issue #19 item 2):
 * `batch` holds each client command's writes, applied in order and
 * answered one by one; `writes` is empty. A command without `batch` is the
 * one-command entry every store version reads. A store must understand
 * `batch` before any leader proposes one (an older store would apply the
 * entry as empty): all stores of a cluster run the same version.
 */
export type BatchedCmd = RaftCmdRequest & { batch?: KvWrite[][] };

/** batchOf: the commands a decoded entry batches, if it does. */
export function batchOf(cmd: RaftCmdRequest): KvWrite[][] | undefined {
  return (cmd as BatchedCmd).batch;
}

/**
 * WriteBatch collects the client writes a leader accepts in one poll round,
 * to propose them as one entry at the end of its mailbox (TiKV's
 * proposal batching): one Raft entry, one log append and one apply step
 * for many commands instead of one each. It is bounded by command count
 * and bytes (StoreConfig.proposalBatchMaxCommands / MaxBytes); a command
 * that would pass either bound goes out first as its own batch's start.
 */
export class WriteBatch {
  header: RequestHeader | undefined;
  commands: KvWrite[][] = [];
  cbs: Callback[] = [];
  bytes = 0;

  get size(): number {
    return this.cbs.length;
  }

  /** fits: one more command of `bytes` stays within both bounds (an empty batch takes anything). */
  fits(bytes: number, maxCommands: number, maxBytes: number): boolean {
    return this.size === 0 || (this.size < maxCommands && this.bytes + bytes <= maxBytes);
  }

  add(header: RequestHeader, writes: KvWrite[], cb: Callback, bytes: number): void {
    this.header ??= header;
    this.commands.push(writes);
    this.cbs.push(cb);
    this.bytes += bytes;
  }

  /** take empties the batch and returns what it held. */
  take(): { header: RequestHeader; commands: KvWrite[][]; cbs: Callback[] } | undefined {
    if (this.header === undefined) return undefined;
    const out = { header: this.header, commands: this.commands, cbs: this.cbs };
    this.header = undefined;
    this.commands = [];
    this.cbs = [];
    this.bytes = 0;
    return out;
  }
}

/** writesBytes estimates what a command's writes add to an entry (keys, values and a little framing each). */
export function writesBytes(writes: KvWrite[]): number {
  let n = 0;
  for (const w of writes) {
    switch (w.type) {
      case 'put':
        n += w.key.length + w.value.length + 16;
        break;
      case 'delete':
        n += w.key.length + 16;
        break;
      case 'deleteRange':
        n += w.startKey.length + w.endKey.length + 16;
        break;
      case 'cas':
        n += w.key.length + (w.value?.length ?? 0) + (w.expected?.length ?? 0) + 24;
        break;
    }
  }
  return n;
}
