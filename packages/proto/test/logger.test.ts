import { describe, expect, it } from 'vitest';
import { childLogger, silentLogger, type Logger } from '@flotilla/proto';

/** recorder is a Logger without child that keeps every line. */
function recorder(): { logger: Logger; lines: [string, object, string | undefined][] } {
  const lines: [string, object, string | undefined][] = [];
  const at = (level: string) => (obj: object, msg?: string) => void lines.push([level, obj, msg]);
  return { logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }, lines };
}

describe('Logger', () => {
  it('childLogger adds its bindings to every line of a logger without child; the line\'s own fields win', () => {
    const r = recorder();
    const log = childLogger(childLogger(r.logger, { component: 'transport', store: 1 }), { peerStore: 2 });
    log.warn({ store: 9, reason: 'x' }, 'dial failed');
    log.debug({});
    expect(r.lines).toEqual([
      ['warn', { component: 'transport', store: 9, peerStore: 2, reason: 'x' }, 'dial failed'],
      ['debug', { component: 'transport', store: 1, peerStore: 2 }, undefined],
    ]);
  });

  it('childLogger uses the logger\'s own child when it has one', () => {
    const r = recorder();
    const bound: object[] = [];
    const withChild: Logger = { ...r.logger, child: (b) => (bound.push(b), r.logger) };
    expect(childLogger(withChild, { component: 'placement' })).toBe(r.logger);
    expect(bound).toEqual([{ component: 'placement' }]);
  });

  it('silentLogger drops everything, and so do its children', () => {
    expect(() => silentLogger.error({ err: 'boom' }, 'ignored')).not.toThrow();
    expect(childLogger(silentLogger, { a: 1 })).toBe(silentLogger);
  });
});
