// bench/redis-front.ts — what the Redis benches share: a `flotilla redis`
// front as a child process, and its error-reply counter.
import { execFileSync, spawn } from 'node:child_process';
import { cliCommand } from '@flotilla/node';

/** RedisFront: a running `flotilla redis` child's port, and how to stop it. */
export interface RedisFront {
  port: number;
  stop: () => void;
}

/** startRedisFront runs `flotilla redis --placement P --listen 127.0.0.1:0` with extra flags (and env) and resolves with its port once it announces itself (60 s at most). */
export function startRedisFront(placement: string, extra: string[] = [], env: NodeJS.ProcessEnv = process.env): Promise<RedisFront> {
  const { command, args: argv } = cliCommand(['redis', ...extra, '--placement', placement, '--listen', '127.0.0.1:0', '--log-level', 'warn']);
  const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'inherit'], env });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('flotilla redis did not announce itself within 60 s')), 60_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /"address":"[^"]*:(\d+)"/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ port: Number(m[1]), stop: () => child.kill('SIGTERM') });
      }
    });
    child.once('exit', (code) => reject(new Error(`flotilla redis exited with ${code}`)));
  });
}

/** errorReplies: the front's total_error_replies (INFO stats) through redis-cli. */
export function errorReplies(cli: string, port: number): number {
  const info = execFileSync(cli, ['-p', String(port), 'info', 'stats'], { encoding: 'utf8' });
  return Number(/total_error_replies:(\d+)/.exec(info)?.[1] ?? NaN);
}
