// Scenario e: the keep-alive idle race. uvicorn closes an idle keep-alive
// connection 5 s after its last response (--timeout-keep-alive 5); this client
// reuses its idle pooled socket at about 5 s, stepping the delay around 5.000 s.
//
// Each attempt has its own http.Agent({keepAlive: true}) (no free-socket
// timeout, as in many apps) and so its own connection; attempts are staggered
// so their critical moments do not overlap.
//
// With --spin-ms 0 the client is idle until its timer fires; the race is then
// real but narrow (the FIN must land between the timer firing and the write).
// With --spin-ms N the client is "busy" (a synchronous spin standing in for
// CPU work) for the last N ms before the reuse: a FIN that arrives meanwhile
// sits unread in the kernel, the agent still thinks the socket is free, and the
// request goes out on a connection the server has already closed. The lab
// runner uses 0 first and N only as a fallback.
//
//   node keepalive-race.mjs --base http://127.0.0.1:8005 --delays 4.990,5.000,5.010 [--spin-ms 20] [--stagger-ms 600]
import { getThrough, log, track, now } from './instrument.mjs';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    base: { type: 'string', default: 'http://127.0.0.1:8005' },
    delays: { type: 'string', default: '4.9990,4.9995,5.0000,5.0005,5.0010,5.0015,5.0020,5.0025,5.0030,5.0040,5.0050' },
    'spin-ms': { type: 'string', default: '0' },
    'stagger-ms': { type: 'string', default: '600' },
  },
});
const delays = opts.delays.split(',').map(Number);
const spinMs = Number(opts['spin-ms']);
const staggerMs = Number(opts['stagger-ms']);
log({ event: 'client-start', script: 'keepalive-race.mjs', node: process.version, delays, spinMs, staggerMs });

const get = (agent, target) => getThrough(opts.base, agent, target);

async function attempt(k, delaySec) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const first = `/files/race${k}?detail=summary`;
  const { result } = await track('http', 'GET', first, () => get(agent, first), { attempt: k });
  if (!result) return { attempt: k, delay: delaySec, outcome: 'first-request-failed' };
  const firstPort = result.req.socket?.localPort ?? null;
  // Reuse at exactly `delaySec` after the first response ended (our clock).
  const at = result.endedAt + delaySec * 1000;
  await new Promise((r) => setTimeout(r, Math.max(0, at - performance.now() - spinMs)));
  while (performance.now() < at) { /* busy: the event loop cannot see a FIN now */ }
  const again = `/files/race${k}b?detail=summary`;
  const reuseAt = now();
  const { summary } = await track('http', 'GET', again, () => get(agent, again), { attempt: k });
  agent.destroy();
  const reused = summary.localPort === firstPort;
  const failed = summary.error != null;
  const outcome = reused ? (failed ? 'raced' : 'reused-ok') : (failed ? 'new-connection-failed' : 'new-connection');
  const r = { attempt: k, delay: delaySec, spinMs, firstLocalPort: firstPort, secondLocalPort: summary.localPort, reuseAt, outcome, error: summary.error, errorCode: summary.errorCode };
  log({ event: 'race-attempt', ...r });
  return r;
}

const results = await Promise.all(delays.map((d, k) => new Promise((r) => setTimeout(r, k * staggerMs)).then(() => attempt(k, d))));
log({ event: 'race-summary', raced: results.filter((r) => r.outcome === 'raced').map((r) => r.attempt), results });
setTimeout(() => { log({ event: 'client-exit' }); process.exit(0); }, 300);
