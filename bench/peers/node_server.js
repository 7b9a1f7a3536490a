// Node.js peer for the Sluice benchmark: only the built-in `http` module.
// Same endpoints and bytes as `sluice serve --enable-bench` for the workloads:
//   POST /v1/bench/tokens {"tokens":T,"bytes":B,"rate":R}  SSE, T events
//        rate > 0: a timer per stream (setTimeout to the next due time);
//        rate 0: write until res.write() returns false, continue on 'drain'.
//   GET  /v1/streams/<id>/events  subscribe;  POST the same path: publish
//   GET  /healthz
// Usage: node bench/peers/node_server.js PORT
'use strict';
const http = require('http');
const port = Number(process.argv[2] || 8080);
const channels = new Map();  // id -> {subs: Set<res>, seq}

const sseHead = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  'Cache-Control': 'no-cache',
};

function event(n, ts, text) {
  return `id: ${n}\ndata: {"seq":${n},"ts":${ts},"t":"${text}"}\n\n`;
}
// Date.now() is millisecond-grained; performance.timeOrigin + now() gives µs.
const realtimeUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);

function tokens(req, res, body) {
  let o;
  try { o = JSON.parse(body); } catch (e) { res.writeHead(400); res.end(); return; }
  const T = o.tokens || 100, B = o.bytes || 0, R = o.rate || 0;
  let text = '';
  for (let i = 0; i < B; ++i) text += String.fromCharCode(97 + i % 26);
  res.writeHead(200, sseHead);
  res.socket.setNoDelay(true);
  let next = 1;
  let closed = false;
  res.on('close', () => { closed = true; });
  if (R > 0) {
    const start = performance.now();
    const step = () => {
      if (closed) return;
      res.write(event(next, realtimeUs(), text));
      if (next === T) { res.end(); return; }
      ++next;
      const due = start + (next - 1) * 1000 / R;
      setTimeout(step, Math.max(0, due - performance.now()));
    };
    step();
  } else {
    const pump = () => {
      while (!closed && next <= T) {
        let chunk = '';
        const ts = realtimeUs();
        while (chunk.length < 65536 && next <= T) chunk += event(next++, ts, text);
        if (next > T) { res.end(chunk); return; }
        if (!res.write(chunk)) { res.once('drain', pump); return; }
      }
    };
    pump();
  }
}

const server = http.createServer((req, res) => {
  const url = req.url;
  if (url === '/healthz') { res.writeHead(200, {'Content-Length': 11}); res.end('{"ok":true}'); return; }
  const m = /^\/v1\/streams\/([^/]+)\/events$/.exec(url);
  let body = '';
  req.on('data', (d) => { body += d; });
  req.on('end', () => {
    if (req.method === 'POST' && url === '/v1/bench/tokens') return tokens(req, res, body);
    if (m && req.method === 'GET') {
      let ch = channels.get(m[1]);
      if (!ch) channels.set(m[1], ch = {subs: new Set(), seq: 0});
      res.writeHead(200, sseHead);
      res.socket.setNoDelay(true);
      res.flushHeaders();
      ch.subs.add(res);
      res.on('close', () => ch.subs.delete(res));
      return;
    }
    if (m && req.method === 'POST') {
      let ch = channels.get(m[1]);
      if (!ch) channels.set(m[1], ch = {subs: new Set(), seq: 0});
      const seq = ++ch.seq;
      const ev = `id: ${seq}\ndata: ${body}\n\n`;
      for (const s of ch.subs) s.write(ev);
      const reply = `{"sequence":${seq}}`;
      res.writeHead(200, {'Content-Type': 'application/json', 'Content-Length': reply.length});
      res.end(reply);
      return;
    }
    res.writeHead(404); res.end();
  });
});
server.keepAliveTimeout = 60000;
server.listen(port, '127.0.0.1');
