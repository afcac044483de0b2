import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

/** LogFormat is --log-format: auto (pretty on a terminal, else JSON), json, or pretty. */
export type LogFormat = 'auto' | 'json' | 'pretty';

/**
 * makeLogger: pino logs on stderr (stdout is for command output: values,
 * tables, endpoints). With --log-format auto (the default), human-readable
 * through pino-pretty when stderr is a terminal and JSON lines otherwise,
 * so logs of `flotilla up` children and CI runs stay machine-readable;
 * pretty forces pino-pretty (colors only on a terminal), json forces JSON.
 * pino-pretty runs as a stream in-process, not as a worker transport: a CLI
 * that exits quickly must not lose lines.
 */
export function makeLogger(level: string, name?: string, format: LogFormat = 'auto'): Logger {
  const opts = { level, ...(name ? { name } : {}) };
  const tty = process.stderr.isTTY === true;
  if (format === 'pretty' || (format === 'auto' && tty)) {
    return pino(opts, pretty({ destination: 2, colorize: tty, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', sync: true }));
  }
  return pino(opts, pino.destination({ fd: 2, sync: true }));
}
