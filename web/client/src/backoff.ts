/**
 * Reconnection delays: exponential backoff with jitter.
 *
 * Without a server hint, full jitter: delay = uniform(0, min(cap, base * 2^attempt))
 * (AWS, "Exponential Backoff and Jitter"): the reconnections of many clients cut
 * at the same moment (a server restart) are spread instead of synchronised.
 *
 * With a server `retry: N` (WHATWG: the event source's reconnection time), N is
 * the lower bound: delay = uniform(lo, hi) with lo = N * 2^attempt and
 * hi = 2 * lo, both capped (the cap never pulls a delay below N itself). So the
 * first reconnection after an open connection waits between N and 2N ms, the
 * jitter above the server's value, never below it; later ones keep doubling.
 *
 * Pure logic, no clock: the caller waits. A seeded RNG makes the schedule
 * reproducible.
 */

export interface BackoffOptions {
  /** First window in ms (default 1000). A server `retry:` hint becomes the lower bound (see above). */
  baseMs?: number;
  /** Largest window in ms (default 30000). */
  capMs?: number;
  /** Consecutive attempts that never open before giving up (default 10; 0 = no limit). */
  maxAttempts?: number;
  /** Uniform [0,1) source. Default: `seed` given → mulberry32(seed), else Math.random. */
  random?: () => number;
  /** Seed for the built-in deterministic RNG (ignored when `random` is given). */
  seed?: number;
}

/** A small, fast, seedable PRNG (mulberry32) returning uniform numbers in [0,1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Backoff {
  private base: number;
  /** The server's `retry:` (ms), once one arrived: the lower bound of every delay. */
  private floor: number | undefined;
  readonly cap: number;
  readonly maxAttempts: number;
  private readonly random: () => number;

  constructor(options: BackoffOptions = {}) {
    this.base = Math.max(0, options.baseMs ?? 1000);
    this.cap = Math.max(0, options.capMs ?? 30000);
    this.maxAttempts = Math.max(0, options.maxAttempts ?? 10);
    this.random =
      options.random ?? (options.seed !== undefined ? mulberry32(options.seed) : Math.random);
  }

  get baseMs(): number {
    return this.base;
  }

  /** The server's `retry:` value in force (the lower bound of the delays), if any. */
  get serverRetryMs(): number | undefined {
    return this.floor;
  }

  /** The upper bound of the delay for reconnection attempt `attempt` (0-based). */
  window(attempt: number): number {
    const k = Math.max(0, attempt);
    if (this.floor === undefined) {
      // 2^attempt overflows to Infinity for huge attempts; min() keeps it finite.
      return Math.min(this.cap, this.base * Math.pow(2, k));
    }
    const cap = Math.max(this.cap, this.floor);
    return Math.min(cap, Math.max(this.floor, 1) * Math.pow(2, k + 1));
  }

  /** The lower bound of the delay for attempt `attempt`: 0, or the server's retry: grown. */
  lowerBound(attempt: number): number {
    if (this.floor === undefined) return 0;
    const cap = Math.max(this.cap, this.floor);
    return Math.min(cap, this.floor * Math.pow(2, Math.max(0, attempt)));
  }

  /** The delay before reconnection attempt `attempt`, in [lowerBound, window). */
  delay(attempt: number): number {
    const lo = this.lowerBound(attempt);
    const hi = Math.max(lo, this.window(attempt));
    return Math.floor(lo + this.random() * (hi - lo));
  }

  /** The server's `retry:` hint (ms): from now on the lower bound of the delays. */
  setBaseFromServer(ms: number): void {
    if (Number.isFinite(ms) && ms >= 0) {
      this.floor = ms;
      this.base = ms;
    }
  }

  /** True when `attempts` consecutive failed attempts exhaust the budget. */
  exhausted(attempts: number): boolean {
    return this.maxAttempts > 0 && attempts >= this.maxAttempts;
  }
}
