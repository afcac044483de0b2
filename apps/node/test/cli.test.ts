import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../src/cli';
import { commonFlags } from '../src/args';
import { run } from '../src/cli';
import { cleanEnv, runCli } from './helpers';

/** runInProcess runs the CLI's run() with captured output: the parsing paths, without a process per case. */
async function runInProcess(argv: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const sink = (append: (s: string) => void) => ({ write: (chunk: string | Uint8Array) => (append(String(chunk)), true) }) as unknown as NodeJS.WritableStream;
  const code = await run(argv, { stdout: sink((x) => (stdout += x)), stderr: sink((x) => (stderr += x)), env: cleanEnv(env) });
  return { code, stdout, stderr };
}

// The CLI as a user meets it: real child processes, exit codes, messages.

const dir = mkdtempSync(join(tmpdir(), 'flotilla-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('flotilla --help', () => {
  it('top-level help lists every command and exits 0; no command is a usage error', async () => {
    const [help, none] = await Promise.all([runCli(['--help']), runCli([])]);
    expect(help.code).toBe(0);
    for (const c of COMMANDS) expect(help.stdout).toContain(c.spec.path.join(' '));
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('Usage: flotilla <command>');
  }, 120_000);

  it('every command and subcommand prints its help with all its flags and exits 0', async () => {
    // Every command through run() (the same code a process runs), and a sample as real processes for the
    // process plumbing: spawning one node+tsx per command would cost most of this package's time budget.
    const invocations = [...COMMANDS.map((c) => ({ spec: c.spec, argv: [...c.spec.path, '--help'] })), { spec: COMMANDS.find((c) => c.spec.path.join(' ') === 'demo split')!.spec, argv: ['demo', '-h'] }];
    const spawned = new Set(['up --help', 'store --help', 'demo -h', 'scan --help']);
    const results = await Promise.all(invocations.map(async (inv) => ({ inv, r: spawned.has(inv.argv.join(' ')) ? await runCli(inv.argv) : await runInProcess(inv.argv) })));
    expect(results.filter(({ inv }) => spawned.has(inv.argv.join(' ')))).toHaveLength(spawned.size);
    for (const { inv, r } of results) {
      expect(r.code, `${inv.argv.join(' ')}: ${r.stderr}`).toBe(0);
      expect(r.stdout).toContain(`Usage: flotilla ${inv.spec.path.join(' ')}`);
      for (const f of [...inv.spec.flags, ...commonFlags]) expect(r.stdout, `${inv.argv.join(' ')} lists --${f.name}`).toContain(`--${f.name}`);
      for (const p of inv.spec.positionals) expect(r.stdout).toContain(p.name);
    }
  }, 120_000);
});

