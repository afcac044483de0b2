// `pnpm sim --seeds N [--seed S] [flags]` (`pnpm sim --help` lists the flags).
// Runs N seeds (S, S+1, ...) of the whole-cluster simulation; exit 0 only when every seed passes.
import { runSimulation, type SimOptions } from './simulation';

interface Parsed {
  seeds: number;
  first: number;
  opts: Omit<SimOptions, 'seed'>;
  verbose: boolean;
  json: boolean;
  help: boolean;
}

/** FLAGS is the CLI: each flag, its argument, what it does; parseArgs and --help both read it. */
const FLAGS: { flag: string; arg?: string; help: string; set: (p: Parsed, v: number) => void }[] = [
  { flag: '--seeds', arg: 'N', help: 'run N seeds: S, S+1, ... (default 1)', set: (p, v) => (p.seeds = v) },
  { flag: '--seed', arg: 'S', help: 'first seed (default random)', set: (p, v) => (p.first = v) },
  { flag: '--stores', arg: 'N', help: 'stores in the cluster, 3..5 (default 3)', set: (p, v) => (p.opts.stores = v) },
  { flag: '--clients', arg: 'N', help: 'concurrent clients (default 4)', set: (p, v) => (p.opts.clients = v) },
  { flag: '--keys', arg: 'N', help: 'keys in the workload (default 24)', set: (p, v) => (p.opts.keys = v) },
  { flag: '--safety-ms', arg: 'MS', help: 'virtual ms of workload under faults (default 15000)', set: (p, v) => (p.opts.safetyMs = v) },
  { flag: '--liveness-ms', arg: 'MS', help: 'after healing, everything must converge within this bound (default 30000)', set: (p, v) => (p.opts.livenessBoundMs = v) },
  {
    flag: '--placements',
    arg: 'N',
    help: 'placement as 1 in-process cluster (default) or a Raft group of 3 members (crashes, partitions, TSO clients, ID/routing/TSO checkers)',
    set: (p, v) => {
      if (v !== 1 && v !== 3) throw new Error('--placements takes 1 or 3');
      p.opts.placements = v;
    },
  },
  { flag: '--tso-clients', arg: 'N', help: 'concurrent TSO clients with --placements 3 (default 2)', set: (p, v) => (p.opts.tsoClients = v) },
  { flag: '--no-faults', help: 'the same workload without any fault', set: (p) => (p.opts.faults = false) },
  { flag: '--no-remove-peers', help: 'no conf-change fault', set: (p) => (p.opts.removePeers = false) },
  { flag: '--no-merges', help: 'no merge fault', set: (p) => (p.opts.merges = false) },
  { flag: '--no-balance', help: "turn off placement's balance-leader and balance-region", set: (p) => (p.opts.balance = false) },
  { flag: '--no-placement-crashes', help: 'no placement crash/restart fault', set: (p) => (p.opts.placementCrashes = false) },
  { flag: '--no-replace-stores', help: 'no lost-disk fault (a store replaced by a new one)', set: (p) => (p.opts.replaceStores = false) },
  { flag: '--lease-reads', help: "stores use readOnly: 'lease-based'", set: (p) => (p.opts.readOnly = 'lease-based') },
  { flag: '--tick-skew', arg: 'X', help: "stores' tick timers run at 50*(1-X), 50, 50*(1+X) ms", set: (p, v) => (p.opts.tickSkew = v) },
  { flag: '--inject-stale-reads', help: 'deliberate bug: half the gets read a random replica (the checker must fail)', set: (p) => (p.opts.injectStaleReads = true) },
  { flag: '--debug-stores', help: 'print store warnings and errors', set: (p) => (p.opts.debugStores = true) },
  { flag: '--verbose', help: 'progress lines, and the fault log of a failing seed', set: (p) => (p.verbose = true) },
  { flag: '--json', help: 'one JSON line per seed', set: (p) => (p.json = true) },
  { flag: '--help', help: 'this text', set: (p) => (p.help = true) },
];

function helpText(): string {
  const rows = FLAGS.map((f) => `  ${(f.flag + (f.arg ? ` ${f.arg}` : '')).padEnd(24)} ${f.help}`);
  return ['usage: pnpm sim [flags]', 'Runs seeds of the whole-cluster simulation; exit 0 only when every seed passes. SIM_TRACE=1 prints progress each virtual second.', '', ...rows].join('\n');
}

