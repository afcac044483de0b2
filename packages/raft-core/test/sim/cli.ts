// cli: run the raft simulation over a range of seeds from the command line.
//
//   pnpm sim:raft --seeds N [--start S] [--nodes K] [--rounds R] [--async on|off] [--trace]
//                 [--inject lose-hardstate|ack-before-persist]
//
// --inject runs a deliberately broken host, to see the checkers fire.
//
// Exits 0 only when every seed passes; prints progress and a summary. With
// --trace (meant for one seed) every event and delivered message is printed.
import { SimViolation, replayCommand, runSeed } from './sim';

interface CliArgs {
  seeds: number;
  start: number;
  nodes?: number;
  rounds?: number;
  async?: boolean;
  inject?: 'lose-hardstate' | 'ack-before-persist';
  trace: boolean;
}

function parse(argv: string[]): CliArgs {
  const out: CliArgs = { seeds: 100, start: 1, trace: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = (): number => {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 0) throw new Error(`${a} needs a non-negative integer`);
      return v;
    };
    if (a === '--seeds') out.seeds = num();
    else if (a === '--start') out.start = num();
    else if (a === '--nodes') out.nodes = num();
    else if (a === '--rounds') out.rounds = num();
    else if (a === '--trace') out.trace = true;
    else if (a === '--inject') {
      const v = argv[++i];
      if (v !== 'lose-hardstate' && v !== 'ack-before-persist') throw new Error('--inject needs lose-hardstate or ack-before-persist');
      out.inject = v;
    } else if (a === '--async') {
      const v = argv[++i];
      if (v !== 'on' && v !== 'off') throw new Error('--async needs on or off');
      out.async = v === 'on';
    }
    else if (a === '--help' || a === '-h') {
      console.log(
        'usage: pnpm sim:raft --seeds N [--start S] [--nodes K] [--rounds R] [--async on|off] [--trace] [--inject lose-hardstate|ack-before-persist]',
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (out.nodes !== undefined && (out.nodes < 3 || out.nodes > 7)) throw new Error('--nodes must be 3..7');
  return out;
}

function main(): number {
  let args;
  try {
    args = parse(process.argv.slice(2));
  } catch (err) {
    console.error(`sim:raft: ${(err as Error).message}`);
    return 2;
  }
  const t0 = performance.now();
  let passed = 0;
  const failed: number[] = [];
  let committed = 0;
  let elections = 0;
  let crashes = 0;
  let confChanges = 0;
  let snapshots = 0;
  let waived = 0;
  let transfers = 0;
  const end = args.start + args.seeds;
  for (let seed = args.start; seed < end; seed++) {
    const opts = {
      ...(args.nodes !== undefined ? { nodes: args.nodes } : {}),
      ...(args.rounds !== undefined ? { rounds: args.rounds } : {}),
      ...(args.async !== undefined ? { async: args.async } : {}),
      ...(args.inject !== undefined ? { inject: args.inject } : {}),
    };
    try {
      const r = runSeed({ seed, ...opts, ...(args.trace ? { trace: (l: string) => console.log(l) } : {}) });
      passed++;
      committed += r.committed;
      elections += r.elections;
      crashes += r.crashes;
      confChanges += r.confChanges;
      snapshots += r.snapshotsSent;
      waived += r.livenessWaived;
      transfers += r.transfers;
    } catch (err) {
      failed.push(seed);
      const msg = err instanceof SimViolation ? err.message : `seed ${seed}: ${(err as Error).stack ?? String(err)}`;
      console.error(`FAIL ${msg}\n  replay: ${replayCommand(seed, opts)}`);
    }
    const done = seed - args.start + 1;
    if (done % 100 === 0 || seed === end - 1) {
      const s = ((performance.now() - t0) / 1000).toFixed(1);
      console.error(`progress: ${done}/${args.seeds} seeds, ${failed.length} failed, ${s}s`);
    }
  }
  const secs = (performance.now() - t0) / 1000;
  console.log(
    JSON.stringify({
      sim: 'raft-core',
      seeds: args.seeds,
      start: args.start,
      passed,
      failed: failed.length,
      failed_seeds: failed.slice(0, 50),
      committed_entries: committed,
      elections,
      crashes,
      conf_changes: confChanges,
      snapshots_sent: snapshots,
      leader_transfers: transfers,
      liveness_waived: waived,
      seconds: Number(secs.toFixed(2)),
    }),
  );
  return failed.length === 0 ? 0 : 1;
}

process.exitCode = main();
