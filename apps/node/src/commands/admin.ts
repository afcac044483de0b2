import { boolFlag, intFlag, UsageError, type CommandSpec, type Parsed } from '../args';
import { EXIT, type Command, type CommandContext } from '../command';
import { table } from '../format';
import { processNames, storeLabel } from '../process-names';
import { httpRequest, httpScheme } from '../security';
import { resolvePlacement, security, targetFlags } from '../target';
import type { RegionRow } from './info';

// The pd-ctl style admin commands: `store remove`, `transfer-leader`,
// `operator list`, `operator cancel`. They call placement's HTTP admin
// routes (DELETE /stores/:id, POST /operators, DELETE /operators/:regionId)
// and read its JSON routes; placement runs every change through its
// operator controller, so a hand-made operator is as safe as a scheduler's.

/** PlacementRefusal: placement answered an admin request with an error (exit 1, its message printed). */
export class PlacementRefusal extends Error {}

/** StoreRow is one store as placement's HTTP /stores renders it. */
export interface StoreRow {
  id: number;
  address: string;
  state: string;
  labels?: Record<string, string>;
  regionCount: number;
  leaderCount: number;
}

/** OperatorRow is one operator as placement's HTTP /operators renders it. */
export interface OperatorRow {
  id: number;
  regionId: number;
  kind: string;
  scheduler: string;
  currentStep: number;
  steps: { type: string; toStoreId?: number; peer?: { id: number; storeId: number }; targetRegionId?: number }[];
  createdAtMs: number;
  deadlineMs: number;
  description: string;
}

/** placementJson sends one request to placement's HTTP API and returns the parsed body; a non-200 answer throws its message. */
export async function placementJson<T>(ctx: CommandContext, method: string, path: string, json?: unknown): Promise<T> {
  const sec = security(ctx);
  const address = resolvePlacement(ctx).split(',')[0]!.trim();
  const url = `${httpScheme(sec)}://${address}${path}`;
  const res = await httpRequest(method, url, sec, ctx.parsed.values['timeoutMs'] as number, json);
  let body: { error?: { code?: string; message?: string } } & Record<string, unknown>;
  try {
    body = JSON.parse(res.body) as typeof body;
  } catch {
    throw new PlacementRefusal(`placement ${method} ${path}: HTTP ${res.status}, not JSON`);
  }
  if (res.status !== 200) throw new PlacementRefusal(body.error?.message ?? `placement ${method} ${path}: HTTP ${res.status}`);
  return body as T;
}

/** idArg reads a positional that must be a positive integer (a store or Region ID). */
function idArg(p: Parsed, i: number, what: string): number {
  const text = p.positionals[i]!;
  const n = Number(text);
  if (!/^[0-9]{1,16}$/.test(text) || !Number.isSafeInteger(n) || n <= 0) throw new UsageError(`<${what}>: ${JSON.stringify(text)} is not a positive integer`);
  return n;
}

/** pollUntil checks `done` every intervalMs until it returns a value or waitMs pass (then undefined). */
async function pollUntil<T>(waitMs: number, intervalMs: number, done: () => Promise<T | undefined>): Promise<T | undefined> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const v = await done();
    if (v !== undefined) return v;
    if (Date.now() + intervalMs > deadline) return undefined;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

const waitFlag = (def: string, what: string): CommandSpec['flags'][number] => ({
  name: 'wait-ms',
  type: 'string',
  placeholder: 'MS',
  description: `wait up to MS for ${what} (0: return once placement has accepted the request)`,
  default: def,
  schema: intFlag(0, 24 * 3600 * 1000),
  env: false,
});

// ---- store remove ----------------------------------------------------------

const storeRemoveSpec: CommandSpec = {
  path: ['store', 'remove'],
  summary: 'Remove a store: placement moves its Region peers to other stores, then makes it a tombstone.',
  description:
    'The store goes offline: it keeps serving while the replica checker adds a replica of each of its Regions elsewhere, hands leadership over and removes its peer. Once it holds none, placement makes it a tombstone: it may never rejoin under that ID (a restart is refused), and its process can be stopped and its data dir wiped. Refused while the other live stores are fewer than max-replicas. With --wait-ms it prints progress and returns when the store is a tombstone.',
  positionals: [{ name: 'store-id', description: 'the store ID (the STORE column of flotilla stores)', required: true }],
  flags: [...targetFlags, waitFlag('0', 'the store to become a tombstone')],
  examples: ['flotilla store remove 5', 'flotilla store remove 5 --wait-ms 600000'],
};

