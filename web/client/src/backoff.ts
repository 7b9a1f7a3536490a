/**
 * Reconnection delays: exponential backoff with full jitter,
 * delay = uniform(0, min(cap, base * 2^attempt)) (AWS, "Exponential Backoff
 * and Jitter"). Full jitter spreads the reconnections of many clients cut at
 * the same moment (a server restart) instead of synchronising them.
 *
 * Pure logic, no clock: the caller waits. A seeded RNG makes the schedule
 * reproducible.
 */

export interface BackoffOptions {
  /** First window in ms (default 1000). A server `retry:` hint replaces it. */
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

  /** The window (upper bound of the delay) for reconnection attempt `attempt` (0-based). */
  window(attempt: number): number {
    // 2^attempt overflows to Infinity for huge attempts; min() keeps it finite.
    return Math.min(this.cap, this.base * Math.pow(2, Math.max(0, attempt)));
  }

  /** The delay before reconnection attempt `attempt`: 0 after a connection that was open. */
  delay(attempt: number): number {
    return Math.floor(this.random() * this.window(attempt));
  }

  /** The server's `retry:` hint becomes the base (still capped). */
  setBaseFromServer(ms: number): void {
    if (Number.isFinite(ms) && ms >= 0) this.base = ms;
  }

  /** True when `attempts` consecutive failed attempts exhaust the budget. */
  exhausted(attempts: number): boolean {
    return this.maxAttempts > 0 && attempts >= this.maxAttempts;
  }
}
