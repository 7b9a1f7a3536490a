// Markdown with markdown-it (CommonMark + GFM tables and strikethrough), turned
// into React elements: no HTML string is ever injected, raw HTML is off, and
// only the tags and attributes below are ever produced, so text from the server
// cannot become markup. Links pass a strict URL policy (safeHref). Citations
// [n] go through renderCitation.
//
// Incremental: while an answer streams, only its last, still-growing blocks are
// parsed and rendered again on each update; the blocks before them are parsed
// once, kept as tokens and rendered by memoized components (see Incremental).
import MarkdownIt from 'markdown-it';
import { createElement, memo, useLayoutEffect, useRef, type ReactNode, type RefObject } from 'react';

export interface MarkdownProps {
  text: string;
  /** Renders a citation [n]; without it, [n] stays text. Keep it stable (useCallback) so finished blocks are not rendered again. */
  renderCitation?: (n: number, key: string) => ReactNode;
  /**
   * For tests: an element (the one the Markdown is rendered in) on which each
   * commit sets data-md-length (the text's length), data-md-parsed (characters
   * the last update parsed: the tail plus what was appended) and
   * data-md-chunk-renders (how many times finished chunks were rendered, in
   * all: once each while renderCitation stays the same). Not set before the
   * element's first commit (React attaches a parent's ref after its children's
   * layout effects).
   */
  statsOn?: RefObject<HTMLElement | null>;
}

type Token = ReturnType<MarkdownIt['parse']>[number];
type Cite = MarkdownProps['renderCitation'];

// ---------------------------------------------------------------------------
// URL policy

/**
 * The href a link may have, or null: absolute http(s) URLs, mailto: and
 * in-page anchors (#…) only. Anything with a control character, whitespace or a
 * backslash is refused (browsers strip or reinterpret them: "\x01javascript:",
 * " javascript:", "/\\host"), and so are protocol-relative ("//host"),
 * relative paths and every other scheme (javascript:, data:, vbscript:, file:, …).
 */