export const storeRemoveCommand: Command = {
  spec: storeRemoveSpec,
  async run(ctx) {
    const storeId = idArg(ctx.parsed, 0, 'store-id');
    const { store } = await placementJson<{ store: StoreRow }>(ctx, 'DELETE', `/stores/${storeId}`);
    const names = processNames(ctx, [store]);
    const who = `store ${storeLabel(names, storeId)}`;
    const finished = (): string => `${who} is a tombstone: every Region it held lives on other stores. Stop its process and wipe its data dir; it cannot rejoin under ID ${storeId}.\n`;
    if (store.state === 'tombstone') {
      ctx.io.stdout.write(finished());
      return EXIT.ok;
    }
    ctx.io.stdout.write(`${who} is offline: placement is moving its ${store.regionCount} Region peer${store.regionCount === 1 ? '' : 's'} (${store.leaderCount} leading) to other stores; it becomes a tombstone when it holds none.\n`);
    const waitMs = ctx.parsed.values['waitMs'] as number;
    if (waitMs === 0) {
      ctx.io.stdout.write(`Follow it with: flotilla stores (or flotilla store remove ${storeId} --wait-ms 600000)\n`);
      return EXIT.ok;
    }
    let lastReport = Date.now();
    const done = await pollUntil(waitMs, 500, async () => {
      const { store: now } = await placementJson<{ store: StoreRow }>(ctx, 'GET', `/stores/${storeId}`);
      if (now.state === 'tombstone') return true;
      if (Date.now() - lastReport >= 5000) {
        lastReport = Date.now();
        ctx.io.stderr.write(`${who}: ${now.regionCount} Region peer${now.regionCount === 1 ? '' : 's'} left (${now.state})\n`);
      }
      return undefined;
    });
    if (done) {
      ctx.io.stdout.write(finished());
      return EXIT.ok;
    }
    ctx.io.stderr.write(`${who} still holds Region peers after ${waitMs} ms; placement keeps moving them (see flotilla operator list, flotilla stores)\n`);
    return EXIT.failure;
  },
};

// ---- transfer-leader -------------------------------------------------------

const transferLeaderSpec: CommandSpec = {
  path: ['transfer-leader'],
  summary: "Move a Region's leadership to its voter on another store.",
  description:
    "Placement adds a transfer-leader operator (checked like a scheduler's: the target must hold a live voter, one operator per Region) and hands it to the Region's leader in its next heartbeat; the command then waits for the Region to report its new leader. A hibernated (idle) Region heartbeats less often, up to 6 heartbeat intervals (a minute with the production profile).",
  positionals: [
    { name: 'region-id', description: 'the Region (the REGION column of flotilla regions)', required: true },
    { name: 'store-id', description: 'the store whose voter should lead', required: true },
  ],
  flags: [...targetFlags, waitFlag('90000', 'the Region to report the new leader')],
  examples: ['flotilla transfer-leader 2 5', 'flotilla transfer-leader 2 5 --wait-ms 0   # add the operator and return'],
};

export const transferLeaderCommand: Command = {
  spec: transferLeaderSpec,
  async run(ctx) {
    const regionId = idArg(ctx.parsed, 0, 'region-id');
    const storeId = idArg(ctx.parsed, 1, 'store-id');
    const names = processNames(ctx);
    const target = `store ${storeLabel(names, storeId)}`;
    const out = await placementJson<{ operator?: OperatorRow; alreadyLeader?: boolean }>(ctx, 'POST', '/operators', { type: 'transfer-leader', regionId, storeId });
    if (out.alreadyLeader) {
      ctx.io.stdout.write(`region ${regionId} is already led from ${target}: nothing to do\n`);
      return EXIT.ok;
    }
    const op = out.operator!;
    ctx.io.stdout.write(`operator ${op.id} added: ${op.description}\n`);
    const waitMs = ctx.parsed.values['waitMs'] as number;
    if (waitMs === 0) return EXIT.ok;
    const outcome = await pollUntil(waitMs, 200, async () => {
      // Operators first: one that finished did so on the heartbeat that moved the leader, which the Region read then shows.
      const { operators } = await placementJson<{ operators: OperatorRow[] }>(ctx, 'GET', '/operators');
      const { region } = await placementJson<{ region: RegionRow }>(ctx, 'GET', `/regions/id/${regionId}`);
      if (region.leader?.storeId === storeId) return 'moved' as const;
      return operators.some((o) => o.id === op.id) ? undefined : ('gone' as const);
    });
    if (outcome === 'moved') {
      ctx.io.stdout.write(`region ${regionId} is now led from ${target}\n`);
      return EXIT.ok;
    }
    if (outcome === 'gone') ctx.io.stderr.write(`operator ${op.id} ended without moving the leader (canceled, timed out, or the Region changed; placement's log says which)\n`);
    else ctx.io.stderr.write(`region ${regionId} has not reported a leader on ${target} within ${waitMs} ms; operator ${op.id} is still waiting for its heartbeat (flotilla operator list)\n`);
    return EXIT.failure;
  },
};

