// Shared crash harness: the log engine's and the KV engine's crash tests use it
// (kv-engine imports it as @flotilla/log-engine/test-support/run-and-kill).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';

/**
 * runAndKill starts `node --import tsx script args`, waits until it has
 * acknowledged at least `minAcks` writes (bounded by timeoutMs), lets it run
 * a little longer (random), SIGKILLs it and returns the highest acknowledged
 * write number (0 when none).
 */
export async function runAndKill(script: string, args: string[], minAcks: number, extraMs: number, timeoutMs = 20_000): Promise<number> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let lastAck = 0;
  let acks = 0;
  let buf = '';
  let stderr = '';
  let exited = false;
  let onProgress: () => void = () => {};
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    buf += chunk;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.startsWith('ack ')) {
        lastAck = Number(line.slice(4));
        acks++;
      }
    }
    onProgress();
  });
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  // 'close' (not 'exit'): it fires once stdout is drained, so no ack still
  // in the pipe is missed.
  const exitPromise = new Promise<void>((resolve) =>
    child.on('close', () => {
      exited = true;
      onProgress();
      resolve();
    }),
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child made ${acks} acks in ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
    onProgress = () => {
      if (exited) {
        clearTimeout(timer);
        reject(new Error(`child exited early after ${acks} acks; stderr: ${stderr}`));
      } else if (acks >= minAcks) {
        clearTimeout(timer);
        resolve();
      }
    };
  });
  // Let it run on for a random while, then kill it mid-flight. This is a
  // random delay (the point of a crash test), not a synchronization sleep.
  await new Promise((r) => setTimeout(r, extraMs));
  child.kill('SIGKILL');
  await exitPromise;
  // Acks still in the pipe were written before the kill: count them.
  return lastAck;
}
