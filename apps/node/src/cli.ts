import { ClientError } from '@flotilla/client';
import { UsageError, helpText, parse } from './args';
import { operatorCancelCommand, operatorListCommand, storeRemoveCommand, transferLeaderCommand } from './commands/admin';
import { backupCommand, restoreCommand } from './commands/backup';
import { EXIT, type Command, type Io } from './command';
import { demoMergeCommand, demoSplitCommand } from './commands/demo';
import { gcStatusCommand } from './commands/gc';
import { leaseGrantCommand, leaseKeepaliveCommand, leaseListCommand, leaseRevokeCommand, leaseTtlCommand } from './commands/lease';
import { electCommand, lockCommand } from './commands/lock';
import { regionsCommand, storesCommand } from './commands/info';
import { casCommand, delCommand, getCommand, mergeCommand, putCommand, scanCommand, splitCommand } from './commands/kv';
import { memberListCommand, membersCommand } from './commands/members';
import { regionCommand } from './commands/region';
import { placementCommand, storeCommand } from './commands/server';
import { redisCommand } from './commands/redis';
import { tsoCommand } from './commands/tso';
import { txnCommand } from './commands/txn';
import { upCommand } from './commands/up';
import { versionCommand } from './commands/version';
import { watchCommand } from './commands/watch';
import { makeLogger, type LogFormat } from './logger';
import { TargetError } from './target';

/** COMMANDS: every command by its path as typed. */
export const COMMANDS: Command[] = [
  placementCommand,
  membersCommand,
  memberListCommand,
  storeCommand,
  upCommand,
  putCommand,
  getCommand,
  delCommand,
  scanCommand,
  casCommand,
  txnCommand,
  watchCommand,
  splitCommand,
  mergeCommand,
  regionsCommand,
  regionCommand,
  storesCommand,
  storeRemoveCommand,
  transferLeaderCommand,
  operatorListCommand,
  operatorCancelCommand,
  redisCommand,
  tsoCommand,
  gcStatusCommand,
  leaseGrantCommand,
  leaseKeepaliveCommand,
  leaseRevokeCommand,
  leaseTtlCommand,
  leaseListCommand,
  lockCommand,
  electCommand,
  backupCommand,
  restoreCommand,
  demoSplitCommand,
  demoMergeCommand,
  versionCommand,
];

/** DEMOS: `flotilla demo NAME`; `flotilla demo` alone runs the first. */
const DEMOS: Record<string, Command> = { split: demoSplitCommand, merge: demoMergeCommand };

export function topHelp(): string {
  const rows = COMMANDS.map((c) => `  ${c.spec.path.join(' ').padEnd(16)} ${c.spec.summary}`);
  return [
    'Usage: flotilla <command> [flags]',
    '',
    'Flotilla: a Multi-Raft sharded key-value store.',
    '',
    'Commands:',
    ...rows,
    '  demo             same as demo split',
    '',
    'Run `flotilla <command> --help` for the flags of a command. Flags may also come from',
    'FLOTILLA_<FLAG> environment variables and a --config JSON file (flags win, then env, then the file).',
    'Exit status: 0 ok, 1 runtime failure, 2 usage error; flotilla store: 3 damaged database or failing disk, 4 disk full.',
    '',
  ].join('\n');
}

