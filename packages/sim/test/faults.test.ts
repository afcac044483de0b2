import { describe, expect, it } from 'vitest';
import { drawFault, FAULTS } from '../src/faults';

describe('the fault table', () => {
  it('weights are per mille of the slices', () => {
    expect(FAULTS.reduce((a, f) => a + f.weight, 0)).toBe(1000);
    expect(new Set(FAULTS.map((f) => f.name)).size).toBe(FAULTS.length);
  });

  // The bands of the threshold ladder the table replaced: a draw falls in the same fault.
  it.each([
    [0, 'crash'],
    [0.0149, 'crash'],
    [0.015, 'restart'],
    [0.0499, 'restart'],
    [0.05, 'partition'],
    [0.06, 'isolate'],
    [0.07, 'heal'],
    [0.1, 'split'],
    [0.14, 'transfer-leader'],
    [0.19, 'conf-change'],
    [0.21, 'placement-crash'],
    [0.225, 'merge'],
    [0.2599, 'merge'],
    [0.26, 'replace-store'],
    [0.2649, 'replace-store'],
    [0.265, 'none'],
    [0.9999999, 'none'],
  ])('a draw of %f is %s', (x, name) => {
    expect(drawFault(FAULTS, x).name).toBe(name);
  });
});
