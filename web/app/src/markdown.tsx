// A small Markdown renderer that builds React elements: no HTML string is ever
// injected, so text from the server cannot become markup. Covers what answers
// use: paragraphs, headings, lists, fenced code, block quotes, inline code,
// bold, italic, links (http, https, mailto and relative only) and citations [n].
import { Fragment, type ReactNode } from 'react';

export interface MarkdownProps {
  text: string;
  /** Renders a citation [n]; without it, [n] stays text. */
  renderCitation?: (n: number, key: string) => ReactNode;
}

type Block =
  | { kind: 'p'; text: string }
  | { kind: 'h'; level: number; text: string }
  | { kind: 'code'; lang: string; text: string }
  | { kind: 'quote'; text: string }
  | { kind: 'ul' | 'ol'; items: string[]; start: number };

const fence = /^\s*(```|~~~)\s*([\w+-]*)\s*$/;
const heading = /^(#{1,6})\s+(.*)$/;
const bullet = /^\s*[-*+]\s+(.*)$/;
const ordered = /^\s*(\d{1,9})[.)]\s+(.*)$/;
const quote = /^\s*>\s?(.*)$/;

export function parseBlocks(src: string): Block[] {
  const lines = src.replace(/\r\n?/g, '\n').split('\n');
  const blocks: Block[] = [];
  let para: string[] = [];
  const flush = () => {
    if (para.length) blocks.push({ kind: 'p', text: para.join(' ') });
    para = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const f = fence.exec(line);
    if (f) {
      flush();
      const body: string[] = [];
      i++;
      while (i < lines.length && !new RegExp('^\\s*' + f[1]).test(lines[i])) body.push(lines[i++]);
      blocks.push({ kind: 'code', lang: f[2], text: body.join('\n') });
      continue;
    }
    if (!line.trim()) {
      flush();
      continue;
    }
    const h = heading.exec(line);
    if (h) {
      flush();
      blocks.push({ kind: 'h', level: h[1].length, text: h[2] });
      continue;
    }
    const q = quote.exec(line);
    if (q) {
      flush();
      const last = blocks[blocks.length - 1];
      if (last && last.kind === 'quote') last.text += ' ' + q[1];
      else blocks.push({ kind: 'quote', text: q[1] });
      continue;
    }
    const b = bullet.exec(line);
    const o = b ? null : ordered.exec(line);
    if (b || o) {
      flush();
      const kind = b ? 'ul' : 'ol';
      const item = b ? b[1] : o![2];
      const last = blocks[blocks.length - 1];
      if (last && last.kind === kind) last.items.push(item);
      else blocks.push({ kind, items: [item], start: o ? Number(o[1]) : 1 });
      continue;
    }
    // A continuation line of a list item (indented) stays in the item.
    const last = blocks[blocks.length - 1];
    if (!para.length && last && (last.kind === 'ul' || last.kind === 'ol') && /^\s+\S/.test(line)) {
      last.items[last.items.length - 1] += ' ' + line.trim();
      continue;
    }
    para.push(line.trim());
  }
  flush();
  return blocks;
}

const safeUrl = (url: string): string | null => {
  const u = url.trim();
  if (/^(https?:|mailto:)/i.test(u)) return u;
  if (/^[a-z][a-z0-9+.-]*:/i.test(u)) return null; // javascript:, data:, …
  return u;
};

// Inline tokens, tried in order at each position.
const inlinePattern =
  /(`+)([^`]|[^`][\s\S]*?[^`])\1|\*\*([^*]+?)\*\*|__([^_]+?)__|\*([^*\s][^*]*?)\*|\b_([^_\s][^_]*?)_\b|\[(\d{1,3})\]|\[([^\]]+)\]\(([^)\s]+)\)/g;

export function renderInline(text: string, renderCitation: MarkdownProps['renderCitation'], keyPrefix: string): ReactNode[] {
  const out: ReactNode[] = [];
  let last = 0;
  let n = 0;
  for (const m of text.matchAll(inlinePattern)) {
    const at = m.index ?? 0;
    if (at > last) out.push(text.slice(last, at));
    const key = `${keyPrefix}.${n++}`;
    if (m[1] !== undefined) out.push(<code key={key}>{m[2]}</code>);
    else if (m[3] !== undefined || m[4] !== undefined)
      out.push(<strong key={key}>{renderInline(m[3] ?? m[4], renderCitation, key)}</strong>);
    else if (m[5] !== undefined || m[6] !== undefined)
      out.push(<em key={key}>{renderInline(m[5] ?? m[6], renderCitation, key)}</em>);
    else if (m[7] !== undefined)
      out.push(renderCitation ? renderCitation(Number(m[7]), key) : m[0]);
    else {
      const href = safeUrl(m[9]);
      out.push(
        href ? (
          <a key={key} href={href} target="_blank" rel="noopener noreferrer">
            {renderInline(m[8], renderCitation, key)}
          </a>
        ) : (
          m[0]
        ),
      );
    }
    last = at + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

export function Markdown({ text, renderCitation }: MarkdownProps) {
  const blocks = parseBlocks(text);
  return (
    <>
      {blocks.map((b, i) => {
        const k = `b${i}`;
        switch (b.kind) {
          case 'p':
            return <p key={k}>{renderInline(b.text, renderCitation, k)}</p>;
          case 'h': {
            const H = `h${Math.min(b.level + 2, 6)}` as 'h3';
            return <H key={k}>{renderInline(b.text, renderCitation, k)}</H>;
          }
          case 'code':
            return (
              <pre key={k} data-lang={b.lang || undefined}>
                <code>{b.text}</code>
              </pre>
            );
          case 'quote':
            return <blockquote key={k}>{renderInline(b.text, renderCitation, k)}</blockquote>;
          case 'ul':
            return (
              <ul key={k}>
                {b.items.map((it, j) => (
                  <li key={j}>{renderInline(it, renderCitation, `${k}.${j}`)}</li>
                ))}
              </ul>
            );
          case 'ol':
            return (
              <ol key={k} start={b.start}>
                {b.items.map((it, j) => (
                  <li key={j}>{renderInline(it, renderCitation, `${k}.${j}`)}</li>
                ))}
              </ol>
            );
          default:
            return <Fragment key={k} />;
        }
      })}
    </>
  );
}
