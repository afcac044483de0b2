import { parentPort, workerData } from 'node:worker_threads';
import { LogWriter } from './log-writer';
import type { WriterOptions } from './log-writer';
import { LOG_ENGINE_NAME, LOG_FORMAT_VERSION, LOG_SCHEMA } from './schema';
import { openDatabase } from './sqlite-open';
import type { Durability } from './sqlite-open';

// write-worker: the writer thread of a LogEngine opened with writer:'worker'.
// It owns its own SQLite connection and a LogWriter; the main thread keeps
// reading through its connection (WAL lets readers run beside the writer)
// while this thread spends the time in SQLite and fsync.

/** WorkerRequest is what the engine posts; replies come back in order. */
export type WorkerRequest =
  | { type: 'write'; id: number; body: Uint8Array }
  | { type: 'purge'; id: number; maxRows: number }
  | { type: 'close'; id: number };

export type WorkerReply =
  | { type: 'ready' }
  | { type: 'done'; id: number; seq: number; foldedThrough: number; deleted: number }
  | { type: 'failed'; id: number; name: string; message: string; stack?: string };

export interface WorkerConfig {
  file: string;
  durability: Durability;
  writerOptions: WriterOptions;
}

const port = parentPort;
if (port === null) throw new Error('write-worker must run in a worker thread');
const config = (workerData as { config: WorkerConfig }).config;
const db = openDatabase({ file: config.file, engine: LOG_ENGINE_NAME, formatVersion: LOG_FORMAT_VERSION, schema: LOG_SCHEMA, durability: config.durability });
const writer = new LogWriter(db, config.writerOptions);

port.on('message', (req: WorkerRequest) => {
  try {
    switch (req.type) {
      case 'write': {
        const r = writer.commit(req.body);
        port.postMessage({ type: 'done', id: req.id, seq: r.seq, foldedThrough: r.foldedThrough, deleted: 0 } satisfies WorkerReply);
        break;
      }
      case 'purge': {
        const r = writer.purge(req.maxRows);
        port.postMessage({ type: 'done', id: req.id, seq: 0, foldedThrough: r.foldedThrough, deleted: r.deleted } satisfies WorkerReply);
        break;
      }
      case 'close': {
        const r = writer.foldAll();
        db.close();
        port.postMessage({ type: 'done', id: req.id, seq: r.seq, foldedThrough: r.foldedThrough, deleted: 0 } satisfies WorkerReply);
        port.close();
        break;
      }
    }
  } catch (err) {
    const e = err as Error;
    port.postMessage({ type: 'failed', id: req.id, name: e.name, message: e.message, stack: e.stack } satisfies WorkerReply);
  }
});
port.postMessage({ type: 'ready' } satisfies WorkerReply);