export function safeHref(url: string): string | null {
  if (typeof url !== 'string' || url.length === 0 || url.length > 4096) return null;
  // C0 controls, space, DEL, C1 controls, backslash; also Unicode spaces and
  // invisible characters browsers may strip before a scheme.
  if (/[\u0000-\u0020\u007f-\u009f\\\u00a0\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u2064\u3000\ufeff]/.test(url))
    return null;
  if (url.startsWith('#')) return url;
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url);
  if (!scheme) return null; // relative, protocol-relative (//host), …
  const s = scheme[1]!.toLowerCase();
  if (s === 'mailto') return url.length > 'mailto:'.length ? url : null;
  if (s !== 'http' && s !== 'https') return null;
  if (!/^https?:\/\/[^/?#]/i.test(url)) return null; // "http:evil", "https:/x": no host
  try {
    const u = new URL(url);
    if ((u.protocol !== 'http:' && u.protocol !== 'https:') || !u.hostname) return null;
  } catch {
    return null;
  }
  return url;
}

// ---------------------------------------------------------------------------
// Parser

const md = new MarkdownIt('default', { html: false, linkify: false, typographer: false, breaks: false });
// No reference definitions (a later "[x]: url" would change blocks already
// rendered, and [n] must stay a citation) and no images (no remote loads).
md.disable(['reference', 'image']);
// markdown-it's own filter keeps "bad" links as text; ours is stricter.
md.validateLink = (url: string) => safeHref(url) !== null;

// ---------------------------------------------------------------------------
// Tokens → React

const BLOCK_TAGS = new Set([
  'p', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'ul', 'ol', 'li', 'blockquote',
  'table', 'thead', 'tbody', 'tr', 'th', 'td', 'strong', 'em', 's', 'a',
]);

/** Headings are shown two levels down (the page has its own h1/h2). */
const tagOf = (t: Token) => (/^h[1-6]$/.test(t.tag) ? `h${Math.min(Number(t.tag[1]) + 2, 6)}` : t.tag);

const citePattern = /\[(\d{1,3})\]/g;

function textNodes(text: string, cite: Cite, key: string, out: ReactNode[]): void {
  if (!cite || text.indexOf('[') < 0) {
    out.push(text);
    return;
  }
  let last = 0;
  let n = 0;
  for (const m of text.matchAll(citePattern)) {
    const at = m.index ?? 0;
    if (at > last) out.push(text.slice(last, at));
    out.push(cite(Number(m[1]), `${key}c${n++}`));
    last = at + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
}

interface Open {
  tag: string | null; // null: the element is dropped, its children kept (tight-list <p>, refused link)
  props: Record<string, unknown>;
  children: ReactNode[];
}

function propsOf(t: Token, key: string): Record<string, unknown> | null {
  const props: Record<string, unknown> = { key };
  switch (t.tag) {
    case 'a': {
      const href = safeHref(t.attrGet('href') ?? '');
      if (href === null) return null;
      props.href = href;
      if (!href.startsWith('#')) {
        props.target = '_blank';
        props.rel = 'noopener noreferrer';
      }
      break;
    }
    case 'ol': {
      const start = Number(t.attrGet('start') ?? '1');
      if (Number.isSafeInteger(start) && start !== 1) props.start = start;
      break;
    }
    case 'th':
    case 'td': {
      const m = /text-align:(left|right|center)/.exec(t.attrGet('style') ?? '');
      if (m) props.style = { textAlign: m[1] };
      break;
    }
    default:
      break;
  }
  return props;
}

/** React nodes for a token list (block tokens, or an inline token's children). */
export function renderTokens(tokens: readonly Token[], cite: Cite, keyPrefix: string): ReactNode[] {
  const root: ReactNode[] = [];
  const stack: Open[] = [];
  const out = () => (stack.length ? stack[stack.length - 1]!.children : root);
  let pendingText = '';
  let pendingKey = '';
  const flushText = () => {
    if (pendingText) textNodes(pendingText, cite, pendingKey, out());
    pendingText = '';
  };
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    const key = `${keyPrefix}${i}`;
    if (t.type === 'text') {
      // Adjacent text tokens are joined so a citation split across them is found.
      if (!pendingText) pendingKey = key;
      pendingText += t.content;
      continue;
    }
    flushText();
    if (t.nesting === 1) {
      const props = !t.hidden && BLOCK_TAGS.has(t.tag) ? propsOf(t, key) : null;
      stack.push({ tag: props ? tagOf(t) : null, props: props ?? {}, children: [] });
      continue;
    }
    if (t.nesting === -1) {
      const e = stack.pop();
      if (!e) continue;
      if (e.tag === null) out().push(...e.children);
      else out().push(createElement(e.tag, e.props, ...e.children));
      continue;
    }
    switch (t.type) {
      case 'inline':
        out().push(...renderTokens(t.children ?? [], cite, `${key}.`));
        break;
      case 'code_inline':
        out().push(<code key={key}>{t.content}</code>);
        break;
      case 'softbreak':
        out().push('\n');
        break;
      case 'hardbreak':
        out().push(<br key={key} />);
        break;
      case 'fence':
      case 'code_block': {
        const lang = t.type === 'fence' ? (t.info.trim().split(/\s+/)[0] ?? '') : '';
        out().push(
          <pre key={key} data-lang={lang || undefined}>
            <code>{t.content.endsWith('\n') ? t.content.slice(0, -1) : t.content}</code>
          </pre>,
        );
        break;
      }
      case 'hr':
        out().push(<hr key={key} />);
        break;
      default:
        // html_* (off), images (off), text_special: their text only.
        if (t.content) textNodes(t.content, cite, key, out());
        break;
    }
  }
  flushText();
  // Unclosed elements (cannot happen with markdown-it's balanced output): keep the text.
  while (stack.length) {
    const e = stack.pop()!;
    const parent = out();
    if (e.tag === null) parent.push(...e.children);
    else parent.push(createElement(e.tag, e.props, ...e.children));
  }
  return root;
}

// ---------------------------------------------------------------------------
// Incremental parsing

/** Finished blocks: parsed once, rendered once (per citation renderer). */
export interface Chunk {
  /** Offset of the chunk in the text: its React key. */
  at: number;
  tokens: Token[];
}

/** The offsets of every line start in `s` (line ends: \r\n, \r, \n, as markdown-it counts them). */
function lineStarts(s: string): number[] {
  const starts = [0];
  const re = /\r\n?|\n/g;
  for (let m = re.exec(s); m; m = re.exec(s)) starts.push(m.index + m[0].length);
  return starts;
}

/**
 * Splits a growing text into finished chunks and a tail. Each update parses
 * only the tail (the text after the last finished chunk). A top-level block of
 * the tail is finished when another top-level block follows it after a blank
 * line and that block starts in column 0: nothing appended later can change it
 * (CommonMark closes every open container there; reference definitions, the
 * one construct that reaches back, are disabled). Such blocks move to a chunk
 * and are never parsed again.
 */
export class Incremental {
  private text = '';
  private tailAt = 0;
  chunks: Chunk[] = [];
  tail: Token[] = [];
  /** How many characters the last update parsed (for tests). */
  lastParsed = 0;

  update(text: string): void {
    if (text === this.text) return;
    if (!text.startsWith(this.text)) {
      this.chunks = [];
      this.tailAt = 0;
    }
    this.text = text;
    const src = text.slice(this.tailAt);
    this.lastParsed = src.length;
    const tokens = md.parse(src, {});
    // Top-level blocks: [first token index, start line, end line).
    const blocks: { i: number; start: number; end: number }[] = [];
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i]!;
      if (t.level === 0 && t.nesting !== -1 && t.map) blocks.push({ i, start: t.map[0], end: t.map[1] });
    }
    let cut = -1; // index in `blocks` of the first block that stays in the tail
    if (blocks.length > 1) {
      const starts = lineStarts(src);
      for (let b = blocks.length - 1; b >= 1; b--) {
        const prev = blocks[b - 1]!;
        const cur = blocks[b]!;
        const lineAt = starts[cur.start];
        if (lineAt === undefined) continue;
        const c = src.charCodeAt(lineAt);
        if (cur.start > prev.end && c !== 32 && c !== 9) {
          cut = b;
          break;
        }
      }
      if (cut > 0) {
        const at = starts[blocks[cut]!.start]!;
        this.chunks = [...this.chunks, { at: this.tailAt, tokens: tokens.slice(0, blocks[cut]!.i) }];
        this.tailAt += at;
        this.tail = tokens.slice(blocks[cut]!.i);
        return;
      }
    }
    this.tail = tokens;
  }
}

