// Scenario m: the keep-alive race's RST shape. uvicorn closes an idle
// keep-alive connection 5 s after its last response; here its event loop is
// held by blocking work in an async handler (GET /block: time.sleep in slices,
// yielding between them) at the moment that timer falls due. The timer then
// runs only at the end of a slice, late, and a request that arrived on the
// idle socket during that slice is still unread when uvicorn closes the
// socket: the kernel sends RST instead of FIN, the client gets ECONNRESET.
//
// Per attempt (one after another: the blocking holds the whole server):
//   1. GET /files/late<k>?detail=summary on its own http.Agent({keepAlive: true});
//   2. 4.9 s after that response ended, GET /block (20 ms slices) on another agent;
//   3. 5 s + delay[k] after it, the same GET /files/late<k>b?... on the pooled socket.
//
//   node late-keepalive.mjs --base http://127.0.0.1:8015 --delays 0.006,0.012,0.018 [--slices 25] [--slice-ms 20]
import { getThrough, log, track } from './instrument.mjs';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    base: { type: 'string', default: 'http://127.0.0.1:8015' },
    delays: { type: 'string', default: '0.006,0.012,0.018,0.024,0.030' },
    slices: { type: 'string', default: '25' },
    'slice-ms': { type: 'string', default: '20' },
  },
});
const delays = opts.delays.split(',').map(Number);
const slices = Number(opts.slices);
const sliceMs = Number(opts['slice-ms']);
log({ event: 'client-start', script: 'late-keepalive.mjs', node: process.version, delays, slices, sliceMs });

const get = (agent, target) => getThrough(opts.base, agent, target);

const results = [];
for (let k = 0; k < delays.length; k++) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const blocker = new http.Agent({ keepAlive: false });
  const first = `/files/late${k}?detail=summary`;
  const { result } = await track('http', 'GET', first, () => get(agent, first), { attempt: k });
  if (!result) {
    results.push({ attempt: k, delay: delays[k], outcome: 'first-request-failed' });
    continue;
  }
  const firstPort = result.req.socket?.localPort ?? null;
  const block = `/block?slices=${slices}&ms=${sliceMs}`;
  const blockDone = new Promise((r) => setTimeout(r, Math.max(0, result.endedAt + 4900 - performance.now()))).then(() =>
    track('http', 'GET', block, () => get(blocker, block), { attempt: k, role: 'blocker' }),
  );
  await new Promise((r) => setTimeout(r, Math.max(0, result.endedAt + 5000 + delays[k] * 1000 - performance.now())));
  const again = `/files/late${k}b?detail=summary`;
  const { summary } = await track('http', 'GET', again, () => get(agent, again), { attempt: k });
  await blockDone;
  agent.destroy();
  blocker.destroy();
  const reused = summary.localPort === firstPort;
  const outcome = reused ? (summary.error != null ? 'reset' : 'reused-ok') : summary.error != null ? 'new-connection-failed' : 'new-connection';
  const r = { attempt: k, delay: delays[k], firstLocalPort: firstPort, secondLocalPort: summary.localPort, outcome, error: summary.error, errorCode: summary.errorCode };
  log({ event: 'late-attempt', ...r });
  results.push(r);
  // Let the blocked loop and the closes settle before the next attempt.
  await new Promise((r2) => setTimeout(r2, 700));
}
log({ event: 'late-summary', reset: results.filter((r) => r.outcome === 'reset').map((r) => r.attempt), results });
setTimeout(() => { log({ event: 'client-exit' }); process.exit(0); }, 300);
