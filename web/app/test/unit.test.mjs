// Unit tests of the page's pure parts (Markdown renderer, run folding), run with
// node --test: esbuild (Vite's) bundles them with React for Node.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const appDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let m;
let tmp;

before(async () => {
  tmp = mkdtempSync(path.join(os.tmpdir(), 'sluice-app-unit-'));
  const out = await build({
    stdin: {
      contents: `
        export { Markdown, safeHref, Incremental } from './src/markdown.tsx';
        export { foldRun } from './src/runView.ts';
        export { runIdFromHash } from './src/runs.ts';
        export { renderToStaticMarkup } from 'react-dom/server';
        export { createElement } from 'react';`,
      resolveDir: appDir,
      loader: 'ts',
    },
    bundle: true,
    platform: 'node',
    format: 'esm',
    jsx: 'automatic',
    write: false,
    logLevel: 'silent',
    banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
  });
  const file = path.join(tmp, 'bundle.mjs');
  writeFileSync(file, out.outputFiles[0].text);
  m = await import(pathToFileURL(file).href);
});
after(() => rmSync(tmp, { recursive: true, force: true }));

// Finished blocks come wrapped in <div class="md-chunk"> (Markdown never makes a div itself).
const withChunks = (text, renderCitation) =>
  m.renderToStaticMarkup(m.createElement(m.Markdown, { text, renderCitation }));
const html = (text, renderCitation) => withChunks(text, renderCitation).replace(/<div class="md-chunk">|<\/div>/g, '');

