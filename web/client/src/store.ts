/**
 * AIStreamController: the state behind useAIStream, without React. It owns
 * one connection at a time, routes every delivered event through the frame
 * scheduler (one state update per frame at most, deltas merged losslessly)
 * and notifies subscribers (useSyncExternalStore) after each update.
 */
import type { BackoffOptions } from './backoff.js';
import { SluiceError } from './errors.js';
import {
  createDeliveryScheduler,
  mergeAgentDeltas,
  type DeliveryScheduler,
  type FrameRequester,
} from './scheduler.js';
import { createSSEConnection } from './sse.js';
import type { StreamEvent, WebSocketLike } from './types.js';
import { createWSConnection, generateRequestId, resolveWSUrl, type WSConnection } from './ws.js';

/** One entry of `messages` (the seed's shape, plus sequence and event). */
export interface StreamMessage {
  id: string;
  type: string;
  content: string;
  timestamp: number;
  isFinal: boolean;
  /** The event's sequence (the last one for merged deltas). */
  sequence?: number;
  /** SSE event type: 'message', 'cancelled', 'notice', … */
  event: string;
  metadata?: {
    agentType?: unknown;
    planList?: unknown;
    plan?: unknown;
    searchResult?: unknown;
    toolResult?: unknown;
    resultMap?: unknown;
    status?: unknown;
    /** The last AgentResponse (or data) this message was built from. */
    raw?: unknown;
  };
}

export interface AIStreamState {
  messages: StreamMessage[];
  isConnected: boolean;
  isLoading: boolean;
  error: string | null;
  /** SluiceError code of `error` (e.g. resume_window_exceeded). */
  errorCode: string | null;
  /** Connection status: idle | connecting | open | reconnecting | closed | failed. */
  status: string;
  /** Latest event latency (Date.now() - data.ts), updated at most once per frame. */
  latencyMs: number | null;
  /** The run followed (requestId), null before the first sendMessage/attach. */
  requestId: string | null;
}

export interface AIStreamOptions {
  /** Base URL of the server, e.g. "http://127.0.0.1:8080" (default "": same origin). */
  baseUrl?: string;
  /** 'sse' (default) or 'ws' (/v1/ws). */
  transport?: 'sse' | 'ws';
  /** Default agentType of sendMessage: 'plan_solve' (needs no model; 'react' does). */
  defaultAgentType?: string;
  /** Bearer token sent with every request (see BaseConfig.token). */
  token?: string;
  /** Called before every request and (re)connection for the token to send; wins over `token`. */
  getToken?: () => string | undefined | null | Promise<string | undefined | null>;
  fetch?: typeof fetch;
  WebSocket?: WebSocketLike;
  backoff?: BackoffOptions;
  stallTimeoutMs?: number;
  requestFrame?: FrameRequester;
  /** requestId generator (default req_<uuid> from crypto.randomUUID / getRandomValues). */
  makeRequestId?: () => string;
  /** Extra AutoAgent request fields (maxSteps, …). */
  requestExtras?: Record<string, unknown>;
}

/** The answer of POST /v1/streams/{id}/links: a read-only link to one stream. */
export interface ShareLink {
  stream: string;
  /** A short-lived token that can only read this stream; null when the server runs without auth. */
  token: string | null;
  /** Unix seconds; null without auth. */
  expires_at: number | null;
  /** The stream's events URL with the token, e.g. /v1/streams/ID/events?access_token=… */
  url: string;
}

export const initialState: AIStreamState = {
  messages: [],
  isConnected: false,
  isLoading: false,
  error: null,
  errorCode: null,
  status: 'idle',
  latencyMs: null,
  requestId: null,
};

interface Item {
  data: unknown;
  event: StreamEvent;
}

function str(x: unknown): string | undefined {
  return typeof x === 'string' ? x : undefined;
}

/** The seed's mapping of an AgentResponse (or other data) to a message. */
export function toStreamMessage(data: unknown, ev: StreamEvent, now: number): StreamMessage {
  const d = (typeof data === 'object' && data !== null ? data : {}) as Record<string, unknown>;
  const cancelled = ev.event === 'cancelled';
  const type = str(d.messageType) ?? (ev.event !== 'message' ? ev.event : 'text');
  const content =
    typeof data === 'string'
      ? data
      : (str(d.result) ?? str(d.message) ?? str(d.answer) ?? (cancelled ? (str(d.reason) ?? '') : ''));
  return {
    id: str(d.messageId) ?? (ev.lastSeq !== undefined ? `msg_${ev.lastSeq}` : `msg_${now}`),
    type,
    content,
    timestamp: now,
    isFinal: d.isFinal === true || cancelled,
    sequence: ev.lastSeq,
    event: ev.event,
    metadata: {
      agentType: d.agentType,
      planList: d.planList,
      plan: d.plan,
      searchResult: d.searchResult,
      toolResult: d.toolResult,
      resultMap: d.resultMap,
      status: d.status,
      raw: data,
    },
  };
}

