import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createWSConnection } from '../src/index.js';
import { FakeWebSocket, settle, until } from './helpers.js';
import { recorder } from './recorder.js';

beforeEach(() => {
  vi.useFakeTimers();
  FakeWebSocket.reset();
});
afterEach(() => {
  vi.useRealTimers();
});

function start(extra: Record<string, unknown> = {}) {
  const { log, callbacks } = recorder();
  const conn = createWSConnection(
    {
      body: { query: 'q', agentType: 'plan_solve' },
      ...callbacks,
      WebSocket: FakeWebSocket,
      backoff: { random: () => 0 },
      ...extra,
    },
    'ws://sluice.test/v1/ws',
  );
  return { log, conn };
}

const ev = (id: number, data: unknown, event = 'message') => ({ stream: 'run-1', id, event, data });

describe('WebSocket transport', () => {
  it('start → started → events → end: closed', async () => {
    const { log } = start({ body: { query: 'q', agentType: 'plan_solve', requestId: 'run-1' } });
    await until(() => FakeWebSocket.instances.length === 1);
    const ws = FakeWebSocket.last();
    expect(ws.url).toBe('ws://sluice.test/v1/ws');
    ws.serverOpen();
    expect(ws.sent).toEqual([{ op: 'start', request: { query: 'q', agentType: 'plan_solve', requestId: 'run-1' } }]);
    ws.serverSend({ op: 'started', stream: 'run-1', created: true });
    ws.serverSend(ev(1, { messageType: 'status', status: 'planning' }));
    ws.serverSend(ev(2, { messageType: 'agent_stream', messageId: 'm', result: 'ab', coalesced: [2, 2] }));
    ws.serverSend({ op: 'pong' });
    ws.serverSend({ stream: 'other', id: 9, event: 'message', data: {} }); // not ours
    ws.serverSend({ op: 'end', stream: 'run-1' });
    expect(log.events.map((e) => [e.event, e.id, e.firstSeq, e.lastSeq])).toEqual([
      ['message', '1', 1, 1],
      ['message', '2', 2, 2],
    ]);
    expect(log.closes).toBe(1);
    expect(log.statuses).toEqual(['connecting', 'open', 'closed']);
    expect(ws.closedWith).toBe(1000);
  });

  it('generates a requestId so a re-sent start attaches to the same run', async () => {
    const { conn } = start();
    await until(() => FakeWebSocket.instances.length === 1);
    const ws = FakeWebSocket.last();
    ws.serverOpen();
    const first = ws.sent[0] as { request: { requestId: string } };
    expect(first.request.requestId).toMatch(/^[A-Za-z0-9._:-]{1,128}$/);
    expect(conn.streamId).toBe(first.request.requestId);
    ws.serverClose(); // cut before "started"
    await until(() => FakeWebSocket.instances.length === 2);
    const ws2 = FakeWebSocket.last();
    ws2.serverOpen();
    expect(ws2.sent).toEqual([first]);
  });

  it('reconnects with backoff and subscribes with lastEventId; duplicates are dropped', async () => {
    const { log } = start({ backoff: { random: () => 0.5 } });
    await until(() => FakeWebSocket.instances.length === 1);
    const ws = FakeWebSocket.last();
    ws.serverOpen();
    ws.serverSend({ op: 'started', stream: 'run-1', created: true });
    ws.serverSend(ev(1, { n: 1 }));
    ws.serverSend(ev(2, { n: 2 }));
    ws.serverClose(1001);
    await settle();
    expect(log.statuses.at(-1)).toBe('reconnecting');
    await vi.advanceTimersByTimeAsync(499);
    expect(FakeWebSocket.instances.length).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    await until(() => FakeWebSocket.instances.length === 2);
    const ws2 = FakeWebSocket.last();
    ws2.serverOpen();
    expect(ws2.sent).toEqual([{ op: 'subscribe', stream: 'run-1', lastEventId: 2 }]);
    ws2.serverSend(ev(2, { n: 2 }));
    ws2.serverSend(ev(5, { messageType: 'agent_stream', messageId: 'm', result: 'xyz', coalesced: [3, 5] }));
    ws2.serverSend(ev(4, { n: 4 }));
    ws2.serverSend(ev(6, { messageType: 'result', isFinal: true }));
    expect(log.events.map((e) => [e.id, e.firstSeq])).toEqual([
      ['1', 1],
      ['2', 2],
      ['5', 3],
      ['6', 6],
    ]);
    expect(log.closes).toBe(1);
    expect(log.statuses).toEqual(['connecting', 'open', 'reconnecting', 'open', 'closed']);
  });

  it('subscribes to an existing stream from lastEventId (attach)', async () => {
    const { log } = start({ body: undefined, stream: 'run-1', lastEventId: 10 });
    await until(() => FakeWebSocket.instances.length === 1);
    const ws = FakeWebSocket.last();
    ws.serverOpen();
    expect(ws.sent).toEqual([{ op: 'subscribe', stream: 'run-1', lastEventId: 10 }]);
    ws.serverSend(ev(10, { old: true }));
    ws.serverSend(ev(11, { n: 11 }));
    expect(log.messages).toEqual([{ n: 11 }]);
  });

  it('ids with an epoch: "N-E" is the id, the sequence orders, the whole id is sent back', async () => {
    const { log } = start({ body: undefined, stream: 'run-1', lastEventId: '3' });
    await until(() => FakeWebSocket.instances.length === 1);
    const ws = FakeWebSocket.last();
    ws.serverOpen();
    expect(ws.sent).toEqual([{ op: 'subscribe', stream: 'run-1', lastEventId: 3 }]);
    ws.serverSend({ ...ev(3, { old: true }), epoch: 'k1' });
    ws.serverSend({ ...ev(4, { n: 4 }), epoch: 'k1' });
    ws.serverClose(1001);
    await vi.runOnlyPendingTimersAsync();
    await until(() => FakeWebSocket.instances.length === 2);
    const ws2 = FakeWebSocket.last();
    ws2.serverOpen();
    expect(ws2.sent).toEqual([{ op: 'subscribe', stream: 'run-1', lastEventId: '4-k1' }]);
    ws2.serverSend({
      op: 'error',
      code: 'history_truncated',
      message: 'the stream\'s history after Last-Event-ID 4-k1 was lost',
      stream: 'run-1',
      first_available: 1,
    });
    expect(log.events.map((e) => e.id)).toEqual(['4-k1']);
    expect(log.errors.map((e) => [e.code, e.firstAvailable])).toEqual([['history_truncated', 1]]);
    expect(log.statuses.at(-1)).toBe('failed');
  });

  it('error resume_window_exceeded → handleError with code and first_available, no reconnection', async () => {
    const { log } = start({ body: undefined, stream: 'run-1', lastEventId: 3 });
    await until(() => FakeWebSocket.instances.length === 1);
    const ws = FakeWebSocket.last();
    ws.serverOpen();
    ws.serverSend({
      op: 'error',
      code: 'resume_window_exceeded',
      message: 'events before 40 are no longer retained',
      stream: 'run-1',
      first_available: 40,
    });
    expect(log.errors.map((e) => [e.code, e.firstAvailable, e.stream])).toEqual([
      ['resume_window_exceeded', 40, 'run-1'],
    ]);
    expect(log.statuses).toEqual(['connecting', 'open', 'failed']);
    await vi.runAllTimersAsync();
    expect(FakeWebSocket.instances.length).toBe(1);
  });

  it('a start error (no stream) fails: agent_needs_model', async () => {
    const { log } = start();
    await until(() => FakeWebSocket.instances.length === 1);
    const ws = FakeWebSocket.last();
    ws.serverOpen();
    ws.serverSend({ op: 'error', code: 'agent_needs_model', message: 'needs --llm openai' });
    expect(log.errors.map((e) => e.code)).toEqual(['agent_needs_model']);
  });

  it('end right away (204-equivalent) → closed', async () => {
    const { log } = start({ body: undefined, stream: 'run-1', lastEventId: 8 });
    await until(() => FakeWebSocket.instances.length === 1);
    const ws = FakeWebSocket.last();
    ws.serverOpen();
    ws.serverSend({ op: 'end', stream: 'run-1' });
    expect(log.closes).toBe(1);
  });

  it('cancel() sends {"op":"cancel"}; the cancelled event ends the run', async () => {
    const { log, conn } = start({ body: undefined, stream: 'run-1' });
    conn.cancel('user'); // before open: sent once subscribed
    await until(() => FakeWebSocket.instances.length === 1);
    const ws = FakeWebSocket.last();
    ws.serverOpen();
    expect(ws.sent).toEqual([
      { op: 'subscribe', stream: 'run-1' },
      { op: 'cancel', stream: 'run-1', reason: 'user' },
    ]);
    ws.serverSend({ op: 'cancelled', stream: 'run-1', sequence: 4 });
    ws.serverSend(ev(4, { reason: 'user' }, 'cancelled'));
    expect(log.events.map((e) => e.event)).toEqual(['cancelled']);
    expect(log.closes).toBe(1);
  });

  it('pings after half the stall timeout; reconnects after all of it', async () => {
    const { log } = start({ body: undefined, stream: 'run-1', stallTimeoutMs: 10000 });
    await until(() => FakeWebSocket.instances.length === 1);
    const ws = FakeWebSocket.last();
    ws.serverOpen();
    ws.serverSend(ev(1, { n: 1 }));
    await vi.advanceTimersByTimeAsync(5000);
    expect(ws.sent.at(-1)).toEqual({ op: 'ping' });
    ws.serverSend({ op: 'pong' }); // traffic: the timer starts again
    await vi.advanceTimersByTimeAsync(9999);
    expect(FakeWebSocket.instances.length).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(ws.closedWith).toBe(1000);
    await vi.advanceTimersByTimeAsync(1); // the zero reconnection delay armed during the tick
    await until(() => FakeWebSocket.instances.length === 2);
    FakeWebSocket.last().serverOpen();
    expect(FakeWebSocket.last().sent).toEqual([{ op: 'subscribe', stream: 'run-1', lastEventId: 1 }]);
    expect(log.statuses).toEqual(['connecting', 'open', 'reconnecting', 'open']);
  });

  it('a notice is delivered as event notice', async () => {
    const { log } = start({ body: undefined, stream: 'run-1' });
    await until(() => FakeWebSocket.instances.length === 1);
    const ws = FakeWebSocket.last();
    ws.serverOpen();
    ws.serverSend({ op: 'notice', code: 'history_truncated', stream: 'run-1', first_available: 7 });
    expect(log.events.map((e) => [e.event, e.data])).toEqual([
      ['notice', { code: 'history_truncated', first_available: 7 }],
    ]);
  });

  it('abort() closes the socket: status closed, no callbacks', async () => {
    const { log, conn } = start({ body: undefined, stream: 'run-1' });
    await until(() => FakeWebSocket.instances.length === 1);
    const ws = FakeWebSocket.last();
    ws.serverOpen();
    conn.abort();
    expect(ws.closedWith).toBe(1000);
    await vi.runAllTimersAsync();
    expect(FakeWebSocket.instances.length).toBe(1);
    expect(log.statuses).toEqual(['connecting', 'open', 'closed']);
    expect(log.closes + log.errors.length).toBe(0);
  });

  it('gives up after maxAttempts sockets that never open', async () => {
    const { log } = start({ body: undefined, stream: 'run-1', backoff: { random: () => 0, maxAttempts: 2 } });
    await until(() => FakeWebSocket.instances.length === 1);
    FakeWebSocket.last().serverClose(1006);
    await until(() => FakeWebSocket.instances.length === 2);
    FakeWebSocket.last().serverClose(1006);
    await until(() => log.errors.length === 1);
    expect(log.errors[0]!.code).toBe('attempts_exhausted');
  });
});
