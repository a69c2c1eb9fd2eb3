// Scenario h: a stale pooled connection. GET once with a keep-alive agent,
// stay idle (the lab runner makes the "middlebox" in the server's namespace
// drop the flow meanwhile), then GET again on the same pooled socket: only
// retransmissions, then our own timeout.
//
//   node stale-pool.mjs --base http://10.200.0.1:8008 [--idle-ms 2500] [--timeout-ms 8000]
import { log, track } from './instrument.mjs';
import http from 'node:http';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    base: { type: 'string', default: 'http://10.200.0.1:8008' },
    'idle-ms': { type: 'string', default: '2500' },
    'timeout-ms': { type: 'string', default: '8000' },
  },
});
const timeoutMs = Number(opts['timeout-ms']);
log({ event: 'client-start', script: 'stale-pool.mjs', node: process.version, opts });
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function get(target) {
  return new Promise((resolve, reject) => {
    const req = http.request(opts.base + target, { agent, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, localPort: req.socket?.localPort }));
    });
    req.on('timeout', () => {
      const err = new Error(`client timeout: no response within ${timeoutMs} ms`);
      err.code = 'ETIMEDOUT';
      req.destroy(err);
    });
    req.on('error', reject);
    req.end();
  });
}

const { result } = await track('http', 'GET', '/files/abc?detail=summary', () => get('/files/abc?detail=summary'));
log({ event: 'idle-begin', localPort: result?.localPort ?? null, idleMs: Number(opts['idle-ms']) });
await new Promise((r) => setTimeout(r, Number(opts['idle-ms'])));
await track('http', 'GET', '/files/def?detail=summary', () => get('/files/def?detail=summary'));
setTimeout(() => { log({ event: 'client-exit' }); process.exit(0); }, 300);
