import fs from 'node:fs';
import { KvEngine } from '../../src/index';
import { modelAfter, nextBatch } from './kv-workload';

// kv-child: applies the crash workload from batch `start` on, forever,
// printing "ack <seq>" once each batch is durable. The parent SIGKILLs it.
const [file, startArg] = process.argv.slice(2);
const start = Number(startArg);
const model = modelAfter(start - 1);
const engine = KvEngine.open({ path: file!, statsPersistIntervalMs: 5 });
engine.write(nextBatch(start, model));
fs.writeSync(1, `ack ${start}\n`);
for (let seq = start + 1; ; seq++) {
  engine.write(nextBatch(seq, model));
  fs.writeSync(1, `ack ${seq}\n`);
  if (seq % 50 === 0) await new Promise((r) => setImmediate(r));
}
