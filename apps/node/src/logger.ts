import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';

/**
 * makeLogger: pino logs on stderr (stdout is for command output: values,
 * tables, endpoints). Human-readable through pino-pretty when stderr is a
 * terminal, JSON lines otherwise, so logs of `flotilla up` children and CI
 * runs stay machine-readable. pino-pretty runs as a stream in-process, not
 * as a worker transport: a CLI that exits quickly must not lose lines.
 */
export function makeLogger(level: string, name?: string): Logger {
  const opts = { level, ...(name ? { name } : {}) };
  if (process.stderr.isTTY) {
    return pino(opts, pretty({ destination: 2, colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', sync: true }));
  }
  return pino(opts, pino.destination({ fd: 2, sync: true }));
}
