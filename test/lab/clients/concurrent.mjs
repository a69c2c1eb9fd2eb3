// Scenario j: concurrent requests over several sockets. Four POST /exec in
// parallel through one http.Agent({keepAlive: true, maxSockets: 4}) with a
// 5 s request timeout (the one that takes 7 s is aborted by the client), then
// GET /files requests that reuse the pooled sockets (one of them a 404).
//
//   node concurrent.mjs --base http://127.0.0.1:8012 [--seconds 1,2,3,7]
import { log, track } from './instrument.mjs';
import http from 'node:http';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    base: { type: 'string', default: 'http://127.0.0.1:8012' },
    seconds: { type: 'string', default: '1,2,3,7' },
    'timeout-ms': { type: 'string', default: '5000' },
  },
});
const timeoutMs = Number(opts['timeout-ms']);
log({ event: 'client-start', script: 'concurrent.mjs', node: process.version, opts });
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

function request(method, target, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(opts.base + target, {
      agent, method, timeout: timeoutMs,
      headers: body ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) } : {},
    }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode }));
    });
    req.on('timeout', () => {
      const err = new Error(`client timeout: no response within ${timeoutMs} ms`);
      err.code = 'ETIMEDOUT';
      req.destroy(err);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const secs = opts.seconds.split(',').map(Number);
// Distinct query strings so each request is identifiable on the wire.
await Promise.all(secs.map((s, k) =>
  track('http', 'POST', `/exec?seconds=${s}&n=${k}`, () => request('POST', `/exec?seconds=${s}&n=${k}`, JSON.stringify({ seconds: s })))));
for (const id of ['abc', 'missing', 'def']) {
  const t = `/files/${id}?detail=summary`;
  await track('http', 'GET', t, () => request('GET', t));
}
agent.destroy();
setTimeout(() => { log({ event: 'client-exit' }); process.exit(0); }, 300);
