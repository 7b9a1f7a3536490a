// The WHATWG event-stream model through the client, byte-exact: line ends,
// ids that persist (lastEventId), id-only blocks, BOM, split UTF-8, long lines,
// retry:. Plus what the client sends: tokens, Last-Event-ID, content types.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  AIStreamController,
  createSSEConnection,
  createWSConnection,
  generateRequestId,
  withAccessToken,
} from '../src/index.js';
import { FakeWebSocket, fakeFetch, settle, until } from './helpers.js';
import { recorder } from './recorder.js';

beforeEach(() => {
  vi.useFakeTimers();
  FakeWebSocket.reset();
});
afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

const enc = new TextEncoder();

function connect(extra: Record<string, unknown> = {}) {
  const ff = fakeFetch();
  const { log, callbacks } = recorder();
  // GET (attach): no body; every event is delivered, the stream does not end on isFinal.
  const ctl = createSSEConnection(
    { ...callbacks, fetch: ff.fetch, endOnFinal: false, backoff: { random: () => 0 }, ...extra },
    'http://sluice.test/v1/streams/s/events',
  );
  return { ff, log, ctl };
}

/** Feeds `chunks` (strings or bytes) to a fresh connection; returns [data, own id, lastEventId] per event. */
async function run(chunks: (string | Uint8Array)[], expectEvents: number) {
  const { ff, log, ctl } = connect();
  await until(() => ff.calls.length === 1);
  const s = ff.calls[0]!.open();
  for (const c of chunks) {
    s.send(c);
    await settle();
  }
  await until(() => log.events.length === expectEvents, `${expectEvents} events`);
  await settle();
  expect(log.events.length).toBe(expectEvents);
  return { ff, log, ctl, s, got: log.events.map((e) => [e.data, e.id, e.lastEventId]) };
}

