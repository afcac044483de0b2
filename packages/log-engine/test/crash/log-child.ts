import fs from 'node:fs';
import { LogEngine } from '../../src/index';
import { modelAfter, nextBatch } from './log-workload';

// log-child: writes the crash workload from batch `start` on, forever,
// printing "ack <seq>" once each batch is durable. The parent SIGKILLs it.
const [file, startArg, mode] = process.argv.slice(2);
const start = Number(startArg);
const model = modelAfter(start - 1);
const engine = LogEngine.open({ path: file!, writer: mode === 'worker' ? 'worker' : 'sync', foldRows: 16 });
fs.writeSync(1, 'ready\n');

if (mode === 'worker') {
  // Up to four writes in flight: acks arrive in order.
  const inflight: Promise<void>[] = [];
  for (let seq = start; ; seq++) {
    const b = nextBatch(seq, model);
    const s = seq;
    inflight.push(engine.writeAsync(b).then(() => void fs.writeSync(1, `ack ${s}\n`)));
    if (seq % 10 === 0) inflight.push(engine.purgeAsync(50).then(() => undefined));
    while (inflight.length >= 4) await inflight.shift();
  }
} else {
  for (let seq = start; ; seq++) {
    engine.write(nextBatch(seq, model));
    fs.writeSync(1, `ack ${seq}\n`);
    if (seq % 10 === 0) engine.purge(50);
    // Yield now and then so the parent's kill lands at varied points.
    if (seq % 50 === 0) await new Promise((r) => setImmediate(r));
  }
}
