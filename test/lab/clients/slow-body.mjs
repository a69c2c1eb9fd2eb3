// Scenario f: GET a slow chunked body; the lab runner SIGKILLs the server
// part-way through. Node's http with the default global agent.
//
//   node slow-body.mjs --base http://127.0.0.1:8006 [--target /slow?chunks=40&interval=0.25]
import { log, track } from './instrument.mjs';
import http from 'node:http';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    base: { type: 'string', default: 'http://127.0.0.1:8006' },
    target: { type: 'string', default: '/slow?chunks=40&interval=0.25' },
  },
});
log({ event: 'client-start', script: 'slow-body.mjs', node: process.version, opts });

await track('http', 'GET', opts.target, () => new Promise((resolve, reject) => {
  const req = http.get(opts.base + opts.target, (res) => {
    let bytes = 0;
    res.on('data', (d) => { bytes += d.length; });
    res.on('end', () => { log({ event: 'body', bytes, complete: res.complete }); resolve({ status: res.statusCode }); });
    res.on('error', (e) => { log({ event: 'body', bytes, complete: res.complete }); reject(e); });
  });
  req.on('error', reject);
}));
setTimeout(() => { log({ event: 'client-exit' }); process.exit(0); }, 300);