describe('WHATWG event-stream semantics', () => {
  it('CRLF, CR-only and LF line ends, mixed, give the same events', async () => {
    for (const nl of ['\r\n', '\r', '\n']) {
      const text = `id: 1${nl}data: a${nl}data: b${nl}${nl}data: c${nl}${nl}`;
      const { got } = await run([text], 2);
      expect(got, JSON.stringify(nl)).toEqual([
        ['a\nb', '1', '1'],
        ['c', undefined, '1'],
      ]);
    }
    const mixed = 'id: 1\r\ndata: a\r\rdata: b\n\r\ndata: c\r\n\n';
    const { got } = await run([mixed], 3);
    expect(got).toEqual([
      ['a', '1', '1'],
      ['b', undefined, '1'],
      ['c', undefined, '1'],
    ]);
  });

  it('a CRLF split between two chunks is one line end, not a blank line', async () => {
    const { got } = await run(['id: 7\r', '\ndata: x\r', '\n\r', '\n'], 1);
    expect(got).toEqual([['x', '7', '7']]);
  });

  it('ids persist across events until changed; an empty id resets lastEventId', async () => {
    const text = 'id: 5\ndata: a\n\ndata: b\n\nid: 6\ndata: c\n\nid\ndata: d\n\ndata: e\n\n';
    const { got } = await run([text], 5);
    expect(got).toEqual([
      ['a', '5', '5'],
      ['b', undefined, '5'],
      ['c', '6', '6'],
      ['d', '', ''],
      ['e', undefined, ''],
    ]);
  });

  it('an id-only block dispatches nothing but sets lastEventId (and the Last-Event-ID of the reconnection)', async () => {
    const { ff, log, s } = await run(['id: 1\ndata: a\n\nid: 42\n\n: comment\n\ndata: b\n\n'], 2);
    expect(log.events.map((e) => [e.data, e.id, e.lastEventId])).toEqual([
      ['a', '1', '1'],
      ['b', undefined, '42'],
    ]);
    s.end();
    await until(() => ff.calls.length === 2);
    expect(ff.calls[1]!.headers['last-event-id']).toBe('42');
  });

  it('an id with U+0000 is ignored; an unfinished block at the end of the body is discarded', async () => {
    const { ff, log, s } = await run(['id: 3\ndata: a\n\nid: 4\u00005\ndata: b\n\nid: 9\ndata: never'], 2);
    expect(log.events.map((e) => [e.data, e.lastEventId])).toEqual([
      ['a', '3'],
      ['b', '3'],
    ]);
    s.end();
    await until(() => ff.calls.length === 2);
    expect(ff.calls[1]!.headers['last-event-id']).toBe('3');
    expect(log.events.length).toBe(2);
  });

  it('a leading BOM is stripped, also when its bytes are split; a later U+FEFF is data', async () => {
    const bytes = enc.encode('\uFEFFdata: x\n\ndata: \uFEFFy\n\n');
    const { got } = await run([bytes.slice(0, 1), bytes.slice(1, 2), bytes.slice(2)], 2);
    expect(got).toEqual([
      ['x', undefined, ''],
      ['\uFEFFy', undefined, ''],
    ]);
  });

  it('multibyte UTF-8 characters split across chunks at every byte arrive whole', async () => {
    const text = 'id: 1\ndata: {"t":"é€😀日本"}\n\n';
    const bytes = enc.encode(text);
    for (let cut = 1; cut < bytes.length; cut++) {
      const { got } = await run([bytes.slice(0, cut), bytes.slice(cut)], 1);
      expect(got, `cut at ${cut}`).toEqual([[{ t: 'é€😀日本' }, '1', '1']]);
    }
    // One byte at a time, too.
    const { got } = await run(Array.from(bytes, (b) => new Uint8Array([b])), 1);
    expect(got).toEqual([[{ t: 'é€😀日本' }, '1', '1']]);
  });

  it('a long line (1 MiB) in small chunks arrives intact', async () => {
    const big = 'x'.repeat(1 << 20);
    const text = `id: 2\ndata: ${big}\n\n`;
    const chunks: string[] = [];
    for (let i = 0; i < text.length; i += 4096) chunks.push(text.slice(i, i + 4096));
    const { got } = await run(chunks, 1);
    expect((got[0]![0] as string).length).toBe(1 << 20);
    expect(got[0]![0]).toBe(big);
    expect(got[0]![2]).toBe('2');
  });

  it('retry: with digits only sets the reconnection time; other values are ignored', async () => {
    const { ff, log, s } = await run(['retry: 300\nretry: 12x\nretry: -5\ndata: a\n\n'], 1);
    expect(log.events.length).toBe(1);
    s.end();
    await until(() => log.statuses.at(-1) === 'reconnecting');
    await vi.advanceTimersByTimeAsync(299);
    expect(ff.calls.length).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    await until(() => ff.calls.length === 2);
  });

  it('field names are case-sensitive; a line without a colon is a field with an empty value', async () => {
    const { got } = await run(['ID: 9\nData: no\ndata\n\nid: 1\ndata:no-space\n\n'], 2);
    expect(got).toEqual([
      ['', undefined, ''],
      ['no-space', '1', '1'],
    ]);
  });
});

