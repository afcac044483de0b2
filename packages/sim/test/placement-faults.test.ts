import { describe, expect, it } from 'vitest';
import { FAULTS, GROUP_FAULTS } from '../src/faults';

describe('GROUP_FAULTS (placement as 3 members)', () => {
  it('sums to 1000 per mille, names each fault once, and keeps the shared rows at their weights', () => {
    expect(GROUP_FAULTS.reduce((a, f) => a + f.weight, 0)).toBe(1000);
    expect(new Set(GROUP_FAULTS.map((f) => f.name)).size).toBe(GROUP_FAULTS.length);
    for (const f of FAULTS) if (f.name !== 'none') expect(GROUP_FAULTS.find((g) => g.name === f.name)?.weight, f.name).toBe(f.weight);
    for (const name of ['placement-partition', 'placement-store-cut', 'placement-clock-jump']) expect(GROUP_FAULTS.some((f) => f.name === name)).toBe(true);
  });
});
