import { statfsSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * DiskUsage is what a store heartbeat reports about its disk (bytes):
 * the capacity and the space available to it on the file system holding
 * the data directory, and what the store's own files use there.
 */
export interface DiskUsage {
  capacityBytes: number;
  availableBytes: number;
  usedBytes: number;
}

/** STORE_FILES are the files a store keeps in its data directory (with SQLite's WAL and shared-memory files). */
const STORE_FILES = ['raft.db', 'raft.db-wal', 'raft.db-shm', 'kv.db', 'kv.db-wal', 'kv.db-shm', 'store.json'];

/**
 * diskUsageOf measures the file system of `dataDir` with statfs: capacity
 * is its size, available what an unprivileged writer may still use
 * (bavail, not bfree: root's reserve is not the store's), used the sum of
 * the store's files. A failed statfs reports zeros (unknown), which
 * placement treats as "no opinion", never as a full disk.
 */
export function diskUsageOf(dataDir: string): DiskUsage {
  let usedBytes = 0;
  for (const f of STORE_FILES) {
    try {
      usedBytes += statSync(join(dataDir, f)).size;
    } catch {
      // not there (no WAL after a clean close)
    }
  }
  try {
    const s = statfsSync(dataDir);
    return { capacityBytes: s.blocks * s.bsize, availableBytes: s.bavail * s.bsize, usedBytes };
  } catch {
    return { capacityBytes: 0, availableBytes: 0, usedBytes };
  }
}
