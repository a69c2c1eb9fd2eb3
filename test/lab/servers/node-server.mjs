// Node http server for hangscope's repro lab: the same endpoints as app.py
// (FastAPI), for scenarios that want a Node server (g: CLOSE-WAIT, h: stale
// pooled connection inside network namespaces).
//
//   node node-server.mjs --port 8007 [--host 127.0.0.1] [--keep-alive-timeout 5000]
//
// Logs one JSON object per line to stdout; `ts` is wall-clock seconds since the
// epoch with 6 decimals (performance.timeOrigin + performance.now()), the same
// realtime clock tcpdump stamps packets with.
import http from 'node:http';
import { writeSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    port: { type: 'string', default: '8000' },
    host: { type: 'string', default: '127.0.0.1' },
    'keep-alive-timeout': { type: 'string', default: '5000' },
  },
});

const now = () => Number(((performance.timeOrigin + performance.now()) / 1000).toFixed(6));
function log(fields) {
  writeSync(1, JSON.stringify({ ts: now(), logger: 'node-server', ...fields }) + '\n');
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function sendJson(req, res, status, body, extraHeaders = {}) {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data), ...extraHeaders });
  res.end(data);
  log({ event: 'response', clientPort: req.socket.remotePort, method: req.method, target: req.url, status });
}

async function readBody(req) {
  let n = 0;
  const chunks = [];
  for await (const c of req) {
    n += c.length;
    if (n <= 65536) chunks.push(c);
  }
  return { bytes: n, text: Buffer.concat(chunks).toString('utf8') };
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://lab');
  const clientPort = req.socket.remotePort;
  log({ event: 'request', clientPort, method: req.method, target: req.url });
  try {
    if (req.method === 'GET' && url.pathname.startsWith('/files/')) {
      const id = url.pathname.slice('/files/'.length);
      if (id === 'missing') return sendJson(req, res, 404, { error: 'not found', id });
      return sendJson(req, res, 200, { id, name: `${id}.bin`, size: 4096, detail: url.searchParams.get('detail') ?? 'full' });
    }
    if (req.method === 'POST' && url.pathname === '/exec') {
      const body = await readBody(req);
      let seconds = Number(url.searchParams.get('seconds') ?? NaN);
      if (Number.isNaN(seconds)) {
        try { seconds = Number(JSON.parse(body.text).seconds ?? 8); } catch { seconds = 8; }
      }
      log({ event: 'exec-start', clientPort, seconds });
      let gone = false;
      // 'close' on the request socket before we answer = the client went away.
      const onClose = () => { gone = true; log({ event: 'client-gone', clientPort }); };
      req.socket.once('close', onClose);
      await sleep(seconds * 1000);
      req.socket.off('close', onClose);
      log({ event: 'exec-done', clientPort, seconds, clientGone: gone || req.socket.destroyed, responseWritten: !(gone || req.socket.destroyed) });
      if (gone || req.socket.destroyed) return;
      return sendJson(req, res, 200, { ok: true, seconds });
    }
    if (req.method === 'GET' && url.pathname === '/slow') {
      const chunks = Number(url.searchParams.get('chunks') ?? 20);
      const interval = Number(url.searchParams.get('interval') ?? 0.5);
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      for (let i = 0; i < chunks && !res.destroyed; i++) {
        log({ event: 'slow-chunk', clientPort, index: i });
        res.write(`chunk ${String(i).padStart(4, '0')} ${'x'.repeat(48)}\n`);
        await sleep(interval * 1000);
      }
      res.end();
      log({ event: 'slow-done', clientPort });
      return;
    }
    sendJson(req, res, 404, { error: 'no route' });
  } catch (err) {
    log({ event: 'handler-error', clientPort, error: String(err) });
    if (!res.headersSent) sendJson(req, res, 500, { error: 'internal' });
  }
});

server.keepAliveTimeout = Number(opts['keep-alive-timeout']);
server.on('connection', (socket) => {
  const clientPort = socket.remotePort;
  log({ event: 'connection-made', clientPort });
  socket.on('end', () => log({ event: 'peer-fin', clientPort }));
  socket.on('close', (hadError) => log({ event: 'connection-lost', clientPort, hadError }));
});
server.on('clientError', (err, socket) => {
  log({ event: 'client-error', clientPort: socket.remotePort, error: err.message, code: err.code });
  socket.destroy();
});

server.listen(Number(opts.port), opts.host, () => {
  log({ event: 'listening', host: opts.host, port: Number(opts.port), keepAliveTimeout: server.keepAliveTimeout });
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    log({ event: 'shutdown', signal: sig });
    server.closeAllConnections?.();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 500).unref();
  });
}