/** Appends a batch to the message list; consecutive deltas of one message extend it. */
export function applyBatch(messages: StreamMessage[], batch: StreamMessage[]): StreamMessage[] {
  const out = messages.slice();
  for (const m of batch) {
    const last = out[out.length - 1];
    if (last && m.type === 'agent_stream' && last.type === 'agent_stream' && last.id === m.id) {
      out[out.length - 1] = { ...m, content: last.content + m.content, timestamp: last.timestamp };
    } else {
      out.push(m);
    }
  }
  return out;
}

export class AIStreamController {
  private state: AIStreamState = initialState;
  private readonly listeners = new Set<() => void>();
  private readonly options: AIStreamOptions;
  private scheduler: DeliveryScheduler<Item>;
  private connection: AbortController | undefined;
  private generation = 0;
  private latency: number | null = null;

  constructor(options: AIStreamOptions = {}) {
    this.options = options;
    this.scheduler = this.newScheduler();
  }

  private newScheduler(): DeliveryScheduler<Item> {
    const gen = this.generation;
    return createDeliveryScheduler<Item>({
      requestFrame: this.options.requestFrame,
      merge: (p, n) => {
        if (p.event.event !== n.event.event) return undefined;
        const data = mergeAgentDeltas(p.data, n.data);
        return data === undefined ? undefined : { data, event: { ...n.event, firstSeq: p.event.firstSeq } };
      },
      deliver: (batch) => {
        if (gen !== this.generation) return;
        const now = Date.now();
        const msgs = batch.map((i) => toStreamMessage(i.data, i.event, now));
        const finalSeen = msgs.some((m) => m.isFinal);
        this.update({
          messages: applyBatch(this.state.messages, msgs),
          latencyMs: this.latency,
          ...(finalSeen ? { isLoading: false } : {}),
        });
      },
    });
  }

  private base(): string {
    return (this.options.baseUrl ?? '').replace(/\/+$/, '');
  }

  // -- useSyncExternalStore ---------------------------------------------------
  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  getSnapshot = (): AIStreamState => this.state;

  private update(patch: Partial<AIStreamState>): void {
    this.state = { ...this.state, ...patch };
    for (const l of [...this.listeners]) l();
  }

  // -- actions ------------------------------------------------------------------
  /** Starts a run (POST /AutoAgent, or {"op":"start"} over WebSocket). */
  sendMessage = async (query: string, agentType?: string): Promise<void> => {
    const requestId = (this.options.makeRequestId ?? generateRequestId)();
    const body = {
      ...this.options.requestExtras,
      query,
      agentType: agentType ?? this.options.defaultAgentType ?? 'plan_solve',
      requestId,
      isStream: true,
    };
    this.open(requestId, { body });
  };

  /** Watches an existing run from the start, or after `fromEventId`. */
  attach = (requestId: string, fromEventId?: string | number): void => {
    this.open(requestId, { lastEventId: fromEventId });
  };

  /**
   * Cancels the run on the server (POST /v1/streams/{requestId}/cancel). The
   * connection stays open: the run's `cancelled` event arrives and ends it.
   */
  stop = async (): Promise<void> => {
    const id = this.state.requestId;
    if (id === null) return;
    const conn = this.connection;
    if (this.options.transport === 'ws' && conn && !conn.signal.aborted) {
      (conn as WSConnection).cancel();
      return;
    }
    try {
      const res = await this.post(`/v1/streams/${encodeURIComponent(id)}/cancel`);
      if (!res.ok && res.status !== 409) {
        let code = 'http_error';
        let message = `cancel failed: HTTP ${res.status}`;
        try {
          const b = (await res.json()) as { error?: { code?: string; message?: string } };
          code = b.error?.code ?? code;
          message = b.error?.message ?? message;
        } catch {
          // keep the generic error
        }
        this.update({ error: message, errorCode: code });
      }
    } catch (e) {
      this.update({ error: `cancel failed: ${String((e as Error)?.message ?? e)}`, errorCode: 'network_error' });
    }
  };

