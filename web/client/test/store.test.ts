import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AIStreamController } from '../src/index.js';
import { FakeWebSocket, fakeFetch, sse, until } from './helpers.js';

beforeEach(() => {
  vi.useFakeTimers();
  FakeWebSocket.reset();
});
afterEach(() => {
  vi.useRealTimers();
});

function frames() {
  let pending: (() => void)[] = [];
  return {
    requestFrame: (cb: () => void) => {
      pending.push(cb);
      return () => (pending = pending.filter((x) => x !== cb));
    },
    run() {
      const cbs = pending;
      pending = [];
      cbs.forEach((cb) => cb());
    },
  };
}

function setup(extra: Record<string, unknown> = {}) {
  const ff = fakeFetch();
  const f = frames();
  let n = 0;
  const ctl = new AIStreamController({
    baseUrl: 'http://sluice.test/',
    fetch: ff.fetch,
    requestFrame: f.requestFrame,
    backoff: { random: () => 0 },
    makeRequestId: () => `req-${++n}`,
    ...extra,
  });
  let notifications = 0;
  ctl.subscribe(() => notifications++);
  return { ff, f, ctl, notes: () => notifications };
}

const delta = (seq: number, messageId: string, result: string) =>
  sse(seq, { requestId: 'req-1', messageId, messageType: 'agent_stream', result, isFinal: false, sequence: seq });