/**
 * Finished blocks, in a wrapper the stylesheet gives `content-visibility: auto`:
 * off-screen chunks of a long answer then cost no style or layout work when the
 * end of the answer grows.
 */
const ChunkView = memo(function ChunkView({
  tokens,
  cite,
  at,
  renders,
}: {
  tokens: Token[];
  cite: Cite;
  at: number;
  renders: { n: number };
}) {
  renders.n++;
  return <div className="md-chunk">{renderTokens(tokens, cite, `k${at}.`)}</div>;
});

export function Markdown({ text, renderCitation, statsOn }: MarkdownProps) {
  const inc = useRef<Incremental | null>(null);
  inc.current ??= new Incremental();
  const state = inc.current;
  state.update(text);
  const renders = useRef({ n: 0 }).current; // a stable object: ChunkView's memo still holds
  useLayoutEffect(() => {
    const el = statsOn?.current;
    if (!el) return;
    el.dataset.mdLength = String(text.length);
    el.dataset.mdParsed = String(state.lastParsed);
    el.dataset.mdChunkRenders = String(renders.n);
  });
  return (
    <>
      {state.chunks.map((c) => (
        <ChunkView key={c.at} at={c.at} tokens={c.tokens} cite={renderCitation} renders={renders} />
      ))}
      {renderTokens(state.tail, renderCitation, 't.')}
    </>
  );
}
