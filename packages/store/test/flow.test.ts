import { describe, expect, it } from 'vitest';
import { FlowCounter } from '../src/raft/flow';

// FlowCounter (src/raft/flow.ts): the per-peer traffic a leader reports in
// Region heartbeats, as rates over the time since its previous report.
describe('FlowCounter', () => {
  it('reports rates since the previous take, zero the first time', () => {
    const f = new FlowCounter();
    f.write(10, 1_000);
    expect(f.take(1_000)).toEqual({ readKeysPerSec: 0, readBytesPerSec: 0, writeKeysPerSec: 0, writeBytesPerSec: 0 });
    expect(f.hasUnreported).toBe(false);
    f.write(20, 4_000);
    f.read(5, 500);
    expect(f.hasUnreported).toBe(true);
    expect(f.take(3_000)).toEqual({ readKeysPerSec: 2.5, readBytesPerSec: 250, writeKeysPerSec: 10, writeBytesPerSec: 2_000 });
    expect(f.hasUnreported).toBe(false);
  });

  it('forgets counts from an earlier term on restart (a peer that becomes leader again)', () => {
    const f = new FlowCounter();
    f.take(0);
    // Counted while leading, then leadership moved away before the next report.
    f.write(1_000, 1_000_000);
    // Leader again a minute later: its first report must not carry the old term's writes.
    f.restart(60_000);
    expect(f.take(60_000)).toEqual({ readKeysPerSec: 0, readBytesPerSec: 0, writeKeysPerSec: 0, writeBytesPerSec: 0 });
    f.write(10, 100);
    expect(f.take(70_000)).toEqual({ readKeysPerSec: 0, readBytesPerSec: 0, writeKeysPerSec: 1, writeBytesPerSec: 10 });
  });
});
