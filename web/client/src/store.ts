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
  /** Default agentType of sendMessage (the seed's: 'react'). */
  defaultAgentType?: string;
  fetch?: typeof fetch;
  WebSocket?: WebSocketLike;
  backoff?: BackoffOptions;
  stallTimeoutMs?: number;
  requestFrame?: FrameRequester;
  /** requestId generator (default req_<ms>_<random>). */
  makeRequestId?: () => string;
  /** Extra AutoAgent request fields (maxSteps, …). */
  requestExtras?: Record<string, unknown>;
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
      agentType: agentType ?? this.options.defaultAgentType ?? 'react',
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
    const f = this.options.fetch ?? globalThis.fetch;
    try {
      const res = await f(`${this.base()}/v1/streams/${encodeURIComponent(id)}/cancel`, {
        method: 'POST',
        credentials: 'same-origin',
      });
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
