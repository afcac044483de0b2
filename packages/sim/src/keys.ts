// The workload's key universe and the byte/text conversions the simulation's
// parts share (keys and values are strings in the history, bytes at the store).

/** keyName is the i-th key of the workload's universe: k000, k001, ... (sorted as the store sorts bytes). */
export function keyName(i: number): string {
  return `k${String(i).padStart(3, '0')}`;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const bytes = (s: string): Uint8Array => encoder.encode(s);
export const text = (b: Uint8Array): string => decoder.decode(b);

/** Rng is a seeded PRNG (mulberry32): every choice the simulation makes comes from one. */
export type Rng = () => number;
