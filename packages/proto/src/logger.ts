/**
 * Logger is the structured logger every package above proto takes
 * (placement, client, transport, store, the CLI). It has pino's call shape,
 * `logger.info({ regionId }, 'split')`, so a pino logger is passed as is;
 * tests pass silentLogger or a recorder. raft-core keeps its own Logger
 * (`(msg, fields)`): it is pure and sits below proto.
 */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  /** child, when the logger has it (pino does), returns a logger that adds `bindings` to every line. */
  child?(bindings: object): Logger;
}

const noop = (): void => {};

/** silentLogger drops everything; it is the default wherever a logger is optional. */
export const silentLogger: Logger = Object.freeze({ debug: noop, info: noop, warn: noop, error: noop, child: (): Logger => silentLogger });

/**
 * childLogger returns `logger.child(bindings)` when the logger has child,
 * and otherwise a logger that merges `bindings` into each line's object
 * (the line's own fields win), so callers need not care which kind they got.
 */
export function childLogger(logger: Logger, bindings: object): Logger {
  if (logger.child) return logger.child(bindings);
  const withBindings = (obj: object): object => ({ ...bindings, ...obj });
  return {
    debug: (obj, msg) => logger.debug(withBindings(obj), msg),
    info: (obj, msg) => logger.info(withBindings(obj), msg),
    warn: (obj, msg) => logger.warn(withBindings(obj), msg),
    error: (obj, msg) => logger.error(withBindings(obj), msg),
    child: (more) => childLogger(logger, { ...bindings, ...more }),
  };
}
