// options.ts: `pnpm chaos` command line.

/** ChaosOptions: one run's knobs; the seed fixes the fault plan and the workload's choices (not the timing). */
export interface ChaosOptions {
  durationS: number;
  seed: number;
  clients: number;
  keys: number;
  /** leaseReads starts the stores with readOnly 'lease-based' (default: 'safe', ReadIndex). */
  leaseReads: boolean;
  /** partitions puts every process in its own network namespace and adds the partition nemesis (needs root). */
  partitions: boolean;
  /** workload: 'register' (default: get/put/delete/cas, checked for linearizability) or a transaction workload (txn/run.ts). */
  workload: 'register' | 'bank' | 'list-append' | 'watch' | 'lock';
  /** plantBug (lock workload): contender 0 ignores the loss of its lease and writes unfenced, to show the checker catches it (exit 1). */
  plantBug: boolean;
  /** placementMembers: placement as one process (default) or a replicated group whose leader the nemesis kills and stops. */
  placementMembers: number;
  help: boolean;
}

export const USAGE = `usage: pnpm chaos [--duration-s 60] [--seed S] [--clients 4] [--keys 16] [--lease-reads] [--partitions] [--workload register|bank|list-append|watch|lock] [--plant-bug] [--placement-members 1|3]

Runs placement and three stores as real processes under faults (SIGKILL and
restart, SIGSTOP/SIGCONT, leader transfers, splits), records every client
operation, reads every key back at the end and checks the history for
linearizability. Prints one JSON summary line on stdout; exit 0 linearizable,
1 a violation or an unreadable key, 2 the cluster could not start.

  --duration-s N   seconds of faults (default 60)
  --seed S         fault plan and workload seed (default random; printed)
  --clients N      concurrent clients (default 4)
  --keys N         keys the clients share (default 16)
  --lease-reads    stores serve reads on the leader lease (readOnly lease-based)
  --workload W     register (default): raw get/put/delete/cas, checked for
                   linearizability; bank: transfers between --keys accounts
                   (each split into a Region of its own) through client.txn,
                   every snapshot read must sum to the initial total with no
                   negative balance; list-append: transactions appending to
                   and reading list values, checked for G0, G1a, G1b, G1c and
                   G-single cycles (Elle-style; G2 is allowed under snapshot
                   isolation); watch: --clients writers run transactions
                   over --keys keys (split into Regions, merges join the
                   faults) while three watchers run (the whole prefix from
                   now, the same from an old revision, a sub-range); each
                   must deliver exactly the acknowledged commits of its range
                   after its start, in revision order, none twice
                   (undetermined ones at most once, whole); lock: --clients
                   contenders take client.lock and write their fencing token
                   to a fenced register, whose history must show no two
                   holders' writes out of token order
  --plant-bug      with --workload lock: contender 0 ignores the loss of its
                   lease and writes with its stale token unfenced, so the
                   checker must report a violation (exit 1)
  --placement-members N
                   placement as one process (1, default) or a replicated
                   group of N (odd, at most 5) members; stores and clients
                   get every address, and the faults add SIGKILL (and
                   restart) and SIGSTOP of the current placement leader
  --partitions     each process in its own network namespace (10.77.K.0/24,
                   a real cluster secret) plus network partitions: the
                   leader's store isolated, a minority/majority split, a
                   bridge node, placement cut off. Needs root and iproute2.

example: pnpm chaos --duration-s 60 --seed 7 --partitions --lease-reads
         pnpm chaos --duration-s 30 --workload bank --keys 8
         pnpm chaos --duration-s 30 --workload watch --keys 8 --partitions
         pnpm chaos --duration-s 300 --workload lock --placement-members 3 --partitions`;

/** parseChaosArgs reads argv; a bad value is an Error naming the flag. */
export function parseChaosArgs(argv: readonly string[]): ChaosOptions {
  const o: ChaosOptions = { durationS: 60, seed: Math.floor(Math.random() * 1e6), clients: 4, keys: 16, leaseReads: false, partitions: false, workload: 'register', plantBug: false, placementMembers: 1, help: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const int = (min: number): number => {
      const raw = argv[++i];
      const n = Number(raw);
      if (raw === undefined || !Number.isInteger(n) || n < min) throw new Error(`${a}: expected an integer >= ${min}, got ${raw ?? 'nothing'}`);
      return n;
    };
    if (a === '--duration-s') o.durationS = int(1);
    else if (a === '--seed') o.seed = int(0);
    else if (a === '--clients') o.clients = int(1);
    else if (a === '--keys') o.keys = int(2);
    else if (a === '--lease-reads') o.leaseReads = true;
    else if (a === '--partitions') o.partitions = true;
    else if (a === '--workload') {
      const w = argv[++i];
      if (w !== 'register' && w !== 'bank' && w !== 'list-append' && w !== 'watch' && w !== 'lock') throw new Error(`--workload: expected register, bank, list-append, watch or lock, got ${w ?? 'nothing'}`);
      o.workload = w;
    }
    else if (a === '--plant-bug') o.plantBug = true;
    else if (a === '--placement-members') {
      o.placementMembers = int(1);
      if (o.placementMembers % 2 === 0 || o.placementMembers > 5) throw new Error(`--placement-members: expected 1, 3 or 5, got ${o.placementMembers}`);
    }
    else if (a === '--help' || a === '-h') o.help = true;
    else if (a !== '--') throw new Error(`unknown argument ${a} (pnpm chaos --help)`);
  }
  if (o.plantBug && o.workload !== 'lock') throw new Error('--plant-bug: only with --workload lock');
  return o;
}
