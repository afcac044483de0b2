// worker-bootstrap: entry point of the log engine's writer thread. The
// package ships TypeScript source; when the writer module is .ts, tsx is
// registered in this thread first (the main thread's loader does not carry
// over to workers).
import { workerData } from 'node:worker_threads';

const { entry } = workerData;
if (entry.endsWith('.ts')) {
  const { register } = await import('tsx/esm/api');
  register();
}
await import(entry);