// ---- operator list / cancel ------------------------------------------------

/** describeStep renders one operator step for the table. */
function describeStep(s: OperatorRow['steps'][number], names: Map<number, string>): string {
  if (s.type === 'transferLeader' && s.toStoreId !== undefined) return `transferLeader to store ${storeLabel(names, s.toStoreId)}`;
  if (s.type === 'merge') return `merge into region ${s.targetRegionId ?? '?'}`;
  return s.peer ? `${s.type} peer ${s.peer.id} on store ${storeLabel(names, s.peer.storeId)}` : s.type;
}

const seconds = (ms: number): string => `${Math.max(0, Math.round(ms / 1000))}s`;

const operatorListSpec: CommandSpec = {
  path: ['operator', 'list'],
  summary: 'List the operators in flight: Region, kind, who made it, its current step, age and time left.',
  positionals: [],
  flags: [...targetFlags, { name: 'json', type: 'boolean', description: 'print JSON instead of a table', schema: boolFlag() }],
  examples: ['flotilla operator list', 'flotilla operator list --json'],
};

export const operatorListCommand: Command = {
  spec: operatorListSpec,
  async run(ctx) {
    const { operators } = await placementJson<{ operators: OperatorRow[] }>(ctx, 'GET', '/operators');
    operators.sort((a, b) => a.regionId - b.regionId);
    if (ctx.parsed.values['json'] === true) {
      ctx.io.stdout.write(JSON.stringify(operators, null, 2) + '\n');
      return EXIT.ok;
    }
    const names = processNames(ctx);
    const now = Date.now();
    ctx.io.stdout.write(
      table(
        ['OPERATOR', 'REGION', 'KIND', 'BY', 'STEP', 'AGE', 'TIME LEFT', 'DESCRIPTION'],
        operators.map((o) => [
          o.id,
          o.regionId,
          o.kind,
          o.scheduler,
          `${o.currentStep + 1}/${o.steps.length} ${o.steps[o.currentStep] ? describeStep(o.steps[o.currentStep]!, names) : ''}`,
          seconds(now - o.createdAtMs),
          seconds(o.deadlineMs - now),
          o.description,
        ]),
      ) + `${operators.length} operator${operators.length === 1 ? '' : 's'} in flight\n`,
    );
    return EXIT.ok;
  },
};

const operatorCancelSpec: CommandSpec = {
  path: ['operator', 'cancel'],
  summary: "Cancel a Region's operator in flight (placement hands out no further step of it).",
  description:
    'A step already handed to the Region may still take effect (a conf change in flight); placement then sees it in the next heartbeat, and the replica checker tidies up what is left (a stray learner, a missing replica).',
  positionals: [{ name: 'region-id', description: 'the Region whose operator to cancel (the REGION column of flotilla operator list)', required: true }],
  flags: [...targetFlags],
  examples: ['flotilla operator cancel 2'],
};

export const operatorCancelCommand: Command = {
  spec: operatorCancelSpec,
  async run(ctx) {
    const regionId = idArg(ctx.parsed, 0, 'region-id');
    const { canceled } = await placementJson<{ canceled: OperatorRow }>(ctx, 'DELETE', `/operators/${regionId}`);
    ctx.io.stdout.write(`canceled operator ${canceled.id} (${canceled.kind}, by ${canceled.scheduler}) of region ${regionId} at step ${canceled.currentStep + 1}/${canceled.steps.length}: ${canceled.description}\n`);
    return EXIT.ok;
  },
};
