import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createSSEConnection, SluiceError } from '../src/index.js';
import { fakeFetch, settle, sse, until } from './helpers.js';
import { recorder } from './recorder.js';

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

const URL_ = 'http://sluice.test/AutoAgent';

function connect(extra: Record<string, unknown> = {}, url = URL_) {
  const ff = fakeFetch();
  const { log, callbacks } = recorder();
  const ctl = createSSEConnection(
    { body: { query: 'q', agentType: 'plan_solve', requestId: 'r1' }, ...callbacks, fetch: ff.fetch, ...extra },
    url,
  );
  return { ff, log, ctl };
}

// A transcript exercising the parser: BOM, CRLF, comments, heartbeats,
// multi-line data, named events, an event without id, a retry field.
const transcript =
  '\uFEFFretry: 1500\r\n' +
  ': heartbeat\r\n\r\n' +
  'id: 1\r\ndata: {"n":1,\r\ndata: "text":"a\\nb"}\r\n\r\n' +
  'data: heartbeat\n\n' +
  'event: notice\ndata: {"code":"history_truncated","first_available":1}\n\n' +
  'id: 2\rdata: {"n":2}\r\r' +
  ':comment without space\n' +
  'event: step\nid: 3\ndata:{"n":3}\n\n' +
  'id: 4\ndata\n\n';

const expected = [
  { data: { n: 1, text: 'a\nb' }, event: 'message', id: '1' },
  { data: { code: 'history_truncated', first_available: 1 }, event: 'notice', id: undefined },
  { data: { n: 2 }, event: 'message', id: '2' },
  { data: { n: 3 }, event: 'step', id: '3' },
  { data: '', event: 'message', id: '4' },
];

function summary(log: ReturnType<typeof recorder>['log']) {
  return log.events.map((e) => ({ data: e.data, event: e.event, id: e.id }));
}

describe('SSE parsing through the client', () => {
  it('handles BOM, CRLF/CR/LF, comments, heartbeats, multi-line data and named events', async () => {
    const { ff, log } = connect();
    await until(() => ff.calls.length === 1);
    const s = ff.calls[0]!.open();
    s.send(transcript);
    await until(() => log.events.length === expected.length);
    expect(summary(log)).toEqual(expected);
    expect(log.errors).toEqual([]);
  });

  it('delivers the same events whatever the chunking: one byte at a time', async () => {
    const { ff, log } = connect();
    await until(() => ff.calls.length === 1);
    const s = ff.calls[0]!.open();
    const bytes = new TextEncoder().encode(transcript);
    for (const b of bytes) s.send(new Uint8Array([b]));
    await until(() => log.events.length === expected.length);
    expect(summary(log)).toEqual(expected);
  });

  it('delivers the same events whatever the chunking: split at every byte', async () => {
    const bytes = new TextEncoder().encode(transcript);
    for (let cut = 1; cut < bytes.length; cut++) {
      const { ff, log, ctl } = connect();
      await until(() => ff.calls.length === 1);
      const s = ff.calls[0]!.open();
      s.send(bytes.slice(0, cut));
      await settle();
      s.send(bytes.slice(cut));
      await until(() => log.events.length === expected.length, `events, cut at ${cut}`);
      expect(summary(log), `cut at ${cut}`).toEqual(expected);
      ctl.abort();
    }
  });

  it('a BOM split across chunks is stripped', async () => {
    const { ff, log } = connect();
    await until(() => ff.calls.length === 1);
    const s = ff.calls[0]!.open();
    s.send(new Uint8Array([0xef]));
    s.send(new Uint8Array([0xbb]));
    s.send(new Uint8Array([0xbf]));
    s.send('id: 1\ndata: {"x":1}\n\n');
    await until(() => log.events.length === 1);
    expect(log.messages).toEqual([{ x: 1 }]);
  });

  it('an event cut mid-way is discarded and the resume id is the last dispatched one', async () => {
    const { ff, log } = connect({ backoff: { random: () => 0 } });
    await until(() => ff.calls.length === 1);
    const s = ff.calls[0]!.open();
    // Event 2's id line arrives complete, but never its blank line.
    s.send(sse(1, { n: 1 }) + 'id: 2\ndata: {"n":2}\n');
    await until(() => log.events.length === 1);
    s.fail();
    await until(() => ff.calls.length === 2);
    expect(ff.calls[1]!.headers['last-event-id']).toBe('1');
    const s2 = ff.calls[1]!.open();
    s2.send(sse(2, { n: 2 }) + sse(3, { n: 3 }));
    await until(() => log.events.length === 3);
    expect(log.messages).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }]);
  });

  it('an id-only block (no data) still sets the resume id (WHATWG), a clean end resumes after it', async () => {
    const { ff, log } = connect({ backoff: { random: () => 0 } });
    await until(() => ff.calls.length === 1);
    const s = ff.calls[0]!.open();
    s.send(sse(1, { n: 1 }) + 'id: 2\n\n' + 'id: 3\n');
    s.end();
    await until(() => ff.calls.length === 2);
    expect(ff.calls[1]!.headers['last-event-id']).toBe('2');
    expect(log.messages).toEqual([{ n: 1 }]);
  });
});

