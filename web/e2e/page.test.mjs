// End-to-end: the built page (web/app/dist) in Debian's Chromium against a
// real `sluice serve`, directly and through a TCP proxy that cuts connections.
// Run: node --test web/e2e/  (SLUICE_BIN=path/to/sluice, default build/sluice)
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  artifactsDir, ensureArtifactsDir, getJson, launchBrowser, repoRoot, startCutProxy, startSluice, waitFor,
} from './harness.mjs';

const QUESTION = 'How does Sluice resume a stream?';
const RUN_MS = 90_000; // the longest any run may take to finish here

const binary = process.env.SLUICE_BIN || path.join(repoRoot, 'build', 'sluice');
const webRoot = process.env.SLUICE_WEB_ROOT || path.join(repoRoot, 'web', 'app', 'dist');

let server;
let browser;
let reference; // the answer's text of an uninterrupted run of QUESTION

const answer = (page) => page.getByTestId('answer');

async function ask(page, question = QUESTION, agentType = 'plan_solve') {
  await page.getByTestId('question-input').fill(question);
  await page.getByTestId('agent-select').selectOption(agentType);
  await page.getByTestId('ask-button').click();
  // The page gives the run its address once it has started it.
  await page.waitForFunction(() => /^#\/runs\/.+/.test(location.hash), null, { timeout: RUN_MS });
  return decodeURIComponent(await page.evaluate(() => location.hash.slice('#/runs/'.length)));
}

/** Waits until some answer text has arrived and the run is not finished. */
async function waitMidAnswer(page) {
  await page.waitForFunction(
    () => {
      const a = document.querySelector('[data-testid="answer"]');
      return a && a.getAttribute('data-final') === 'false' && a.textContent.trim().length > 0;
    },
    null,
    { timeout: RUN_MS },
  );
}

async function waitFinished(page) {
  await page.waitForFunction(
    () => document.querySelector('[data-testid="answer"]')?.getAttribute('data-final') === 'true',
    null,
    { timeout: RUN_MS },
  );
  assert.equal(await answer(page).getAttribute('data-stream-mismatch'), 'false', 'streamed deltas equal the final answer');
  return (await answer(page).textContent()).trim();
}

async function streamState(base, id) {
  return (await getJson(`${base}/v1/streams/${encodeURIComponent(id)}`)).body?.state;
}

describe('web page', () => {
  before(async () => {
    ensureArtifactsDir();
    // 60 ms between answer deltas: a run lasts a few seconds, time enough to act mid-answer.
    server = await startSluice({ binary, webRoot, deltaMs: 60 });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('serves the page with its content types', async () => {
    const res = await fetch(`${server.url}/`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/html/);
    const html = await res.text();
    const js = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    assert.ok(js, 'index.html references a script');
    const jsRes = await fetch(`${server.url}${js}`);
    assert.equal(jsRes.status, 200);
    assert.match(jsRes.headers.get('content-type'), /javascript/);
  });

  test('asks a question and streams the plan and a cited answer', async () => {
    const page = await browser.context.newPage();
    try {
      await page.goto(`${server.url}/`);
      const id = await ask(page);
      await page.getByTestId('plan').waitFor({ timeout: RUN_MS });
      await waitMidAnswer(page);
      await page.screenshot({ path: path.join(artifactsDir, 'mid-run.png') });
      reference = await waitFinished(page);

      assert.ok(reference.length > 40, `an answer: ${reference}`);
      await assert.doesNotReject(page.getByTestId('status-line').filter({ hasText: 'Done' }).waitFor({ timeout: 5_000 }));
      assert.equal(await page.getByTestId('question').textContent(), QUESTION);
      const steps = await page.getByTestId('plan-step').evaluateAll((els) => els.map((e) => e.dataset.status));
      assert.ok(steps.length >= 1);
      assert.deepEqual(steps, steps.map(() => 'completed'));
      assert.equal((await page.getByTestId('plan-progress').textContent()).trim(), `${steps.length} / ${steps.length} steps`);

      // Citations link to sources that exist in the sources panel.
      const cited = await page.getByTestId('citation').evaluateAll((els) => els.map((e) => e.dataset.source));
      assert.ok(cited.length > 0, 'the answer cites its sources');
      const sources = await page.getByTestId('source').evaluateAll((els) => els.map((e) => e.dataset.source));
      for (const n of cited) assert.ok(sources.includes(n), `citation [${n}] has a source`);
      await page.getByTestId('citation').first().click();
      await page.locator(`#source-${cited[0]}.highlight`).waitFor({ timeout: 5_000 });

      // Tool results are collapsible.
      const tool = page.getByTestId('tool-result').first();
      assert.equal(await tool.evaluate((d) => d.open), false);
      await tool.locator('summary').click();
      assert.equal(await tool.evaluate((d) => d.open), true);

      assert.match(await page.getByTestId('run-link').getAttribute('href'), new RegExp(`#/runs/${id}$`));
      await page.getByTestId('runs-list').locator(`[data-run-id="${id}"]`).waitFor({ timeout: 5_000 });
      assert.equal(await streamState(server.url, id), 'finished');
      await page.screenshot({ path: path.join(artifactsDir, 'finished.png') });
    } finally {
      await page.close();
    }
  });

  test('resumes after the server side cuts the connection mid-answer', async () => {
    assert.ok(reference, 'needs the uninterrupted run');
    const proxy = await startCutProxy(server.port);
    const page = await browser.context.newPage();
    try {
      await page.goto(`${proxy.url}/`);
      const id = await ask(page);
      await waitMidAnswer(page);
      await page.locator('[data-testid="connection"][data-state="connected"]').waitFor({ timeout: RUN_MS });
      assert.match(await page.getByTestId('latency').textContent(), /^\d+ ms$/);
      await page.evaluate(() => (window.__sluiceConnectionLog = []));
      const cut = proxy.cut({ hold: true });
      assert.ok(cut >= 1, 'a live connection was cut');
      await page.locator('[data-testid="connection"][data-state="reconnecting"]').waitFor({ timeout: 30_000 });
      assert.equal(await answer(page).getAttribute('data-final'), 'false', 'cut before the end of the answer');
      proxy.release();
      const text = await waitFinished(page);
      const log = await page.evaluate(() => window.__sluiceConnectionLog);
      const r = log.indexOf('reconnecting');
      assert.ok(r >= 0 && log.indexOf('connected', r) > r, `reconnecting then connected: ${log.join(' → ')}`);
      assert.equal(text, reference, 'the resumed answer is the uninterrupted one');
      assert.equal(await streamState(server.url, id), 'finished');
    } finally {
      await page.close();
      await proxy.close();
    }
  });

  test('Stop cancels the run on the server', async () => {
    const page = await browser.context.newPage();
    try {
      await page.goto(`${server.url}/`);
      const id = await ask(page);
      await waitMidAnswer(page);
      await page.getByTestId('stop-button').click();
      await page.getByTestId('status-line').filter({ hasText: 'Cancelled' }).waitFor({ timeout: RUN_MS });
      assert.equal(await page.getByTestId('run').getAttribute('data-outcome'), 'cancelled');
      assert.equal(await streamState(server.url, id), 'cancelled');
      assert.equal(await page.getByTestId('stop-button').count(), 0);
    } finally {
      await page.close();
    }
  });

  test('the run link opens the same run in a second page, live and finished', async () => {
    const page = await browser.context.newPage();
    const second = await browser.context.newPage();
    try {
      await page.goto(`${server.url}/`);
      const id = await ask(page);
      await waitMidAnswer(page);
      const href = await page.getByTestId('run-link').getAttribute('href');
      assert.equal(href, `${server.url}/#/runs/${id}`);
      await second.goto(href);
      await second.getByTestId('plan').waitFor({ timeout: RUN_MS });
      assert.equal(await second.getByTestId('run').getAttribute('data-run-id'), id);
      const [a, b] = await Promise.all([waitFinished(page), waitFinished(second)]);
      assert.equal(a, reference);
      assert.equal(b, reference);
      assert.equal(await second.getByTestId('question').textContent(), QUESTION);

      // A finished run opens from the start too.
      const third = await browser.context.newPage();
      try {
        await third.goto(href);
        assert.equal(await waitFinished(third), reference);
        assert.ok((await third.getByTestId('citation').count()) > 0);
      } finally {
        await third.close();
      }
    } finally {
      await page.close();
      await second.close();
    }
  });

  test('a reload mid-run resumes and completes; the runs list survives it', async () => {
    const page = await browser.context.newPage();
    try {
      await page.goto(`${server.url}/`);
      const id = await ask(page);
      await waitMidAnswer(page);
      await page.reload();
      assert.equal(await page.evaluate(() => location.hash), `#/runs/${id}`);
      assert.equal(await waitFinished(page), reference);
      await page.getByTestId('runs-list').locator(`[data-run-id="${id}"]`).waitFor({ timeout: 5_000 });
      assert.equal(await streamState(server.url, id), 'finished');
    } finally {
      await page.close();
    }
  });

  test('deepsearch streams an answer; react without a model shows the server error', async () => {
    const page = await browser.context.newPage();
    try {
      await page.goto(`${server.url}/`);
      await ask(page, 'What happens to a slow reader?', 'deepsearch');
      const text = await waitFinished(page);
      assert.ok(text.length > 0);
      await page.getByTestId('new-run').click();
      await page.getByTestId('welcome').waitFor({ timeout: 5_000 });
      assert.equal(await page.getByTestId('run').count(), 0);
      await page.getByTestId('question-input').fill('Anything');
      await page.getByTestId('agent-select').selectOption('react');
      await page.getByTestId('ask-button').click();
      await page.getByTestId('error').waitFor({ timeout: RUN_MS });
      assert.match(await page.getByTestId('error').textContent(), /needs a model/);
    } finally {
      await page.close();
    }
  });
});
