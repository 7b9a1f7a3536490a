// The one place the page touches sluice-client: everything else reads `PageStream`.
import { useMemo } from 'react';
import { useAIStream } from 'sluice-client/react';
import type { AgentMessage } from './runView';

export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'offline';

export interface PageStream {
  /** The run's AgentResponse data in order; consecutive answer deltas already merged. */
  messages: readonly AgentMessage[];
  requestId?: string;
  isLoading: boolean;
  error?: string;
  errorCode?: string;
  /** The client's connection status: idle, connecting, open, reconnecting, closed, failed. */
  status: string;
  latencyMs?: number;
  sendMessage: (query: string, agentType: string) => void;
  /** A read-only link to a run (POST /v1/streams/{id}/links, with the token). */
  createShareLink: (requestId: string) => Promise<{ token: string | null; expires_at: number | null }>;
  attach: (requestId: string, fromEventId?: number) => void;
  stop: () => void;
  disconnect: () => void;
}

interface ClientMessage {
  type: string;
  content: string;
  sequence?: number;
  event: string;
  metadata?: { raw?: unknown };
}

/** A client message back to the AgentResponse it came from (merged deltas carry the joined text). */
function toAgentMessage(m: ClientMessage): AgentMessage {
  const raw = m.metadata?.raw;
  const out: AgentMessage = raw && typeof raw === 'object' && !Array.isArray(raw) ? { ...(raw as Record<string, unknown>) } : {};
  delete out.coalesced;
  out.messageType = m.type;
  if (m.sequence !== undefined) out.sequence = m.sequence;
  if (m.type === 'agent_stream') out.result = m.content;
  return out;
}

/** `getToken` is called before every request and (re)connection. */
export function usePageStream(getToken: () => string | undefined): PageStream {
  const s = useAIStream({ getToken, defaultAgentType: 'plan_solve' });
  const messages = useMemo(() => (s.messages as ClientMessage[]).map(toAgentMessage), [s.messages]);
  return {
    messages,
    requestId: s.requestId ?? undefined,
    isLoading: s.isLoading,
    error: s.error ?? undefined,
    errorCode: s.errorCode ?? undefined,
    status: s.status,
    latencyMs: s.latencyMs ?? undefined,
    sendMessage: (q, a) => void s.sendMessage(q, a),
    attach: (id, from) => s.attach(id, from),
    createShareLink: (id) => s.createShareLink(id),
    stop: () => void s.stop(),
    disconnect: () => s.disconnect(),
  };
}
