import { ClientError } from '@flotilla/client';
import { LIMITS } from '@flotilla/proto';
import { dispatch } from './commands/index';
import { errorReply, type ConnState, type FrontContext } from './context';
import { reply, type Reply } from './resp';

// batch.ts: a pipeline's run of plain GETs (or plain SETs) in one request.
// A connection's commands must take effect in order (server.ts). A run of
// GETs read by one request of one Region is one read at one instant, and a
// run of SETs written by one request is one Raft entry applied at once: no
// client can observe anything between them, so the order holds. The client
// sends such a run with oneRequest, which refuses (SpansRegions, nothing
// applied) when the keys belong to more than one Region; the run then runs
// one command after another like any other.

/** MAX_RUN_COMMANDS and MAX_RUN_BYTES bound one batched run (well inside one client request: 10,000 keys, 4 MiB). */
export const MAX_RUN_COMMANDS = 256;
export const MAX_RUN_BYTES = 1024 * 1024;

type Kind = 'get' | 'set';

/** kindOf: 'get' for `GET key`, 'set' for `SET key value` without options, with a key within Flotilla's limits; null for anything else. */
function kindOf(args: Buffer[] | undefined): Kind | null {
  if (!args || args.length < 2 || args[1]!.length === 0 || args[1]!.length > LIMITS.maxKeyBytes) return null;
  const name = args[0]!;
  if (name.length !== 3) return null;
  const n = name.toString('latin1').toLowerCase();
  if (n === 'get' && args.length === 2) return 'get';
  if (n === 'set' && args.length === 3) return 'set';
  return null;
}

/** takeRun: when first and the commands queued after it form a run of one kind, removes the rest of the run from queue and returns it all. */
export function takeRun(first: Buffer[], queue: Buffer[][]): { kind: Kind; commands: Buffer[][] } | null {
  const kind = kindOf(first);
  if (kind === null || kindOf(queue[0]) !== kind) return null;
  const commands = [first];
  let bytes = first[1]!.length + (first[2]?.length ?? 0);
  while (commands.length < MAX_RUN_COMMANDS && kindOf(queue[0]) === kind) {
    const next = queue[0]!;
    bytes += next[1]!.length + (next[2]?.length ?? 0);
    if (bytes > MAX_RUN_BYTES) break;
    commands.push(queue.shift()!);
  }
  return commands.length > 1 ? { kind, commands } : null;
}

/** runBatch answers a run in order: in one request when its keys share a Region, else one command after another. */
export async function runBatch(ctx: FrontContext, conn: ConnState, run: { kind: Kind; commands: Buffer[][] }): Promise<Reply[]> {
  const { kind, commands } = run;
  try {
    if (kind === 'get') {
      const values = await ctx.client.batchGet(commands.map((c) => c[1]!), { oneRequest: true });
      countAs(ctx, conn, kind, commands.length);
      return values.map((v) => reply.bulk(v));
    }
    await ctx.client.batchPut(commands.map((c) => ({ key: c[1]!, value: c[2]! })), { oneRequest: true });
    countAs(ctx, conn, kind, commands.length);
    return commands.map(() => reply.ok);
  } catch (err) {
    if (!(err instanceof ClientError && err.code === 'SpansRegions')) {
      countAs(ctx, conn, kind, commands.length);
      return commands.map(() => errorReply(err));
    }
  }
  const replies: Reply[] = [];
  for (const c of commands) replies.push(await dispatch(ctx, conn, c));
  return replies;
}

function countAs(ctx: FrontContext, conn: ConnState, kind: Kind, n: number): void {
  ctx.stats.commandsProcessed += n;
  ctx.stats.batchedCommands += n;
  conn.lastCommand = kind;
}
