// The power-loss shim's TypeScript side: build it (cc, cached by source
// hash), the environment that loads it, and what a test does after a crash
// -- read the durable events and rebuild a data directory from the shadow.
// The model itself is described at the top of shim.c.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SOURCE = join(import.meta.dirname, 'shim.c');

/** ShimBuild is the compiled shim, or why this machine cannot run power-loss tests. */
export type ShimBuild = { ok: true; path: string } | { ok: false; reason: string };

/**
 * buildShim compiles shim.c into a shared object under the temp directory
 * (named by the source's hash, so an edit rebuilds and concurrent runs share
 * one build). It needs Linux and a C compiler (cc, or $CC); without them it
 * says why instead of throwing, so a test can skip with that reason.
 */
export function buildShim(): ShimBuild {
  if (process.platform !== 'linux') return { ok: false, reason: `power-loss mode needs Linux (LD_PRELOAD); this is ${process.platform}` };
  const source = readFileSync(SOURCE);
  const hash = createHash('sha256').update(source).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), 'flotilla-powerloss');
  const out = join(dir, `flotilla-powerloss-${hash}.so`);
  if (existsSync(out)) return { ok: true, path: out };
  mkdirSync(dir, { recursive: true });
  const cc = process.env['CC'] ?? 'cc';
  const partial = `${out}.${process.pid}.tmp`;
  try {
    execFileSync(cc, ['-shared', '-fPIC', '-O2', '-Wall', '-o', partial, SOURCE, '-ldl', '-lpthread'], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: Buffer };
    if (err.code === 'ENOENT') return { ok: false, reason: `no C compiler (${cc}) to build the power-loss shim` };
    throw new Error(`building the power-loss shim failed: ${err.stderr?.toString() ?? err.message}`);
  }
  renameSync(partial, out);
  return { ok: true, path: out };
}

/** KillAt makes the process SIGKILL itself at the n-th fsync of a file whose name starts with prefix (before it counts as durable, or after). */
export interface KillAt {
  prefix: string;
  n: number;
  when: 'before' | 'after';
}

const killSpec = (k: KillAt) => `${k.prefix}:${k.n}:${k.when}`;

/**
 * shimEnv is the environment that runs a process under the shim for
 * dataDir, keeping its durable state in shadowDir. killAt arms the shim's
 * own kill from the start; killFile lets armKill() arm it later.
 */
export function shimEnv(shimPath: string, dataDir: string, shadowDir: string, o: { killAt?: KillAt; killFile?: string } = {}): NodeJS.ProcessEnv {
  // io_uring would take file writes past libc (libuv uses it only when asked; say no).
  const env: NodeJS.ProcessEnv = { ...process.env, LD_PRELOAD: shimPath, POWERLOSS_DIR: dataDir, POWERLOSS_SHADOW: shadowDir, UV_USE_IO_URING: '0' };
  if (o.killAt) env['POWERLOSS_KILL_AT'] = killSpec(o.killAt);
  if (o.killFile) env['POWERLOSS_KILL_FILE'] = o.killFile;
  return env;
}

/** armKill arms (or with undefined, disarms) the running process's kill through its POWERLOSS_KILL_FILE; n counts from the next fsync on. */
export function armKill(killFile: string, killAt: KillAt | undefined): void {
  if (!killAt) return rmSync(killFile, { force: true });
  const tmp = `${killFile}.tmp`;
  writeFileSync(tmp, killSpec(killAt));
  renameSync(tmp, killFile); // a new inode: the shim sees the change even within one mtime tick
}

/** ShadowEvent is one line of the shim's event log: seq orders them within one process life. */
export interface ShadowEvent {
  seq: number;
  kind: 'init' | 'fsync' | 'dirsync' | 'kill-before' | 'kill-after' | 'untracked';
  name: string;
}

/** readEvents reads the durable events of the last process life (empty when the shim never started). */
export function readEvents(shadowDir: string): ShadowEvent[] {
  const path = join(shadowDir, 'events');
  if (!existsSync(path)) return [];
  const out: ShadowEvent[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^(\d+) ([a-z-]+) (.*)$/.exec(line);
    if (m) out.push({ seq: Number(m[1]), kind: m[2] as ShadowEvent['kind'], name: m[3]! });
  }
  return out;
}

/** durableNames reads the shadow's durable directory: file name -> content id. */
export function durableNames(shadowDir: string): Map<string, string> {
  const names = new Map<string, string>();
  const path = join(shadowDir, 'names');
  if (!existsSync(path)) return names;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const tab = line.indexOf('\t');
    if (tab > 0) names.set(line.slice(0, tab), line.slice(tab + 1));
  }
  return names;
}

/**
 * restoreFromShadow turns dataDir into what survived the power loss: every
 * file is removed (the -shm files too), then each durable name gets its
 * inode's durable content (empty when that inode was never fsynced). The
 * process must be dead. Returns the restored file names.
 */
export function restoreFromShadow(shadowDir: string, dataDir: string): string[] {
  const names = durableNames(shadowDir);
  assertShadow(names.size > 0 || existsSync(join(shadowDir, 'names')), `${shadowDir} holds no durable names: the shim never started there`);
  for (const f of readdirSync(dataDir)) rmSync(join(dataDir, f), { recursive: true, force: true });
  for (const [name, id] of names) {
    const content = join(shadowDir, 'inodes', id);
    if (existsSync(content)) copyFileSync(content, join(dataDir, name));
    else writeFileSync(join(dataDir, name), '');
  }
  return [...names.keys()].sort();
}

function assertShadow(cond: boolean, message: string): asserts cond {
  if (!cond) throw new Error(`power-loss shadow: ${message}`);
}
