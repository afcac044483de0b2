// `npx tsx packages/sim/src/txn/cli.ts --workload bank|list-append [--seed S] [--seeds N] ...`
// Runs txn workloads in the deterministic simulation (simulation.ts), one
// seed after the other, prints one JSON line per seed on stdout and the
// failures on stderr; exit 1 when any seed failed.
import { runTxnSimulation } from './simulation';
import type { ModelMode } from './model';

const USAGE = `usage: npx tsx packages/sim/src/txn/cli.ts --workload bank|list-append [--seed 1] [--seeds 1]
       [--safety-ms 5000] [--keys 8] [--clients 4] [--no-faults] [--no-1pc] [--no-placement-crashes]
       [--model serializable|snapshot|broken] [--watch] [--watchers 4] [--watch-plant drop|duplicate]

Runs the bank or list-append transaction workload in the deterministic
simulation: @flotilla/client's driver against 3 stores over --keys pre-split
Regions, under the seeded faults, then healing, a final read and the checker.
--model runs the in-memory reference model instead of the stores (the
harness's wiring). FLOTILLA_UNSAFE_SKIP_WRITE_CONFLICT=1 plants the
no-write-conflict bug in the stores. One JSON line per seed; exit 1 if any
seed failed.
--watch also runs watchers (@flotilla/client's Watch over simulated links to
the stores' change feeds) beside the workload, cuts their links now and then,
and checks every watcher's events against the recorded commits (exactly the
committed writes of its range after its start, in order, none missed or
duplicated); --watch-plant plants a bug in the links that it must catch.

example: npx tsx packages/sim/src/txn/cli.ts --workload list-append --watch --seed 1 --seeds 20 --safety-ms 3000`;

function parse(argv: string[]) {
  const o = { workload: '' as 'bank' | 'list-append' | '', seed: 1, seeds: 1, safetyMs: 5000, keys: 8, clients: 4, faults: true, onePc: true, placementCrashes: true, model: undefined as ModelMode | undefined, watchOn: false, watchers: 4, plant: undefined as 'drop' | 'duplicate' | undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const int = (): number => {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 0) throw new Error(`${a}: expected a non-negative integer, got ${argv[i] ?? 'nothing'}`);
      return n;
    };
    if (a === '--workload') {
      const w = argv[++i];
      if (w !== 'bank' && w !== 'list-append') throw new Error(`--workload: expected bank or list-append, got ${w ?? 'nothing'}`);
      o.workload = w;
    } else if (a === '--seed') o.seed = int();
    else if (a === '--seeds') o.seeds = Math.max(1, int());
    else if (a === '--safety-ms') o.safetyMs = int();
    else if (a === '--keys') o.keys = Math.max(2, int());
    else if (a === '--clients') o.clients = Math.max(1, int());
    else if (a === '--no-faults') o.faults = false;
    else if (a === '--no-1pc') o.onePc = false;
    else if (a === '--no-placement-crashes') o.placementCrashes = false;
    else if (a === '--model') {
      const m = argv[++i];
      if (m !== 'serializable' && m !== 'snapshot' && m !== 'broken') throw new Error(`--model: expected serializable, snapshot or broken, got ${m ?? 'nothing'}`);
      o.model = m;
    } else if (a === '--watch') o.watchOn = true;
    else if (a === '--watchers') o.watchers = Math.max(1, int());
    else if (a === '--watch-plant') {
      const p = argv[++i];
      if (p !== 'drop' && p !== 'duplicate') throw new Error(`--watch-plant: expected drop or duplicate, got ${p ?? 'nothing'}`);
      o.plant = p;
      o.watchOn = true;
    } else if (a === '--help' || a === '-h') return undefined;
    else if (a !== '--') throw new Error(`unknown argument ${a} (--help)`);
  }
  if (!o.workload) throw new Error('--workload is required (--help)');
  if (o.watchOn && o.model) throw new Error('--watch needs the stores (their change feeds): it cannot run with --model');
  return { ...o, workload: o.workload };
}

async function main(): Promise<number> {
  const o = parse(process.argv.slice(2));
  if (!o) {
    console.log(USAGE);
    return 0;
  }
  let failed = 0;
  for (let seed = o.seed; seed < o.seed + o.seeds; seed++) {
    const watch = o.watchOn ? { watchers: o.watchers, ...(o.plant ? { plant: o.plant } : {}) } : undefined;
    const r = await runTxnSimulation({ ...o, seed, backend: o.model ? { model: o.model } : 'driver', ...(watch ? { watch } : {}), log: (l) => console.error(l) });
    const w = r.watch ? { ...r.watch.summary, watchDigest: r.watch.digest } : {};
    console.log(JSON.stringify({ seed, pass: r.ok, ...r.verdict?.summary, ...w, faults: r.faults, virtualMs: r.virtualMs, realMs: r.realMs }));
    if (!r.ok) {
      failed++;
      console.error(`seed ${seed} FAILED:\n${r.failures.join('\n')}\nreplay: npx tsx packages/sim/src/txn/cli.ts --workload ${o.workload} --seed ${seed}${o.watchOn ? ' --watch' : ''}${o.watchers !== 4 ? ` --watchers ${o.watchers}` : ''}${o.plant ? ` --watch-plant ${o.plant}` : ''}${o.safetyMs !== 5000 ? ` --safety-ms ${o.safetyMs}` : ''}${o.keys !== 8 ? ` --keys ${o.keys}` : ''}`);
    }
  }
  return failed > 0 ? 1 : 0;
}

main().then(
  (c) => process.exit(c),
  (e: Error) => {
    console.error(e.message);
    process.exit(2);
  },
);
