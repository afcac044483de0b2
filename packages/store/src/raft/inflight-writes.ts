import type { Message } from '@flotilla/raft-core';
import type { Peer } from './peer';

/**
 * PersistAck is what one peer's Ready waits for in the async write
 * pipeline: the messages that may leave only once what the Ready asked
 * to persist is durable (Ready.persistedMessages: MsgAppResp, votes), and
 * whether raft is told so (onPersistReady) when it is. A Ready whose own
 * batch was written is told; one that only waits for earlier writes
 * (its changes were commit indexes only, or none) is not, since
 * onPersistReady(n) also marks every earlier Ready of the peer durable.
 */
export interface PersistAck {
  peer: Peer;
  readyNumber: number;
  markPersisted: boolean;
  messages: Message[];
}

/** InflightWrite is one issued round write and the Readies that wait for it. */
export interface InflightWrite {
  durable: boolean;
  acks: PersistAck[];
  issuedAt: number;
}

/**
 * InflightWrites is the queue of issued round writes, oldest first. The
 * log engine completes writes in the order they were issued, so a write
 * that is durable makes every write before it durable too; the pipeline
 * acts on them strictly from the head (batch/log-pipeline.ts). It holds
 * no I/O of its own: it is the state a StoreContext carries.
 */
export class InflightWrites {
  private readonly queue: InflightWrite[] = [];

  /** size counts the writes not yet acted on, durable or not. */
  get size(): number {
    return this.queue.length;
  }

  /** add queues a newly issued write. */
  add(acks: PersistAck[], issuedAt: number): InflightWrite {
    const w: InflightWrite = { durable: false, acks, issuedAt };
    this.queue.push(w);
    return w;
  }

  /** newest is the last write issued and not yet acted on (undefined: everything issued was acted on). */
  newest(): InflightWrite | undefined {
    return this.queue[this.queue.length - 1];
  }

  /** markAllDurable: a blocking write completed, so every write issued before it is durable as well. */
  markAllDurable(): void {
    for (const w of this.queue) w.durable = true;
  }

  /** takeDurable removes and returns the durable writes at the head, in issue order. */
  takeDurable(): InflightWrite[] {
    let n = 0;
    while (n < this.queue.length && this.queue[n]!.durable) n++;
    return n === 0 ? [] : this.queue.splice(0, n);
  }

  /** clear forgets every write (the store stopped: nothing more is sent or advanced). */
  clear(): void {
    this.queue.length = 0;
  }
}
