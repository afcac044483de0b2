import { TXN_LIMITS, compareKeys, keyInRange, type Mutation } from '@flotilla/proto';
import { ClientError } from '../errors';
import { hexKey } from './snapshot';

/**
 * WriteBuffer holds a transaction's writes until commit, one mutation per
 * key (a later put or delete of a key replaces the earlier one). Keys keep
 * the order of their first write: the first is the primary. It enforces
 * TXN_LIMITS as writes arrive, so an oversized transaction fails at the
 * write that crosses the limit, with nothing sent.
 */
export class WriteBuffer {
  private readonly m = new Map<string, Mutation>();
  private bytes = 0;

  get size(): number {
    return this.m.size;
  }

  /** get returns the buffered mutation of key, if any. */
  get(key: Uint8Array): Mutation | undefined {
    return this.m.get(hexKey(key));
  }

  put(key: Uint8Array, value: Uint8Array): void {
    this.set({ op: 'put', key, value });
  }

  delete(key: Uint8Array): void {
    this.set({ op: 'delete', key });
  }

  /** lock adds a 'lock' mutation (conflict only, writes nothing) unless the key is already written. */
  lock(key: Uint8Array): void {
    if (!this.m.has(hexKey(key))) this.set({ op: 'lock', key });
  }

  /** mutations lists the buffered mutations, the primary first. */
  mutations(): Mutation[] {
    return [...this.m.values()];
  }

  /** inRange lists the buffered puts and deletes with start <= key < end (empty end = to the end), in key order. */
  inRange(start: Uint8Array, end: Uint8Array): Mutation[] {
    return [...this.m.values()].filter((m) => m.op !== 'lock' && keyInRange(m.key, start, end)).sort((a, b) => compareKeys(a.key, b.key));
  }

  private set(mu: Mutation): void {
    const h = hexKey(mu.key);
    const old = this.m.get(h);
    const bytes = this.bytes - (old ? sizeOf(old) : 0) + sizeOf(mu);
    if (!old && this.m.size + 1 > TXN_LIMITS.maxKeys) {
      throw new ClientError('InvalidArgument', `transaction exceeds TXN_LIMITS.maxKeys: more than ${TXN_LIMITS.maxKeys} keys written`);
    }
    if (bytes > TXN_LIMITS.maxBytes) {
      throw new ClientError('InvalidArgument', `transaction exceeds TXN_LIMITS.maxBytes: ${bytes} key+value bytes, the limit is ${TXN_LIMITS.maxBytes}`);
    }
    this.bytes = bytes;
    this.m.set(h, mu);
  }
}

function sizeOf(m: Mutation): number {
  return m.key.length + (m.op === 'put' ? m.value.length : 0);
}
