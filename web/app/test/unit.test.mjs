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
        export { Markdown } from './src/markdown.tsx';
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

const html = (text, renderCitation) =>
  m.renderToStaticMarkup(m.createElement(m.Markdown, { text, renderCitation }));

describe('Markdown', () => {
  test('renders blocks and inline styles', () => {
    assert.equal(
      html('# Title\n\nSome **bold**, *em* and `code`.\n\n- one\n- two\n\n1. first\n2. second\n\n```js\nlet a = 1 < 2;\n```'),
      '<h3>Title</h3><p>Some <strong>bold</strong>, <em>em</em> and <code>code</code>.</p>' +
        '<ul><li>one</li><li>two</li></ul><ol start="1"><li>first</li><li>second</li></ol>' +
        '<pre data-lang="js"><code>let a = 1 &lt; 2;</code></pre>',
    );
  });

  test('never turns text into markup', () => {
    const out = html('<script>alert(1)</script> <img src=x onerror=alert(1)> [x](javascript:alert(1)) [y](data:text/html,hi)');
    assert.ok(!out.includes('<script') && !out.includes('<img'), out);
    assert.ok(out.includes('&lt;script&gt;'), out);
    assert.ok(!/href="(javascript|data):/i.test(out), out);
  });

  test('keeps safe links, opened without opener', () => {
    assert.equal(
      html('See [the docs](https://example.org/a).'),
      '<p>See <a href="https://example.org/a" target="_blank" rel="noopener noreferrer">the docs</a>.</p>',
    );
  });

  test('citations go through renderCitation; without it they stay text', () => {
    const cite = (n, key) => m.createElement('a', { key, href: `#source-${n}` }, `[${n}]`);
    assert.equal(html('A [1] and B [12].', cite), '<p>A <a href="#source-1">[1]</a> and B <a href="#source-12">[12]</a>.</p>');
    assert.equal(html('A [1].'), '<p>A [1].</p>');
  });

  test('a partial answer (mid-stream) renders', () => {
    assert.equal(html('Some **bol'), '<p>Some **bol</p>');
    assert.equal(html('```\nopen fence'), '<pre><code>open fence</code></pre>');
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
