import type { BackoffOptions } from './backoff.js';

/** Connection statuses passed to `onStatusChange`. */
export type ConnectionStatus = 'connecting' | 'open' | 'reconnecting' | 'closed' | 'failed';

/** One delivered event, the second argument of `handleMessage`. */
export interface StreamEvent {
  /** SSE event type (`message` when the event had no `event:` line), e.g. `cancelled`, `notice`. */
  event: string;
  /** The event's own id field, if its block had one (the sequence). */
  id: string | undefined;
  /**
   * WHATWG `lastEventId`: the last id seen on the stream, which persists
   * across events until an `id:` field changes it (also one in a block that
   * dispatches nothing). What an EventSource's MessageEvent carries. Empty
   * when no id was seen yet (or an `id:` line reset it).
   */
  lastEventId: string;
  /** Sequences the event covers: a..b for a merged delta event, a = b otherwise. */
  firstSeq: number | undefined;
  lastSeq: number | undefined;
  /** The data: parsed JSON, or the raw text when it is not JSON. */
  data: unknown;
}

/** What both transports accept. */
export interface BaseConfig {
  /** Request body, sent as JSON with POST on every attempt. `undefined` → GET (attach). */
  body?: unknown;
  /** Every delivered event's data, once, in order. */
  handleMessage: (data: any, event: StreamEvent) => void;
  /** The connection failed for good (after which status is `failed`). Gets a `SluiceError`. */
  handleError: (error: Error) => void;
  /** The stream ended normally (final event, `cancelled`, or 204). */
  handleClose: () => void;
  /** Connection status changes; with `messageStatus`, also the seed's message-level statuses. */
  onStatusChange?: (status: string) => void;

  /**
   * A bearer token (JWT) for servers run with `--auth jwt`: sent as
   * `Authorization: Bearer <token>` on fetch requests and as
   * `?access_token=<token>` on WebSocket URLs (browsers cannot set headers there).
   */
  token?: string;
  /**
   * Called before every (re)connection attempt for the token to send (takes
   * precedence over `token`): a token that expires can be renewed. Returning
   * undefined/null/'' sends none; a throw counts as a failed attempt.
   */
  getToken?: () => string | undefined | null | Promise<string | undefined | null>;

  /** Start after this event id (sent as Last-Event-ID on the first attempt). */
  lastEventId?: string | number;
  /** Reconnection backoff (base 1 s, cap 30 s, 10 attempts, full jitter; seedable). */
  backoff?: BackoffOptions;
  /**
   * Nothing received (not even a heartbeat) for this long → reconnect.
   * Default 30000 (3 × the server's 10 s heartbeat). 0 disables.
   */
  stallTimeoutMs?: number;
  /** Called per event carrying a numeric `data.ts` (ms since the epoch): Date.now() - ts. */
  onLatency?: (ms: number) => void;
  /** Seed behaviour: a message with messageType 'status' also calls onStatusChange(data.status). */
  messageStatus?: boolean;
  /** End (closed) right after an event with `isFinal: true` data or an `event: cancelled` (default true). */
  endOnFinal?: boolean;
}

/**
 * The seed's `SSEConfig` (body, handleMessage, handleError, handleClose,
 * onStatusChange) plus optional extras. Every extra has a default.
 */
export interface SSEConfig extends BaseConfig {
  /** fetch implementation (tests, polyfills). Default: globalThis.fetch. */
  fetch?: typeof fetch;
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** fetch credentials (default 'same-origin'). */
  credentials?: RequestCredentials;
}

export interface WSConfig extends BaseConfig {
  /** `body` (an AutoAgent request) → {"op":"start"}; else `stream` → {"op":"subscribe"}. */
  stream?: string;
  /** WebSocket implementation (tests). Default: globalThis.WebSocket. */
  WebSocket?: WebSocketLike;
}

/** The part of the browser WebSocket this client uses. */
export interface WebSocketInstance {
  readonly readyState: number;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: any }) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketLike = new (url: string) => WebSocketInstance;
