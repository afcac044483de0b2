import type { Logger } from '@flotilla/proto';
import type { CommandSpec, Parsed } from './args';

/** Io is where a command writes; tests and the real process differ only here. */
export interface Io {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  env: NodeJS.ProcessEnv;
  /** stdin opens standard input on demand (`put KEY -`, `restore -`); a getter, since touching process.stdin opens a handle. */
  stdin?: () => NodeJS.ReadableStream;
}

export interface CommandContext {
  spec: CommandSpec;
  parsed: Parsed;
  io: Io;
  logger: Logger;
}

/** Command is one `flotilla ...` command: its spec (flags, help) and what it does. run resolves to the exit code. */
export interface Command {
  spec: CommandSpec;
  run(ctx: CommandContext): Promise<number>;
}

/**
 * EXIT codes: 0 ok, 1 runtime failure, 2 usage error; `flotilla store`
 * also exits 3 when a database is damaged or its device fails (restarting
 * cannot help until it is restored or replaced) and 4 when the disk is full
 * (free space, then restart). A supervisor can tell them apart, e.g.
 * systemd's RestartPreventExitStatus=3 4.
 */
export const EXIT = { ok: 0, failure: 1, usage: 2, storage: 3, diskFull: 4 } as const;

/**
 * waitForShutdown resolves on the first SIGINT or SIGTERM after running
 * close. Further signals while closing are logged and otherwise ignored:
 * one Ctrl-C often arrives more than once (the terminal signals the whole
 * process group, and a wrapper such as pnpm forwards its own SIGTERM), and
 * exiting on the second would abandon children mid-stop. close is bounded
 * by its own timeouts (`flotilla up` escalates to SIGKILL), and SIGKILL
 * remains for an operator who will not wait. When
 * FLOTILLA_STOP_ON_STDIN_EOF=1 (set by `flotilla up` for its children) the
 * end of stdin counts as a shutdown signal, so children never outlive their
 * supervisor.
 */
export function waitForShutdown(ctx: CommandContext, close: () => Promise<void>): Promise<number> {
  return new Promise((resolve) => {
    let closing = false;
    const onSignal = (reason: string): void => {
      if (closing) {
        ctx.logger.info({ reason }, 'already shutting down; waiting for it to finish');
        return;
      }
      closing = true;
      ctx.logger.info({ reason }, 'shutting down');
      close().then(
        () => resolve(EXIT.ok),
        (err: unknown) => {
          ctx.logger.error({ err: (err as Error).message }, 'shutdown failed');
          resolve(EXIT.failure);
        },
      );
    };
    process.on('SIGINT', () => onSignal('SIGINT'));
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    if (ctx.io.env['FLOTILLA_STOP_ON_STDIN_EOF'] === '1') {
      process.stdin.on('end', () => onSignal('stdin closed (supervisor gone)'));
      process.stdin.on('error', () => onSignal('stdin error (supervisor gone)'));
      process.stdin.resume();
    }
  });
}
