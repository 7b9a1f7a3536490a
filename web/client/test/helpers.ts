/** Test doubles: a fetch whose responses the test drives, a fake WebSocket. */
import { vi } from 'vitest';

const enc = new TextEncoder();

/**
 * Lets pending promise reactions (and fake timers already due: the clock
 * does not move) run until `cond` holds; bounded.
 */
export async function until(cond: () => boolean, what = 'condition'): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (cond()) return;
    if (i % 50 === 49 && vi.isFakeTimers()) await vi.advanceTimersByTimeAsync(0);
    else await Promise.resolve();
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Lets all pending promise reactions run (no timers move). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 200; i++) await Promise.resolve();
}

export interface FakeResponse {
  status: number;
  ok: boolean;
  headers: Headers;
  body: ReadableStream<Uint8Array> | null;
  text(): Promise<string>;
  json(): Promise<unknown>;
}

export class StreamControl {
  private ctl!: ReadableStreamDefaultController<Uint8Array>;
  closed = false;
  readonly stream: ReadableStream<Uint8Array>;
  constructor() {
    this.stream = new ReadableStream<Uint8Array>({
      start: (c) => {
        this.ctl = c;
      },
      cancel: () => {
        this.closed = true;
      },
    });
  }
  send(chunk: string | Uint8Array): void {
    if (this.closed) return;
    this.ctl.enqueue(typeof chunk === 'string' ? enc.encode(chunk) : chunk);
  }
  end(): void {
    if (this.closed) return;
    this.closed = true;
    this.ctl.close();
  }
  fail(e: unknown = new TypeError('network error')): void {
    if (this.closed) return;
    this.closed = true;
    this.ctl.error(e);
  }
}

export interface Call {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: string | undefined;
  signal: AbortSignal;
  /** Answers with an SSE stream the test writes to. */
  open(headers?: Record<string, string>): StreamControl;
  respond(status: number, body?: string, headers?: Record<string, string>): void;
  reject(e?: unknown): void;
}

export function fakeFetch() {
  const calls: Call[] = [];
  const fetch = vi.fn((url: string | URL, init: RequestInit = {}) => {
    return new Promise<FakeResponse>((resolve, reject) => {
      const headers: Record<string, string> = {};
      new Headers(init.headers as HeadersInit).forEach((v, k) => (headers[k] = v));
      const signal = init.signal ?? new AbortController().signal;
      let control: StreamControl | undefined;
      const abortError = () => new DOMException('aborted', 'AbortError');
      signal.addEventListener('abort', () => {
        reject(abortError());
        control?.fail(abortError());
      });
      const call: Call = {
        url: String(url),
        method: init.method ?? 'GET',
        headers,
        body: typeof init.body === 'string' ? init.body : undefined,
        signal,
        open(h = { 'content-type': 'text/event-stream' }) {
          control = new StreamControl();
          resolve(response(200, control.stream, '', h));
          return control;
        },
        respond(status, body = '', h = {}) {
          resolve(response(status, null, body, h));
        },
        reject(e = new TypeError('fetch failed')) {
          reject(e);
        },
      };
      calls.push(call);
    });
  });
  return { fetch: fetch as unknown as typeof globalThis.fetch, calls, mock: fetch };
}

function response(
  status: number,
  stream: ReadableStream<Uint8Array> | null,
  text: string,
  headers: Record<string, string>,
): FakeResponse {
  return {
    status,
    ok: status >= 200 && status < 300,
    headers: new Headers(headers),
    body: stream,
    text: async () => text,
    json: async () => JSON.parse(text),
  };
}

/** A WebSocket the test drives: `server*` methods act as the server. */
export class FakeWebSocket {
  static instances: FakeWebSocket[] = [];
  readyState = 0;
  sent: unknown[] = [];
  closedWith: number | undefined;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: unknown) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  constructor(readonly url: string) {
    FakeWebSocket.instances.push(this);
  }
  send(data: string): void {
    if (this.readyState !== 1) throw new Error('not open');
    this.sent.push(JSON.parse(data));
  }
  close(code?: number): void {
    this.closedWith = code ?? 1005;
    this.readyState = 3;
  }
  serverOpen(): void {
    this.readyState = 1;
    this.onopen?.({});
  }
  serverSend(m: unknown): void {
    this.onmessage?.({ data: JSON.stringify(m) });
  }
  serverClose(code = 1006): void {
    this.readyState = 3;
    this.onclose?.({ code, reason: '' });
  }
  static reset(): void {
    FakeWebSocket.instances = [];
  }
  static last(): FakeWebSocket {
    const s = FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
    if (!s) throw new Error('no socket');
    return s;
  }
}

/** SSE text of one event. */
export function sse(id: number | undefined, data: unknown, event?: string): string {
  let s = '';
  if (event) s += `event: ${event}\n`;
  if (id !== undefined) s += `id: ${id}\n`;
  return s + `data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`;
}
