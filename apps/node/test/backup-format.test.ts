import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { compareKeys } from '@flotilla/proto';
import { BackupReader, headerLine, lines, pairLine, trailerLine, type BackupPair } from '../src/backup-format';

// The backup file format on its own: any byte strings round-trip, and every
// way a file can be wrong is refused with the line named. The end-to-end
// backup and restore through a real cluster is in backup.test.ts.

function encode(pairs: BackupPair[]): string {
  const totals = { pairs: pairs.length, keyBytes: 0, valueBytes: 0 };
  for (const p of pairs) {
    totals.keyBytes += p.key.length;
    totals.valueBytes += p.value.length;
  }
  return headerLine(new Date(0)) + pairs.map(pairLine).join('') + trailerLine(totals);
}

/** decode reads text through lines() in chunks of chunkBytes (so lines are cut across chunks) and the reader. */
async function decode(text: string, chunkBytes = 7): Promise<BackupPair[]> {
  const bytes = Buffer.from(text);
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunkBytes) chunks.push(bytes.subarray(i, i + chunkBytes));
  const reader = new BackupReader('test.backup');
  const out: BackupPair[] = [];
  for await (const line of lines(Readable.from(chunks), 'test.backup')) {
    const p = reader.line(line);
    if (p) out.push(p);
  }
  reader.finish();
  return out;
}

const sortedPairs = fc
  .uniqueArray(fc.record({ key: fc.uint8Array({ minLength: 1, maxLength: 40 }), value: fc.uint8Array({ maxLength: 200 }) }), { selector: (p) => Buffer.from(p.key).toString('hex'), maxLength: 30 })
  .map((ps) => ps.sort((a, b) => compareKeys(a.key, b.key)));

describe('backup format', () => {
  it('round-trips arbitrary binary keys and values exactly', async () => {
    await fc.assert(
      fc.asyncProperty(sortedPairs, fc.integer({ min: 1, max: 64 }), async (pairs, chunk) => {
        const back = await decode(encode(pairs), chunk);
        expect(back.map((p) => [Buffer.from(p.key).toString('hex'), Buffer.from(p.value).toString('hex')])).toEqual(pairs.map((p) => [Buffer.from(p.key).toString('hex'), Buffer.from(p.value).toString('hex')]));
      }),
      { numRuns: 200 },
    );
  });

  it('keeps the text "0xcafe" and the bytes CA FE apart', async () => {
    const text = { key: Buffer.from('a'), value: Buffer.from('0xcafe') };
    const bytes = { key: Buffer.from('b'), value: Buffer.from([0xca, 0xfe]) };
    const file = encode([text, bytes]);
    const [lineA, lineB] = file.split('\n').slice(1, 3).map((l) => JSON.parse(l) as { v: string });
    expect(lineA!.v).toBe('MHhjYWZl');
    expect(lineB!.v).toBe('yv4=');
    const back = await decode(file);
    expect(Buffer.from(back[0]!.value).toString('latin1')).toBe('0xcafe');
    expect([...back[1]!.value]).toEqual([0xca, 0xfe]);
  });

  it('refuses an unknown version, another format, a truncated file, bad base64, disorder and a wrong trailer', async () => {
    const good = encode([
      { key: Buffer.from('a'), value: Buffer.from('1') },
      { key: Buffer.from('b'), value: Buffer.from('2') },
    ]).split('\n');
    const join = (ls: string[]) => ls.join('\n');
    await expect(decode(join([JSON.stringify({ format: 'flotilla-backup', version: 3 }), ...good.slice(1)]))).rejects.toThrow('backup format version 3 is not supported; this flotilla reads versions 1 and 2 only');
    await expect(decode(join(['{"key":"a","value":"1"}', ...good.slice(1)]))).rejects.toThrow('not a flotilla backup');
    await expect(decode(join([...good.slice(0, 3), '']))).rejects.toThrow('truncated after 2 pairs (no trailer line)');
    await expect(decode(good.slice(0, 3).join('\n'))).rejects.toThrow('test.backup:3: the last line has no newline');
    await expect(decode(join([good[0]!, '{"k":"YQ==","v":"MQ"}', ...good.slice(2)]))).rejects.toThrow('test.backup:2: v: not base64');
    await expect(decode(join([good[0]!, good[2]!, good[1]!, ...good.slice(3)]))).rejects.toThrow('test.backup:3: key out of order');
    await expect(decode(join([good[0]!, good[1]!, ...good.slice(3)]))).rejects.toThrow('test.backup:3: the trailer counts 2 pairs');
    await expect(decode(join([...good.slice(0, 4), good[1]!, '']))).rejects.toThrow('test.backup:5: data after the trailer line');
    await expect(decode('')).rejects.toThrow('empty file');
  });

  it('bounds the length of a line', async () => {
    const gen = lines(Readable.from([Buffer.alloc(50, 0x41), Buffer.alloc(60, 0x41)]), 'big', 100);
    await expect(gen.next()).rejects.toThrow('big:1: line longer than 100 bytes');
  });
});
