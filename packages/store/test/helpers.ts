import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { vi } from 'vitest';
import { WebSocket } from 'ws';
import { startPlacementServer, PlacementClient, type PlacementServer } from '@flotilla/placement';
import { decode, encode, type ClientRequest, type ClientResponse } from '@flotilla/proto';
import { startStore, type StoreHandle, type StoreOptions } from '@flotilla/store';

/**
 * waitFor retries cond through vitest's vi.waitFor until it returns a truthy
 * value (no sleeps as synchronization); past timeoutMs it throws, naming
 * what it waited for and the last error cond threw.
 */
export async function waitFor<T>(what: string, cond: () => T | Promise<T>, timeoutMs = 20_000, intervalMs = 20): Promise<NonNullable<T>> {
  let lastError: unknown;
  try {
    return await vi.waitFor(
      async () => {
        let v: T;
        try {
          v = await cond();
        } catch (e) {
          lastError = e;
          throw e;
        }
        if (!v) throw new Error(`not yet: ${what}`);
        return v as NonNullable<T>;
      },
      { timeout: timeoutMs, interval: intervalMs },
    );
  } catch {
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${(lastError as Error).message}` : ''}`);
  }
}

export interface TestCluster {
  dir: string;
  placement: PlacementServer;
  pd: PlacementClient;
  stores: (StoreHandle | undefined)[];
  storeOpts: StoreOptions[];
  restart(i: number): Promise<StoreHandle>;
  stop(i: number): Promise<void>;
  close(): Promise<void>;
}

export async function startCluster(n: number, extra: Partial<StoreOptions> = {}, placementOpts: Record<string, unknown> = {}): Promise<TestCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-store-'));
  const placement = await startPlacementServer({ dataDir: join(dir, 'placement'), listen: '127.0.0.1:0', maxReplicas: Math.min(3, n), ...placementOpts } as never);
  const pdAddr = placement.address;
  const pd = new PlacementClient({ addresses: [pdAddr] });
  const storeOpts: StoreOptions[] = [];
  const stores: (StoreHandle | undefined)[] = [];
  for (let i = 0; i < n; i++) {
    const debug = process.env.DEBUG_STORE
      ? (i: number) => {
          const f = (lvl: string) => (o: object, m?: string) => console.log(`[s${i} ${lvl}] ${m ?? ''} ${JSON.stringify(o)}`);
          return { debug() {}, info: f('info'), warn: f('warn'), error: f('error') };
        }
      : undefined;
    const o: StoreOptions = { ...(debug ? { logger: debug(i) } : {}), dataDir: join(dir, `store-${i}`), listen: '127.0.0.1:0', placement: pdAddr, tickIntervalMs: 50, profile: 'demo', enableAdminApi: true, ...extra };
    storeOpts.push(o);
    stores.push(await startStore(o));
  }
  return {
    dir,
    placement,
    pd,
    stores,
    storeOpts,
    async restart(i) {
      const h = await startStore(storeOpts[i]!);
      stores[i] = h;
      return h;
    },
    async stop(i) {
      await stores[i]?.close();
      stores[i] = undefined;
    },
    async close() {
      for (const s of stores) await s?.close();
      pd.close();
      await placement.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

/** RawStoreClient speaks the store client protocol directly (no routing): for store tests. */
export class RawStoreClient {
  private ws: WebSocket;
  private seq = 1;
  private pending = new Map<number, (r: ClientResponse) => void>();
  private ready: Promise<void>;
  constructor(address: string) {
    this.ws = new WebSocket(`ws://${address}/client`);
    this.ready = new Promise((res, rej) => {
      this.ws.once('open', () => res());
      this.ws.once('error', rej);
    });
    this.ws.on('message', (d: Buffer) => {
      const r = decode(d) as ClientResponse;
      const cb = this.pending.get(r.id);
      this.pending.delete(r.id);
      cb?.(r);
    });
  }
  async call(req: WithoutId<ClientRequest>): Promise<ClientResponse> {
    await this.ready;
    const id = this.seq++;
    return new Promise((res) => {
      this.pending.set(id, res);
      this.ws.send(encode({ ...req, id }));
    });
  }
  async sendRaw(bytes: Uint8Array): Promise<ClientResponse> {
    await this.ready;
    return new Promise((res) => {
      this.pending.set(0, res);
      this.ws.send(bytes);
    });
  }
  close(): void {
    this.ws.close();
  }
}
