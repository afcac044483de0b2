import { execFile, execFileSync } from 'node:child_process';

// ip.ts: running iproute2's `ip`, the only tool the namespace topology
// needs (no iptables or nft: a clean CI machine has iproute2).

/** IP_TIMEOUT_MS bounds one `ip` call; a hung call is a broken machine, not a slow one. */
const IP_TIMEOUT_MS = 10_000;

/** IpError is a failed `ip` call: the command line and what ip printed, so the message says what to fix. */
export class IpError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly stderr: string,
    readonly code: number | string | null,
  ) {
    super(`ip ${args.join(' ')} failed (${code}): ${stderr.trim() || 'no output'}`);
    this.name = 'IpError';
  }

  /** exists: the kernel already has this object ("File exists"): a route another run holds, a duplicate rule. */
  get exists(): boolean {
    return /File exists/i.test(this.stderr);
  }
}

/** ip runs `ip ...args` and resolves with its stdout; it rejects with IpError. */
export function ip(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', args, { timeout: IP_TIMEOUT_MS, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new IpError(args, stderr || err.message, (err as NodeJS.ErrnoException).code ?? null));
      else resolve(stdout);
    });
  });
}

/** ipQuiet runs `ip ...args` and ignores failure: for cleanup of what may already be gone. */
export async function ipQuiet(args: readonly string[]): Promise<void> {
  await ip(args).catch(() => undefined);
}

/** ipSyncQuiet is ipQuiet for a process 'exit' handler, where nothing asynchronous runs any more. */
export function ipSyncQuiet(args: readonly string[]): void {
  try {
    execFileSync('ip', args, { timeout: IP_TIMEOUT_MS, stdio: 'ignore' });
  } catch {
    // already gone, or nothing we can do while exiting
  }
}
