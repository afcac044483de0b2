import { describe, expect, it } from 'vitest';
import { checkAdvertised } from '../../src/advertise';
import { StoreStartError } from '../../src/start-error';

const refusal = (f: () => void): string => {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(StoreStartError);
    expect((e as StoreStartError).code).toBe('WildcardAddress');
    return (e as Error).message;
  }
  throw new Error('expected a refusal');
};

describe('addresses for real deployments (checkAdvertised)', () => {
  it('refuses --listen on every interface without --advertise, naming the flag to add', () => {
    expect(refusal(() => checkAdvertised({ listen: '0.0.0.0:20161', advertiseRaft: '10.1.2.3:20162' }, '0.0.0.0', '10.1.2.3'))).toMatch(/--listen 0\.0\.0\.0:20161 binds every interface.*add --advertise HOST:PORT/);
    expect(refusal(() => checkAdvertised({ listen: '[::]:20161', advertiseRaft: '10.1.2.3:20162' }, '[::]', '10.1.2.3'))).toMatch(/add --advertise /);
  });
  it('refuses a raft listener on every interface (also the default, which follows --listen) without --advertise-raft', () => {
    expect(refusal(() => checkAdvertised({ listen: '0.0.0.0:20161', advertise: '10.1.2.3:20161' }, '0.0.0.0', '0.0.0.0'))).toMatch(/--raft-listen \(default: the --listen host 0\.0\.0\.0\) binds every interface.*--advertise-raft HOST:PORT/);
    expect(refusal(() => checkAdvertised({ listen: '10.1.2.3:20161', raftListen: '0.0.0.0:20162' }, '10.1.2.3', '0.0.0.0'))).toMatch(/--raft-listen 0\.0\.0\.0:20162 binds every interface/);
  });
  it('refuses announcing a wildcard, and accepts bound or announced addresses anyone can dial', () => {
    expect(refusal(() => checkAdvertised({ listen: '0.0.0.0:1', advertise: '0.0.0.0:1', advertiseRaft: '10.0.0.1:2' }, '0.0.0.0', '0.0.0.0'))).toMatch(/--advertise 0\.0\.0\.0:1 is not an address anyone can dial/);
    expect(() => checkAdvertised({ listen: '127.0.0.1:0' }, '127.0.0.1', '127.0.0.1')).not.toThrow();
    expect(() => checkAdvertised({ listen: '0.0.0.0:1', advertise: '10.0.0.1:1', advertiseRaft: '10.0.0.1:2' }, '0.0.0.0', '0.0.0.0')).not.toThrow();
  });
});