/** findCommand splits argv into the command and its own arguments. */
function findCommand(argv: string[]): { command: Command; rest: string[] } | null {
  const [first, second] = argv;
  if (first === 'demo') {
    if (second !== undefined && !second.startsWith('-')) {
      const demo = DEMOS[second];
      if (!demo) throw new UsageError(`unknown demo ${JSON.stringify(second)}; demos: ${Object.keys(DEMOS).join(', ')}`);
      return { command: demo, rest: argv.slice(2) };
    }
    return { command: demoSplitCommand, rest: argv.slice(1) };
  }
  // Two-word commands first (`store remove`, `operator list`): `flotilla store --flags` stays the server command.
  const pair = COMMANDS.find((c) => c.spec.path.length === 2 && c.spec.path[0] === first && c.spec.path[1] === second);
  if (pair) return { command: pair, rest: argv.slice(2) };
  const command = COMMANDS.find((c) => c.spec.path.length === 1 && c.spec.path[0] === first);
  if (command) return { command, rest: argv.slice(1) };
  const subs = COMMANDS.filter((c) => c.spec.path.length === 2 && c.spec.path[0] === first);
  if (subs.length === 0) return null;
  if (second !== undefined && !second.startsWith('-')) throw new UsageError(`unknown command ${JSON.stringify(`${first} ${second}`)}; expected one of: ${subs.map((c) => c.spec.path.join(' ')).join(', ')}`);
  return { command: groupCommand(first!, subs), rest: argv.slice(1) };
}

/** groupCommand stands for a bare command group (`flotilla operator`): --help lists its subcommands; without it, a usage error does. */
function groupCommand(name: string, subs: Command[]): Command {
  const list = subs.map((c) => `  ${c.spec.path.join(' ').padEnd(18)} ${c.spec.summary}`).join('\n');
  return {
    spec: { path: [name], summary: `Subcommands of ${name}:\n${list}`, description: `Run \`flotilla ${name} <subcommand> --help\` for the flags of one.`, positionals: [], flags: [] },
    run: () => Promise.reject(new UsageError(`expected a subcommand:\n${list}`)),
  };
}

/**
 * run executes one CLI invocation and resolves to its exit status. Usage
 * errors print the message and a pointer to --help (status 2); expected
 * runtime failures print one line (status 1); anything else prints its stack
 * (status 1), since it is a bug.
 */
export async function run(argv: string[], io: Io): Promise<number> {
  const first = argv[0];
  if (first === undefined) {
    io.stderr.write(topHelp());
    return EXIT.usage;
  }
  if (first === '--help' || first === '-h' || first === 'help') {
    io.stdout.write(topHelp());
    return EXIT.ok;
  }
  let found: ReturnType<typeof findCommand>;
  try {
    found = findCommand(argv);
  } catch (err) {
    io.stderr.write(`flotilla: ${(err as Error).message}\n`);
    return EXIT.usage;
  }
  if (!found) {
    io.stderr.write(`flotilla: unknown command ${JSON.stringify(first)}\n\n${topHelp()}`);
    return EXIT.usage;
  }
  const { command, rest } = found;
  const name = `flotilla ${command.spec.path.join(' ')}`;
  try {
    const parsed = parse(command.spec, rest, io.env);
    if (parsed.help) {
      io.stdout.write(helpText(command.spec));
      return EXIT.ok;
    }
    const logger = makeLogger((parsed.values['logLevel'] as string | undefined) ?? 'info', command.spec.path.join('-'), (parsed.values['logFormat'] as LogFormat | undefined) ?? 'auto');
    return await command.run({ spec: command.spec, parsed, io, logger });
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`${name}: ${err.message}\n`);
      return EXIT.usage;
    }
    // PlacementError is matched by name: importing its class would load the placement server code into every command.
    const e = err instanceof Error ? err : new Error(String(err));
    if (e instanceof ClientError && e.code === 'InvalidArgument') {
      // The client checks arguments before sending anything: an empty key, a value over the size limit.
      io.stderr.write(`${name}: ${e.message}\n`);
      return EXIT.usage;
    }
    if (e instanceof ClientError || e instanceof TargetError || e.name.startsWith('PlacementError')) {
      io.stderr.write(`${name}: ${e.message}\n`);
      return EXIT.failure;
    }
    io.stderr.write(`${name}: ${e.message}\n${io.env['FLOTILLA_DEBUG'] === '1' ? `${e.stack ?? ''}\n` : ''}`);
    return EXIT.failure;
  }
}
