/**
 * createSSEConnection(config, url): the seed's signature, built on fetch and
 * eventsource-parser, with resumption, reconnection, deduplication and stall
 * detection (see README.md).
 */
import { createParser } from 'eventsource-parser';
import { ResumableConnection, parseData, type AttemptOutcome } from './connection.js';
import { parseSequence } from './delivery.js';
import { SluiceError } from './errors.js';
import type { SSEConfig, StreamEvent } from './types.js';

export const DEFAULT_SSE_URL = '/AutoAgent';

/** Retry-After (seconds or an HTTP date) in ms, if present and valid. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

/** The server's JSON error {"error":{"code","message"}}, or a generic one. */
async function errorOf(res: Response): Promise<SluiceError> {
  let code = 'http_error';
  let message = `HTTP ${res.status}`;
  let firstAvailable: number | undefined;
  try {
    const body = JSON.parse(await res.text()) as {
      error?: { code?: unknown; message?: unknown; first_available?: unknown };
    };
    if (typeof body?.error?.code === 'string') code = body.error.code;
    if (typeof body?.error?.message === 'string') message = body.error.message;
    // history_truncated (409): the history after Last-Event-ID was lost.
    firstAvailable = parseSequence(body?.error?.first_available as number);
  } catch {
    // not JSON: keep the generic error
  }
  return new SluiceError(code, message, { status: res.status, firstAvailable });
}

class SSEConnection extends ResumableConnection {
  private readonly url: string;
  private readonly fetchImpl: typeof fetch;
  private bodyObject: unknown;
  private attemptAbort: AbortController | undefined;
  private stalled = false;
  private requestId: string | undefined;

  private readonly sseConfig: SSEConfig;

  constructor(config: SSEConfig, url: string) {
    super(config);
    this.sseConfig = config;
    this.url = url;
    const f = config.fetch ?? globalThis.fetch;
    if (typeof f !== 'function') throw new TypeError('createSSEConnection: no fetch implementation');
    // Called through a wrapper: browsers throw "Illegal invocation" when the
    // global fetch is called as a method of another object.
    this.fetchImpl = (input, init) => f(input, init);
    this.bodyObject = config.body;
    const b = config.body as { requestId?: unknown } | undefined;
    if (b && typeof b === 'object' && typeof b.requestId === 'string') this.requestId = b.requestId;
    this.start();
  }

  protected override streamName(): string | undefined {
    return this.requestId;
  }

  /** A run's requestId learnt from its events makes a re-sent POST attach instead of start anew. */
  protected override learn(ev: StreamEvent): void {
    if (this.requestId !== undefined) return;
    const d = ev.data as { requestId?: unknown } | null;
    if (d && typeof d === 'object' && typeof d.requestId === 'string') {
      this.requestId = d.requestId;
      const b = this.bodyObject;
      if (b && typeof b === 'object' && !Array.isArray(b) && !('requestId' in b))
        this.bodyObject = { ...(b as object), requestId: d.requestId };
    }
  }

  protected stopAttempt(reason: 'abort' | 'stall' | 'finish'): void {
    if (reason === 'stall') this.stalled = true; // before the abort reaches read()
    this.attemptAbort?.abort();
  }

  protected async attempt(): Promise<AttemptOutcome> {
    const ac = new AbortController();
    this.attemptAbort = ac;
    this.stalled = false;
    const headers: Record<string, string> = {
      Accept: 'text/event-stream',
      ...this.sseConfig.headers,
    };
    const post = this.bodyObject !== undefined;
    if (post) headers['Content-Type'] = 'application/json';
    if (this.resumeId !== undefined) headers['Last-Event-ID'] = this.resumeId;
    this.armStall();
    let res: Response;
    try {
      const token = await this.token();
      if (this.finished) return { kind: 'done' };
      if (token !== undefined) headers.Authorization = `Bearer ${token}`;
      res = await this.fetchImpl(this.url, {
        method: post ? 'POST' : 'GET',
        headers,
        body: post ? JSON.stringify(this.bodyObject) : undefined,
        signal: ac.signal,
        credentials: this.sseConfig.credentials ?? 'same-origin',
        cache: 'no-store',
      });
    } catch (e) {
      return this.cut(e);
    }
    if (this.finished) return { kind: 'done' };
    if (res.status === 204) {
      // The client already has the final event.
      this.close();
      return { kind: 'done' };
    }
    if (!res.ok) {
      const err = await errorOf(res).catch(() => new SluiceError('http_error', `HTTP ${res.status}`));
      if (this.finished) return { kind: 'done' };
      const retryAfter = parseRetryAfter(res.headers.get('Retry-After'));
      if ((res.status === 429 || res.status === 503) && retryAfter !== undefined)
        return { kind: 'retry', error: err, delayMs: retryAfter };
      if (res.status === 502 || res.status === 504) return { kind: 'retry', error: err };
      this.fail(err);
      return { kind: 'done' };
    }
    const type = res.headers.get('Content-Type') ?? '';
    if (!type.toLowerCase().includes('text/event-stream') || res.body === null) {
      void res.body?.cancel().catch(() => {});
      this.fail(
        new SluiceError('unexpected_content_type', `expected text/event-stream, got "${type}"`, {
          status: res.status,
        }),
      );
      return { kind: 'done' };
    }
    this.setStatus('open');
    this.armStall();
    return this.read(res.body, ac);
  }

  private async read(body: ReadableStream<Uint8Array>, ac: AbortController): Promise<AttemptOutcome> {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    const parser = createParser({
      // WHATWG: the last event ID is set when an event is dispatched (its
      // blank line arrived), never by an id line of an unfinished event.
      onId: (id) => {
        if (this.finished) return;
        this.lastIdSeen = id;
        this.onDispatchedId(id);
      },
      onRetry: (ms) => this.onRetryHint(ms),
      onEvent: (m) => {
        if (this.finished || ac.signal.aborted) return;
        if (m.id === undefined && m.data === 'heartbeat' && (m.event ?? 'message') === 'message')
          return; // a seed-style heartbeat
        this.deliver({
          event: m.event ?? 'message',
          id: m.id,
          lastEventId: this.lastIdSeen,
          firstSeq: undefined,
          lastSeq: undefined,
          data: parseData(m.data),
        });
      },
    });
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (this.finished || ac.signal.aborted) break;
        if (done) {
          parser.feed(decoder.decode()); // flush; an unterminated event is discarded
          break;
        }
        this.armStall();
        parser.feed(decoder.decode(value, { stream: true }));
        if (this.finished) break;
      }
    } catch (e) {
      if (this.finished) return { kind: 'done' };
      return this.cut(e);
    } finally {
      void reader.cancel().catch(() => {});
    }
    if (this.finished) return { kind: 'done' };
    if (this.stalled) return this.cut(new Error('stalled'));
    // The response ended without a final event: resume (a 204 answers a
    // client that already has the final event).
    return { kind: 'retry' };
  }

  private cut(e: unknown): AttemptOutcome {
    if (this.finished) return { kind: 'done' };
    const stalled = this.stalled;
    return {
      kind: 'retry',
      error: new SluiceError(
        stalled ? 'stalled' : 'network_error',
        stalled ? `nothing received for ${this.stallTimeoutMs} ms` : String((e as Error)?.message ?? e),
        { cause: e },
      ),
    };
  }
}

/**
 * Opens a resumable SSE connection. Returns an AbortController (abort() ends
 * it: status `closed`, no callback). POST with `config.body`, GET without.
 */
export function createSSEConnection(config: SSEConfig, url: string = DEFAULT_SSE_URL): AbortController {
  return new SSEConnection(config, url);
}
