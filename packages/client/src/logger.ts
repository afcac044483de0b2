/** ClientLogger is the subset of pino's Logger the client uses; pass a pino logger or leave it out. */
export interface ClientLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const noop = (): void => {};
export const silentLogger: ClientLogger = { debug: noop, info: noop, warn: noop, error: noop };
