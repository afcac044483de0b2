// `pnpm sim --seeds N [--seed S] [--stores 3] [--clients 4] [--safety-ms 15000] [--no-faults] [--verbose]`
// Runs N seeds (S, S+1, ...) of the whole-cluster simulation; exit 0 only when every seed passes.
import { runSimulation, type SimOptions } from './simulation';

function parseArgs(argv: string[]): { seeds: number; first: number; opts: Omit<SimOptions, 'seed'>; verbose: boolean; json: boolean } {
  let seeds = 1;
  let first = Number.NaN;
  let verbose = false;
  let json = false;
  const opts: Omit<SimOptions, 'seed'> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const num = () => {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v)) throw new Error(`${a} needs a number`);
      return v;
    };
    if (a === '--seeds') seeds = num();
    else if (a === '--seed') first = num();
    else if (a === '--stores') opts.stores = num();
    else if (a === '--clients') opts.clients = num();
    else if (a === '--keys') opts.keys = num();
    else if (a === '--safety-ms') opts.safetyMs = num();
    else if (a === '--liveness-ms') opts.livenessBoundMs = num();
    else if (a === '--no-faults') opts.faults = false;
    else if (a === '--no-remove-peers') opts.removePeers = false;
    else if (a === '--inject-stale-reads') opts.injectStaleReads = true;
    else if (a === '--no-balance') opts.balance = false;
    else if (a === '--no-merges') opts.merges = false;
    else if (a === '--lease-reads') opts.readOnly = 'lease-based';
    else if (a === '--tick-skew') opts.tickSkew = num();
    else if (a === '--no-replace-stores') opts.replaceStores = false;
    else if (a === '--no-placement-crashes') opts.placementCrashes = false;
    else if (a === '--debug-stores') opts.debugStores = true;
    else if (a === '--verbose') verbose = true;
    else if (a === '--json') json = true;
    else if (a === '--') continue;
    else throw new Error(`unknown argument ${a}`);
  }
  if (Number.isNaN(first)) first = Math.floor(Math.random() * 1_000_000);
  return { seeds, first, opts, verbose, json };
}

async function main(): Promise<void> {
  const { seeds, first, opts, verbose, json } = parseArgs(process.argv.slice(2));
  let failed = 0;
  const extra = [
    opts.stores !== undefined ? `--stores ${opts.stores}` : '',
    opts.clients !== undefined ? `--clients ${opts.clients}` : '',
    opts.keys !== undefined ? `--keys ${opts.keys}` : '',
    opts.safetyMs !== undefined ? `--safety-ms ${opts.safetyMs}` : '',
    opts.livenessBoundMs !== undefined ? `--liveness-ms ${opts.livenessBoundMs}` : '',
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
    const line = `seed ${s}: ${r.ok ? 'PASS' : 'FAIL'} ops=${r.stats.ops} acked=${r.stats.acknowledged} unknown=${r.stats.unknown} scans=${r.stats.scans} final_reads=${r.stats.finalReads} faults=${faults} ${JSON.stringify(r.stats.faults)} regions=${r.stats.regionsAtEnd} linearizability=${r.linearizability} virtual_ms=${r.stats.virtualMs} real_ms=${r.stats.realMs} digest=${r.digest}`;
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
