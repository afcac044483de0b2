import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
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
  | { type: 'done'; id: number; seq: number; foldedThrough: number; deleted: number; commits: number }
  | { type: 'failed'; id: number; name: string; message: string; code?: string; stack?: string }
  /** fatal: the thread could not start (worker-bootstrap.mjs); every request fails. */
  | { type: 'fatal'; name: string; message: string };

export interface WorkerConfig {
  file: string;
  durability: Durability;
  writerOptions: WriterOptions;
}

const port = parentPort;
if (port === null) throw new Error('write-worker must run in a worker thread');
const { config, replies, signal } = workerData as { config: WorkerConfig; replies: MessagePort; signal: Int32Array };
// The main thread's open already ran the integrity check on this file.
const db = openDatabase({ file: config.file, engine: LOG_ENGINE_NAME, formatVersion: LOG_FORMAT_VERSION, schema: LOG_SCHEMA, durability: config.durability, check: false });
const writer = new LogWriter(db, config.writerOptions);

/** MAX_GROUP bounds how many queued writes one transaction takes. */
const MAX_GROUP = 64;
let failed: Error | undefined;

/**
 * reply answers on the engine's reply port and then bumps the shared
 * signal: a main thread blocked in a synchronous write (Atomics.wait)
 * wakes and takes the reply with receiveMessageOnPort.
 */
function reply(r: WorkerReply): void {
  replies.postMessage(r);
  Atomics.add(signal, 0, 1);
  Atomics.notify(signal, 0);
}

function fail(id: number, err: Error): void {
  failed ??= err;
  const code = (err as { code?: unknown }).code;
  reply({ type: 'failed', id, name: err.name, message: err.message, ...(typeof code === 'string' ? { code } : {}), stack: err.stack });
}

/**
 * handle runs the requests that arrived together, in order. Consecutive
 * writes go in one transaction (group commit): while one fsync runs, the
 * poll loop queues the next rounds, and they share the next fsync.
 */
function handle(reqs: WorkerRequest[]): void {
  let i = 0;
  while (i < reqs.length) {
    const req = reqs[i]!;
    if (failed !== undefined) {
      fail(req.id, failed);
      i++;
      continue;
    }
    try {
      if (req.type === 'write') {
        const group: { id: number; body: Uint8Array }[] = [];
        while (i < reqs.length && group.length < MAX_GROUP) {
          const r = reqs[i]!;
          if (r.type !== 'write') break;
          group.push(r);
          i++;
        }
        try {
          const results = writer.commitGroup(group.map((g) => g.body));
          group.forEach((g, k) => reply({ type: 'done', id: g.id, seq: results[k]!.seq, foldedThrough: results[k]!.foldedThrough, deleted: 0, commits: results[k]!.commits }));
        } catch (err) {
          for (const g of group) fail(g.id, err as Error);
        }
        continue;
      }
      i++;
      if (req.type === 'purge') {
        const r = writer.purge(req.maxRows);
        reply({ type: 'done', id: req.id, seq: 0, foldedThrough: r.foldedThrough, deleted: r.deleted, commits: -1 });
      } else {
        const r = writer.foldAll();
        db.close();
        reply({ type: 'done', id: req.id, seq: r.seq, foldedThrough: r.foldedThrough, deleted: 0, commits: -1 });
        port!.close();
        return;
      }
    } catch (err) {
      fail(req.id, err as Error);
    }
  }
}

port.on('message', (first: WorkerRequest) => {
  const reqs = [first];
  for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) reqs.push(m.message as WorkerRequest);
  handle(reqs);
});
reply({ type: 'ready' });
