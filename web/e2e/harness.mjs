// What the end-to-end tests run against: the real sluice binary, a TCP proxy
// that can cut every live connection, and Debian's Chromium through
// playwright-core. Every wait is on a condition with a deadline.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const artifactsDir = path.join(repoRoot, 'build', 'web-e2e');

/** Resolves when `cond()` is truthy (returns its value); rejects after `ms`. */
export async function waitFor(cond, { ms = 30_000, what = 'condition', everyMs = 25 } = {}) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Starts `sluice serve` on a free port (--port 0; the port is read from its
 * log) with its own index file, so parallel servers never share state.
 */
export async function startSluice({ binary, webRoot, deltaMs = 40, extraArgs = [] }) {
  if (!existsSync(binary)) throw new Error(`no sluice binary at ${binary} (make build)`);
  if (!existsSync(path.join(webRoot, 'index.html'))) throw new Error(`no built page at ${webRoot} (make run builds it)`);
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'sluice-e2e-'));
  const args = [
    'serve', '--host', '127.0.0.1', '--port', '0', '--threads', '2',
    '--web-root', webRoot,
    '--corpus', path.join(repoRoot, 'docs'), '--index', path.join(tmp, 'docs.db'),
    '--builtin-delta-ms', String(deltaMs),
    ...extraArgs,
  ];
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const onData = (b) => {
    log += b.toString();
    if (log.length > 200_000) log = log.slice(-100_000);
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  let exited = null;
  child.on('exit', (code, signal) => (exited = { code, signal }));
  const port = await waitFor(
    () => {
      if (exited) throw new Error(`sluice exited (${JSON.stringify(exited)}) before listening:\n${log}`);
      const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(log);
      return m && Number(m[1]);
    },
    { ms: 60_000, what: 'sluice to listen' },
  );
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    log: () => log,
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        await waitFor(() => exited, { ms: 15_000, what: 'sluice to exit' }).catch(() => child.kill('SIGKILL'));
      }
      rmSync(tmp, { recursive: true, force: true });
    },
  };
}

/**
 * A TCP proxy in front of the server. `cut({ hold: true })` closes every live
 * connection (both sides) and holds new ones, unconnected, until `release()`,
 * so a test can observe the page while it cannot reach the server.
 */
export async function startCutProxy(targetPort) {
  const pairs = new Set();
  let held = null;
  let connections = 0;
  const connect = (client) => {
    connections++;
    const upstream = net.connect(targetPort, '127.0.0.1');
    const pair = { client, upstream };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
    client.resume();
  };
  const server = net.createServer({ pauseOnConnect: true }, (client) => {
    if (held) {
      client.on('error', () => {});
      held.push(client);
    } else connect(client);
  });
  await new Promise((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    /** Connections accepted and forwarded so far. */
    get connections() {
      return connections;
    },
    get live() {
      return pairs.size;
    },
    /** Cuts every live connection; returns how many were cut. */
    cut({ hold = false } = {}) {
      if (hold && !held) held = [];
      const n = pairs.size;
      for (const p of [...pairs]) {
        pairs.delete(p);
        p.client.destroy();
        p.upstream.destroy();
      }
      return n;
    },
    /** Forwards the held connections and every later one. */
    release() {
      const h = held ?? [];
      held = null;
      for (const c of h) if (!c.destroyed) connect(c);
    },
    async close() {
      this.cut();
      for (const c of held ?? []) c.destroy();
      held = null;
      await new Promise((r) => server.close(r));
    },
  };
}

/** Debian's Chromium, headless, with a fresh profile (never a downloaded browser). */
export async function launchBrowser() {
  const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
  if (!existsSync(executablePath)) throw new Error(`no Chromium at ${executablePath} (apt-get install chromium)`);
  const userDataDir = mkdtempSync(path.join(os.tmpdir(), 'sluice-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

export function ensureArtifactsDir() {
  mkdirSync(artifactsDir, { recursive: true });
  return artifactsDir;
}

export async function getJson(url, init) {
  const res = await fetch(url, init);
  return { status: res.status, body: res.status === 204 ? null : await res.json() };
}
