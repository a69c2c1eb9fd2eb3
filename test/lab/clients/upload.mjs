// Scenario i: a large upload (POST /upload, ~45 MB) then POST /exec on the
// same pooled socket (Node's http with the default global agent for both).
// Each request head is short and flushed on its own (flushHeaders) before the
// body, so with the capture's 200-byte snaplen every head is whole in the
// capture while the bodies are cut.
//
//   node upload.mjs --base http://127.0.0.1:8011 [--bytes 47185920] [--seconds 2]
import { log, track } from './instrument.mjs';
import http from 'node:http';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    base: { type: 'string', default: 'http://127.0.0.1:8011' },
    bytes: { type: 'string', default: String(45 * 1024 * 1024) },
    seconds: { type: 'string', default: '2' },
  },
});
log({ event: 'client-start', script: 'upload.mjs', node: process.version, opts });
const size = Number(opts.bytes);
const body = Buffer.alloc(size, 0x61);

/** POST with only Content-Length (and Node's Host, Connection): the head stays under ~110 bytes. */
function post(target, payload) {
  return new Promise((resolve, reject) => {
    const req = http.request(opts.base + target, { method: 'POST', headers: { 'Content-Length': payload.length } }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, body: text }));
    });
    req.on('error', reject);
    req.flushHeaders();
    setImmediate(() => req.end(payload));
  });
}

await track('http', 'POST', '/upload', () => post('/upload', body), { bytes: size });
await track('http', 'POST', '/exec', () => post('/exec', Buffer.from(JSON.stringify({ seconds: Number(opts.seconds) }))));
setTimeout(() => { log({ event: 'client-exit' }); process.exit(0); }, 300);
