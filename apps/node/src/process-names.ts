import { resolve } from 'node:path';
import { readClusterFile } from './cluster-file';
import type { CommandContext } from './command';

// process-names.ts: `flotilla up` names its stores store-1, store-2, ...
// while placement numbers them with IDs it allocates (4, 5, 6 on a fresh
// cluster), so ctl output shows both wherever it shows a store: "4
// (store-1)".

/**
 * processNames maps store ID to the `flotilla up` process name, read from
 * the cluster.json of --data-dir. Empty when there is no such file, or
 * when --placement names another cluster's placement. A cluster.json
 * written before store IDs were recorded is matched by address against
 * `stores` (placement's store list).
 */
export function processNames(ctx: CommandContext, stores: readonly { id: number; address: string }[] = []): Map<number, string> {
  const out = new Map<number, string>();
  let file;
  try {
    file = readClusterFile(resolve(ctx.parsed.values['dataDir'] as string));
  } catch {
    return out; // a malformed file only costs the names; the command itself does not need it
  }
  if (!file) return out;
  const explicit = ctx.parsed.values['placement'] as string | undefined;
  if (explicit !== undefined && !explicit.split(',').some((a) => a.trim() === file.placement.address)) return out;
  for (const s of file.stores) {
    const id = s.storeId ?? stores.find((x) => x.address === s.address)?.id;
    if (id !== undefined) out.set(id, `store-${s.index}`);
  }
  return out;
}

/** storeLabel renders a store ID with its process name when known: "4 (store-1)". */
export function storeLabel(names: Map<number, string>, storeId: number): string {
  const name = names.get(storeId);
  return name ? `${storeId} (${name})` : String(storeId);
}