function parseArgs(argv: string[]): Parsed {
  const p: Parsed = { seeds: 1, first: Number.NaN, opts: {}, verbose: false, json: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') continue;
    const f = FLAGS.find((x) => x.flag === a || (a === '-h' && x.flag === '--help'));
    if (!f) throw new Error(`unknown argument ${a} (pnpm sim --help lists the flags)`);
    let v = 0;
    if (f.arg) {
      v = Number(argv[++i]);
      if (!Number.isFinite(v)) throw new Error(`${a} needs a number`);
    }
    f.set(p, v);
  }
  if (Number.isNaN(p.first)) p.first = Math.floor(Math.random() * 1_000_000);
  return p;
}

async function main(): Promise<void> {
  const { seeds, first, opts, verbose, json, help } = parseArgs(process.argv.slice(2));
  if (help) {
    console.log(helpText());
    return;
  }
  let failed = 0;
  const extra = [
    opts.stores !== undefined ? `--stores ${opts.stores}` : '',
    opts.clients !== undefined ? `--clients ${opts.clients}` : '',
    opts.keys !== undefined ? `--keys ${opts.keys}` : '',
    opts.safetyMs !== undefined ? `--safety-ms ${opts.safetyMs}` : '',
    opts.livenessBoundMs !== undefined ? `--liveness-ms ${opts.livenessBoundMs}` : '',
    opts.placements !== undefined ? `--placements ${opts.placements}` : '',
    opts.tsoClients !== undefined ? `--tso-clients ${opts.tsoClients}` : '',
    opts.faults === false ? '--no-faults' : '',
    opts.removePeers === false ? '--no-remove-peers' : '',
    opts.balance === false ? '--no-balance' : '',
    opts.merges === false ? '--no-merges' : '',
    opts.readOnly === 'lease-based' ? '--lease-reads' : '',
    opts.tickSkew !== undefined ? `--tick-skew ${opts.tickSkew}` : '',
    opts.replaceStores === false ? '--no-replace-stores' : '',
    opts.placementCrashes === false ? '--no-placement-crashes' : '',
  ].filter(Boolean).join(' ');
  const totals = { ops: 0, acknowledged: 0, unknown: 0, faults: 0, virtualMs: 0, realMs: 0 };
  for (let s = first; s < first + seeds; s++) {
    const r = await runSimulation({ ...opts, seed: s, ...(verbose ? { log: (l: string) => console.error(l) } : {}) });
    const faults = Object.values(r.stats.faults).reduce((a, b) => a + b, 0);
    totals.ops += r.stats.ops;
    totals.acknowledged += r.stats.acknowledged;
    totals.unknown += r.stats.unknown;
    totals.faults += faults;
    totals.virtualMs += r.stats.virtualMs;
    totals.realMs += r.stats.realMs;
    const line = `seed ${s}: ${r.ok ? 'PASS' : 'FAIL'} ops=${r.stats.ops} acked=${r.stats.acknowledged} unknown=${r.stats.unknown} scans=${r.stats.scans} final_reads=${r.stats.finalReads} faults=${faults} ${JSON.stringify(r.stats.faults)} regions=${r.stats.regionsAtEnd}${r.stats.tsoAnswers !== undefined ? ` tso=${r.stats.tsoAnswers} tso_failed=${r.stats.tsoFailed} ids=${r.stats.idsIssued} leaderships=${r.stats.placementLeaders}` : ''} linearizability=${r.linearizability} virtual_ms=${r.stats.virtualMs} real_ms=${r.stats.realMs} digest=${r.digest}`;
    if (json) console.log(JSON.stringify({ seed: s, ok: r.ok, ...r.stats, faults, linearizability: r.linearizability, digest: r.digest }));
    else console.log(line);
    if (!r.ok) {
      failed++;
      for (const f of r.failures) console.error(`  ${f}`);
      if (verbose) console.error(`  fault log:\n    ${r.faultLog.join('\n    ')}`);
      console.error(`  replay: pnpm sim --seed ${s} --seeds 1${extra ? ' ' + extra : ''} --verbose`);
    }
  }
  console.error(`${seeds - failed}/${seeds} seeds passed; ops=${totals.ops} acked=${totals.acknowledged} unknown=${totals.unknown} faults=${totals.faults} virtual_s=${(totals.virtualMs / 1000).toFixed(0)} real_s=${(totals.realMs / 1000).toFixed(0)}`);
  process.exitCode = failed === 0 ? 0 : 1;
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 2;
});
