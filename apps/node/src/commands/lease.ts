import type { FlotillaClient } from '@flotilla/client';
import { keyToString } from '@flotilla/proto';
import { UsageError, boolFlag, type CommandSpec } from '../args';
import { EXIT, type Command, type CommandContext } from '../command';
import { connectClient, targetFlags } from '../target';

// `flotilla lease grant|keepalive|revoke|ttl|list`: etcdctl's lease
// commands on placement's leases (docs/watch-and-leases.md). Keys are
// attached with `flotilla put --lease ID KEY VALUE` (transactional keyspace).

const jsonFlag = { name: 'json', type: 'boolean' as const, description: 'print JSON', schema: boolFlag() };

function spec(sub: string, summary: string, positionals: CommandSpec['positionals'], extra: CommandSpec['flags'], examples: string[], description?: string): CommandSpec {
  return { path: ['lease', sub], summary, ...(description ? { description } : {}), positionals, flags: [...targetFlags, jsonFlag, ...extra], examples };
}

/** parseId reads a lease ID (decimal, as grant prints it). */
export function parseId(text: string): number {
  if (!/^[1-9][0-9]{0,15}$/.test(text) || !Number.isSafeInteger(Number(text))) throw new UsageError(`ID: expected a lease ID (a positive decimal integer), got ${JSON.stringify(text)}`);
  return Number(text);
}

function parseTtl(text: string): number {
  if (!/^[0-9]{1,9}$/.test(text)) throw new UsageError(`TTL_MS: expected milliseconds (an integer), got ${JSON.stringify(text)}`);
  return Number(text);
}

async function withClient(ctx: CommandContext, fn: (c: FlotillaClient) => Promise<number>): Promise<number> {
  const c = await connectClient(ctx);
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

const json = (ctx: CommandContext): boolean => ctx.parsed.values['json'] === true;

const grantSpec = spec('grant', 'Grant a lease that lives TTL_MS unless kept alive; prints its ID.', [{ name: 'TTL_MS', description: 'time to live in milliseconds (at least 200)', required: true }], [], ['flotilla lease grant 10000', 'ID=$(flotilla lease grant 10000 --json | jq .id)']);

export const leaseGrantCommand: Command = {
  spec: grantSpec,
  run: (ctx) => {
    const ttl = parseTtl(ctx.parsed.positionals[0]!);
    return withClient(ctx, async (c) => {
      const l = await c.lease.grant(ttl);
      ctx.io.stdout.write(json(ctx) ? JSON.stringify(l) + '\n' : `lease ${l.id} granted with TTL ${l.ttlMs} ms\n`);
      return EXIT.ok;
    });
  },
};

const keepaliveSpec = spec(
  'keepalive',
  'Keep a lease alive (every TTL/3) until interrupted; exits 1 when the lease is lost.',
  [{ name: 'ID', description: 'the lease ID', required: true }],
  [{ name: 'once', type: 'boolean', description: 'refresh once and exit', schema: boolFlag() }],
  ['flotilla lease keepalive 7', 'flotilla lease keepalive --once 7'],
  'Prints one line per refresh. The lease is lost when placement answers that it expired or was revoked, or when no refresh succeeded for a whole TTL. SIGINT or SIGTERM stop refreshing (the lease is not revoked) and exit 0.',
);

export const leaseKeepaliveCommand: Command = {
  spec: keepaliveSpec,
  run: (ctx) => {
    const id = parseId(ctx.parsed.positionals[0]!);
    return withClient(ctx, async (c) => {
      const line = (r: { id: number; ttlMs: number }): string => (json(ctx) ? JSON.stringify(r) : `lease ${r.id} keepalived with TTL ${r.ttlMs} ms`) + '\n';
      if (ctx.parsed.values['once'] === true) {
        ctx.io.stdout.write(line(await c.lease.keepAliveOnce(id)));
        return EXIT.ok;
      }
      const ka = await c.lease.keepAlive(id);
      const stop = (): void => ka.close();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        for await (const r of ka) ctx.io.stdout.write(line(r));
        return EXIT.ok;
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });
  },
};

const revokeSpec = spec('revoke', 'Revoke a lease: every key attached to it is deleted in one transaction.', [{ name: 'ID', description: 'the lease ID', required: true }], [], ['flotilla lease revoke 7']);

export const leaseRevokeCommand: Command = {
  spec: revokeSpec,
  run: (ctx) => {
    const id = parseId(ctx.parsed.positionals[0]!);
    return withClient(ctx, async (c) => {
      await c.lease.revoke(id);
      ctx.io.stdout.write(json(ctx) ? JSON.stringify({ id, revoked: true }) + '\n' : `lease ${id} revoked\n`);
      return EXIT.ok;
    });
  },
};

const ttlSpec = spec(
  'ttl',
  "Show a lease's TTL and what is left of it (with --keys, its attached keys).",
  [{ name: 'ID', description: 'the lease ID', required: true }],
  [{ name: 'keys', type: 'boolean', description: 'also list the attached keys', schema: boolFlag() }],
  ['flotilla lease ttl 7', 'flotilla lease ttl --keys 7'],
);

export const leaseTtlCommand: Command = {
  spec: ttlSpec,
  run: (ctx) => {
    const id = parseId(ctx.parsed.positionals[0]!);
    const keys = ctx.parsed.values['keys'] === true;
    return withClient(ctx, async (c) => {
      const l = await c.lease.timeToLive(id, { keys });
      const shown = l.keys?.map((k) => keyToString(k));
      if (json(ctx)) ctx.io.stdout.write(JSON.stringify({ id: l.id, ttlMs: l.ttlMs, remainingMs: l.remainingMs, ...(shown ? { keys: shown } : {}) }) + '\n');
      else ctx.io.stdout.write(`lease ${l.id} granted with TTL ${l.ttlMs} ms, remaining ${l.remainingMs} ms${shown ? `, attached keys [${shown.join(' ')}]` : ''}\n`);
      return EXIT.ok;
    });
  },
};

const listSpec = spec('list', 'List the live leases.', [], [], ['flotilla lease list', 'flotilla lease list --json']);

export const leaseListCommand: Command = {
  spec: listSpec,
  run: (ctx) =>
    withClient(ctx, async (c) => {
      const ls = await c.lease.list();
      if (json(ctx)) ctx.io.stdout.write(JSON.stringify({ leases: ls }) + '\n');
      else ctx.io.stdout.write(`found ${ls.length} leases\n` + ls.map((l) => `${l.id}\tTTL ${l.ttlMs} ms\tremaining ${l.remainingMs} ms\n`).join(''));
      return EXIT.ok;
    }),
};
