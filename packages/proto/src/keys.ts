import type { Region, RegionEpoch } from './region';

/** compareKeys orders keys bytewise (memcmp order), shorter prefix first. */
export function compareKeys(a: Uint8Array, b: Uint8Array): number {
  const n = a.length < b.length ? a.length : b.length;
  for (let i = 0; i < n; i++) {
    const d = (a[i] as number) - (b[i] as number);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

export function keysEqual(a: Uint8Array, b: Uint8Array): boolean {
  return compareKeys(a, b) === 0;
}

/** keyInRange: startKey <= key < endKey, where an empty endKey is unbounded. */
export function keyInRange(key: Uint8Array, startKey: Uint8Array, endKey: Uint8Array): boolean {
  return compareKeys(key, startKey) >= 0 && (endKey.length === 0 || compareKeys(key, endKey) < 0);
}

export function keyInRegion(key: Uint8Array, region: Region): boolean {
  return keyInRange(key, region.startKey, region.endKey);
}

/** compareEndKeys orders end keys where empty means +infinity. */
export function compareEndKeys(a: Uint8Array, b: Uint8Array): number {
  if (a.length === 0) return b.length === 0 ? 0 : 1;
  if (b.length === 0) return -1;
  return compareKeys(a, b);
}

/** isEpochStale: a is older than b in either dimension. */
export function isEpochStale(a: RegionEpoch, b: RegionEpoch): boolean {
  return a.version < b.version || a.confVer < b.confVer;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
export function utf8(s: string): Uint8Array {
  return encoder.encode(s);
}
export function fromUtf8(b: Uint8Array): string {
  return decoder.decode(b);
}
/** keyToString renders a key for logs and tables: printable ASCII as is, else hex. */
export function keyToString(k: Uint8Array): string {
  if (k.length === 0) return '""';
  let printable = true;
  for (const c of k) if (c < 0x20 || c > 0x7e) printable = false;
  return printable ? fromUtf8(k) : '0x' + Buffer.from(k).toString('hex');
}