describe('tokens', () => {
  it('SSE: Authorization: Bearer on every attempt, getToken called per (re)connection', async () => {
    let n = 0;
    const getToken = vi.fn(async () => `tok-${++n}`);
    const { ff, log } = connect({ getToken });
    await until(() => ff.calls.length === 1);
    expect(ff.calls[0]!.headers['authorization']).toBe('Bearer tok-1');
    const s = ff.calls[0]!.open();
    s.send('id: 1\ndata: a\n\n');
    await until(() => log.events.length === 1);
    s.end();
    await until(() => ff.calls.length === 2);
    expect(ff.calls[1]!.headers['authorization']).toBe('Bearer tok-2');
    expect(ff.calls[1]!.headers['last-event-id']).toBe('1');
    expect(getToken).toHaveBeenCalledTimes(2);
  });

  it('SSE: a static token; none when empty', async () => {
    const a = connect({ token: 'abc' });
    await until(() => a.ff.calls.length === 1);
    expect(a.ff.calls[0]!.headers['authorization']).toBe('Bearer abc');
    const b = connect({ token: '' });
    await until(() => b.ff.calls.length === 1);
    expect(b.ff.calls[0]!.headers['authorization']).toBeUndefined();
  });

  it('WebSocket: ?access_token= on the URL of every attempt', async () => {
    let n = 0;
    const { log, callbacks } = recorder();
    createWSConnection(
      {
        stream: 'run 1',
        ...callbacks,
        WebSocket: FakeWebSocket,
        backoff: { random: () => 0 },
        getToken: () => `t/${++n}`,
      },
      'ws://sluice.test/v1/ws',
    );
    await until(() => FakeWebSocket.instances.length === 1);
    expect(FakeWebSocket.last().url).toBe('ws://sluice.test/v1/ws?access_token=t%2F1');
    FakeWebSocket.last().serverOpen();
    FakeWebSocket.last().serverClose();
    await until(() => FakeWebSocket.instances.length === 2);
    expect(FakeWebSocket.last().url).toBe('ws://sluice.test/v1/ws?access_token=t%2F2');
    expect(log.errors).toEqual([]);
  });

  it('withAccessToken keeps an existing query and fragment', () => {
    expect(withAccessToken('/v1/ws', 'a b')).toBe('/v1/ws?access_token=a%20b');
    expect(withAccessToken('/x?y=1#f', 't')).toBe('/x?y=1&access_token=t#f');
    expect(withAccessToken('/x', undefined)).toBe('/x');
  });

  it('the controller sends the token and application/json on its POSTs (run, cancel, links)', async () => {
    const ff = fakeFetch();
    const ctl = new AIStreamController({
      baseUrl: 'http://sluice.test',
      fetch: ff.fetch,
      getToken: () => 'T',
      requestFrame: () => () => {},
    });
    void ctl.sendMessage('q');
    await until(() => ff.calls.length === 1);
    const start = ff.calls[0]!;
    expect(start.method).toBe('POST');
    expect(start.headers['content-type']).toBe('application/json');
    expect(start.headers['authorization']).toBe('Bearer T');
    const body = JSON.parse(start.body!);
    expect(body.agentType).toBe('plan_solve');
    expect(body.requestId).toMatch(/^req_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    start.open().send('id: 1\ndata: {"requestId":"x"}\n\n');

    const stopping = ctl.stop();
    await until(() => ff.calls.length === 2);
    const cancel = ff.calls[1]!;
    expect(cancel.url).toBe(`http://sluice.test/v1/streams/${body.requestId}/cancel`);
    expect([cancel.method, cancel.headers['content-type'], cancel.headers['authorization'], cancel.body]).toEqual([
      'POST',
      'application/json',
      'Bearer T',
      '{}',
    ]);
    cancel.respond(200, '{}');
    await stopping;

    const linking = ctl.createShareLink();
    await until(() => ff.calls.length === 3);
    const link = ff.calls[2]!;
    expect(link.url).toBe(`http://sluice.test/v1/streams/${body.requestId}/links`);
    expect([link.method, link.headers['content-type'], link.headers['authorization']]).toEqual([
      'POST',
      'application/json',
      'Bearer T',
    ]);
    link.respond(
      200,
      JSON.stringify({ stream: body.requestId, token: 'L', expires_at: 99, url: `/v1/streams/${body.requestId}/events?access_token=L` }),
    );
    expect(await linking).toEqual({
      stream: body.requestId,
      token: 'L',
      expires_at: 99,
      url: `/v1/streams/${body.requestId}/events?access_token=L`,
    });

    const refused = ctl.createShareLink('other');
    await until(() => ff.calls.length === 4);
    ff.calls[3]!.respond(403, '{"error":{"code":"forbidden","message":"not yours"}}');
    await expect(refused).rejects.toMatchObject({ code: 'forbidden', message: 'not yours', status: 403 });
    ctl.disconnect();
  });
});

describe('run ids', () => {
  it('come from crypto.randomUUID, never Math.random', () => {
    const spy = vi.spyOn(Math, 'random');
    const ids = new Set(Array.from({ length: 1000 }, () => generateRequestId()));
    expect(ids.size).toBe(1000);
    for (const id of ids) expect(id).toMatch(/^req_[0-9a-f-]{36}$/);
    expect(spy).not.toHaveBeenCalled();
  });

  it('fall back to crypto.getRandomValues (a v4 UUID) when randomUUID is missing', () => {
    const c = globalThis.crypto as { randomUUID?: unknown };
    const saved = c.randomUUID;
    try {
      Object.defineProperty(c, 'randomUUID', { value: undefined, configurable: true, writable: true });
      expect(generateRequestId()).toMatch(/^req_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    } finally {
      Object.defineProperty(c, 'randomUUID', { value: saved, configurable: true, writable: true });
    }
  });
});
