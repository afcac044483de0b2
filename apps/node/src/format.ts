import { compareKeys } from '@flotilla/proto';

/** table renders rows under headers with columns padded to their widest cell (numbers right-aligned). */
export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map((c) => String(c)));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number'));
  const line = (r: string[]): string =>
    r
      .map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n') + '\n';
}

/** formatBytes: 1536 -> "1.5 KiB". */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

const encoder = new TextEncoder();

/** parseInput: a key or value from the command line, UTF-8 text, or hex when asHex (with or without 0x). */
export function parseInput(text: string, asHex: boolean, what: string): Uint8Array {
  if (!asHex) return encoder.encode(text);
  const hex = text.replace(/^0x/i, '');
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) throw new Error(`${what}: ${JSON.stringify(text)} is not hex`);
  return Buffer.from(hex, 'hex');
}

/**
 * renderBytes: UTF-8 text when it is printable (and decodes losslessly), else
 * 0x-hex; always hex when asHex. Text that itself starts with "0x" is shown
 * as hex too (as placement's renderKey does), so the text "0xcafe" and the
 * bytes CA FE never print alike: output starting with 0x is always hex.
 */
export function renderBytes(b: Uint8Array, asHex = false): string {
  if (asHex) return '0x' + Buffer.from(b).toString('hex');
  const text = Buffer.from(b).toString('utf8');
  const printable = !/[\u0000-\u001f\u007f\ufffd]/.test(text) && compareKeys(encoder.encode(text), b) === 0 && !text.startsWith('0x');
  return printable ? text : '0x' + Buffer.from(b).toString('hex');
}

/** renderRange shows a Region's [start, end) with the open ends spelled out. */
export function renderRange(start: string, end: string): string {
  return `[${start === '' ? '-inf' : start}, ${end === '' ? '+inf' : end})`;
}
