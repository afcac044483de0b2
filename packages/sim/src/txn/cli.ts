// `npx tsx packages/sim/src/txn/cli.ts --workload bank|list-append [--seed S] [--seeds N] ...`
// Runs txn workloads in the deterministic simulation (simulation.ts), one
// seed after the other, prints one JSON line per seed on stdout and the
// failures on stderr; exit 1 when any seed failed.
import { runTxnSimulation } from './simulation';
import type { ModelMode } from './model';

const USAGE = `usage: npx tsx packages/sim/src/txn/cli.ts --workload bank|list-append [--seed 1] [--seeds 1]
       [--safety-ms 5000] [--keys 8] [--clients 4] [--no-faults] [--no-1pc] [--no-placement-crashes]
       [--model serializable|snapshot|broken]

Runs the bank or list-append transaction workload in the deterministic
simulation: @flotilla/client's driver against 3 stores over --keys pre-split
Regions, under the seeded faults, then healing, a final read and the checker.
--model runs the in-memory reference model instead of the stores (the
harness's wiring). FLOTILLA_UNSAFE_SKIP_WRITE_CONFLICT=1 plants the
no-write-conflict bug in the stores. One JSON line per seed; exit 1 if any
seed failed.`;

function parse(argv: string[]) {
  const o = { workload: '' as 'bank' | 'list-append' | '', seed: 1, seeds: 1, safetyMs: 5000, keys: 8, clients: 4, faults: true, onePc: true, placementCrashes: true, model: undefined as ModelMode | undefined };
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
    } else if (a === '--help' || a === '-h') return undefined;
    else if (a !== '--') throw new Error(`unknown argument ${a} (--help)`);
  }
  if (!o.workload) throw new Error('--workload is required (--help)');
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
    const r = await runTxnSimulation({ ...o, seed, backend: o.model ? { model: o.model } : 'driver', log: (l) => console.error(l) });
    console.log(JSON.stringify({ seed, pass: r.ok, ...r.verdict?.summary, faults: r.faults, virtualMs: r.virtualMs, realMs: r.realMs }));
    if (!r.ok) {
      failed++;
      console.error(`seed ${seed} FAILED:\n${r.failures.join('\n')}\nreplay: npx tsx packages/sim/src/txn/cli.ts --workload ${o.workload} --seed ${seed}`);
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
