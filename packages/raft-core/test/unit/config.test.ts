import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config';
import type { Config } from '../../src/config';
import { ConfigError } from '../../src/errors';
import { MemoryStorage } from '../../src/memory-storage';
import { RawNode } from '../../src/raw-node';
import { newSeededRandom } from '../../src/util';

const base = (): Config => ({ id: 1, electionTick: 10, heartbeatTick: 1, maxInflightMsgs: 256, random: newSeededRandom(1) });

function fieldOf(c: Config): string | undefined {
  try {
    validateConfig(c);
    return undefined;
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).field;
  }
}

describe('validateConfig', () => {
  it('accepts a minimal config and fills in defaults', () => {
    const c = validateConfig(base());
    expect(c.maxSizePerMsg).toBe(1024 * 1024);
    expect(c.maxCommittedSizePerReady).toBe(1024 * 1024);
    expect([c.minElectionTick, c.maxElectionTick]).toEqual([10, 20]);
    expect(c.readOnlyOption).toBe('safe');
    expect(c.applied).toBe(0);
  });

  it('rejects each bad field with a ConfigError naming it', () => {
    const cases: [Partial<Config>, string][] = [
      [{ id: 0 }, 'id'],
      [{ id: -1 }, 'id'],
      [{ id: 1.5 }, 'id'],
      [{ heartbeatTick: 0 }, 'heartbeatTick'],
      [{ heartbeatTick: -2 }, 'heartbeatTick'],
      [{ electionTick: 1 }, 'electionTick'],
      [{ electionTick: 5, heartbeatTick: 5 }, 'electionTick'],
      [{ maxInflightMsgs: 0 }, 'maxInflightMsgs'],
      [{ maxInflightMsgs: -1 }, 'maxInflightMsgs'],
      [{ maxInflightBytes: -1 }, 'maxInflightBytes'],
      [{ maxInflightBytes: 10, maxSizePerMsg: 100 }, 'maxInflightBytes'],
      [{ maxSizePerMsg: -1 }, 'maxSizePerMsg'],
      [{ maxUncommittedEntriesSize: -5 }, 'maxUncommittedEntriesSize'],
      [{ applied: -1 }, 'applied'],
      [{ readOnlyOption: 'lease-based' }, 'readOnlyOption'],
      [{ readOnlyOption: 'bogus' as 'safe' }, 'readOnlyOption'],
      [{ minElectionTick: 5 }, 'minElectionTick'],
      [{ maxElectionTick: 10 }, 'maxElectionTick'],
      [{ random: undefined as unknown as () => number }, 'random'],
      [{ priority: Number.NaN }, 'priority'],
    ];
    for (const [patch, field] of cases) {
      expect(fieldOf({ ...base(), ...patch }), JSON.stringify(patch)).toBe(field);
    }
    expect(fieldOf({ ...base(), readOnlyOption: 'lease-based', checkQuorum: true })).toBeUndefined();
  });

  it('the message names the field and RawNode refuses a bad config', () => {
    expect(() => validateConfig({ ...base(), id: 0 })).toThrow(/invalid raft config: id/);
    expect(() => new RawNode({ ...base(), heartbeatTick: 0 }, new MemoryStorage({ voters: [1] }))).toThrow(ConfigError);
  });
});
