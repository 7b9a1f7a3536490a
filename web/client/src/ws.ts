/**
 * createWSConnection(config, url): the same interface and semantics as
 * createSSEConnection over /v1/ws (one stream per connection object).
 *
 * client → server: {"op":"start","request":{…}} (config.body),
 *   {"op":"subscribe","stream":ID,"lastEventId":N} (config.stream, and every
 *   reconnection once the stream is known), {"op":"cancel","stream":ID},
 *   {"op":"ping"} (after half the stall timeout in silence).
 * server → client: {"stream","id","event","data"} events, {"op":"started"},
 *   {"op":"end"} (→ closed), {"op":"error",…} (→ failed), {"op":"notice"}
 *   (delivered as an `event: notice`), {"op":"pong"}.
 */
import { ResumableConnection, type AttemptOutcome } from './connection.js';
import { SluiceError } from './errors.js';
import type { WSConfig, WebSocketInstance, WebSocketLike } from './types.js';
import { parseSequence } from './delivery.js';

export const DEFAULT_WS_URL = '/v1/ws';

/** Errors about a request that do not end the stream. */
const BENIGN_ERRORS = new Set(['already_subscribed', 'not_subscribed']);

/** A same-origin path ("/v1/ws") becomes ws(s)://host/v1/ws in a browser. */
export function resolveWSUrl(url: string): string {
  if (/^wss?:\/\//i.test(url)) return url;
  if (/^https?:\/\//i.test(url)) return url.replace(/^http/i, 'ws');
  const loc = (globalThis as { location?: { href: string } }).location;
  if (loc === undefined) return url;
  const u = new URL(url, loc.href);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.toString();
}

/** `url` with `access_token=<token>` added to its query (for WebSocket/EventSource URLs). */
export function withAccessToken(url: string, token: string | undefined): string {
  if (token === undefined || token === '') return url;
  const hash = url.indexOf('#');
  const base = hash >= 0 ? url.slice(0, hash) : url;
  const frag = hash >= 0 ? url.slice(hash) : '';
  const sep = base.includes('?') ? (base.endsWith('?') || base.endsWith('&') ? '' : '&') : '?';
  return `${base}${sep}access_token=${encodeURIComponent(token)}${frag}`;
}

interface CryptoLike {
  randomUUID?: () => string;
  getRandomValues?: <T extends ArrayBufferView>(a: T) => T;
}

/**
 * A run id with 122 random bits from the platform's CSPRNG (crypto.randomUUID,
 * else crypto.getRandomValues): `req_<uuid>`. Throws when there is no
 * Web Crypto (never falls back to Math.random: run ids are capabilities).
 */
export function generateRequestId(): string {
  const c = (globalThis as { crypto?: CryptoLike }).crypto;
  if (c?.randomUUID) return `req_${c.randomUUID()}`;
  if (c?.getRandomValues) {
    const b = c.getRandomValues(new Uint8Array(16));
    b[6] = (b[6]! & 0x0f) | 0x40;
    b[8] = (b[8]! & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `req_${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }
  throw new Error('generateRequestId: no Web Crypto (crypto.getRandomValues) in this environment');
}

export class WSConnection extends ResumableConnection {
  private readonly url: string;
  private readonly WS: WebSocketLike;
  private readonly request: Record<string, unknown> | undefined;
  private stream: string | undefined;
  private socket: WebSocketInstance | undefined;
  private endAttempt: ((o: AttemptOutcome) => void) | undefined;
  private pendingCancel: string | null | undefined;

  constructor(config: WSConfig, url: string) {
    super(config);
    this.url = resolveWSUrl(url);
    const W = config.WebSocket ?? (globalThis as { WebSocket?: WebSocketLike }).WebSocket;
    if (typeof W !== 'function') throw new TypeError('createWSConnection: no WebSocket implementation');
    this.WS = W;
    if (config.body !== undefined) {
      if (typeof config.body !== 'object' || config.body === null || Array.isArray(config.body))
        throw new TypeError('createWSConnection: body must be an AutoAgent request object');
      const b = config.body as Record<string, unknown>;
      // A re-sent start must attach to the same run: it needs a requestId.
      this.request = typeof b.requestId === 'string' ? b : { ...b, requestId: generateRequestId() };
    } else if (config.stream !== undefined) {
      this.stream = config.stream;
    } else {
      throw new TypeError('createWSConnection: needs body (start) or stream (subscribe)');
    }
    this.start();
  }

  /** The stream (requestId) followed; known after {"op":"started"} for a start. */
  get streamId(): string | undefined {
    return this.stream ?? (this.request?.requestId as string | undefined);
  }

  protected override streamName(): string | undefined {
    return this.streamId;
  }

  /** Cancels the run on the server ({"op":"cancel"}); its `cancelled` event ends the stream. */
  cancel(reason?: string): void {
    if (this.finished) return;
    if (this.stream !== undefined && this.socket?.readyState === 1) this.sendCancel(reason);
    else this.pendingCancel = reason ?? null;
  }

  private sendCancel(reason: string | null | undefined): void {
    const m: Record<string, unknown> = { op: 'cancel', stream: this.stream };
    if (reason !== undefined && reason !== null) m.reason = reason;
    this.send(m);
    this.pendingCancel = undefined;
  }

  private send(m: unknown): void {
    try {
      this.socket?.send(JSON.stringify(m));
    } catch {
      // the close event follows and reconnects
    }
  }

  protected stopAttempt(reason: 'abort' | 'stall' | 'finish'): void {
    const s = this.socket;
    const end = this.endAttempt;
    if (s === undefined) return;
    this.socket = undefined;
    this.endAttempt = undefined;
    detach(s);
    try {
      s.close(1000);
    } catch {
      // already closed
    }
    end?.(
      reason === 'stall'
        ? {
            kind: 'retry',
            error: new SluiceError('stalled', `nothing received for ${this.stallTimeoutMs} ms`),
          }
        : { kind: 'done' },
    );
  }

  protected override onStallHalf(): void {
    if (this.socket?.readyState === 1) this.send({ op: 'ping' });
  }

  protected async attempt(): Promise<AttemptOutcome> {
    let token: string | undefined;
    try {
      token = await this.token();
    } catch (e) {
      return { kind: 'retry', error: new SluiceError('token_error', `getToken failed: ${String((e as Error)?.message ?? e)}`, { cause: e }) };
    }
    if (this.finished) return { kind: 'done' };
    const url = withAccessToken(this.url, token);
    return new Promise((resolve) => {
      let s: WebSocketInstance;
      try {
        s = new this.WS(url);
      } catch (e) {
        this.fail(new SluiceError('invalid_url', String((e as Error)?.message ?? e), { cause: e }));
        resolve({ kind: 'done' });
        return;
      }
      this.socket = s;
      this.endAttempt = resolve;
      this.armStall();
      s.onopen = () => {
        if (this.socket !== s) return;
        this.setStatus('open');
        this.armStall();
        // The whole id when it names an epoch ("N-EPOCH"), else the number.
        const last =
          this.resumeId !== undefined && this.resumeId.includes('-')
            ? this.resumeId
            : parseSequence(this.resumeId);
        if (this.stream !== undefined) {
          const m: Record<string, unknown> = { op: 'subscribe', stream: this.stream };
          if (last !== undefined) m.lastEventId = last;
          this.send(m);
          if (this.pendingCancel !== undefined) this.sendCancel(this.pendingCancel);
        } else {
          const m: Record<string, unknown> = { op: 'start', request: this.request };
          if (last !== undefined) m.lastEventId = last;
          this.send(m);
        }
      };
      s.onmessage = (ev) => {
        if (this.socket !== s) return;
        this.armStall();
        this.onMessage(ev.data);
      };
      const lost = (why: string) => {
        if (this.socket !== s) return;
        this.socket = undefined;
        this.endAttempt = undefined;
        detach(s);
        resolve({ kind: 'retry', error: new SluiceError('network_error', why) });
      };
      s.onerror = () => lost('websocket error');
      s.onclose = (ev: { code?: number; reason?: string }) =>
        lost(`websocket closed (${ev?.code ?? ''}${ev?.reason ? ` ${ev.reason}` : ''})`);
    });
  }

  private onMessage(text: unknown): void {
    if (typeof text !== 'string') return;
    let m: Record<string, unknown>;
    try {
      m = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return;
    }
    if (typeof m !== 'object' || m === null) return;
    const op = m.op;
    if (op === undefined) {
      if (this.stream === undefined || m.stream !== this.stream) return;
      // "id":N with "epoch":"E" when the event has one: its id is "N-E".
      const id =
        m.id === undefined || m.id === null
          ? undefined
          : typeof m.epoch === 'string' && /^[0-9a-z]{1,16}$/.test(m.epoch)
            ? `${String(m.id)}-${m.epoch}`
            : String(m.id);
      if (id !== undefined) {
        this.lastIdSeen = id;
        this.onDispatchedId(id);
      }
      this.deliver({
        event: typeof m.event === 'string' ? m.event : 'message',
        id,
        lastEventId: this.lastIdSeen,
        firstSeq: undefined,
        lastSeq: undefined,
        data: m.data,
      });
      return;
    }
    const about = typeof m.stream === 'string' ? m.stream : undefined;
    switch (op) {
      case 'started':
        if (this.stream === undefined && about !== undefined) {
          this.stream = about;
          if (this.pendingCancel !== undefined) this.sendCancel(this.pendingCancel);
        }
        return;
      case 'end':
        if (about === this.stream) this.close();
        return;
      case 'notice':
        if (about !== undefined && about !== this.stream) return;
        this.deliver({
          event: 'notice',
          id: undefined,
          lastEventId: this.lastIdSeen,
          firstSeq: undefined,
          lastSeq: undefined,
          data: { code: m.code, first_available: m.first_available },
        });
        return;
      case 'error': {
        if (about !== undefined && this.stream !== undefined && about !== this.stream) return;
        const code = typeof m.code === 'string' ? m.code : 'error';
        if (BENIGN_ERRORS.has(code)) return;
        this.fail(
          new SluiceError(code, typeof m.message === 'string' ? m.message : code, {
            firstAvailable: parseSequence(m.first_available as number),
            stream: about ?? this.streamId,
          }),
        );
        return;
      }
      default:
        return; // pong, cancelled (acknowledgement), unsubscribed, published
    }
  }
}

function detach(s: WebSocketInstance): void {
  s.onopen = null;
  s.onmessage = null;
  s.onclose = null;
  s.onerror = null;
}

/** Opens a resumable stream over /v1/ws; the controller also has `cancel()`. */
export function createWSConnection(config: WSConfig, url: string = DEFAULT_WS_URL): WSConnection {
  return new WSConnection(config, url);
}
