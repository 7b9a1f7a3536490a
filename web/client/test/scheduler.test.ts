import { afterEach, describe, expect, it, vi } from 'vitest';
import { createDeliveryScheduler, mergeAgentDeltas } from '../src/index.js';

/** A frame source the test drives. */
function frames() {
  const pending: (() => void)[] = [];
  return {
    requestFrame: (cb: () => void) => {
      pending.push(cb);
      return () => {
        const i = pending.indexOf(cb);
        if (i >= 0) pending.splice(i, 1);
      };
    },
    run() {
      const cbs = pending.splice(0);
      cbs.forEach((cb) => cb());
    },
    get count() {
      return pending.length;
    },
  };
}

const delta = (messageId: string, result: string, sequence: number) => ({
  messageType: 'agent_stream',
  messageId,
  result,
  sequence,
});

describe('frame scheduler', () => {
  afterEach(() => {
    vi.useRealTimers();
    vi.unstubAllGlobals();
  });

  it('delivers at most once per frame, everything in order', () => {
    const f = frames();
    const batches: unknown[][] = [];
    const s = createDeliveryScheduler<unknown>({ deliver: (b) => batches.push(b), requestFrame: f.requestFrame });
    s.push({ n: 1 });
    s.push({ n: 2 });
    s.push({ n: 3 });
    expect(f.count).toBe(1);
    expect(batches).toEqual([]);
    f.run();
    expect(batches).toEqual([[{ n: 1 }, { n: 2 }, { n: 3 }]]);
    s.push({ n: 4 });
    f.run();
    expect(batches).toEqual([[{ n: 1 }, { n: 2 }, { n: 3 }], [{ n: 4 }]]);
    f.run();
    expect(batches.length).toBe(2);
  });

  it('merges consecutive deltas of one messageId, concatenating result and covering sequences', () => {
    const f = frames();
    const batches: unknown[][] = [];
    const s = createDeliveryScheduler<unknown>({ deliver: (b) => batches.push(b), requestFrame: f.requestFrame });
    s.push(delta('m1', 'Hel', 1));
    s.push(delta('m1', 'lo, ', 2));
    s.push({ ...delta('m1', 'wor', 5), coalesced: [3, 5] });
    s.push(delta('m1', 'ld', 6));
    expect(s.pending).toBe(1);
    f.run();
    expect(batches).toEqual([
      [{ messageType: 'agent_stream', messageId: 'm1', result: 'Hello, world', sequence: 6, coalesced: [1, 6] }],
    ]);
  });

  it('only consecutive deltas of the same messageId merge; other messages flush and keep order', () => {
    const f = frames();
    const batches: any[][] = [];
    const s = createDeliveryScheduler<any>({ deliver: (b) => batches.push(b), requestFrame: f.requestFrame });
    s.push(delta('a', '1', 1));
    s.push(delta('a', '2', 2));
    s.push(delta('b', 'x', 3)); // another message: not merged into a
    s.push(delta('b', 'y', 4));
    s.push({ messageType: 'tool_result', messageId: 't', sequence: 5 });
    s.push(delta('a', '3', 6)); // a again, after other items: stays after them
    s.push({ messageType: 'agent_stream', messageId: 'a', result: 7, sequence: 7 }); // not a text delta
    f.run();
    expect(batches[0]!.map((m) => [m.messageId, m.result ?? null])).toEqual([
      ['a', '12'],
      ['b', 'xy'],
      ['t', null],
      ['a', '3'],
      ['a', 7],
    ]);
  });

  it('is lossless: 10,000 deltas across frames reassemble exactly', () => {
    const f = frames();
    let text = '';
    let items = 0;
    const s = createDeliveryScheduler<any>({
      deliver: (b) => {
        for (const m of b) {
          text += m.result;
          items++;
        }
      },
      requestFrame: f.requestFrame,
    });
    let expected = '';
    for (let i = 1; i <= 10000; i++) {
      const piece = `${i % 10}`;
      expected += piece;
      s.push(delta('m', piece, i));
      if (i % 997 === 0) f.run(); // the page gets a frame now and then
    }
    f.run();
    expect(text).toBe(expected);
    expect(items).toBe(Math.ceil(10000 / 997));
  });

  it('flush() delivers now; dispose() drops the pending frame and later pushes', () => {
    const f = frames();
    const batches: unknown[][] = [];
    const s = createDeliveryScheduler<unknown>({ deliver: (b) => batches.push(b), requestFrame: f.requestFrame });
    s.push(1);
    s.flush();
    expect(batches).toEqual([[1]]);
    expect(f.count).toBe(0);
    s.push(2);
    s.dispose();
    s.push(3);
    f.run();
    expect(batches).toEqual([[1]]);
  });

  it('uses requestAnimationFrame when present', () => {
    const cbs: (() => void)[] = [];
    vi.stubGlobal('requestAnimationFrame', (cb: () => void) => cbs.push(cb));
    vi.stubGlobal('cancelAnimationFrame', () => {});
    const batches: unknown[][] = [];
    const s = createDeliveryScheduler<unknown>({ deliver: (b) => batches.push(b) });
    s.push('a');
    s.push('b');
    expect(cbs.length).toBe(1);
    cbs[0]!();
    expect(batches).toEqual([['a', 'b']]);
  });

  it('falls back to a timeout without requestAnimationFrame', async () => {
    vi.useFakeTimers();
    const batches: unknown[][] = [];
    const s = createDeliveryScheduler<unknown>({ deliver: (b) => batches.push(b) });
    s.push('a');
    s.push('b');
    expect(batches).toEqual([]);
    await vi.advanceTimersByTimeAsync(0);
    expect(batches).toEqual([['a', 'b']]);
  });

  it('mergeAgentDeltas refuses non-deltas and different messages', () => {
    expect(mergeAgentDeltas(delta('a', 'x', 1), delta('b', 'y', 2))).toBeUndefined();
    expect(mergeAgentDeltas<object>({ messageType: 'plan', messageId: 'a', result: 'x' }, delta('a', 'y', 2))).toBeUndefined();
    expect(mergeAgentDeltas(delta('a', 'x', 1), delta('a', 'y', 2))).toEqual({
      ...delta('a', 'xy', 2),
      coalesced: [1, 2],
    });
  });
});
