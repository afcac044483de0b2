// worker-bootstrap: entry point of the log engine's writer thread. The
// package ships TypeScript source; when the writer module is .ts, tsx is
// registered in this thread first (the main thread's loader does not carry
// over to workers). A thread that cannot load its writer says so on the
// reply port before it dies, so a main thread blocked in a synchronous
// write (Atomics.wait on the signal) fails at once instead of waiting.
import { workerData } from 'node:worker_threads';

const { entry, replies, signal } = workerData;
try {
  if (entry.endsWith('.ts')) {
    const { register } = await import('tsx/esm/api');
    register();
  }
  await import(entry);
} catch (err) {
  replies.postMessage({ type: 'fatal', name: err?.name ?? 'Error', message: `log engine writer thread failed to start: ${err?.message ?? String(err)}` });
  Atomics.add(signal, 0, 1);
  Atomics.notify(signal, 0);
  throw err;
}