describe('AIStreamController (useAIStream state)', () => {
  it('sendMessage POSTs /AutoAgent; events reach state once per frame, deltas merged', async () => {
    const { ff, f, ctl, notes } = setup();
    void ctl.sendMessage('How does Sluice resume?', 'plan_solve');
    expect(ctl.getSnapshot()).toMatchObject({ status: 'connecting', isLoading: true, requestId: 'req-1' });
    await until(() => ff.calls.length === 1);
    const c = ff.calls[0]!;
    expect(c.url).toBe('http://sluice.test/AutoAgent');
    expect(JSON.parse(c.body!)).toEqual({
      query: 'How does Sluice resume?',
      agentType: 'plan_solve',
      requestId: 'req-1',
      isStream: true,
    });
    const s = c.open();
    await until(() => ctl.getSnapshot().status === 'open');
    expect(ctl.getSnapshot().isConnected).toBe(true);
    const before = notes();
    s.send(
      sse(1, { requestId: 'req-1', messageId: 's', messageType: 'status', status: 'planning', message: 'Planning' }) +
        delta(2, 'a', 'Hel') +
        delta(3, 'a', 'lo'),
    );
    await vi.advanceTimersByTimeAsync(0); // the bytes are read and parsed
    expect(ctl.getSnapshot().messages).toEqual([]); // not before the frame
    f.run();
    const snap = ctl.getSnapshot();
    expect(notes() - before).toBe(1); // one update for three events
    expect(snap.messages.map((m) => [m.id, m.type, m.content, m.sequence])).toEqual([
      ['s', 'status', 'Planning', 1],
      ['a', 'agent_stream', 'Hello', 3],
    ]);
    // A later frame continues the same message: state does not depend on frame timing.
    s.send(delta(4, 'a', ', world') + sse(5, { requestId: 'req-1', messageId: 'r', messageType: 'result', result: 'Hello, world', isFinal: true }));
    await until(() => ctl.getSnapshot().status === 'closed');
    const end = ctl.getSnapshot();
    expect(end.messages.map((m) => [m.id, m.content, m.isFinal])).toEqual([
      ['s', 'Planning', false],
      ['a', 'Hello, world', false],
      ['r', 'Hello, world', true],
    ]);
    expect(end).toMatchObject({ isLoading: false, isConnected: false, error: null });
  });

  it('stop() POSTs /v1/streams/{requestId}/cancel; the cancelled event ends the run', async () => {
    const { ff, f, ctl } = setup();
    void ctl.sendMessage('q', 'plan_solve');
    await until(() => ff.calls.length === 1);
    const s = ff.calls[0]!.open();
    s.send(delta(1, 'a', 'x'));
    const stopping = ctl.stop();
    await until(() => ff.calls.length === 2);
    expect([ff.calls[1]!.method, ff.calls[1]!.url]).toEqual(['POST', 'http://sluice.test/v1/streams/req-1/cancel']);
    ff.calls[1]!.respond(200, '{"sequence":2}');
    await stopping;
    expect(ctl.getSnapshot().isLoading).toBe(true); // still reading: the run ends with its cancelled event
    s.send(sse(2, { reason: 'user' }, 'cancelled'));
    await until(() => ctl.getSnapshot().status === 'closed');
    f.run();
    expect(ctl.getSnapshot().messages.map((m) => [m.type, m.isFinal])).toEqual([
      ['agent_stream', false],
      ['cancelled', true],
    ]);
    expect(ctl.getSnapshot().isLoading).toBe(false);
  });

  it('attach(requestId, fromEventId) GETs the events with Last-Event-ID', async () => {
    const { ff, ctl } = setup();
    ctl.attach('run-9', 12);
    await until(() => ff.calls.length === 1);
    const c = ff.calls[0]!;
    expect([c.method, c.url, c.headers['last-event-id']]).toEqual([
      'GET',
      'http://sluice.test/v1/streams/run-9/events',
      '12',
    ]);
    expect(ctl.getSnapshot().requestId).toBe('run-9');
    ctl.attach('run-9');
    await until(() => ff.calls.length === 2);
    expect(ff.calls[0]!.signal.aborted).toBe(true);
    expect(ff.calls[1]!.headers['last-event-id']).toBeUndefined();
  });

  it('resume_window_exceeded reaches error and errorCode', async () => {
    const { ff, ctl } = setup();
    ctl.attach('run-9', 1);
    await until(() => ff.calls.length === 1);
    ff.calls[0]!.open().send(
      'event: error\ndata: {"code":"resume_window_exceeded","message":"events before 5 are no longer retained","first_available":5}\n\n',
    );
    await until(() => ctl.getSnapshot().status === 'failed');
    expect(ctl.getSnapshot()).toMatchObject({
      errorCode: 'resume_window_exceeded',
      error: 'events before 5 are no longer retained',
      isLoading: false,
    });
  });

  it('latencyMs is updated with the batch', async () => {
    vi.setSystemTime(1_000_000);
    const { ff, f, ctl } = setup();
    ctl.attach('run-9');
    await until(() => ff.calls.length === 1);
    ff.calls[0]!.open().send(sse(1, { messageType: 'status', ts: 1_000_000 - 25 }));
    await until(() => ctl.getSnapshot().status === 'open');
    await vi.advanceTimersByTimeAsync(0);
    f.run();
    expect(ctl.getSnapshot().latencyMs).toBe(25);
  });

  it('disconnect() drops the connection and pending updates; a new run starts clean', async () => {
    const { ff, f, ctl } = setup();
    void ctl.sendMessage('one', 'plan_solve');
    await until(() => ff.calls.length === 1);
    ff.calls[0]!.open().send(delta(1, 'a', 'old'));
    await vi.advanceTimersByTimeAsync(0);
    ctl.disconnect();
    f.run();
    expect(ctl.getSnapshot()).toMatchObject({ messages: [], status: 'closed', isConnected: false });
    void ctl.sendMessage('two', 'plan_solve');
    await until(() => ff.calls.length === 2);
    expect(JSON.parse(ff.calls[1]!.body!).requestId).toBe('req-2');
  });

  it('transport ws: start over /v1/ws, stop() sends op cancel', async () => {
    const { ctl } = setup({ transport: 'ws', WebSocket: FakeWebSocket, baseUrl: 'http://sluice.test' });
    void ctl.sendMessage('q', 'deepsearch');
    await until(() => FakeWebSocket.instances.length === 1);
    const ws = FakeWebSocket.last();
    expect(ws.url).toBe('ws://sluice.test/v1/ws');
    ws.serverOpen();
    expect(ws.sent[0]).toEqual({
      op: 'start',
      request: { query: 'q', agentType: 'deepsearch', requestId: 'req-1', isStream: true },
    });
    ws.serverSend({ op: 'started', stream: 'req-1', created: true });
    await ctl.stop();
    expect(ws.sent.at(-1)).toEqual({ op: 'cancel', stream: 'req-1' });
  });
});
