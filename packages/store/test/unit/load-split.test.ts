import { describe, expect, it } from 'vitest';
import { newSeededRandom } from '@flotilla/raft-core';
import type { Region } from '@flotilla/proto';
import { LoadSampler, LoadSplitRecorder } from '../../src/operation/load-split';

// Load-based split's pure part (src/operation/load-split.ts): the sampler
// that picks a load-balancing key and the window that decides when.

const enc = (n: number): Uint8Array => new TextEncoder().encode(`k${String(n).padStart(6, '0')}`);
const dec = (k: Uint8Array<ArrayBufferLike>): number => Number(new TextDecoder().decode(k).slice(1));
const region = (startKey: Uint8Array = new Uint8Array(), endKey: Uint8Array = new Uint8Array()): Region => ({ id: 1, startKey, endKey, epoch: { confVer: 1, version: 1 }, peers: [] });

describe('LoadSampler.chooseKey', () => {
  it('splits uniform load near its middle', () => {
    const random = newSeededRandom(7);
    const s = new LoadSampler(random);
    for (let i = 0; i < 5_000; i++) s.record(enc(Math.floor(random() * 1_000)));
    const key = s.chooseKey(region());
    expect(key).toBeDefined();
    expect(dec(key!)).toBeGreaterThan(350);
    expect(dec(key!)).toBeLessThan(650);
  });

  it('splits skewed load at the middle of the load, not of the key space', () => {
    const random = newSeededRandom(11);
    const s = new LoadSampler(random);
    // 80% of the requests go to keys 0..99, the rest to 100..999: the load's median is inside 0..99.
    for (let i = 0; i < 5_000; i++) s.record(enc(random() < 0.8 ? Math.floor(random() * 100) : 100 + Math.floor(random() * 900)));
    const key = s.chooseKey(region());
    expect(key).toBeDefined();
    expect(dec(key!)).toBeLessThan(100);
  });

  it('does not split a single hot key: every request lands at or right of it', () => {
    const s = new LoadSampler(newSeededRandom(3));
    for (let i = 0; i < 5_000; i++) s.record(enc(42));
    expect(s.sampleCount).toBe(20); // bounded reservoir
    expect(s.chooseKey(region())).toBeUndefined();
  });

  it('does not split when one key takes almost all the load (no balanced candidate)', () => {
    const random = newSeededRandom(5);
    const s = new LoadSampler(random);
    for (let i = 0; i < 5_000; i++) s.record(enc(random() < 0.9 ? 500 : Math.floor(random() * 1_000)));
    // Left of 500 is ~5% of the load, right (500 included) ~95%: no key in between balances it.
    expect(s.chooseKey(region())).toBeUndefined();
  });

  it('never picks the Region start key or a key outside the Region', () => {
    const random = newSeededRandom(9);
    const s = new LoadSampler(random);
    for (let i = 0; i < 5_000; i++) s.record(enc(Math.floor(random() * 1_000)));
    const r = region(enc(400), enc(600));
    const key = s.chooseKey(r);
    // Requests outside the Region cannot happen, but samples of them must not become split keys.
    if (key) {
      expect(dec(key)).toBeGreaterThan(400);
      expect(dec(key)).toBeLessThan(600);
    }
    const one = new LoadSampler(random);
    for (let i = 0; i < 100; i++) one.record(enc(400 + (i % 2)));
    // Only 400 (the start key) and 401 exist: 401 balances them, 400 would make an empty left Region.
    expect(dec(one.chooseKey(r)!)).toBe(401);
  });

  it('prefers keys that few scans cross', () => {
    // Two candidates only (a reservoir of 2 that never replaces): 300 and 500.
    const pick = (lows: number, highs: number, scanFrom: number, scanTo: number): number => {
      const s = new LoadSampler(() => 0.9999, 2);
      s.record(enc(300));
      s.record(enc(500));
      for (let i = 0; i < 100; i++) {
        for (let j = 0; j < lows; j++) s.record(enc(100));
        for (let j = 0; j < highs; j++) s.record(enc(800));
        s.record(enc(scanFrom), enc(scanTo));
      }
      return dec(s.chooseKey(region())!);
    };
    // A scan over 280..320 crosses 300 (left 2 : right 3, one in six cut) while 500 balances 3 : 3, cutting none.
    expect(pick(2, 3, 280, 320)).toBe(500);
    // The mirror: a scan over 480..520 crosses 500 (3 : 2, one cut) while 300 balances 3 : 3, cutting none.
    expect(pick(3, 2, 480, 520)).toBe(300);
  });
});

describe('LoadSplitRecorder', () => {
  const opts = { qpsThreshold: 100, bytesPerSecThreshold: 0, hotWindows: 2 };

  it('splits only after the load stayed hot for hotWindows windows, and samples nothing while cold', () => {
    const random = newSeededRandom(1);
    const r = new LoadSplitRecorder(opts, random);
    const burst = (n: number): void => {
      for (let i = 0; i < n; i++) r.record(enc(Math.floor(random() * 1_000)));
    };
    burst(50);
    expect(r.closeWindow(1_000, 0, region())).toEqual({ kind: 'cold' });
    expect(r.sampler.sampleCount).toBe(0);
    burst(500);
    expect(r.closeWindow(1_000, 0, region())).toEqual({ kind: 'warming', hotWindows: 1 });
    burst(500);
    expect(r.closeWindow(1_000, 0, region())).toEqual({ kind: 'warming', hotWindows: 2 });
    burst(500);
    const v = r.closeWindow(1_000, 0, region());
    expect(v.kind).toBe('split');
    if (v.kind === 'split') expect(Math.abs(dec(v.key) - 500)).toBeLessThan(200);
  });

  it('a cold window in between starts the count over', () => {
    const r = new LoadSplitRecorder(opts, newSeededRandom(2));
    const burst = (n: number): void => {
      for (let i = 0; i < n; i++) r.record(enc(i % 1_000));
    };
    burst(500);
    expect(r.closeWindow(1_000, 0, region()).kind).toBe('warming');
    burst(10);
    expect(r.closeWindow(1_000, 0, region()).kind).toBe('cold');
    burst(500);
    expect(r.closeWindow(1_000, 0, region())).toEqual({ kind: 'warming', hotWindows: 1 });
  });

  it('counts bytes per second against the byte threshold, and answers no-key for one hot key', () => {
    const r = new LoadSplitRecorder({ qpsThreshold: 0, bytesPerSecThreshold: 1_000_000, hotWindows: 1 }, newSeededRandom(4));
    for (let i = 0; i < 10; i++) r.record(enc(7));
    expect(r.closeWindow(1_000, 500_000, region()).kind).toBe('cold');
    for (let w = 0; w < 2; w++) {
      for (let i = 0; i < 100; i++) r.record(enc(7));
      r.closeWindow(500, 600_000, region());
    }
    for (let i = 0; i < 100; i++) r.record(enc(7));
    expect(r.closeWindow(500, 600_000, region())).toEqual({ kind: 'no-key', hotWindows: 1 });
  });
});