describe('requests', () => {
  it('POSTs the JSON body with SSE headers; GET without a body, with lastEventId', async () => {
    const a = connect();
    await until(() => a.ff.calls.length === 1);
    const c = a.ff.calls[0]!;
    expect(c.method).toBe('POST');
    expect(JSON.parse(c.body!)).toEqual({ query: 'q', agentType: 'plan_solve', requestId: 'r1' });
    expect(c.headers['accept']).toBe('text/event-stream');
    expect(c.headers['content-type']).toBe('application/json');
    expect(c.headers['last-event-id']).toBeUndefined();

    const b = connect({ body: undefined, lastEventId: 41 }, 'http://sluice.test/v1/streams/x/events');
    await until(() => b.ff.calls.length === 1);
    const g = b.ff.calls[0]!;
    expect(g.method).toBe('GET');
    expect(g.body).toBeUndefined();
    expect(g.headers['last-event-id']).toBe('41');
    expect(g.url).toBe('http://sluice.test/v1/streams/x/events');
  });

  it('the global fetch is called as a plain function (browsers throw "Illegal invocation" otherwise)', async () => {
    const ff = fakeFetch();
    const strict = function (this: unknown, input: string | URL, init?: RequestInit) {
      if (this !== undefined && this !== globalThis) throw new TypeError('Illegal invocation');
      return ff.fetch(input, init);
    };
    vi.stubGlobal('fetch', strict);
    try {
      const { callbacks } = recorder();
      createSSEConnection({ body: { query: 'q', requestId: 'r1' }, ...callbacks }, URL_);
      await until(() => ff.calls.length === 1);
      expect(ff.calls[0]!.method).toBe('POST');
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it('a retried POST re-sends the same body with Last-Event-ID', async () => {
    const { ff, log } = connect({ backoff: { random: () => 0 } });
    await until(() => ff.calls.length === 1);
    const s = ff.calls[0]!.open();
    s.send(sse(1, { a: 1 }) + sse(2, { a: 2 }));
    await until(() => log.events.length === 2);
    s.fail();
    await until(() => ff.calls.length === 2);
    expect(ff.calls[1]!.method).toBe('POST');
    expect(ff.calls[1]!.body).toBe(ff.calls[0]!.body);
    expect(ff.calls[1]!.headers['last-event-id']).toBe('2');
  });

  it('learns the requestId from the events when the body had none, so a retry attaches', async () => {
    const { ff, log } = connect({ body: { query: 'q', agentType: 'plan_solve' }, backoff: { random: () => 0 } });
    await until(() => ff.calls.length === 1);
    const s = ff.calls[0]!.open();
    s.send(sse(1, { requestId: 'gen-7', messageType: 'status' }));
    await until(() => log.events.length === 1);
    s.fail();
    await until(() => ff.calls.length === 2);
    expect(JSON.parse(ff.calls[1]!.body!)).toEqual({ query: 'q', agentType: 'plan_solve', requestId: 'gen-7' });
  });
});

describe('statuses and endings', () => {
  it('connecting → open → closed on an isFinal event; no reconnection', async () => {
    const { ff, log } = connect();
    await until(() => ff.calls.length === 1);
    const s = ff.calls[0]!.open();
    s.send(sse(1, { messageType: 'result', isFinal: true }) + sse(2, { late: true }));
    await until(() => log.closes === 1);
    expect(log.statuses).toEqual(['connecting', 'open', 'closed']);
    expect(log.messages).toEqual([{ messageType: 'result', isFinal: true }]);
    await vi.runAllTimersAsync();
    expect(ff.calls.length).toBe(1);
    expect(ff.calls[0]!.signal.aborted).toBe(true);
  });

  it('event: cancelled is delivered and ends the run', async () => {
    const { ff, log } = connect();
    await until(() => ff.calls.length === 1);
    ff.calls[0]!.open().send(sse(1, { n: 1 }) + sse(2, { reason: 'user' }, 'cancelled'));
    await until(() => log.closes === 1);
    expect(log.events.map((e) => [e.event, e.id])).toEqual([
      ['message', '1'],
      ['cancelled', '2'],
    ]);
    expect(log.statuses.at(-1)).toBe('closed');
    expect(log.errors).toEqual([]);
  });

  it('204 → closed (the client already has the final event)', async () => {
    const { ff, log } = connect({ lastEventId: 9, backoff: { random: () => 0 } });
    await until(() => ff.calls.length === 1);
    ff.calls[0]!.respond(204);
    await until(() => log.closes === 1);
    expect(log.statuses).toEqual(['connecting', 'closed']);
    await vi.runAllTimersAsync();
    expect(ff.calls.length).toBe(1);
  });

  it('a response that ends without a final event is resumed; 204 then closes', async () => {
    const { ff, log } = connect({ backoff: { random: () => 0 } });
    await until(() => ff.calls.length === 1);
    const s = ff.calls[0]!.open();
    s.send(sse(1, { n: 1 }));
    s.end();
    await until(() => ff.calls.length === 2);
    expect(log.statuses).toEqual(['connecting', 'open', 'reconnecting']);
    expect(ff.calls[1]!.headers['last-event-id']).toBe('1');
    ff.calls[1]!.respond(204);
    await until(() => log.closes === 1);
    expect(log.statuses).toEqual(['connecting', 'open', 'reconnecting', 'closed']);
  });

  it('non-2xx with a JSON error → failed with the server code', async () => {
    const { ff, log } = connect();
    await until(() => ff.calls.length === 1);
    ff.calls[0]!.respond(
      400,
      '{"error":{"code":"agent_needs_model","message":"react needs --llm openai"}}',
      { 'content-type': 'application/json' },
    );
    await until(() => log.errors.length === 1);
    const e = log.errors[0]!;
    expect(e).toBeInstanceOf(SluiceError);
    expect([e.code, e.message, e.status]).toEqual(['agent_needs_model', 'react needs --llm openai', 400]);
    expect(log.statuses).toEqual(['connecting', 'failed']);
    expect(log.closes).toBe(0);
    await vi.runAllTimersAsync();
    expect(ff.calls.length).toBe(1);
  });

  it('ids with an epoch: the whole id is resumed from; history_truncated (409) fails in protocol', async () => {
    const { ff, log } = connect({ backoff: { random: () => 0 } });
    await until(() => ff.calls.length === 1);
    const s = ff.calls[0]!.open();
    s.send('id: 1\ndata: {"n":1}\n\nid: 2-k1\ndata: {"n":2}\n\n');
    s.end();
    await until(() => ff.calls.length === 2);
    expect(log.events.map((e) => e.id)).toEqual(['1', '2-k1']);
    expect(ff.calls[1]!.headers['last-event-id']).toBe('2-k1');
    ff.calls[1]!.respond(
      409,
      '{"error":{"code":"history_truncated","message":"lost","first_available":1}}',
      { 'content-type': 'application/json' },
    );
    await until(() => log.errors.length === 1);
    const e = log.errors[0]!;
    expect([e.code, e.status, e.firstAvailable]).toEqual(['history_truncated', 409, 1]);
    expect(log.statuses.at(-1)).toBe('failed');
    await vi.runAllTimersAsync();
    expect(ff.calls.length).toBe(2);
  });

  it('non-2xx without JSON → failed with http_error', async () => {
    const { ff, log } = connect();
    await until(() => ff.calls.length === 1);
    ff.calls[0]!.respond(404, 'nope');
    await until(() => log.errors.length === 1);
    expect([log.errors[0]!.code, log.errors[0]!.status]).toEqual(['http_error', 404]);
  });

  it('a 200 that is not an event stream → failed', async () => {
    const { ff, log } = connect();
    await until(() => ff.calls.length === 1);
    ff.calls[0]!.respond(200, '{"isFinal":true}', { 'content-type': 'application/json' });
    await until(() => log.errors.length === 1);
    expect(log.errors[0]!.code).toBe('unexpected_content_type');
  });

  it('503 with Retry-After is retried after that delay, then streams', async () => {
    const { ff, log } = connect({ backoff: { random: () => 0.999 } });
    await until(() => ff.calls.length === 1);
    ff.calls[0]!.respond(503, '{"error":{"code":"too_many_connections","message":"busy"}}', {
      'retry-after': '2',
    });
    await until(() => log.statuses.includes('reconnecting'));
    await vi.advanceTimersByTimeAsync(1999);
    expect(ff.calls.length).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    await until(() => ff.calls.length === 2);
    ff.calls[1]!.open().send(sse(1, { ok: true, isFinal: true }));
    await until(() => log.closes === 1);
    expect(log.statuses).toEqual(['connecting', 'reconnecting', 'open', 'closed']);
    expect(log.errors).toEqual([]);
  });

  it('429 with Retry-After is retried too', async () => {
    const { ff, log } = connect();
    await until(() => ff.calls.length === 1);
    ff.calls[0]!.respond(429, '', { 'retry-after': '1' });
    await until(() => log.statuses.includes('reconnecting'));
    await vi.advanceTimersByTimeAsync(1000);
    await until(() => ff.calls.length === 2);
  });

  it('event: error resume_window_exceeded → handleError with that code, no reconnection', async () => {
    const { ff, log } = connect({ lastEventId: 3 });
    await until(() => ff.calls.length === 1);
    const s = ff.calls[0]!.open();
    s.send(
      'event: error\ndata: {"code":"resume_window_exceeded","message":"events before 50 are no longer retained","first_available":50}\n\n',
    );
    s.end();
    await until(() => log.errors.length === 1);
    const e = log.errors[0]!;
    expect([e.code, e.firstAvailable, e.stream]).toEqual(['resume_window_exceeded', 50, 'r1']);
    expect(log.messages).toEqual([]);
    expect(log.statuses).toEqual(['connecting', 'open', 'failed']);
    await vi.runAllTimersAsync();
    expect(ff.calls.length).toBe(1);
  });

  it('abort() stops everything: status closed, no callback, request aborted', async () => {
    const { ff, log, ctl } = connect();
    await until(() => ff.calls.length === 1);
    const s = ff.calls[0]!.open();
    s.send(sse(1, { n: 1 }));
    await until(() => log.events.length === 1);
    ctl.abort();
    s.send(sse(2, { n: 2 }));
    await vi.runAllTimersAsync();
    expect(ff.calls[0]!.signal.aborted).toBe(true);
    expect(log.statuses).toEqual(['connecting', 'open', 'closed']);
    expect(log.closes).toBe(0);
    expect(log.messages).toEqual([{ n: 1 }]);
    expect(ff.calls.length).toBe(1);
  });

  it('abort() before the first attempt sends nothing', async () => {
    const { ff, ctl } = connect();
    ctl.abort();
    await settle();
    await vi.runAllTimersAsync();
    expect(ff.calls.length).toBe(0);
  });
});

describe('delivery order and duplicates across reconnections', () => {
  it('drops replayed events, counts coalesced ranges, resumes from the highest delivered', async () => {
    const { ff, log } = connect({ backoff: { random: () => 0 } });
    await until(() => ff.calls.length === 1);
    const s1 = ff.calls[0]!.open();
    s1.send(sse(1, { n: 1 }) + sse(2, { n: 2 }) + sse(3, { n: 3 }));
    await until(() => log.events.length === 3);
    s1.fail();
    await until(() => ff.calls.length === 2);
    expect(ff.calls[1]!.headers['last-event-id']).toBe('3');
    const s2 = ff.calls[1]!.open();
    // A replay overlapping what was delivered, a merged delta 4..6, a stale 5, a notice without id.
    s2.send(
      sse(2, { n: 2 }) +
        sse(3, { n: 3 }) +
        sse(6, { messageType: 'agent_stream', messageId: 'm', result: 'abc', coalesced: [4, 6] }) +
        sse(5, { n: 5 }) +
        sse(undefined, { code: 'x' }, 'notice') +
        sse(7, { n: 7 }),
    );
    await until(() => log.events.length === 6);
    s2.fail();
    await until(() => ff.calls.length === 3);
    expect(ff.calls[2]!.headers['last-event-id']).toBe('7');
    expect(log.events.map((e) => [e.event, e.id, e.firstSeq, e.lastSeq])).toEqual([
      ['message', '1', 1, 1],
      ['message', '2', 2, 2],
      ['message', '3', 3, 3],
      ['message', '6', 4, 6],
      ['notice', undefined, undefined, undefined],
      ['message', '7', 7, 7],
    ]);
    // A coalesced range whose end was already delivered is a duplicate too.
    const s3 = ff.calls[2]!.open();
    s3.send(sse(6, { result: 'abc', coalesced: [4, 6] }) + sse(8, { n: 8, isFinal: true }));
    await until(() => log.closes === 1);
    expect(log.events.map((e) => e.id)).toEqual(['1', '2', '3', '6', undefined, '7', '8']);
  });
});

describe('backoff and stall detection through the client', () => {
  it("honours retry: as the lower bound: first reconnection in [N, 2N), then [2N, 4N) after a failure", async () => {
    const { ff, log } = connect({ backoff: { random: () => 0.5 } });
    await until(() => ff.calls.length === 1);
    const s = ff.calls[0]!.open();
    s.send('retry: 5000\n\n' + sse(1, { n: 1 }));
    await until(() => log.events.length === 1);
    s.fail();
    await until(() => log.statuses.includes('reconnecting'));
    // 5000 + 0.5 * (10000 - 5000)
    await vi.advanceTimersByTimeAsync(7499);
    expect(ff.calls.length).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    await until(() => ff.calls.length === 2);
    // The attempt fails without opening: [10 s, 20 s), the middle.
    ff.calls[1]!.reject();
    await until(() => log.statuses.at(-1) === 'reconnecting' && ff.calls.length === 2);
    await vi.advanceTimersByTimeAsync(14999);
    expect(ff.calls.length).toBe(2);
    await vi.advanceTimersByTimeAsync(1);
    await until(() => ff.calls.length === 3);
  });

  it('retry: 150 with random 0: the reconnection comes at 150 ms, not before', async () => {
    const { ff, log } = connect({ backoff: { random: () => 0 } });
    await until(() => ff.calls.length === 1);
    const s = ff.calls[0]!.open();
    s.send('retry: 150\n' + sse(1, { n: 1 }));
    await until(() => log.events.length === 1);
    s.end();
    await until(() => log.statuses.includes('reconnecting'));
    await vi.advanceTimersByTimeAsync(149);
    expect(ff.calls.length).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    await until(() => ff.calls.length === 2);
    expect(ff.calls[1]!.headers['last-event-id']).toBe('1');
  });

  it('gives up after maxAttempts consecutive failures: attempts_exhausted', async () => {
    const { ff, log } = connect({ backoff: { random: () => 0, maxAttempts: 3 } });
    for (let i = 1; i <= 3; i++) {
      await until(() => ff.calls.length === i);
      ff.calls[i - 1]!.reject(new TypeError('connection refused'));
      await settle();
      await vi.advanceTimersByTimeAsync(0);
    }
    await until(() => log.errors.length === 1);
    expect(log.errors[0]!.code).toBe('attempts_exhausted');
    expect(log.errors[0]!.message).toContain('connection refused');
    expect(log.statuses).toEqual(['connecting', 'reconnecting', 'failed']);
    expect(ff.calls.length).toBe(3);
  });

  it('reconnects after the stall timeout without any byte; heartbeats keep it alive', async () => {
    const { ff, log } = connect({ backoff: { random: () => 0 }, stallTimeoutMs: 30000 });
    await until(() => ff.calls.length === 1);
    const s = ff.calls[0]!.open();
    s.send(sse(1, { n: 1 }));
    await until(() => log.events.length === 1);
    await vi.advanceTimersByTimeAsync(20000);
    s.send(': heartbeat\n\n');
    await settle();
    await vi.advanceTimersByTimeAsync(20000);
    s.send('data: heartbeat\n\n');
    await settle();
    await vi.advanceTimersByTimeAsync(29999);
    expect(ff.calls.length).toBe(1);
    expect(log.messages).toEqual([{ n: 1 }]);
    await vi.advanceTimersByTimeAsync(1);
    expect(ff.calls[0]!.signal.aborted).toBe(true);
    // The zero reconnection delay was armed during that tick (fake timers make it 1 ms).
    await vi.advanceTimersByTimeAsync(1);
    await until(() => ff.calls.length === 2);
    expect(ff.calls[1]!.headers['last-event-id']).toBe('1');
    expect(log.statuses).toEqual(['connecting', 'open', 'reconnecting']);
  });

  it('a stall before the response headers also reconnects', async () => {
    const { ff } = connect({ backoff: { random: () => 0 }, stallTimeoutMs: 1000 });
    await until(() => ff.calls.length === 1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(ff.calls[0]!.signal.aborted).toBe(true);
    await vi.advanceTimersByTimeAsync(1); // the zero delay armed during the tick
    await until(() => ff.calls.length === 2);
  });
});

describe('extras', () => {
  it('onLatency gets Date.now() - data.ts for each event with a ts', async () => {
    vi.setSystemTime(1_700_000_000_000);
    const lat: number[] = [];
    const { ff, log } = connect({ onLatency: (ms: number) => lat.push(ms) });
    await until(() => ff.calls.length === 1);
    ff.calls[0]!.open().send(
      sse(1, { ts: 1_700_000_000_000 - 42 }) + sse(2, { noTs: true }) + sse(3, { ts: (1_700_000_000_000 - 7) * 1000 }),
    );
    await until(() => log.events.length === 3);
    expect(lat).toEqual([42, 7]);
  });

  it('messageStatus: a status message also reaches onStatusChange (seed behaviour)', async () => {
    const { ff, log } = connect({ messageStatus: true });
    await until(() => ff.calls.length === 1);
    ff.calls[0]!.open().send(sse(1, { messageType: 'status', status: 'planning' }));
    await until(() => log.events.length === 1);
    expect(log.statuses).toEqual(['connecting', 'open', 'planning']);
  });

  it('a throwing handleMessage fails the connection instead of looping', async () => {
    const ff = fakeFetch();
    const { log, callbacks } = recorder();
    createSSEConnection(
      {
        ...callbacks,
        body: {},
        fetch: ff.fetch,
        handleMessage: () => {
          throw new Error('boom');
        },
      },
      URL_,
    );
    await until(() => ff.calls.length === 1);
    ff.calls[0]!.open().send(sse(1, { n: 1 }));
    await until(() => log.errors.length === 1);
    expect(log.errors[0]!.code).toBe('callback_threw');
  });
});
