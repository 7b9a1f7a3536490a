// Folds a run's AgentResponse messages (in sequence order) into what the page shows.
// Pure: the same messages give the same view, whether they arrived live, after a
// resume or from a replay.

export interface Doc {
  index: number;
  title: string;
  sourceId?: string;
  path?: string;
  heading?: string;
  content?: string;
}

export interface Plan {
  title: string;
  steps: string[];
  stepStatus: string[];
}

export interface ToolView {
  id: string;
  toolName: string;
  toolParam: unknown;
  toolResult: string;
}

export type Outcome =
  | { kind: 'running' }
  | { kind: 'result' }
  | { kind: 'error'; message: string }
  | { kind: 'cancelled'; reason?: string };

export interface RunView {
  requestId?: string;
  status?: string;
  statusMessage?: string;
  planThought?: string;
  plan?: Plan;
  tasks: string[];
  tools: ToolView[];
  /** The answer as streamed (agent_stream deltas concatenated). */
  streamed: string;
  /** The answer shown: the final result's text when there is one, else the streamed text. */
  answer: string;
  /** True when the final answer differs from the concatenated deltas (something was lost or repeated). */
  streamMismatch: boolean;
  docs: Doc[];
  outcome: Outcome;
  lastSequence: number;
  lastTs?: number;
}

// Loosely typed on purpose: the page tolerates fields it does not know.
export type AgentMessage = Record<string, unknown> & {
  messageType?: string;
  messageId?: string;
  sequence?: number;
  ts?: number;
  isFinal?: boolean;
};

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const obj = (v: unknown): Record<string, unknown> | undefined =>
  v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;

function docsOf(v: unknown): Doc[] | undefined {
  if (!Array.isArray(v)) return undefined;
  return v
    .map(obj)
    .filter((d): d is Record<string, unknown> => !!d && typeof d.index === 'number')
    .map((d) => ({
      index: d.index as number,
      title: str(d.title) ?? '',
      sourceId: str(d.sourceId),
      path: str(d.path),
      heading: str(d.heading),
      content: str(d.content),
    }));
}

export function emptyView(): RunView {
  return {
    tasks: [],
    tools: [],
    streamed: '',
    answer: '',
    streamMismatch: false,
    docs: [],
    outcome: { kind: 'running' },
    lastSequence: 0,
  };
}

export function foldRun(messages: readonly AgentMessage[]): RunView {
  const v = emptyView();
  let finalText: string | undefined;
  const toolIndex = new Map<string, number>();
  for (const m of messages) {
    const seq = typeof m.sequence === 'number' ? m.sequence : undefined;
    const range = Array.isArray(m.coalesced) ? (m.coalesced as number[]) : undefined;
    // A message the client already folded in (by sequence) is not applied twice.
    const last = range ? range[1] : seq;
    if (last !== undefined && last <= v.lastSequence) continue;
    if (last !== undefined) v.lastSequence = last;
    if (typeof m.ts === 'number') v.lastTs = m.ts;
    v.requestId = str(m.requestId) ?? v.requestId;
    const type = m.messageType ?? str(m.event) ?? str(m.type);
    switch (type) {
      case 'status':
        v.status = str(m.status) ?? v.status;
        v.statusMessage = str(m.message) ?? v.statusMessage;
        break;
      case 'plan_thought':
        v.planThought = str(m.planThought) ?? str(m.result) ?? v.planThought;
        break;
      case 'plan': {
        const p = obj(m.plan);
        if (p)
          v.plan = {
            title: str(p.title) ?? '',
            steps: Array.isArray(p.steps) ? p.steps.map(String) : [],
            stepStatus: Array.isArray(p.stepStatus) ? p.stepStatus.map(String) : [],
          };
        break;
      }
      case 'task':
        if (str(m.task)) v.tasks.push(str(m.task)!);
        break;
      case 'tool_result':
      case 'tool_thought': {
        const t = obj(m.toolResult);
        const id = str(m.messageId) ?? `tool-${v.tools.length}`;
        const entry: ToolView = {
          id,
          toolName: str(t?.toolName) ?? (type === 'tool_thought' ? 'thinking' : 'tool'),
          toolParam: t?.toolParam,
          toolResult: str(t?.toolResult) ?? str(m.toolThought) ?? str(m.result) ?? '',
        };
        const at = toolIndex.get(id);
        if (at === undefined) {
          toolIndex.set(id, v.tools.length);
          v.tools.push(entry);
        } else v.tools[at] = entry;
        const sr = obj(m.searchResult);
        const d = docsOf(sr?.docs);
        if (d?.length && !v.docs.length) v.docs = d;
        break;
      }
      case 'search': {
        const sr = obj(m.searchResult);
        const d = docsOf(sr?.docs);
        if (d?.length) v.docs = d;
        if (str(m.answer)) v.streamed += str(m.answer);
        break;
      }
      case 'agent_stream':
        v.streamed += str(m.result) ?? '';
        break;
      case 'result': {
        finalText = str(m.result);
        const rm = obj(m.resultMap);
        finalText = finalText ?? str(rm?.answer);
        const d = docsOf(rm?.docs) ?? docsOf(obj(rm?.searchResult)?.docs);
        if (d?.length) v.docs = d;
        v.outcome = { kind: 'result' };
        break;
      }
      case 'error':
        v.outcome = {
          kind: 'error',
          message: str(m.message) ?? str(m.error) ?? str(obj(m.error)?.message) ?? str(m.result) ?? 'The run failed.',
        };
        break;
      case 'cancelled':
        v.outcome = { kind: 'cancelled', reason: str(m.reason) };
        break;
      default:
        break;
    }
  }
  v.answer = finalText ?? v.streamed;
  v.streamMismatch = finalText !== undefined && v.streamed !== '' && finalText !== v.streamed;
  return v;
}
