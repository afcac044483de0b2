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
  /** args: the command line after --data-dir (to restart it the same way). */
  args: string[];
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
  // BENCH_MEMBER_CPU_PROF=DIR: each member writes a V8 CPU profile into DIR when it stops (stop() then sends SIGTERM, not SIGKILL).
  const profDir = process.env['BENCH_MEMBER_CPU_PROF'];
  const proc = spawn(command, profDir ? ['--cpu-prof', `--cpu-prof-dir=${join(profDir, name)}`, ...argv] : argv, { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: proc.stdout! });
    const timer = setTimeout(() => reject(new Error(`${name} did not start within 60 s`)), 60_000);
    lines.once('line', (line) => {
      clearTimeout(timer);
      const info = JSON.parse(line) as { address: string };
      resolve({ name, address: info.address, dataDir, proc, args });
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

  /** leader finds the member whose /health says it leads (undefined while none does). */
  async leader(): Promise<Member | undefined> {
    for (const m of this.members) {
      if (m.proc.exitCode !== null || m.proc.signalCode !== null) continue;
      try {
        const h = (await (await fetch(`http://${m.address}/health`, { signal: AbortSignal.timeout(1000) })).json()) as { role?: string };
        if (h.role === 'leader') return m;
      } catch {
        // not answering: not the leader
      }
    }
    return undefined;
  }

  /** kill SIGKILLs a member and waits for it to be gone. */
  async kill(m: Member): Promise<void> {
    if (m.proc.exitCode !== null || m.proc.signalCode !== null) return;
    const gone = new Promise<void>((r) => m.proc.once('exit', () => r()));
    m.proc.kill('SIGKILL');
    await gone;
  }

  /** restart starts a killed member again on its data with its arguments. */
  async restart(m: Member): Promise<Member> {
    const again = await spawnMember(m.name, m.dataDir, m.args);
    this.members[this.members.indexOf(m)] = again;
    return again;
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.members.map(
        (m) =>
          new Promise<void>((resolve) => {
            if (m.proc.exitCode !== null || m.proc.signalCode !== null) return resolve();
            m.proc.once('exit', () => resolve());
            m.proc.kill(process.env['BENCH_MEMBER_CPU_PROF'] ? 'SIGTERM' : 'SIGKILL');
          }),
      ),
    );
    rmSync(this.root, { recursive: true, force: true });
  }
}
