/**
 * What of a resumable stream reaches the application: every event once, in
 * order, by sequence number (the SSE id). The same rules as the C++ client
 * (src/client/delivery_filter.hpp):
 *
 *   - An event with a numeric id N is a sequence number. It is dropped when
 *     N <= the highest sequence delivered so far (a replayed duplicate).
 *   - A merged delta event (data {"coalesced":[a,b],...}, id b) counts as
 *     delivering a..b.
 *   - An event without an id (server notices and errors), or with an id that
 *     is not a number, is delivered as it is.
 *
 * A merged event that overlaps what was delivered (a <= highest < b) cannot
 * be split, so it is delivered whole; a conforming server never sends one (it
 * resumes strictly after Last-Event-ID).
 */

/**
 * The sequence number of an event id: decimal digits (a safe integer),
 * optionally followed by `-EPOCH` ([0-9a-z]{1,16}): the server's ids are `N`
 * or `N-EPOCH`. The sequence orders and deduplicates; the whole id is what a
 * client sends back.
 */
export function parseSequence(id: string | number | undefined | null): number | undefined {
  if (typeof id === 'number') return Number.isSafeInteger(id) && id >= 0 ? id : undefined;
  if (typeof id !== 'string') return undefined;
  const m = /^(\d{1,16})(?:-[0-9a-z]{1,16})?$/.exec(id);
  if (m === null) return undefined;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** The [first,last] range of a merged delta event, when `data` has a valid one. */
export function coalescedRange(data: unknown): [number, number] | undefined {
  if (typeof data !== 'object' || data === null) return undefined;
  const c = (data as { coalesced?: unknown }).coalesced;
  if (!Array.isArray(c) || c.length !== 2) return undefined;
  const a = parseSequence(c[0] as number);
  const b = parseSequence(c[1] as number);
  if (a === undefined || b === undefined || a > b) return undefined;
  return [a, b];
}

export interface Classified {
  deliver: boolean;
  /** Sequences the event covers; undefined for an event without a sequence. */
  firstSeq?: number;
  lastSeq?: number;
}

export class DeliveryFilter {
  private highest: number;
  private dropped = 0;

  /** `highestDelivered`: the sequence the application already has (0: none). */
  constructor(highestDelivered = 0) {
    this.highest = highestDelivered;
  }

  /**
   * `id`: the event's own id field (undefined when the event had none: in SSE
   * an event without an id line inherits the previous id, so only the
   * event's own field counts).
   */
  classify(id: string | number | undefined, data: unknown): Classified {
    const seq = parseSequence(id);
    if (seq === undefined) return { deliver: true };
    let first = seq;
    const range = coalescedRange(data);
    if (range && range[1] === seq) first = range[0];
    if (seq <= this.highest) {
      this.dropped++;
      return { deliver: false, firstSeq: first, lastSeq: seq };
    }
    this.highest = seq;
    return { deliver: true, firstSeq: first, lastSeq: seq };
  }

  get highestDelivered(): number {
    return this.highest;
  }

  get duplicatesDropped(): number {
    return this.dropped;
  }
}
