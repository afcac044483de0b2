import { describe, expect, it } from 'vitest';
import { parseInput, renderBytes } from '../src/format';

describe('renderBytes', () => {
  it('never prints text and bytes alike: text starting with 0x is shown as hex', () => {
    expect(renderBytes(Buffer.from('hello'))).toBe('hello');
    expect(renderBytes(Buffer.from([0xca, 0xfe]))).toBe('0xcafe');
    expect(renderBytes(Buffer.from('0xcafe'))).toBe('0x307863616665');
    expect(renderBytes(Buffer.from('0Xcafe'))).toBe('0Xcafe');
    expect(renderBytes(Buffer.from('a\nb'))).toBe('0x610a62');
    // Whatever it prints reads back as the same bytes (hex when it starts with 0x, else UTF-8).
    for (const b of [Buffer.from('0xcafe'), Buffer.from([0xca, 0xfe]), Buffer.from('x0x'), Buffer.from([0x30, 0x78])]) {
      const shown = renderBytes(b);
      expect(Buffer.from(parseInput(shown, shown.startsWith('0x'), 'v')).equals(b)).toBe(true);
    }
  });
});
