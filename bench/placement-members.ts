// bench/placement-members.ts — placement members as child processes for the
// placement benchmarks (real processes, real fsync, as an operator runs them).
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { cliCommand } from '@flotilla/node';

export interface Member {
  name: string;
  address: string;
  dataDir: string;
  proc: ChildProcess;
}

/** freePort asks the kernel for a free loopback port (a member needs its port before the others start). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** spawnMember runs `flotilla placement` with args and resolves once it prints its JSON line. */
export function spawnMember(name: string, dataDir: string, args: string[]): Promise<Member> {
  const { command, args: argv } = cliCommand(['placement', '--data-dir', dataDir, ...args, '--log-level', 'warn']);
  const proc = spawn(command, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: proc.stdout! });
    const timer = setTimeout(() => reject(new Error(`${name} did not start within 60 s`)), 60_000);
    lines.once('line', (line) => {
      clearTimeout(timer);
      const info = JSON.parse(line) as { address: string };
      resolve({ name, address: info.address, dataDir, proc });
    });
    proc.once('exit', (code) => reject(new Error(`${name} exited with ${code} before it served`)));
  });
}

/** PlacementGroup is n members under one temporary directory. */
export class PlacementGroup {
  constructor(
    readonly root: string,
    readonly members: Member[],
  ) {}

  get addresses(): string[] {
    return this.members.map((m) => m.address);
  }

  static async start(n: number, extra: string[] = []): Promise<PlacementGroup> {
    const root = mkdtempSync(join(tmpdir(), 'bench-pd-'));
    if (n === 1) return new PlacementGroup(root, [await spawnMember('p1', join(root, 'p1'), ['--listen', '127.0.0.1:0', ...extra])]);
    const ports = await Promise.all(Array.from({ length: n }, () => freePort()));
    const initial = ports.map((p, i) => `p${i + 1}=127.0.0.1:${p}`).join(',');
    const members = await Promise.all(
      ports.map((p, i) => spawnMember(`p${i + 1}`, join(root, `p${i + 1}`), ['--name', `p${i + 1}`, '--listen', `127.0.0.1:${p}`, '--initial-cluster', initial, ...extra])),
    );
    return new PlacementGroup(root, members);
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.members.map(
        (m) =>
          new Promise<void>((resolve) => {
            if (m.proc.exitCode !== null || m.proc.signalCode !== null) return resolve();
            m.proc.once('exit', () => resolve());
            m.proc.kill('SIGKILL');
          }),
      ),
    );
    rmSync(this.root, { recursive: true, force: true });
  }
}