  /**
   * Asks the server for a read-only link to a run (POST /v1/streams/{id}/links;
   * the owner only). Throws a SluiceError when the server refuses.
   */
  createShareLink = async (requestId?: string): Promise<ShareLink> => {
    const id = requestId ?? this.state.requestId;
    if (id === null || id === undefined) throw new SluiceError('no_run', 'no run to link to');
    let res: Response;
    try {
      res = await this.post(`/v1/streams/${encodeURIComponent(id)}/links`);
    } catch (e) {
      throw new SluiceError('network_error', String((e as Error)?.message ?? e), { cause: e });
    }
    let body: unknown;
    try {
      body = await res.json();
    } catch {
      body = undefined;
    }
    const b = body as Partial<ShareLink> & { error?: { code?: unknown; message?: unknown } };
    if (!res.ok || typeof b !== 'object' || b === null || typeof b.url !== 'string') {
      const code = typeof b?.error?.code === 'string' ? b.error.code : 'http_error';
      const message = typeof b?.error?.message === 'string' ? b.error.message : `links failed: HTTP ${res.status}`;
      throw new SluiceError(code, message, { status: res.status });
    }
    return {
      stream: typeof b.stream === 'string' ? b.stream : id,
      token: typeof b.token === 'string' ? b.token : null,
      expires_at: typeof b.expires_at === 'number' ? b.expires_at : null,
      url: b.url,
    };
  };

  /** The token to send now (getToken, else token), or undefined. */
  private async currentToken(): Promise<string | undefined> {
    const t = this.options.getToken ? await this.options.getToken() : this.options.token;
    return typeof t === 'string' && t !== '' ? t : undefined;
  }

  /** A JSON POST to the server with the token (the server refuses other content types). */
  private async post(path: string, body: unknown = {}): Promise<Response> {
    const f = this.options.fetch ?? globalThis.fetch;
    const headers: Record<string, string> = { 'Content-Type': 'application/json', Accept: 'application/json' };
    const token = await this.currentToken();
    if (token !== undefined) headers.Authorization = `Bearer ${token}`;
    return f(`${this.base()}${path}`, {
      method: 'POST',
      headers,
      body: JSON.stringify(body),
      credentials: 'same-origin',
    });
  }

  /** Closes the connection (the run goes on on the server). */
  disconnect = (): void => {
    this.generation++;
    this.scheduler.dispose();
    this.scheduler = this.newScheduler();
    const c = this.connection;
    this.connection = undefined;
    c?.abort();
    if (c) this.update({ isConnected: false, isLoading: false, status: 'closed' });
  };

  private open(requestId: string, how: { body?: unknown; lastEventId?: string | number }): void {
    this.disconnect();
    const gen = this.generation;
    const live = () => gen === this.generation;
    this.latency = null;
    this.update({
      messages: [],
      isLoading: true,
      isConnected: false,
      error: null,
      errorCode: null,
      status: 'connecting',
      latencyMs: null,
      requestId,
    });
    const config = {
      body: how.body,
      lastEventId: how.lastEventId,
      backoff: this.options.backoff,
      stallTimeoutMs: this.options.stallTimeoutMs,
      token: this.options.token,
      getToken: this.options.getToken,
      handleMessage: (data: unknown, event: StreamEvent) => {
        if (live()) this.scheduler.push({ data, event });
      },
      handleError: (error: Error) => {
        if (!live()) return;
        this.scheduler.flush();
        this.update({
          error: error.message,
          errorCode: error instanceof SluiceError ? error.code : 'error',
          isLoading: false,
          isConnected: false,
          status: 'failed',
        });
      },
      handleClose: () => {
        if (!live()) return;
        this.scheduler.flush();
        this.update({ isLoading: false, isConnected: false, status: 'closed' });
      },
      onStatusChange: (status: string) => {
        if (!live() || status === 'closed' || status === 'failed') return; // handled above
        this.update({ status, isConnected: status === 'open' });
      },
      onLatency: (ms: number) => {
        if (live()) this.latency = ms;
      },
    };
    if (this.options.transport === 'ws') {
      this.connection = createWSConnection(
        {
          ...config,
          stream: how.body === undefined ? requestId : undefined,
          WebSocket: this.options.WebSocket,
        },
        resolveWSUrl(`${this.base()}/v1/ws`),
      );
    } else {
      const url =
        how.body !== undefined
          ? `${this.base()}/AutoAgent`
          : `${this.base()}/v1/streams/${encodeURIComponent(requestId)}/events`;
      this.connection = createSSEConnection({ ...config, fetch: this.options.fetch }, url);
    }
  }
}
