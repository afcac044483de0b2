import { spawn } from 'node:child_process';
import type { FlotillaClient } from '@flotilla/client';
import { UsageError, boolFlag, intFlag, type CommandSpec } from '../args';
import { EXIT, type Command, type CommandContext } from '../command';
import { connectClient, targetFlags } from '../target';

// `flotilla lock NAME -- COMMAND` and `flotilla elect NAME VALUE`: etcdctl's
// lock and elect on the client's recipes (a mutex and an election on
// leases and revisions; docs/watch-and-leases.md).

const ttlFlag = { name: 'ttl-ms', type: 'string' as const, placeholder: 'MS', description: 'the lease TTL: a holder that dies releases after about this long', default: '10000', schema: intFlag(200, 24 * 3600_000) };

const lockSpec: CommandSpec = {
  path: ['lock'],
  summary: 'Run COMMAND while holding the lock NAME; exits with its status.',
  description:
    'Waits behind earlier holders (in the order they asked), then runs COMMAND with FLOTILLA_LOCK_KEY and FLOTILLA_FENCING_TOKEN (the holder\'s revision: greater for every later holder) in its environment, and releases the lock when it exits. If the lock\'s lease is lost (placement unreachable for a TTL, or revoked) COMMAND gets SIGTERM and lock exits 1: another client may hold the lock by then. SIGINT and SIGTERM are passed to COMMAND.',
  positionals: [
    { name: 'NAME', description: 'the lock name (its keys are NAME/<lease id> in the transactional keyspace)', required: true },
    { name: 'COMMAND', description: 'the command and its arguments, after --', required: false, variadic: true },
  ],
  flags: [...targetFlags, ttlFlag, { name: 'wait-ms', type: 'string', placeholder: 'MS', description: 'give up (exit 1) when the lock is not ours within MS (default: wait)', schema: intFlag(1, 24 * 3600_000) }],
  examples: ['flotilla lock backups -- ./run-backup.sh', "flotilla lock --ttl-ms 5000 deploy -- sh -c 'echo token $FLOTILLA_FENCING_TOKEN'"],
};

async function withClient(ctx: CommandContext, fn: (c: FlotillaClient) => Promise<number>): Promise<number> {
  const c = await connectClient(ctx);
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

export const lockCommand: Command = {
  spec: lockSpec,
  run: (ctx) => {
    const [name, cmd, ...args] = ctx.parsed.positionals as string[];
    if (cmd === undefined) throw new UsageError('missing COMMAND (usage: flotilla lock NAME -- COMMAND [ARGS...])');
    const waitMs = ctx.parsed.values['waitMs'] as number | undefined;
    return withClient(ctx, async (c) => {
      const holder = await c.lock(name!, { leaseTtlMs: ctx.parsed.values['ttlMs'] as number, ...(waitMs !== undefined ? { timeoutMs: waitMs } : {}) });
      ctx.io.stderr.write(`holding lock ${name} (key ${Buffer.from(holder.key).toString()}, fencing token ${holder.fencingToken})\n`);
      let lostLease = false;
      try {
        const child = spawn(cmd, args, { stdio: 'inherit', env: { ...ctx.io.env, FLOTILLA_LOCK_KEY: Buffer.from(holder.key).toString(), FLOTILLA_FENCING_TOKEN: holder.fencingToken.toString() } });
        const forward = (sig: NodeJS.Signals) => (): void => void child.kill(sig);
        const onInt = forward('SIGINT');
        const onTerm = forward('SIGTERM');
        process.on('SIGINT', onInt);
        process.on('SIGTERM', onTerm);
        void holder.lost.then((err) => {
          if (child.exitCode !== null || child.signalCode !== null) return;
          lostLease = true;
          ctx.io.stderr.write(`lost lock ${name}: ${err.message}; stopping the command\n`);
          child.kill('SIGTERM');
        });
        const code = await new Promise<number>((resolve) => {
          child.once('error', (err) => {
            ctx.io.stderr.write(`flotilla lock: cannot run ${JSON.stringify(cmd)}: ${err.message}\n`);
            resolve(127);
          });
          child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 + (({ SIGINT: 2, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[signal] ?? 1) : 1)));
        });
        process.off('SIGINT', onInt);
        process.off('SIGTERM', onTerm);
        return lostLease ? EXIT.failure : code;
      } finally {
        await holder.release().catch((err: unknown) => ctx.io.stderr.write(`releasing lock ${name} failed (${(err as Error).message}); it is released when its lease expires\n`));
      }
    });
  },
};

const electSpec: CommandSpec = {
  path: ['elect'],
  summary: 'Campaign to lead NAME with VALUE and hold leadership until interrupted (or --observe who leads).',
  description:
    'Waits behind earlier candidates, prints "elected NAME VALUE revision R" once this process leads, and leads until SIGINT or SIGTERM (then resigns, exit 0) or until its lease is lost (exit 1). With --observe it campaigns for nothing and prints the leader\'s value each time the leader changes.',
  positionals: [
    { name: 'NAME', description: 'the election name', required: true },
    { name: 'VALUE', description: "this candidate's value (what leader() and observers see)", required: false },
  ],
  flags: [...targetFlags, ttlFlag, { name: 'observe', type: 'boolean', description: 'print the leader each time it changes, until interrupted', schema: boolFlag() }],
  examples: ['flotilla elect scheduler node-1', 'flotilla elect --observe scheduler'],
};

/** untilSignal resolves on SIGINT or SIGTERM (or when stop resolves first). */
function untilSignal(stop: Promise<unknown>): Promise<'signal' | 'stopped'> {
  return new Promise((resolve) => {
    const on = (): void => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve('signal');
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
    void stop.then(() => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve('stopped');
    });
  });
}

export const electCommand: Command = {
  spec: electSpec,
  run: (ctx) => {
    const [name, value] = ctx.parsed.positionals as [string, string | undefined];
    const observe = ctx.parsed.values['observe'] === true;
    if (!observe && value === undefined) throw new UsageError('missing VALUE (usage: flotilla elect NAME VALUE, or flotilla elect --observe NAME)');
    return withClient(ctx, async (c) => {
      const election = c.election(name, { leaseTtlMs: ctx.parsed.values['ttlMs'] as number });
      if (observe) {
        const ac = new AbortController();
        void untilSignal(new Promise(() => {})).then(() => ac.abort());
        for await (const l of election.observe({ signal: ac.signal })) ctx.io.stdout.write(l ? `${Buffer.from(l.value).toString()}\n` : '(no leader)\n');
        return EXIT.ok;
      }
      const lead = await election.campaign(value!);
      ctx.io.stdout.write(`elected ${name} ${value} revision ${lead.revision}\n`);
      const why = await untilSignal(lead.lost);
      if (why === 'stopped') {
        ctx.io.stderr.write(`lost leadership of ${name}: ${(await lead.lost).message}\n`);
        return EXIT.failure;
      }
      await lead.resign();
      return EXIT.ok;
    });
  },
};