describe('Markdown', () => {
  test('renders blocks and inline styles', () => {
    assert.equal(
      html('# Title\n\nSome **bold**, *em*, ~~gone~~ and `code`.\n\n- one\n- two\n\n1. first\n2. second\n\n3) third\n\n> quoted\n\n---\n\n```js\nlet a = 1 < 2;\n```\n\n    indented'),
      '<h3>Title</h3><p>Some <strong>bold</strong>, <em>em</em>, <s>gone</s> and <code>code</code>.</p>' +
        '<ul><li>one</li><li>two</li></ul><ol><li>first</li><li>second</li></ol><ol start="3"><li>third</li></ol>' +
        '<blockquote><p>quoted</p></blockquote><hr/>' +
        '<pre data-lang="js"><code>let a = 1 &lt; 2;</code></pre><pre><code>indented</code></pre>',
    );
  });

  test('finished blocks are wrapped in chunks; the last block is not', () => {
    assert.equal(withChunks('a\n\nb\n\nc'), '<div class="md-chunk"><p>a</p><p>b</p></div><p>c</p>');
  });

  test('tables (GFM) with alignment', () => {
    assert.equal(
      html('| a | b |\n|:--|--:|\n| 1 | **2** |'),
      '<table><thead><tr><th style="text-align:left">a</th><th style="text-align:right">b</th></tr></thead>' +
        '<tbody><tr><td style="text-align:left">1</td><td style="text-align:right"><strong>2</strong></td></tr></tbody></table>',
    );
  });

  test('never turns text into markup', () => {
    const out = html('<script>alert(1)</script> <img src=x onerror=alert(1)> [x](javascript:alert(1)) [y](data:text/html,hi)\n\n<div onclick="x">block</div>');
    assert.ok(!out.includes('<script') && !out.includes('<img') && !out.includes('<div'), out);
    assert.ok(out.includes('&lt;script&gt;') && out.includes('&lt;div onclick'), out);
    assert.ok(!/href="(javascript|data):/i.test(out), out);
    assert.ok(!out.includes('<a'), out);
    // Images load nothing: an image becomes a link to it.
    assert.equal(html('![alt](https://e.example/i.png)'), '<p>!<a href="https://e.example/i.png" target="_blank" rel="noopener noreferrer">alt</a></p>');
  });

  test('keeps safe links, opened without opener; anchors stay in the page', () => {
    assert.equal(
      html('See [the docs](https://example.org/a) or [mail](mailto:a@example.org) and [up](#top).'),
      '<p>See <a href="https://example.org/a" target="_blank" rel="noopener noreferrer">the docs</a> or ' +
        '<a href="mailto:a@example.org" target="_blank" rel="noopener noreferrer">mail</a> and <a href="#top">up</a>.</p>',
    );
  });

  test('refused links keep their text, never an href', () => {
    for (const url of ['javascript:alert(1)', 'JaVaScRiPt:alert(1)', '//evil.example/x', '/relative', 'data:text/html,x', '&#x6A;avascript:alert(1)', '<\x01javascript:alert(1)>', '< javascript:alert(1)>', 'vbscript:x', '/\\evil.example']) {
      const out = html(`[click](${url})`);
      assert.ok(!out.includes('<a'), `${JSON.stringify(url)} → ${out}`);
      assert.ok(out.includes('click'), out);
    }
  });

  test('citations go through renderCitation; without it they stay text', () => {
    const cite = (n, key) => m.createElement('a', { key, href: `#source-${n}` }, `[${n}]`);
    assert.equal(html('A [1] and B [12].', cite), '<p>A <a href="#source-1">[1]</a> and B <a href="#source-12">[12]</a>.</p>');
    assert.equal(html('A [1].'), '<p>A [1].</p>');
    assert.equal(html('- item [2]\n\n| c |\n|---|\n| x [3] |', cite),
      '<ul><li>item <a href="#source-2">[2]</a></li></ul><table><thead><tr><th>c</th></tr></thead><tbody><tr><td>x <a href="#source-3">[3]</a></td></tr></tbody></table>');
    assert.equal(html('`[1]` stays code', cite), '<p><code>[1]</code> stays code</p>');
  });

  test('a partial answer (mid-stream) renders', () => {
    assert.equal(html('Some **bol'), '<p>Some **bol</p>');
    assert.equal(html('```\nopen fence'), '<pre><code>open fence</code></pre>');
  });
});

describe('safeHref (URL policy)', () => {
  test('allows http, https, mailto and in-page anchors', () => {
    for (const u of ['http://a.example/', 'https://a.example/x?y=1#z', 'HTTPS://A.EXAMPLE', 'mailto:a@b.example', '#source-1'])
      assert.equal(m.safeHref(u), u, u);
  });
  test('refuses other schemes, however written', () => {
    for (const u of ['javascript:alert(1)', 'JaVaScRiPt:alert(1)', 'data:text/html,<b>', 'vbscript:x', 'file:///etc/passwd', 'blob:https://x/1', 'mailto:'])
      assert.equal(m.safeHref(u), null, u);
  });
  test('refuses control characters and spaces before a scheme', () => {
    for (const u of ['\x01javascript:alert(1)', ' javascript:alert(1)', '\tjavascript:alert(1)', 'java\nscript:alert(1)', 'java\x00script:x', '\u200bjavascript:x', '\ufeffjavascript:x', 'https://a.example/\x7f', 'https://a.example/ x'])
      assert.equal(m.safeHref(u), null, JSON.stringify(u));
  });
  test('refuses protocol-relative, backslash and relative URLs, and http without a host', () => {
    for (const u of ['//evil.example', '//evil.example/x', '/\\evil.example', '\\\\evil.example', '/docs/a', 'docs/a', 'http:evil.example', 'https:/evil.example', 'http://', ''])
      assert.equal(m.safeHref(u), null, JSON.stringify(u));
  });
});

describe('incremental rendering', () => {
  const doc = (n) => {
    let s = '';
    for (let i = 0; i < n; i++)
      s += `## Part ${i}\n\nText of part ${i} [1].\n\n- a ${i}\n- b ${i}\n\n| x | y |\n|---|---|\n| ${i} | z |\n\n\`\`\`\ncode ${i}\n\`\`\`\n\n1. one\n\n2. two (loose)\n\n`;
    return s;
  };

  const flat = (inc) => JSON.stringify([...inc.chunks.flatMap((c) => c.tokens), ...inc.tail].map((t) => [t.type, t.tag, t.content, t.hidden]));

  test('streamed in small steps, the tokens are those of one parse of the whole text', () => {
    const text = doc(6) + 'Last *paragraph* with `code` and [link](https://x.example).';
    const inc = new m.Incremental();
    for (let i = 1; i <= text.length; i += 7) inc.update(text.slice(0, i));
    inc.update(text);
    const fresh = new m.Incremental();
    fresh.update(text);
    assert.equal(flat(inc), flat(fresh));
    assert.ok(inc.chunks.length >= 5, `chunks: ${inc.chunks.length}`);
  });

  test('each update parses only the tail: a long answer costs little per update', () => {
    const text = doc(200);
    const inc = new m.Incremental();
    let maxParsed = 0;
    for (let i = 1; i <= text.length; i += 40) {
      inc.update(text.slice(0, i));
      maxParsed = Math.max(maxParsed, inc.lastParsed);
    }
    assert.ok(text.length > 20000, `${text.length}`);
    assert.ok(maxParsed < 400, `at most one section re-parsed per update, got ${maxParsed} of ${text.length}`);
  });

  test('each update parses again only the tail the previous one left, however much is appended at once', () => {
    // What the page's e2e test asserts from data-md-length and data-md-parsed.
    const text = doc(200);
    for (const step of [40, 997, 6000]) {
      const inc = new m.Incremental();
      let prev = 0;
      let maxAgain = 0;
      for (let i = step; prev < text.length; i += step) {
        const next = Math.min(i, text.length);
        inc.update(text.slice(0, next));
        maxAgain = Math.max(maxAgain, inc.lastParsed - (next - prev));
        prev = next;
      }
      assert.ok(maxAgain < 100, `step ${step}: at most one unfinished block parsed again, got ${maxAgain} of ${text.length}`);
    }
  });

  test('statsOn does not change the markup', () => {
    const statsOn = { current: null };
    const text = 'a\n\nb [1]\n\nc';
    assert.equal(m.renderToStaticMarkup(m.createElement(m.Markdown, { text, statsOn })), withChunks(text));
  });

  test('after any sequence of updates, chunks + tail are the tokens of one parse of the whole text', () => {
    const text = doc(3) + '> end';
    for (let i = 1; i <= text.length; i++) {
      const inc = new m.Incremental();
      // Feed all earlier prefixes, then compare the state with a fresh parse.
      for (let j = Math.max(1, i - 30); j <= i; j++) inc.update(text.slice(0, j));
      const fresh = new m.Incremental();
      fresh.update(text.slice(0, i));
      assert.equal(flat(inc), flat(fresh), `prefix ${i}`);
    }
  });
});

describe('foldRun', () => {
  const base = { requestId: 'r1', isFinal: false };
  const plan = (s) => ({ ...base, messageType: 'plan', plan: { title: 'T', steps: ['a', 'b'], stepStatus: s } });

  test('plan progress, answer deltas, final result and docs', () => {
    const docs = [{ index: 1, title: 'Doc', path: 'd.md', content: 'c' }];
    const v = m.foldRun([
      { ...base, messageType: 'status', status: 'planning', message: 'Planning...', sequence: 1 },
      { ...plan(['in_progress', 'not_started']), sequence: 2 },
      { ...base, messageType: 'tool_result', messageId: 't1', sequence: 3,
        toolResult: { toolName: 'deepsearch', toolParam: { query: 'q' }, toolResult: 'r' }, searchResult: { docs } },
      { ...plan(['completed', 'completed']), sequence: 4 },
      { ...base, messageType: 'agent_stream', messageId: 'answer', result: 'Hello ', sequence: 5 },
      { ...base, messageType: 'agent_stream', messageId: 'answer', result: 'world [1].', sequence: 7, coalesced: [6, 7] },
      { ...base, messageType: 'result', isFinal: true, result: 'Hello world [1].', resultMap: { docs }, sequence: 8 },
    ]);
    assert.equal(v.plan.stepStatus.join(), 'completed,completed');
    assert.equal(v.tools.length, 1);
    assert.equal(v.streamed, 'Hello world [1].');
    assert.equal(v.answer, 'Hello world [1].');
    assert.equal(v.streamMismatch, false);
    assert.deepEqual(v.outcome, { kind: 'result' });
    assert.equal(v.docs[0].title, 'Doc');
    assert.equal(v.lastSequence, 8);
  });

  test('a repeated event is not applied twice; a difference from the final answer is flagged', () => {
    const d = (result, sequence) => ({ ...base, messageType: 'agent_stream', messageId: 'answer', result, sequence });
    const v = m.foldRun([d('a', 1), d('b', 2), d('b', 2), { ...base, messageType: 'result', result: 'abc', sequence: 3 }]);
    assert.equal(v.streamed, 'ab');
    assert.equal(v.answer, 'abc');
    assert.equal(v.streamMismatch, true);
  });

  test('cancelled and error outcomes', () => {
    assert.deepEqual(m.foldRun([{ messageType: 'cancelled', reason: 'user' }]).outcome, { kind: 'cancelled', reason: 'user' });
    assert.deepEqual(m.foldRun([{ ...base, messageType: 'error', message: 'boom', sequence: 1 }]).outcome, { kind: 'error', message: 'boom' });
  });

  test('run ids in the location hash', () => {
    assert.equal(m.runIdFromHash('#/runs/req_1-a.b:c'), 'req_1-a.b:c');
    assert.equal(m.runIdFromHash('#/runs/'), undefined);
    assert.equal(m.runIdFromHash('#/runs/a/b'), undefined);
    assert.equal(m.runIdFromHash('#/'), undefined);
  });
});