describe('flotilla usage errors exit 2 and name the flag', () => {
  const cases: { argv: string[]; env?: Record<string, string>; message: string }[] = [
    { argv: ['up', '--stores', '12'], message: '--stores: expected a number between 1 and 9' },
    { argv: ['up', '--stores', 'three'], message: '--stores: expected a number between 1 and 9' },
    { argv: ['up', '--bogus'], message: 'unknown flag --bogus' },
    { argv: ['up', '--profile', 'fast'], message: '--profile: expected one of production, demo' },
    { argv: ['up'], env: { FLOTILLA_STORES: '0' }, message: 'FLOTILLA_STORES: expected a number between 1 and 9' },
    { argv: ['placement', '--data-dir', 'x', '--listen', 'nowhere'], message: '--listen: expected host:port' },
    { argv: ['placement'], message: '--data-dir is required' },
    { argv: ['store', '--data-dir', 'x'], message: '--placement is required' },
    { argv: ['store', '--placement', '127.0.0.1:1', '--data-dir', 'x', '--listen'], message: '--listen: expected a value' },
    { argv: ['get'], message: 'missing <key>' },
    { argv: ['put', 'k', 'v', 'extra'], message: 'unexpected argument "extra"' },
    { argv: ['scan', '--limit', '0'], message: '--limit: expected a number between 1 and 10000000' },
    { argv: ['get', '--hex', 'zz', '--placement', '127.0.0.1:1'], message: 'key: "zz" is not hex' },
    { argv: ['demo', 'frobnicate'], message: 'unknown demo "frobnicate"' },
    { argv: ['frobnicate'], message: 'unknown command "frobnicate"' },
    { argv: ['scan', 'b', 'a', '--placement', '127.0.0.1:9'], message: 'end: must be greater than the start key' },
    { argv: ['put', '', 'v', '--placement', '127.0.0.1:9'], message: 'key: must not be empty' },
    { argv: ['up', '--log-level', 'loud'], message: '--log-level: expected one of trace' },
  ];
  it.each(cases)('$argv', async ({ argv, env, message }) => {
    const r = await runInProcess(argv, env);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(message);
  }, 120_000);

  it('the real process exits with status 2 and prints the error on stderr', async () => {
    const [a, b] = await Promise.all([runCli(['up', '--stores', '12']), runCli(['put', '--bogus', 'k', 'v'])]);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain('flotilla up: --stores: expected a number between 1 and 9');
    expect(b.code).toBe(2);
    expect(b.stderr).toContain('flotilla put: unknown flag --bogus');
  }, 120_000);

  it('flotilla store --tuning: a bad value, an unknown key and an inconsistent pair are usage errors naming them', async () => {
    const cases: [object, string][] = [
      [{ raftLogGcCountLimit: 0 }, 'raftLogGcCountLimit: Too small'],
      [{ raftLogGcLimit: 10 }, 'unknown key "raftLogGcLimit"'],
      [{ readOnly: 'fast' }, 'readOnly:'],
      [{ electionTicks: 2, heartbeatTicks: 2 }, 'electionTicks (2) must be greater than heartbeatTicks (2)'],
    ];
    for (const [i, [tuning, message]] of cases.entries()) {
      const file = join(dir, `tuning-${i}.json`);
      writeFileSync(file, JSON.stringify(tuning));
      const r = await runInProcess(['store', '--placement', '127.0.0.1:1', '--data-dir', join(dir, `tuning-store-${i}`), '--tuning', file]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`--tuning ${file}: ${message}`);
    }
    const notJson = join(dir, 'tuning-bad.json');
    writeFileSync(notJson, '{ raftLogGcCountLimit: 1');
    const r = await runInProcess(['store', '--placement', '127.0.0.1:1', '--data-dir', join(dir, 'tuning-store-x'), '--tuning', notJson]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--tuning ${notJson}:`);
  }, 120_000);

  it('a --config file is validated with the file and field named; flags override it', async () => {
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ stores: 0 }));
    const r1 = await runInProcess(['up', '--config', bad]);
    expect(r1.code).toBe(2);
    expect(r1.stderr).toContain(`${bad}: stores: expected a number between 1 and 9`);
    const unknown = join(dir, 'unknown.json');
    writeFileSync(unknown, JSON.stringify({ shards: 3 }));
    const r2 = await runInProcess(['up', '--config', unknown]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain('unknown field "shards"');
    // --stores on the command line wins over the file's bad value, so validation moves on to the next bad field.
    writeFileSync(bad, JSON.stringify({ stores: 0, profile: 'fast' }));
    const r3 = await runInProcess(['up', '--config', bad, '--stores', '3']);
    expect(r3.code).toBe(2);
    expect(r3.stderr).toContain(`${bad}: profile: expected one of production, demo`);
  }, 120_000);
});

describe('flotilla runtime failures exit 1', () => {
  it('a ctl command without a cluster says how to start one', async () => {
    const r = await runInProcess(['get', 'k', '--data-dir', join(dir, 'nothing-here')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('flotilla up');
  }, 120_000);

  it('a ctl command against an unreachable placement fails within its deadline', async () => {
    const t0 = Date.now();
    const r = await runCli(['put', 'k', 'v', '--placement', '127.0.0.1:9', '--timeout-ms', '500']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/timed out|Timeout|no success/i);
    expect(Date.now() - t0).toBeLessThan(15_000);
  }, 120_000);
});
