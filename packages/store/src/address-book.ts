import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StoreInfo } from '@flotilla/placement';
import type { AddressResolver } from '@flotilla/transport';
import type { StoreLogger } from './context';
import { writeFileDurably } from './durable-file';
import type { PlacementApi } from './engines';

// address-book.ts: the raft addresses of this store's peers, kept in the
// data dir (address-book.json) so that a store restarted while placement
// is away can still reach them. Placement stays the source of truth: every
// answer it gives overwrites the book, and the book is only read when
// placement does not answer in time. The file is rewritten only when an
// address changes.

export const ADDRESS_BOOK_FILE = 'address-book.json';
/** PLACEMENT_ANSWER_MS: how long a dial waits for placement before it uses the book's address. */
export const PLACEMENT_ANSWER_MS = 300;

export class AddressBook {
  private readonly addresses = new Map<number, string>();

  private constructor(
    readonly path: string,
    private readonly selfId: number,
    private readonly logger: StoreLogger,
  ) {}

  /** open reads the book of dataDir; a missing or unreadable file is an empty book (it is only a cache). */
  static open(dataDir: string, selfId: number, logger: StoreLogger): AddressBook {
    const book = new AddressBook(join(dataDir, ADDRESS_BOOK_FILE), selfId, logger);
    if (!existsSync(book.path)) return book;
    try {
      const raw = JSON.parse(readFileSync(book.path, 'utf8')) as { stores?: Record<string, unknown> };
      for (const [id, address] of Object.entries(raw.stores ?? {})) {
        if (Number.isSafeInteger(Number(id)) && Number(id) > 0 && typeof address === 'string') book.addresses.set(Number(id), address);
      }
    } catch (e) {
      logger.warn({ path: book.path, err: (e as Error).message }, 'address book unreadable; starting with an empty one');
    }
    return book;
  }

  get size(): number {
    return this.addresses.size;
  }

  get(storeId: number): string | undefined {
    return this.addresses.get(storeId);
  }

  /** record sets (or, with undefined, forgets) one store's raft address. */
  record(storeId: number, address: string | undefined): void {
    if (this.apply(storeId, address)) this.save();
  }

  /** recordAll takes placement's store list: every live store's raft address, tombstones forgotten. */
  recordAll(stores: StoreInfo[]): void {
    let changed = false;
    for (const s of stores) changed = this.apply(s.id, s.state === 'tombstone' ? undefined : s.labels?.['raftAddress']) || changed;
    if (changed) this.save();
  }

  /** refresh asks placement for every store; false when it did not answer. */
  async refresh(pd: PlacementApi): Promise<boolean> {
    try {
      this.recordAll(await pd.getAllStores());
      return true;
    } catch {
      return false;
    }
  }

  /** keepFresh refreshes the book from placement every intervalMs (new stores join, stores move); the returned function stops it. */
  keepFresh(pd: PlacementApi, intervalMs: number): () => void {
    let inFlight = false; // while placement is away a call takes its whole timeout: never pile them up
    const timer = setInterval(() => {
      if (inFlight) return;
      inFlight = true;
      void this.refresh(pd).finally(() => (inFlight = false));
    }, intervalMs);
    timer.unref();
    return () => clearInterval(timer);
  }

  private apply(storeId: number, address: string | undefined): boolean {
    if (storeId === this.selfId || this.addresses.get(storeId) === address) return false;
    if (address === undefined) this.addresses.delete(storeId);
    else this.addresses.set(storeId, address);
    return true;
  }

  private save(): void {
    const stores = Object.fromEntries([...this.addresses].sort(([a], [b]) => a - b).map(([id, a]) => [String(id), a]));
    try {
      writeFileDurably(this.path, JSON.stringify({ version: 1, stores }) + '\n');
    } catch (e) {
      // The book is a cache: failing to save it costs reachability while placement is away, nothing else.
      this.logger.warn({ path: this.path, err: (e as Error).message }, 'cannot save the address book');
    }
  }
}

/**
 * resolveFromPlacement is the transport's resolver: placement's answer when
 * it comes within PLACEMENT_ANSWER_MS (and then it is recorded in the book,
 * a removed or unknown store forgotten), the book's address otherwise.
 */
export function resolveFromPlacement(pd: PlacementApi, book: AddressBook): AddressResolver {
  return async (storeId) => {
    const fromPlacement = pd.getStore(storeId).then(
      (s) => {
        const address = s && s.state !== 'tombstone' ? s.labels?.['raftAddress'] : undefined;
        book.record(storeId, address);
        return { answered: true as const, address };
      },
      () => ({ answered: false as const, address: undefined }),
    );
    const known = book.get(storeId);
    if (known === undefined) return (await fromPlacement).address;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<{ answered: false; address: undefined }>((resolve) => (timer = setTimeout(() => resolve({ answered: false, address: undefined }), PLACEMENT_ANSWER_MS)));
    const r = await Promise.race([fromPlacement, late]);
    clearTimeout(timer);
    return r.answered ? r.address : known;
  };
}
