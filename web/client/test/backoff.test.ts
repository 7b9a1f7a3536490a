import { describe, expect, it } from 'vitest';
import { Backoff, DeliveryFilter, mulberry32, parseRetryAfter, parseSequence } from '../src/index.js';

describe('Backoff (exponential, full jitter)', () => {
  it('windows double from the base up to the cap', () => {
    const b = new Backoff();
    expect([0, 1, 2, 3, 4, 5, 6, 50, 5000].map((n) => b.window(n))).toEqual([
      1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000,
    ]);
  });

  it('delay = floor(random * window)', () => {
    const rs = [0, 0.5, 0.25, 0.999999, 0.5];
    let i = 0;
    const b = new Backoff({ baseMs: 1000, capMs: 30000, random: () => rs[i++]! });
    expect([0, 1, 2, 3, 10].map((n) => b.delay(n))).toEqual([0, 1000, 1000, 7999, 15000]);
  });

  it('a seeded RNG gives a reproducible schedule inside the windows', () => {
    const a = new Backoff({ seed: 42 });
    const b = new Backoff({ seed: 42 });
    const c = new Backoff({ seed: 43 });
    const sa = Array.from({ length: 12 }, (_, n) => a.delay(n));
    const sb = Array.from({ length: 12 }, (_, n) => b.delay(n));
    const sc = Array.from({ length: 12 }, (_, n) => c.delay(n));
    expect(sa).toEqual(sb);
    expect(sa).not.toEqual(sc);
    sa.forEach((d, n) => {
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(a.window(n));
    });
  });

  it('mulberry32 is uniform enough: mean near 0.5, all in [0,1)', () => {
    const r = mulberry32(7);
    let sum = 0;
    for (let i = 0; i < 10000; i++) {
      const x = r();
      expect(x >= 0 && x < 1).toBe(true);
      sum += x;
    }
    expect(Math.abs(sum / 10000 - 0.5)).toBeLessThan(0.02);
  });

  it("the server's retry: is the lower bound of every delay; jitter goes above it, growth continues to the cap", () => {
    let r = 0;
    const b = new Backoff({ capMs: 20000, random: () => r });
    b.setBaseFromServer(3000);
    expect(b.serverRetryMs).toBe(3000);
    // [lowerBound, window): [N, 2N), [2N, 4N), [4N, 8N) capped.
    expect([0, 1, 2, 3].map((n) => [b.lowerBound(n), b.window(n)])).toEqual([
      [3000, 6000],
      [6000, 12000],
      [12000, 20000],
      [20000, 20000],
    ]);
    expect([0, 1, 2, 3].map((n) => b.delay(n))).toEqual([3000, 6000, 12000, 20000]);
    r = 0.999999;
    expect([0, 1, 2, 3].map((n) => b.delay(n))).toEqual([5999, 11999, 19999, 20000]);
    r = 0.5;
    expect(b.delay(0)).toBe(4500);
    b.setBaseFromServer(Number.NaN);
    expect(b.serverRetryMs).toBe(3000);
  });

  it('retry: 150 never gives a first delay under 150 ms, whatever the random source', () => {
    const b = new Backoff({ seed: 1 });
    b.setBaseFromServer(150);
    for (let i = 0; i < 1000; i++) {
      const d = b.delay(0);
      expect(d).toBeGreaterThanOrEqual(150);
      expect(d).toBeLessThan(300);
    }
  });

  it('a retry: above the cap is honoured as it is (the cap never goes under the server)', () => {
    const b = new Backoff({ capMs: 1000, random: () => 0.7 });
    b.setBaseFromServer(5000);
    expect([0, 1, 5].map((n) => b.delay(n))).toEqual([5000, 5000, 5000]);
  });

  it('retry: 0 still grows (no reconnection storm at 0 ms forever)', () => {
    const b = new Backoff({ random: () => 0.5 });
    b.setBaseFromServer(0);
    expect([0, 1, 2, 3].map((n) => b.window(n))).toEqual([2, 4, 8, 16]);
  });

  it('maxAttempts: 0 means no limit', () => {
    expect(new Backoff({ maxAttempts: 3 }).exhausted(3)).toBe(true);
    expect(new Backoff({ maxAttempts: 3 }).exhausted(2)).toBe(false);
    expect(new Backoff({ maxAttempts: 0 }).exhausted(1e9)).toBe(false);
  });
});

describe('small parsers', () => {
  it('Retry-After: seconds or an HTTP date', () => {
    expect(parseRetryAfter('2')).toBe(2000);
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:10 GMT', Date.parse('Wed, 21 Oct 2015 07:28:00 GMT'))).toBe(
      10000,
    );
  });

  it('sequence numbers are decimal digits only', () => {
    expect(['7', '0', '0012', '-1', '1.5', 'abc', '', ' 3', '99999999999999999'].map(parseSequence)).toEqual([
      7,
      0,
      12,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
      undefined,
    ]);
  });

  it('DeliveryFilter: duplicates dropped, coalesced ranges, id-less events pass', () => {
    const f = new DeliveryFilter(2);
    expect(f.classify('1', {}).deliver).toBe(false);
    expect(f.classify('3', {})).toEqual({ deliver: true, firstSeq: 3, lastSeq: 3 });
    expect(f.classify('6', { coalesced: [4, 6] })).toEqual({ deliver: true, firstSeq: 4, lastSeq: 6 });
    expect(f.classify('5', {}).deliver).toBe(false);
    expect(f.classify(undefined, {})).toEqual({ deliver: true });
    expect(f.classify('not-a-number', {})).toEqual({ deliver: true });
    // a range not ending at the id is ignored: the id is the sequence
    expect(f.classify('8', { coalesced: [1, 9] })).toEqual({ deliver: true, firstSeq: 8, lastSeq: 8 });
    expect([f.highestDelivered, f.duplicatesDropped]).toEqual([8, 2]);
  });
});
