/**
 * Lossless backpressure for the page (instead of the seed's drop-oldest
 * queue). Items pushed while a delivery is pending wait in one queue and are
 * delivered together at most once per animation frame; while they wait,
 * consecutive deltas of one message are merged (their text concatenated), so
 * a busy page renders fewer, larger updates and nothing is ever dropped.
 *
 * Merge rules (default `mergeAgentDeltas`): only two *consecutive* queued
 * items that are both `agent_stream` deltas with the same messageId merge;
 * anything else is queued as it is, keeping order (a later delta of the same
 * message after another item does not jump over it).
 */

/** Schedules `cb` once; returns a function cancelling it. */
export type FrameRequester = (cb: () => void) => () => void;

export interface SchedulerOptions<T> {
  /** Receives every item, in order, in batches (at most one batch per frame). */
  deliver: (batch: T[]) => void;
  /** Merges `next` into `prev` (the last queued item), or returns undefined to queue it. */
  merge?: (prev: T, next: T) => T | undefined;
  /** Default: requestAnimationFrame when present, else setTimeout(0). */
  requestFrame?: FrameRequester;
}

export interface DeliveryScheduler<T> {
  push(item: T): void;
  /** Delivers what is queued now (e.g. before reporting the end of a stream). */
  flush(): void;
  /** Drops the pending frame and the queue; later pushes are ignored. */
  dispose(): void;
  /** Items waiting (after merging). */
  readonly pending: number;
}

export const defaultRequestFrame: FrameRequester = (cb) => {
  const g = globalThis as {
    requestAnimationFrame?: (cb: () => void) => number;
    cancelAnimationFrame?: (h: number) => void;
  };
  if (typeof g.requestAnimationFrame === 'function') {
    const h = g.requestAnimationFrame(cb);
    return () => g.cancelAnimationFrame?.(h);
  }
  const t = setTimeout(cb, 0);
  return () => clearTimeout(t);
};

/** The shape of an AgentResponse delta, as far as merging is concerned. */
interface AgentDelta {
  messageType?: unknown;
  messageId?: unknown;
  result?: unknown;
  coalesced?: unknown;
}

function isDelta(x: unknown): x is AgentDelta & { result: string } {
  const d = x as AgentDelta | null;
  return (
    typeof d === 'object' &&
    d !== null &&
    d.messageType === 'agent_stream' &&
    typeof d.messageId === 'string' &&
    typeof d.result === 'string'
  );
}

function rangeOf(x: AgentDelta, fallback: unknown): [number, number] | undefined {
  if (Array.isArray(x.coalesced) && x.coalesced.length === 2) return x.coalesced as [number, number];
  return typeof fallback === 'number' ? [fallback, fallback] : undefined;
}

/**
 * Merges two AgentResponse deltas of one message: the later one's fields,
 * `result` concatenated, `coalesced` covering both (when sequences are known).
 */
export function mergeAgentDeltas<T>(prev: T, next: T): T | undefined {
  if (!isDelta(prev) || !isDelta(next) || prev.messageId !== next.messageId) return undefined;
  const merged: Record<string, unknown> = { ...(next as object), result: prev.result + next.result };
  const a = rangeOf(prev, (prev as { sequence?: unknown }).sequence);
  const b = rangeOf(next, (next as { sequence?: unknown }).sequence);
  if (a && b) merged.coalesced = [a[0], b[1]];
  return merged as T;
}

export function createDeliveryScheduler<T>(options: SchedulerOptions<T>): DeliveryScheduler<T> {
  const merge = options.merge ?? mergeAgentDeltas;
  const requestFrame = options.requestFrame ?? defaultRequestFrame;
  let queue: T[] = [];
  let cancelFrame: (() => void) | undefined;
  let disposed = false;

  const flush = (): void => {
    cancelFrame?.();
    cancelFrame = undefined;
    if (queue.length === 0 || disposed) return;
    const batch = queue;
    queue = [];
    options.deliver(batch);
  };

  return {
    push(item: T) {
      if (disposed) return;
      const last = queue.length > 0 ? queue[queue.length - 1] : undefined;
      const merged = last !== undefined ? merge(last, item) : undefined;
      if (merged !== undefined) queue[queue.length - 1] = merged;
      else queue.push(item);
      if (cancelFrame === undefined)
        cancelFrame = requestFrame(() => {
          cancelFrame = undefined;
          flush();
        });
    },
    flush,
    dispose() {
      disposed = true;
      cancelFrame?.();
      cancelFrame = undefined;
      queue = [];
    },
    get pending() {
      return queue.length;
    },
  };
}
