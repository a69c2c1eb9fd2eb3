// The incident's client side (test support for watch.test.ts): axios 1.8.4 GET /files/abc?detail=summary
// with `timeout: 5000`, then node-fetch 2 POST /exec without a timeout, both on Node's default global
// agent (keep-alive since Node 19), so the POST reuses the GET's socket and dies with "socket hang up"
// when the idle timer axios left on the socket fires 5 s later.
// Logs one JSON line per event on stdout, with its own clock (seconds since the epoch, microseconds):
// request-start, request-socket (localPort, reused), request-finish (last request byte handed to the
// socket), response-end, socket-close, request-error, done.
import http from 'node:http';
import axios from 'axios';
import fetch from 'node-fetch';

const base = process.argv[2];
const now = () => Number(((performance.timeOrigin + performance.now()) / 1000).toFixed(6));
const log = (o) => process.stdout.write(`${JSON.stringify({ ts: now(), ...o })}\n`);

// Watch each request's socket: both libraries call http.request on this same module object.
const origRequest = http.request;
const seen = new WeakSet();
http.request = function (...args) {
  const req = origRequest.apply(this, args);
  const label = `${req.method} ${req.path}`;
  req.on('socket', (s) => {
    const report = () => log({ event: 'request-socket', request: label, localPort: s.localPort, reused: req.reusedSocket });
    if (s.localPort !== undefined && !s.connecting) report();
    else s.once('connect', report);
    if (!seen.has(s)) {
      seen.add(s);
      s.on('close', () => log({ event: 'socket-close', localPort: s.localPort ?? s._hsPort ?? null }));
      s.once('connect', () => (s._hsPort = s.localPort));
    }
  });
  req.on('finish', () => log({ event: 'request-finish', request: label }));
  return req;
};

log({ event: 'client-start', node: process.version, keepAlive: http.globalAgent.keepAlive });
try {
  log({ event: 'request-start', client: 'axios', request: 'GET /files/abc?detail=summary' });
  const r = await axios.get(`${base}/files/abc?detail=summary`, { timeout: 5000 });
  log({ event: 'response-end', client: 'axios', status: r.status });
} catch (e) {
  log({ event: 'request-error', client: 'axios', error: e.message, code: e.code ?? null });
}
try {
  log({ event: 'request-start', client: 'node-fetch', request: 'POST /exec' });
  const r = await fetch(`${base}/exec`, { method: 'POST', body: JSON.stringify({ cmd: 'report' }), headers: { 'content-type': 'application/json' } });
  await r.text();
  log({ event: 'response-end', client: 'node-fetch', status: r.status });
} catch (e) {
  log({ event: 'request-error', client: 'node-fetch', error: e.message, code: e.code ?? null });
}
log({ event: 'done' });
