import { useCallback, useEffect, useMemo, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import { Markdown } from './markdown';
import { foldRun, type Doc, type Plan, type RunView, type ToolView } from './runView';
import { runHref, runIdFromHash, shareTokenFromHash, useHashRunId, useRuns, useStoredToken, type RunRecord } from './runs';
import { usePageStream, type ConnectionState } from './stream';

const AGENTS = [
  { value: 'plan_solve', label: 'Plan & solve' },
  { value: 'deepsearch', label: 'Deep search' },
  { value: 'react', label: 'ReAct (needs a model)' },
];

function useOnline(): boolean {
  const [online, setOnline] = useState(() => navigator.onLine);
  useEffect(() => {
    const on = () => setOnline(navigator.onLine);
    window.addEventListener('online', on);
    window.addEventListener('offline', on);
    return () => {
      window.removeEventListener('online', on);
      window.removeEventListener('offline', on);
    };
  }, []);
  return online;
}

function connectionState(status: string, online: boolean, everConnected: boolean): ConnectionState {
  if (!online || status === 'failed') return 'offline';
  if (status === 'open') return 'connected';
  if (status === 'reconnecting') return 'reconnecting';
  if (status === 'connecting') return everConnected ? 'reconnecting' : 'connecting';
  return 'idle';
}

const STATE_LABEL: Record<ConnectionState, string> = {
  idle: 'Idle',
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
};

const OUTCOME_LABEL: Record<string, string> = { running: 'live', result: 'done', error: 'failed', cancelled: 'stopped' };

export function App() {
  const [token, setToken] = useStoredToken();
  // The token requests carry: the user's, or a share link's for a run opened through one.
  const activeToken = useRef<string | undefined>(token || undefined);
  const [shared, setShared] = useState<{ id: string; token: string } | undefined>();
  const getToken = useCallback(() => activeToken.current, []);
  const stream = usePageStream(getToken);
  const hashId = useHashRunId();
  const { runs, upsert, clear } = useRuns();
  useEffect(() => {
    if (!shared) activeToken.current = token || undefined;
  }, [token, shared]);
  const online = useOnline();
  const view = useMemo(() => foldRun(stream.messages), [stream.messages]);

  // Attach when the location names a run this page is not showing (a link, a
  // reload, the runs list). Only hash changes trigger it, so the page's own
  // navigation to a run it just started does not attach a second time.
  const requestIdRef = useRef(stream.requestId);
  requestIdRef.current = stream.requestId;
  const { attach } = stream;
  useEffect(() => {
    if (hashId && hashId !== requestIdRef.current) {
      // A share link carries its own read-only token; a run in the list may remember one.
      const linkToken = shareTokenFromHash(window.location.hash) ?? runs.find((r) => r.id === hashId)?.shareToken;
      if (linkToken) {
        setShared({ id: hashId, token: linkToken });
        activeToken.current = linkToken;
        upsert({ id: hashId, shareToken: linkToken });
      } else {
        setShared(undefined);
        activeToken.current = token || undefined;
        upsert({ id: hashId });
      }
      attach(hashId);
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [hashId]);

  // A run this page started: record it and give it its address.
  const pendingAsk = useRef<{ query: string; agentType: string } | null>(null);
  useEffect(() => {
    const id = stream.requestId;
    if (!id) return;
    if (pendingAsk.current) {
      upsert({ id, ...pendingAsk.current, startedAt: Date.now() });
      pendingAsk.current = null;
    }
    if (runIdFromHash(window.location.hash) !== id) window.location.hash = runHref(id);
  }, [stream.requestId, upsert]);

  useEffect(() => {
    if (view.requestId && view.outcome.kind !== 'running') upsert({ id: view.requestId, outcome: view.outcome.kind });
  }, [view.requestId, view.outcome.kind, upsert]);
  useEffect(() => {
    if (view.requestId && view.plan?.title) {
      const rec = runs.find((r) => r.id === view.requestId);
      if (rec && !rec.query) upsert({ id: rec.id, query: view.plan.title });
    }
  }, [view.requestId, view.plan?.title, runs, upsert]);

  const everConnected = useRef(false);
  const conn = connectionState(stream.status, online, everConnected.current);
  if (conn === 'connected') everConnected.current = true;
  if (conn === 'idle') everConnected.current = false;

  // "+ New question" (#/) shows an empty conversation; the run it leaves goes on
  // (connected: a run nobody reads is cancelled by the server after a grace period).
  const [home, setHome] = useState(false);
  useEffect(() => {
    const on = () => setHome(runIdFromHash(window.location.hash) === undefined);
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);

  const ask = useCallback(
    (query: string, agentType: string) => {
      setHome(false);
      setShared(undefined);
      activeToken.current = token || undefined;
      pendingAsk.current = { query, agentType };
      stream.sendMessage(query, agentType);
    },
    [stream, token],
  );

  // The connection gave up (attempts exhausted, refused): the run is no longer shown as live.
  const connectionFailed = stream.status === 'failed';
  const running = view.outcome.kind === 'running' && !connectionFailed && (stream.isLoading || view.lastSequence > 0);
  const currentId = home ? undefined : (stream.requestId ?? view.requestId);
  const record = runs.find((r) => r.id === currentId);
  const readOnly = !!shared && shared.id === currentId;

  // With a token, the run link is a share link: it opens the run read-only in a
  // browser that has no token (POST /v1/streams/{id}/links, owner only).
  const [shareLink, setShareLink] = useState<{ id: string; href?: string; state: 'pending' | 'ready' | 'error' }>();
  const { createShareLink } = stream;
  // Asked once the run's first event arrived: the stream exists on the server by then.
  const started = view.requestId === currentId && view.lastSequence > 0;
  useEffect(() => {
    if (!currentId || readOnly || !token || !started) {
      setShareLink(undefined);
      return;
    }
    let live = true;
    setShareLink({ id: currentId, state: 'pending' });
    createShareLink(currentId).then(
      (link) => live && setShareLink({ id: currentId, state: 'ready', href: link.token ? runHref(currentId, link.token) : undefined }),
      () => live && setShareLink({ id: currentId, state: 'error' }),
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [currentId, readOnly, token, started]);
  const base = `${window.location.origin}${window.location.pathname}`;
  const runUrl = currentId
    ? readOnly
      ? `${base}${runHref(currentId, shared!.token)}`
      : `${base}${(shareLink?.id === currentId && shareLink.href) || runHref(currentId)}`
    : '';
  const linkState = readOnly ? 'shared' : shareLink && shareLink.id === currentId ? shareLink.state : 'plain';

  return (
    <div className="shell">
      <aside className="sidebar" aria-label="Runs">
        <div className="brand">
          <span className="logo" aria-hidden="true">≋</span> Sluice
        </div>
        <a className="new-run" href="#/" data-testid="new-run">
          + New question
        </a>
        <RunsList runs={runs} current={currentId} onClear={clear} />
        <TokenField token={token} onChange={setToken} />
      </aside>
      <main className="main">
        <header className="topbar">
          <h1 className="title">{(currentId && (record?.query || view.plan?.title)) || 'Ask about your documents'}</h1>
          <ConnectionIndicator state={conn} latencyMs={stream.latencyMs} />
        </header>
        <section className="conversation" aria-live="off">
          {!currentId && (home || !stream.error) && <Welcome onPick={(q) => ask(q, 'plan_solve')} />}
          {currentId && (
            <RunPanel
              id={currentId}
              query={record?.query}
              agentType={record?.agentType}
              view={view}
              running={running}
              connectionFailed={connectionFailed}
              readOnly={readOnly}
              runUrl={runUrl}
              linkState={linkState}
              onStop={stream.stop}
            />
          )}
          {stream.error && !home && (
            <div className="error" role="alert" data-testid="error">
              {stream.error}
            </div>
          )}
        </section>
        <Composer disabled={running && !home} onAsk={ask} />
      </main>
    </div>
  );
}

function ConnectionIndicator({ state, latencyMs }: { state: ConnectionState; latencyMs?: number }) {
  return (
    <div className={`conn conn-${state}`} data-testid="connection" data-state={state} role="status" aria-label={`Connection: ${STATE_LABEL[state]}`}>
      <span className="dot" aria-hidden="true" />
      <span data-testid="connection-label">{STATE_LABEL[state]}</span>
      {latencyMs !== undefined && state === 'connected' && (
        <span className="latency" data-testid="latency" title="Delivery latency of the latest event (now − its ts)">
          {Math.max(0, Math.round(latencyMs))} ms
        </span>
      )}
    </div>
  );
}

function RunsList({ runs, current, onClear }: { runs: RunRecord[]; current?: string; onClear: () => void }) {
  return (
    <nav className="runs" aria-label="Your runs">
      <div className="runs-head">
        <span>Your runs</span>
        {runs.length > 0 && (
          <button type="button" className="link" onClick={onClear}>
            Clear
          </button>
        )}
      </div>
      <ul data-testid="runs-list">
        {runs.map((r) => (
          <li key={r.id}>
            <a
              href={runHref(r.id, r.shareToken)}
              className={r.id === current ? 'active' : undefined}
              aria-current={r.id === current ? 'page' : undefined}
              data-testid="runs-item"
              data-run-id={r.id}
            >
              <span className="run-q">{r.query || r.id}</span>
              <span className={`run-badge ${r.outcome ?? 'running'}`}>{OUTCOME_LABEL[r.outcome ?? 'running']}</span>
            </a>
          </li>
        ))}
        {runs.length === 0 && <li className="muted">No runs yet.</li>}
      </ul>
    </nav>
  );
}

function Welcome({ onPick }: { onPick: (q: string) => void }) {
  const examples = ['How does Sluice resume a stream?', 'What happens to a slow reader?', 'How do I cancel an agent run?'];
  return (
    <div className="welcome" data-testid="welcome">
      <p>Ask a question: an agent plans, searches this server's documents and streams its answer with citations.</p>
      <div className="examples">
        {examples.map((q) => (
          <button key={q} type="button" className="chip" onClick={() => onPick(q)}>
            {q}
          </button>
        ))}
      </div>
    </div>
  );
}

function statusText(view: RunView, connectionFailed: boolean): string {
  switch (view.outcome.kind) {
    case 'result':
      return 'Done';
    case 'error':
      return `Failed: ${view.outcome.message}`;
    case 'cancelled':
      return view.outcome.reason ? `Cancelled (${view.outcome.reason})` : 'Cancelled';
    default: {
      if (connectionFailed) return 'Disconnected: the connection to the server was lost';
      if (view.streamed) return 'Writing the answer…';
      const plan = view.plan;
      const i = plan ? plan.stepStatus.indexOf('in_progress') : -1;
      if (plan && i >= 0) return `Step ${i + 1} of ${plan.steps.length}: ${plan.steps[i]}`;
      return view.statusMessage ?? (view.lastSequence ? 'Working…' : 'Starting…');
    }
  }
}

function RunPanel(props: {
  id: string;
  query?: string;
  agentType?: string;
  view: RunView;
  running: boolean;
  connectionFailed: boolean;
  readOnly: boolean;
  runUrl: string;
  linkState: string;
  onStop: () => void;
}) {
  const { id, query, view, running, connectionFailed, readOnly, runUrl, linkState, onStop } = props;
  const [highlight, setHighlight] = useState<number | undefined>();
  const answerRef = useRef<HTMLDivElement>(null); // the Markdown's statistics for tests go there
  const showSource = useCallback((n: number) => {
    setHighlight(n);
    document.getElementById(`source-${n}`)?.scrollIntoView({ behavior: 'smooth', block: 'nearest' });
  }, []);
  // Stable while the set of sources is: finished Markdown blocks are not rendered again.
  const docKey = view.docs.map((d) => d.index).join(',');
  const renderCitation = useCallback(
    (n: number, key: string) =>
      docKey.split(',').includes(String(n)) ? (
        <a
          key={key}
          href={`#source-${n}`}
          className="cite"
          data-testid="citation"
          data-source={n}
          aria-label={`Source ${n}`}
          onClick={(e) => {
            e.preventDefault();
            showSource(n);
          }}
        >
          [{n}]
        </a>
      ) : (
        <span key={key} className="cite missing">
          [{n}]
        </span>
      ),
    [docKey, showSource],
  );
  const outcome = view.outcome.kind === 'running' && connectionFailed ? 'disconnected' : view.outcome.kind;
  return (
    <article
      className="run"
      data-testid="run"
      data-run-id={id}
      data-outcome={view.outcome.kind}
      data-running={running ? 'true' : 'false'}
      data-read-only={readOnly ? 'true' : 'false'}
    >
      {query && (
        <div className="bubble user" data-testid="question">
          {query}
        </div>
      )}
      <div className="bubble agent">
        <div className="run-head">
          <div className={`status status-${outcome}`} role="status" aria-live="polite" data-testid="status-line">
            {running && <span className="spinner" aria-hidden="true" data-testid="spinner" />}
            {statusText(view, connectionFailed)}
          </div>
          <div className="run-actions">
            {readOnly && (
              <span className="read-only" data-testid="read-only" title="Opened through a share link: you can watch this run, not change it">
                Shared · read-only
              </span>
            )}
            <a
              href={runUrl}
              target="_blank"
              rel="noopener noreferrer"
              data-testid="run-link"
              data-link={linkState}
              title={linkState === 'ready' ? 'A read-only link to this run (works without a token)' : 'Open this run in a new tab'}
            >
              Run link ↗
            </a>
            {running && !readOnly && (
              <button type="button" className="stop" onClick={onStop} data-testid="stop-button">
                ■ Stop
              </button>
            )}
          </div>
        </div>
        {view.planThought && <p className="thought">{view.planThought}</p>}
        {view.plan && <PlanView plan={view.plan} />}
        {view.tools.length > 0 && (
          <div className="tools" aria-label="Tool results">
            {view.tools.map((t) => (
              <ToolResult key={t.id} tool={t} />
            ))}
          </div>
        )}
        {(view.answer || running) && (
          <div
            className={`answer markdown${running ? ' streaming' : ''}`}
            data-testid="answer"
            data-final={view.outcome.kind !== 'running' ? 'true' : 'false'}
            data-stream-mismatch={view.streamMismatch ? 'true' : 'false'}
            aria-label="Answer"
            aria-busy={running}
            ref={answerRef}
          >
            <Markdown text={view.answer} renderCitation={renderCitation} statsOn={answerRef} />
          </div>
        )}
        {view.docs.length > 0 && <Sources docs={view.docs} highlight={highlight} />}
      </div>
    </article>
  );
}

function PlanView({ plan }: { plan: Plan }) {
  const done = plan.stepStatus.filter((s) => s === 'completed').length;
  return (
    <section className="plan" data-testid="plan" aria-label="Plan">
      <div className="plan-head">
        <span className="plan-title">Plan</span>
        <span className="plan-progress" data-testid="plan-progress">
          {done} / {plan.steps.length} steps
        </span>
      </div>
      <div className="progress" aria-hidden="true">
        <div style={{ width: `${plan.steps.length ? (100 * done) / plan.steps.length : 0}%` }} />
      </div>
      <ol>
        {plan.steps.map((s, i) => {
          const st = plan.stepStatus[i] ?? 'not_started';
          return (
            <li key={i} className={`step ${st}`} data-testid="plan-step" data-status={st}>
              <span className="step-icon" aria-label={st.replace('_', ' ')}>
                {st === 'completed' ? '✓' : st === 'in_progress' ? '◐' : '○'}
              </span>
              {s}
            </li>
          );
        })}
      </ol>
    </section>
  );
}

function ToolResult({ tool }: { tool: ToolView }) {
  const p = tool.toolParam as { query?: unknown } | undefined;
  const param = p && typeof p.query === 'string' ? p.query : tool.toolParam ? JSON.stringify(tool.toolParam) : '';
  return (
    <details className="tool" data-testid="tool-result">
      <summary>
        <span className="tool-name">{tool.toolName}</span>
        {param && <span className="tool-param">{param}</span>}
      </summary>
      <div className="tool-body markdown">
        <Markdown text={tool.toolResult} />
      </div>
    </details>
  );
}

function Sources({ docs, highlight }: { docs: Doc[]; highlight?: number }) {
  return (
    <section className="sources" data-testid="sources" aria-label="Sources">
      <h2>Sources</h2>
      <ol>
        {docs.map((d) => (
          <li
            key={d.index}
            id={`source-${d.index}`}
            className={d.index === highlight ? 'highlight' : undefined}
            data-testid="source"
            data-source={d.index}
          >
            <span className="src-n">{d.index}</span>
            <div>
              <div className="src-title">
                {d.title}
                {d.heading && d.heading !== d.title && <span className="src-heading"> › {d.heading}</span>}
              </div>
              {d.path && <div className="src-path">{d.path}</div>}
              {d.content && <p className="src-content">{d.content}</p>}
            </div>
          </li>
        ))}
      </ol>
    </section>
  );
}

function TokenField({ token, onChange }: { token: string; onChange: (t: string) => void }) {
  const [draft, setDraft] = useState(token);
  useEffect(() => setDraft(token), [token]);
  return (
    <form
      className="token"
      aria-label="Access token"
      onSubmit={(e) => {
        e.preventDefault();
        onChange(draft);
      }}
    >
      <label htmlFor="token">Access token</label>
      <input
        id="token"
        type="password"
        autoComplete="off"
        spellCheck={false}
        placeholder="for servers run with --auth jwt"
        data-testid="token-input"
        value={draft}
        onChange={(e) => setDraft(e.target.value)}
        onBlur={() => draft.trim() !== token && onChange(draft)}
      />
      <div className="token-row">
        <button type="submit" className="link" data-testid="token-save">
          Save
        </button>
        <span className="muted" data-testid="token-state">
          {token ? 'Token set (sent with every request)' : 'No token'}
        </span>
        {token && (
          <button type="button" className="link" data-testid="token-clear" onClick={() => onChange('')}>
            Forget
          </button>
        )}
      </div>
    </form>
  );
}

function Composer({ disabled, onAsk }: { disabled: boolean; onAsk: (q: string, agentType: string) => void }) {
  const [query, setQuery] = useState('');
  const [agentType, setAgentType] = useState('plan_solve');
  const submit = (e?: FormEvent) => {
    e?.preventDefault();
    const q = query.trim();
    if (!q || disabled) return;
    onAsk(q, agentType);
    setQuery('');
  };
  const onKey = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) submit(e);
  };
  return (
    <form className="composer" onSubmit={submit} aria-label="Ask a question">
      <label className="sr-only" htmlFor="question">
        Question
      </label>
      <textarea
        id="question"
        data-testid="question-input"
        placeholder="Ask a question… (Enter to send, Shift+Enter for a new line)"
        rows={2}
        value={query}
        onChange={(e) => setQuery(e.target.value)}
        onKeyDown={onKey}
      />
      <div className="composer-row">
        <label htmlFor="agent-type">Agent</label>
        <select id="agent-type" data-testid="agent-select" value={agentType} onChange={(e) => setAgentType(e.target.value)}>
          {AGENTS.map((a) => (
            <option key={a.value} value={a.value}>
              {a.label}
            </option>
          ))}
        </select>
        <button type="submit" className="ask" data-testid="ask-button" disabled={disabled || !query.trim()}>
          Ask
        </button>
      </div>
    </form>
  );
}
