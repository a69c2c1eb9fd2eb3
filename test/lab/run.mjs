#!/usr/bin/env node
// hangscope repro lab: runs real servers (FastAPI on uvicorn, a Node http
// server) and real clients (axios 1.8.4, node-fetch 2, Node's http), captures
// the traffic with tcpdump and writes, per scenario, into
// test/fixtures/lab/<scenario>/:
//   capture.pcap  the packets
//   client.log    the client's JSON lines (clients/instrument.mjs)
//   server.log    the server's JSON lines
//   truth.json    what happened, from those logs (shape: README.md)
//
//   node test/lab/run.mjs [scenario...]     (npm run lab -- [scenario...])
//
// A scenario is named by its full name (a-incident) or its letter (a).
// Needs root (tcpdump, network namespaces), tcpdump, ip, iptables, ss,
// Debian's python3-uvicorn and python3-fastapi; tshark is optional (it adds
// captureFacts and the clock check). Installs nothing; says what is missing.
import { mkdirSync, rmSync, copyFileSync, writeFileSync, statSync, existsSync, readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import path from 'node:path';
import http from 'node:http';
import {
  REPO, PYTHON, startUvicorn, startNodeServer, startClient, startTcpdump, stopTcpdump, stopProcess, stopAll,
  waitExit, waitFor, waitForLine, readJsonLines, readText, has, run, nsRun,
} from './harness.mjs';
import {
  generatedWith, requestsFrom, socketEventsFrom, serverEventsFrom, tsharkAvailable, connectionFacts,
  tsharkHttpRequests, tsharkHttpResponses,
} from './truth.mjs';

const FIXTURES = path.join(REPO, 'test', 'fixtures', 'lab');
const SAMPLES = path.join(REPO, 'samples');
const WORK = path.join(REPO, '.lab-tmp');

const nowUs = () => Number(((performance.timeOrigin + performance.now()) / 1000).toFixed(6));

// ---------------------------------------------------------------- prerequisites

function checkPrerequisites() {
  const missing = [];
  if (process.getuid?.() !== 0) missing.push('root (tcpdump on lo and network namespaces need it): run as root');
  for (const [cmd, pkg] of [['tcpdump', 'tcpdump'], ['ip', 'iproute2'], ['ss', 'iproute2'], ['iptables', 'iptables']]) {
    if (!has(cmd)) missing.push(`${cmd} (apt-get install ${pkg})`);
  }
  if (!existsSync(PYTHON)) missing.push(`${PYTHON} (apt-get install python3)`);
  else {
    try { run(PYTHON, ['-c', 'import uvicorn, fastapi'], { stdio: 'ignore' }); } catch {
      missing.push('python3-uvicorn and python3-fastapi for /usr/bin/python3 (apt-get install python3-uvicorn python3-fastapi)');
    }
  }
  for (const [mod, ver] of [['axios', '1.8.4'], ['node-fetch', '2.7.0']]) {
    const f = path.join(REPO, 'node_modules', mod, 'package.json');
    const v = existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')).version : null;
    if (v !== ver) missing.push(`${mod}@${ver} in node_modules (found ${v ?? 'none'}; run npm ci)`);
  }
  if (missing.length) {
    console.error('lab: cannot run, missing:\n  - ' + missing.join('\n  - '));
    process.exit(2);
  }
  if (!tsharkAvailable()) console.warn('lab: tshark not found: truth.json will have no captureFacts and no clock check (apt-get install tshark)');
}

// ---------------------------------------------------------------- plumbing

/** Per-scenario context: a scratch dir in .lab-tmp and the file names. */
function context(name, port) {
  const work = path.join(WORK, name);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  return {
    name, port, work,
    pcap: path.join(work, 'capture.pcap'),
    clientLog: path.join(work, 'client.log'),
    clientErr: path.join(work, 'client.stderr'),
    serverLog: path.join(work, 'server.log'),
    labEvents: [],
    capture: { iface: 'lo', snaplen: 262144 },
  };
}

function labEvent(ctx, event, detail = {}) {
  const e = { ts: nowUs(), event, ...detail };
  ctx.labEvents.push(e);
  return e;
}

/** Server up, tcpdump up, body(), tcpdump down, server down: always, also on failure. */
async function withServerAndCapture(ctx, { server, capture = {} }, body) {
  const srv = await server();
  try {
    const td = await startTcpdump({ port: ctx.port, file: ctx.pcap, ...capture });
    ctx.capture = { iface: capture.iface ?? 'lo', snaplen: capture.snaplen ?? 262144, netns: capture.netns ?? null };
    try {
      await body(srv);
    } finally {
      ctx.tcpdumpStats = await stopTcpdump(td);
    }
  } finally {
    await stopProcess(srv, 'SIGINT', 3000);
  }
}

const uvicorn = (ctx, env = {}) => () => startUvicorn({ port: ctx.port, logFile: ctx.serverLog, env });
const base = (ctx) => `http://127.0.0.1:${ctx.port}`;

async function runClientToEnd(ctx, script, args, timeoutMs, opts = {}) {
  const c = startClient(script, args, { logFile: ctx.clientLog, stderrFile: ctx.clientErr, ...opts });
  const r = await waitExit(c, timeoutMs);
  const err = readText(ctx.clientErr).trim();
  if (err) console.warn(`lab: ${ctx.name}: client stderr:\n${err}`);
  if (r.code !== 0) throw new Error(`${ctx.name}: client exited with ${JSON.stringify(r)}`);
  return r;
}

/** Waits (bounded) until the server log has a line matching pred. */
function serverLine(ctx, what, pred, timeoutMs) {
  return waitForLine(what, ctx.serverLog, pred, timeoutMs);
}

// ---------------------------------------------------------------- helpers for expectations

const reqs = (t, pred) => t.requests.filter(pred);
const sock = (t, port, event) => t.socketEvents.filter((e) => e.localPort === port && e.event === event);

// ---------------------------------------------------------------- scenarios

const SCENARIOS = [
  {
    name: 'a-incident',
    port: 8000,
    description: 'The incident: axios GET /files/abc?detail=summary (timeout 5000) then node-fetch POST /exec (no timeout, server takes 8 s) on the same pooled socket of Node 20\'s default global agent.',
    async run(ctx) {
      await withServerAndCapture(ctx, { server: uvicorn(ctx) }, async () => {
        await runClientToEnd(ctx, 'incident.mjs', ['--base', base(ctx), '--seconds', '8'], 30_000);
        // The handler sleeps on after the client is gone; wait for its verdict.
        await serverLine(ctx, 'exec-done', (l) => l.event === 'exec-done', 10_000);
      });
      return { impl: 'uvicorn' };
    },
    expect(t) {
      const [files, exec] = t.requests;
      const reused = files && exec && files.localPort === exec.localPort && exec.reusedSocket === true;
      const destroy = exec && sock(t, exec.localPort, 'destroy')[0];
      const idle = exec && sock(t, exec.localPort, 'idle-timeout')[0];
      const hangup = exec?.error === 'socket hang up' && destroy?.cause === 'timeout-listener';
      if (!hangup) {
        return { findings: reused ? ['socket-reuse'] : [], notFindings: ['server-reset'], notes: `Did NOT reproduce: /exec ended with status ${exec?.status} error ${exec?.error}; see client.log.` };
      }
      const done = t.serverEvents.find((e) => e.event === 'exec-done');
      return {
        findings: ['client-abort-before-response', 'client-timeout-signature', ...(reused ? ['socket-reuse'] : [])],
        notFindings: ['server-reset', 'keepalive-race', 'server-close-mid-response', 'half-close-stuck', 'stale-connection', 'heartbeat-bytes', 'connection-close-honored', 'connection-close-ignored', ...(reused ? [] : ['socket-reuse'])],
        notes: `/exec reused the /files socket (localPort ${exec.localPort}). ${(destroy.ts - exec.start).toFixed(3)} s after /exec was written, with no response byte yet, the socket's ${idle.idleMs} ms idle timer fired ('timeout' listeners: ${idle.listeners.join(', ')}) and ${destroy.by}: the client sent FIN and node-fetch reported "${exec.libError}" (${exec.errorCode}). The server logged the connection lost ${(t.serverEvents.find((e) => e.event === 'connection-lost' && e.clientPort === exec.localPort).ts - destroy.ts).toFixed(4)} s later and finished the handler at ${(done.ts - exec.start).toFixed(3)} s with clientGone=${done.clientGone} (no response written, no access-log line). No RST from the server, no keep-alive race.`,
      };
    },
  },
  {
    name: 'b-connection-close',
    port: 8001,
    description: 'Mitigation 1: as a-incident, but the server answers /files with "Connection: close"; the client opens a new connection for POST /exec (8 s), which succeeds.',
    async run(ctx) {
      await withServerAndCapture(ctx, { server: uvicorn(ctx, { LAB_FILES_CONNECTION_CLOSE: '1' }) }, async () => {
        await runClientToEnd(ctx, 'incident.mjs', ['--base', base(ctx), '--seconds', '8'], 30_000);
      });
      return { impl: 'uvicorn', env: { LAB_FILES_CONNECTION_CLOSE: '1' } };
    },
    expect(t) {
      const [files, exec] = t.requests;
      const ok = exec?.status === 200 && !exec.error && files.localPort !== exec.localPort;
      const fb = exec?.firstByte != null ? exec.firstByte - exec.start : null;
      return {
        findings: ['connection-close-honored', ...(fb > 5 ? ['slow-first-byte'] : [])],
        notFindings: ['client-abort-before-response', 'client-timeout-signature', 'socket-reuse', 'server-reset', 'keepalive-race', 'connection-close-ignored', 'server-close-mid-response', 'half-close-stuck', 'stale-connection', 'heartbeat-bytes'],
        notes: ok
          ? `The server closed the /files connection after its "Connection: close" response; /exec went out on a new connection (localPort ${exec.localPort}) and got 200 after ${fb.toFixed(3)} s. The new socket's idle timer still fired at 5 s (Node 20 global agent timeout) but without follow-redirects' destroy listener it only emitted 'timeout'.`
          : `Unexpected: /exec status ${exec?.status} error ${exec?.error}.`,
      };
    },
  },
  {
    name: 'c-heartbeat',
    port: 8002,
    description: 'Mitigation 2: as a-incident, but POST /exec?heartbeat=1: the server sends the response head at once and then a space every second until the JSON (chunked), so the reused socket is never idle for 5 s.',
    async run(ctx) {
      await withServerAndCapture(ctx, { server: uvicorn(ctx) }, async () => {
        await runClientToEnd(ctx, 'incident.mjs', ['--base', base(ctx), '--seconds', '8', '--heartbeat'], 30_000);
      });
      return { impl: 'uvicorn' };
    },
    expect(t) {
      const [files, exec] = t.requests;
      const reused = files.localPort === exec.localPort;
      return {
        findings: ['heartbeat-bytes', ...(reused ? ['socket-reuse'] : [])],
        notFindings: ['client-abort-before-response', 'client-timeout-signature', 'slow-first-byte', 'server-reset', 'keepalive-race', 'server-close-mid-response', 'half-close-stuck', 'stale-connection'],
        notes: `/exec ${reused ? 'reused' : 'did not reuse'} the /files socket (localPort ${exec.localPort}); the response head came ${(exec.firstByte - exec.start).toFixed(3)} s after the request, then one space per second, and the body completed with ${exec.status} at ${(exec.end - exec.start).toFixed(3)} s. The destroy-on-timeout listener was still attached but the idle timer never reached 5 s.`,
      };
    },
  },
  {
    name: 'd-control',
    port: 8003,
    description: 'Control: no /files call; node-fetch POST /exec (8 s) on a fresh socket of the global agent succeeds.',
    async run(ctx) {
      await withServerAndCapture(ctx, { server: uvicorn(ctx) }, async () => {
        await runClientToEnd(ctx, 'incident.mjs', ['--base', base(ctx), '--seconds', '8', '--no-files'], 30_000);
      });
      return { impl: 'uvicorn' };
    },
    expect(t) {
      const [exec] = t.requests;
      const fired = sock(t, exec.localPort, 'idle-timeout').length > 0;
      return {
        findings: exec.firstByte - exec.start > 5 ? ['slow-first-byte'] : [],
        notFindings: ['client-abort-before-response', 'client-timeout-signature', 'socket-reuse', 'server-reset', 'keepalive-race', 'server-close-mid-response', 'half-close-stuck', 'stale-connection', 'heartbeat-bytes'],
        notes: `One connection, one request: 200 after ${(exec.firstByte - exec.start).toFixed(3)} s. ${fired ? "The socket's 5 s idle timer (global agent timeout) did fire, but nothing destroys the socket on 'timeout' here" : 'No idle timeout fired'}, so the response arrived.`,
      };
    },
  },
  {
    name: 'e-keepalive-race',
    port: 8005,
    description: "Keep-alive idle race: uvicorn closes idle connections 5 s after the last response; the client reuses its idle pooled socket at delays stepping around 5.000 s (one connection per attempt, attempts staggered). Rounds are repeated (bounded) until at least one attempt races; truth.raceRounds says what each round gave.",
    async run(ctx) {
      // Up to three rounds with an idle client; if none raced, one round where
      // the client's event loop is busy for the 20 ms before each reuse (a FIN
      // arriving then is not seen before the request is written).
      const plan = [0, 0, 0, 20];
      const delays = '4.9985,4.99875,4.9990,4.99925,4.9995,4.99975,5.0000,5.00025,5.0005,5.00075,5.0010,5.00125,5.0015,5.0020,5.0025';
      ctx.raceRounds = [];
      for (let i = 0; i < plan.length; i++) {
        const sub = { ...ctx, work: path.join(ctx.work, `round-${i + 1}`), labEvents: [] };
        mkdirSync(sub.work, { recursive: true });
        for (const f of ['pcap', 'clientLog', 'clientErr', 'serverLog']) sub[f] = path.join(sub.work, path.basename(ctx[f]));
        await withServerAndCapture(sub, { server: uvicorn(sub) }, async () => {
          await runClientToEnd(sub, 'keepalive-race.mjs', ['--base', base(sub), '--delays', delays, '--spin-ms', String(plan[i]), '--stagger-ms', '450'], 40_000);
        });
        const summary = readJsonLines(sub.clientLog).find((l) => l.event === 'race-summary');
        const raced = summary?.raced ?? [];
        ctx.raceRounds.push({ round: i + 1, spinMs: plan[i], attempts: summary?.results.length ?? 0, raced, kept: raced.length > 0, outcomes: (summary?.results ?? []).map((r) => `${r.delay.toFixed(4)}:${r.outcome}`) });
        if (raced.length) {
          for (const f of ['pcap', 'clientLog', 'clientErr', 'serverLog']) copyFileSync(sub[f], ctx[f]);
          ctx.capture = sub.capture;
          ctx.tcpdumpStats = sub.tcpdumpStats;
          break;
        }
      }
      if (!ctx.raceRounds.some((r) => r.kept)) throw new Error(`no keep-alive race in ${plan.length} rounds: ${JSON.stringify(ctx.raceRounds)}`);
      return { impl: 'uvicorn', keepAliveTimeout: 5 };
    },
    extra(ctx, clientLines) {
      const summary = clientLines.find((l) => l.event === 'race-summary');
      return { raceRounds: ctx.raceRounds, raceAttempts: summary?.results ?? [], racedAttempts: summary?.raced ?? [] };
    },
    expect(t) {
      const raced = t.raceAttempts.filter((a) => a.outcome === 'raced');
      const kept = t.raceRounds.find((r) => r.kept);
      return {
        findings: raced.length ? ['keepalive-race', 'socket-reuse'] : ['socket-reuse'],
        notFindings: ['client-timeout-signature', 'heartbeat-bytes', 'half-close-stuck', 'stale-connection', 'slow-first-byte', 'server-close-mid-response', 'client-abort-before-response'],
        notes: `Round ${kept.round} of ${t.raceRounds.length} kept (client ${kept.spinMs ? `busy for ${kept.spinMs} ms before each reuse` : 'idle, no busy loop'}). Raced: ${raced.map((a) => `attempt ${a.attempt} (delay ${a.delay.toFixed(4)} s, localPort ${a.firstLocalPort}: "${a.error}" ${a.errorCode})`).join(', ')}: uvicorn's keep-alive FIN was already sent when the client wrote its request on the reused socket; the server's kernel answered the request with RST. Other attempts: ${t.raceAttempts.filter((a) => a.outcome !== 'raced').map((a) => `${a.attempt}=${a.outcome}`).join(', ')} (new-connection: the agent saw the FIN first and opened a new connection; reused-ok: the reuse came before the server's timer).`,
      };
    },
  },
  {
    name: 'f-server-killed',
    port: 8006,
    description: 'Server process killed (SIGKILL) while streaming a slow chunked body (GET /slow, one 60-byte chunk every 0.25 s) to a Node http client.',
    async run(ctx) {
      await withServerAndCapture(ctx, { server: uvicorn(ctx) }, async (srv) => {
        const c = startClient('slow-body.mjs', ['--base', base(ctx), '--target', '/slow?chunks=40&interval=0.25'], { logFile: ctx.clientLog, stderrFile: ctx.clientErr });
        try {
          await serverLine(ctx, 'the 6th chunk', (l) => l.event === 'slow-chunk' && l.index >= 5, 15_000);
          labEvent(ctx, 'server-killed', { signal: 'SIGKILL', pid: srv.pid });
          process.kill(srv.pid, 'SIGKILL');
          const r = await waitExit(c, 15_000);
          if (r.code !== 0) throw new Error(`client exited with ${JSON.stringify(r)}`);
        } finally {
          await stopProcess(c, 'SIGKILL', 500);
        }
      });
      return { impl: 'uvicorn' };
    },
    expect(t) {
      const [r] = t.requests;
      const f = t.captureFacts?.[0];
      const rst = f?.serverRst != null;
      return {
        findings: ['server-close-mid-response', ...(rst ? ['server-reset'] : [])],
        notFindings: ['client-abort-before-response', 'client-timeout-signature', 'keepalive-race', 'socket-reuse', 'half-close-stuck', 'stale-connection', 'heartbeat-bytes', ...(rst ? [] : ['server-reset'])],
        notes: `Response head ${r.status} then chunks; the kernel closed the killed server's socket with ${rst ? 'RST' : 'FIN'} before the last chunk, and the client reported "${r.error}" (${r.errorCode}).`,
      };
    },
  },
  {
    name: 'g-close-wait',
    port: 8007,
    description: 'CLOSE-WAIT: a raw net.Socket client (allowHalfOpen: true) sends one keep-alive GET to a Node http server (keepAliveTimeout 1000 ms); the server closes the idle connection (FIN), the client never closes its side. The capture goes on 3 s past the FIN (ss -tan in truth.ss, then one health-check request on a fresh connection) and ends with the client in CLOSE-WAIT.',
    async run(ctx) {
      const server = () => startNodeServer({ port: ctx.port, logFile: ctx.serverLog, keepAliveTimeout: 1000 });
      await withServerAndCapture(ctx, { server }, async () => {
        const c = startClient('half-open.mjs', ['--host', '127.0.0.1', '--port', String(ctx.port), '--hold-ms', '8000'], { logFile: ctx.clientLog, stderrFile: ctx.clientErr });
        try {
          await waitForLine('the server FIN', ctx.clientLog, (l) => l.event === 'half-open', 10_000, c);
          // A CLOSE-WAIT hang is about time passing: keep capturing 3 s past the FIN.
          await delay(3000);
          const cmd = ['-tan', `( sport = :${ctx.port} or dport = :${ctx.port} )`];
          const output = run('ss', cmd);
          ctx.ss = { ts: nowUs(), command: `ss ${cmd[0]} '${cmd[1]}'`, output: output.trimEnd().split('\n'), sockets: parseSs(output) };
          labEvent(ctx, 'ss-snapshot', { states: ctx.ss.sockets.map((s) => `${s.local}->${s.peer} ${s.state}`) });
          // Other traffic goes on meanwhile, as it does in production: one health check on a fresh
          // connection (Connection: close), so the capture shows the time that passed after the FIN.
          const status = await new Promise((resolve) => {
            const req = http.get({ host: '127.0.0.1', port: ctx.port, path: '/files/health?detail=summary', agent: false }, (res) => {
              res.resume();
              res.on('end', () => resolve(res.statusCode));
            });
            req.on('error', (e) => resolve(e.message));
          });
          labEvent(ctx, 'health-check', { status });
          await delay(300);
        } catch (e) {
          await stopProcess(c, 'SIGKILL', 500);
          throw e;
        }
        ctx.holder = c;
      });
      // The capture is stopped while the client still holds the socket; now the client.
      await stopProcess(ctx.holder, 'SIGKILL', 1000);
      return { impl: 'node', keepAliveTimeout: 1000 };
    },
    extra(ctx) { return { ss: ctx.ss ?? null }; },
    expect(t) {
      const cw = t.ss?.sockets.find((s) => s.state === 'CLOSE-WAIT');
      return {
        findings: ['half-close-stuck'],
        notFindings: ['client-abort-before-response', 'client-timeout-signature', 'server-reset', 'keepalive-race', 'socket-reuse', 'server-close-mid-response', 'stale-connection', 'heartbeat-bytes', 'slow-first-byte'],
        notes: `The server sent FIN ~1 s after the response (its keep-alive timeout); the client read it and never sent its own FIN. ss ${(t.ss.ts - t.captureFacts?.[0]?.serverFin?.ts).toFixed(3)} s after the FIN: ${cw ? `${cw.local} in CLOSE-WAIT` : 'no CLOSE-WAIT socket (unexpected)'}, the server side in ${t.ss?.sockets.find((s) => s.state !== 'LISTEN' && s.local.endsWith(`:${t.server.port}`))?.state ?? '?'}. The capture ends after a health check on a fresh connection, with that connection still half-closed.`,
      };
    },
  },
  {
    name: 'h-stale-connection',
    port: 8008,
    description: 'Stale pooled connection: server (Node http, 10.200.0.1) and client (10.200.0.2) in two network namespaces joined by a veth pair. After the first GET, while the pooled socket is idle, iptables in the server namespace silently drops the flow both ways (a middlebox that lost state); the second GET on the pooled socket gets only retransmissions until the client\'s 8 s timeout. Captured on the client\'s veth.',
    async run(ctx) {
      await staleScenario(ctx);
      return { impl: 'node', ip: '10.200.0.1', keepAliveTimeout: 60000 };
    },
    expect(t) {
      const [, second] = t.requests;
      const f = t.captureFacts?.[0];
      return {
        // The client did give up at its 8 s timeout, but its FIN never reached
        // the wire before the capture stopped, so client-abort-before-response
        // and client-timeout-signature are left out of both lists.
        findings: ['stale-connection', 'socket-reuse'],
        notFindings: ['server-reset', 'keepalive-race', 'heartbeat-bytes', 'half-close-stuck', 'server-close-mid-response', 'connection-close-honored'],
        notes: `The second GET reused the pooled socket (localPort ${second.localPort}); nothing came back (only the client's retransmissions are on the wire) and the client gave up after ${(second.end - second.start).toFixed(3)} s with "${second.error}" (${second.errorCode}). ${f && !f.clientFin ? 'Its close queued a FIN behind the unacknowledged request, so no FIN is on the wire before the capture stops.' : ''} The TCP keep-alive probes the idle pooled socket sent after the drop went unanswered too.`,
      };
    },
  },
  {
    name: 'i-large-upload',
    port: 8011,
    description: 'A 45 MiB POST /upload, then POST /exec (2 s) on the same pooled socket of the global agent (Node http for both; each request head is flushed in a segment of its own). Captured with snaplen 200: bodies are cut, the request/response heads are whole, framing by Content-Length still works.',
    async run(ctx) {
      await withServerAndCapture(ctx, { server: uvicorn(ctx), capture: { snaplen: 200 } }, async () => {
        await runClientToEnd(ctx, 'upload.mjs', ['--base', base(ctx), '--bytes', String(45 * 1024 * 1024), '--seconds', '2'], 60_000);
      });
      return { impl: 'uvicorn' };
    },
    expect(t) {
      const [up, exec] = t.requests;
      const reused = up.localPort === exec.localPort;
      return {
        findings: reused ? ['socket-reuse'] : [],
        notFindings: ['client-abort-before-response', 'client-timeout-signature', 'server-reset', 'keepalive-race', 'slow-first-byte', 'server-close-mid-response', 'half-close-stuck', 'stale-connection', 'heartbeat-bytes'],
        notes: `Upload of ${45 * 1024 * 1024} bytes: ${up.status} after ${(up.end - up.start).toFixed(3)} s; /exec ${reused ? 'on the same socket' : 'on another socket'}: ${exec.status} after ${(exec.end - exec.start).toFixed(3)} s. Snaplen 200: every frame is cut at 200 bytes, so body bytes are missing from the capture but each head is in a frame of its own and Content-Length frames the bodies.`,
      };
    },
  },
  {
    name: 'j-concurrent',
    port: 8012,
    description: 'Concurrent requests: four POST /exec (1, 2, 3, 7 s) in parallel over four keep-alive sockets of one http.Agent with a 5 s client timeout (the 7 s one is aborted by the client), then three GET /files (200, 404, 200) reusing pooled sockets.',
    async run(ctx) {
      await withServerAndCapture(ctx, { server: uvicorn(ctx) }, async () => {
        await runClientToEnd(ctx, 'concurrent.mjs', ['--base', base(ctx), '--seconds', '1,2,3,7', '--timeout-ms', '5000'], 30_000);
        await serverLine(ctx, 'the 7 s exec to finish', (l) => l.event === 'exec-done' && l.seconds === 7, 10_000);
      });
      return { impl: 'uvicorn' };
    },
    expect(t) {
      const aborted = reqs(t, (r) => r.error);
      const reused = reqs(t, (r) => r.reusedSocket);
      return {
        findings: ['client-abort-before-response', 'client-timeout-signature', ...(reused.length ? ['socket-reuse'] : [])],
        notFindings: ['server-reset', 'keepalive-race', 'server-close-mid-response', 'half-close-stuck', 'stale-connection', 'heartbeat-bytes'],
        notes: `${t.requests.length} requests over ${new Set(t.requests.map((r) => r.localPort)).size} sockets. Aborted by the client: ${aborted.map((r) => `${r.method} ${r.target} on ${r.localPort} after ${(r.end - r.start).toFixed(3)} s (${r.error})`).join('; ')}. Reused sockets: ${reused.map((r) => `${r.target} on ${r.localPort}`).join('; ')}. Statuses: ${t.requests.map((r) => r.status ?? 'none').join(', ')}.`,
      };
    },
  },
  {
    name: 'k-axios-timeout-3000',
    port: 8013,
    description: "Why 5 s: as a-incident but axios' timeout is 3000 ms. The reused socket is still destroyed ~5 s into /exec: the idle timer that fires is the Node 20 global agent's 5000 ms socket timeout (re-armed by Agent#keepSocketAlive when the socket goes back to the pool); axios/follow-redirects only contributed the socket.destroy 'timeout' listener.",
    async run(ctx) {
      await withServerAndCapture(ctx, { server: uvicorn(ctx) }, async () => {
        await runClientToEnd(ctx, 'incident.mjs', ['--base', base(ctx), '--seconds', '8', '--axios-timeout', '3000'], 30_000);
        await serverLine(ctx, 'exec-done', (l) => l.event === 'exec-done', 10_000);
      });
      return { impl: 'uvicorn' };
    },
    expect(t) {
      const [files, exec] = t.requests;
      const destroy = sock(t, exec.localPort, 'destroy')[0];
      const idle = sock(t, exec.localPort, 'idle-timeout')[0];
      const hangup = exec.error === 'socket hang up' && destroy?.cause === 'timeout-listener';
      return {
        findings: hangup ? ['client-abort-before-response', 'client-timeout-signature', 'socket-reuse'] : ['socket-reuse'],
        notFindings: ['server-reset', 'keepalive-race', 'server-close-mid-response', 'half-close-stuck', 'stale-connection', 'heartbeat-bytes'],
        notes: hangup
          ? `axios timeout 3000 ms, yet /exec (reused socket ${exec.localPort}, same as /files: ${files.localPort === exec.localPort}) was destroyed ${(destroy.ts - exec.start).toFixed(3)} s after it was written, by the ${idle.idleMs} ms idle timer: ${destroy.by}. "socket hang up" (${exec.errorCode}).`
          : `Unexpected: /exec status ${exec.status} error ${exec.error}.`,
      };
    },
  },
  {
    name: 'l-shared-agent-no-timeout',
    port: 8014,
    description: "Counter-check: as a-incident (axios timeout 5000, /exec 8 s on the reused socket) but both libraries share one http.Agent({keepAlive: true}) without a timeout option. follow-redirects' socket.destroy 'timeout' listener is still attached, but no idle timer is armed on the pooled socket, so /exec succeeds.",
    async run(ctx) {
      await withServerAndCapture(ctx, { server: uvicorn(ctx) }, async () => {
        await runClientToEnd(ctx, 'incident.mjs', ['--base', base(ctx), '--seconds', '8', '--agent', 'shared-keepalive'], 30_000);
      });
      return { impl: 'uvicorn' };
    },
    expect(t) {
      const [files, exec] = t.requests;
      const reused = files.localPort === exec.localPort;
      return {
        findings: [...(reused ? ['socket-reuse'] : []), ...(exec.firstByte - exec.start > 5 ? ['slow-first-byte'] : [])],
        notFindings: ['client-abort-before-response', 'client-timeout-signature', 'server-reset', 'keepalive-race', 'server-close-mid-response', 'half-close-stuck', 'stale-connection', 'heartbeat-bytes'],
        notes: `/exec ${reused ? 'reused' : 'did not reuse'} the /files socket (localPort ${exec.localPort}) and got ${exec.status} after ${(exec.firstByte - exec.start).toFixed(3)} s. No 'timeout' event fired on the socket (${sock(t, exec.localPort, 'idle-timeout').length} idle-timeout events): responseKeepAlive set its timeout to 0 and an agent without a timeout option does not re-arm it.`,
      };
    },
  },
  {
    name: 'm-keepalive-race-rst',
    port: 8015,
    description: "The keep-alive race's RST shape: uvicorn (keep-alive 5 s) with its event loop held by blocking work in an async handler (GET /block: time.sleep in 20 ms slices) when a connection's keep-alive timer falls due; the client reuses that idle pooled socket 6 to 30 ms after the 5 s. The late timer closes the socket with the request unread: RST, no FIN. Attempts one after another.",
    async run(ctx) {
      await withServerAndCapture(ctx, { server: uvicorn(ctx) }, async () => {
        await runClientToEnd(ctx, 'late-keepalive.mjs', ['--base', base(ctx), '--delays', '0.006,0.012,0.018,0.024,0.030', '--slices', '25', '--slice-ms', '20'], 90_000);
      });
      const summary = readJsonLines(ctx.clientLog).find((l) => l.event === 'late-summary');
      if (!summary?.reset?.length) throw new Error(`no attempt was reset: ${JSON.stringify(summary?.results ?? null)}`);
      return { impl: 'uvicorn', keepAliveTimeout: 5 };
    },
    extra(ctx, clientLines) {
      const summary = clientLines.find((l) => l.event === 'late-summary');
      return { lateAttempts: summary?.results ?? [] };
    },
    expect(t) {
      const reset = t.lateAttempts.filter((a) => a.outcome === 'reset');
      const served = (target) => t.serverEvents.some((e) => e.event === 'files' && `/files/${e.id}?detail=${e.detail}` === target);
      return {
        findings: reset.length ? ['keepalive-race', 'socket-reuse'] : ['socket-reuse'],
        notFindings: ['server-reset', 'client-abort-before-response', 'client-timeout-signature', 'stale-connection', 'half-close-stuck', 'server-close-mid-response', 'heartbeat-bytes', 'slow-first-byte'],
        notes: `Reset: ${reset.map((a) => `attempt ${a.attempt} (reuse ${(5 + a.delay).toFixed(3)} s after the first response, localPort ${a.firstLocalPort}: "${a.error}" ${a.errorCode}; the app ${served(`/files/late${a.attempt}b?detail=summary`) ? 'logged' : 'never logged'} the request)`).join(', ')}. Others: ${t.lateAttempts.filter((a) => a.outcome !== 'reset').map((a) => `${a.attempt}=${a.outcome}`).join(', ') || 'none'}. uvicorn's keep-alive timer fell due while GET /block held the event loop; it ran after a slice and closed the socket with the new request unread (uvicorn's trace log has the connection lost at the reset).`,
      };
    },
  },
];

// ---------------------------------------------------------------- h: namespaces

const NS_SRV = 'hslab-srv';
const NS_CLI = 'hslab-cli';
const VETH_SRV = 'hslab-s';
const VETH_CLI = 'hslab-c';
const IP_SRV = '10.200.0.1';
const IP_CLI = '10.200.0.2';

function deleteNamespaces() {
  for (const ns of [NS_SRV, NS_CLI]) {
    try { run('ip', ['netns', 'del', ns], { stdio: 'ignore' }); } catch { /* not there */ }
  }
}

function createNamespaces() {
  deleteNamespaces(); // leftovers of an earlier failed run of this lab
  run('ip', ['netns', 'add', NS_SRV]);
  run('ip', ['netns', 'add', NS_CLI]);
  run('ip', ['link', 'add', VETH_CLI, 'netns', NS_CLI, 'type', 'veth', 'peer', 'name', VETH_SRV, 'netns', NS_SRV]);
  nsRun(NS_SRV, 'ip', ['addr', 'add', `${IP_SRV}/24`, 'dev', VETH_SRV]);
  nsRun(NS_CLI, 'ip', ['addr', 'add', `${IP_CLI}/24`, 'dev', VETH_CLI]);
  for (const [ns, dev] of [[NS_SRV, VETH_SRV], [NS_CLI, VETH_CLI]]) {
    nsRun(ns, 'ip', ['link', 'set', 'lo', 'up']);
    nsRun(ns, 'ip', ['link', 'set', dev, 'up']);
  }
}

async function staleScenario(ctx) {
  createNamespaces();
  try {
    const srv = await startNodeServer({ port: ctx.port, host: IP_SRV, logFile: ctx.serverLog, keepAliveTimeout: 60_000, netns: NS_SRV });
    try {
      const td = await startTcpdump({ iface: VETH_CLI, port: ctx.port, file: ctx.pcap, netns: NS_CLI });
      ctx.capture = { iface: VETH_CLI, snaplen: 262144, netns: NS_CLI };
      try {
        const c = startClient('stale-pool.mjs', ['--base', `http://${IP_SRV}:${ctx.port}`, '--idle-ms', '2500', '--timeout-ms', '8000'],
          { logFile: ctx.clientLog, stderrFile: ctx.clientErr, netns: NS_CLI });
        try {
          const idle = await waitForLine('the client to go idle', ctx.clientLog, (l) => l.event === 'idle-begin', 10_000, c);
          const p = String(idle.localPort);
          // The "middlebox": drop the established flow both ways, silently.
          const rules = [
            ['INPUT', '-p', 'tcp', '-s', IP_CLI, '--sport', p, '-d', IP_SRV, '--dport', String(ctx.port), '-j', 'DROP'],
            ['OUTPUT', '-p', 'tcp', '-s', IP_SRV, '--sport', String(ctx.port), '-d', IP_CLI, '--dport', p, '-j', 'DROP'],
          ];
          for (const r of rules) nsRun(NS_SRV, 'iptables', ['-I', ...r]);
          labEvent(ctx, 'flow-dropped', { netns: NS_SRV, clientPort: idle.localPort, rules: rules.map((r) => `iptables -I ${r.join(' ')}`) });
          const r = await waitExit(c, 20_000);
          if (r.code !== 0) throw new Error(`client exited with ${JSON.stringify(r)}`);
        } finally {
          await stopProcess(c, 'SIGKILL', 500);
        }
      } finally {
        ctx.tcpdumpStats = await stopTcpdump(td);
      }
    } finally {
      await stopProcess(srv, 'SIGINT', 3000);
    }
  } finally {
    deleteNamespaces();
  }
}

// ---------------------------------------------------------------- ss

function parseSs(text) {
  return text.split('\n').slice(1).filter((l) => l.trim()).map((l) => {
    const [state, recvQ, sendQ, local, peer] = l.trim().split(/\s+/);
    return { state, recvQ: Number(recvQ), sendQ: Number(sendQ), local, peer };
  });
}

// ---------------------------------------------------------------- truth

function clockCheck(t, pcap) {
  // Pairs of (program log time, tshark frame time) for the same moment.
  const pairs = [];
  const httpReqs = tsharkHttpRequests(pcap);
  for (const r of t.requests) {
    const f = httpReqs.find((h) => h.srcPort === r.localPort && h.method === r.method && h.target === r.target);
    if (f && r.start != null) pairs.push({ what: `client wrote ${r.method} ${r.target} -> request frame ${f.frame}`, log: r.start, frame: f.ts, deltaMs: Number(((f.ts - r.start) * 1000).toFixed(3)) });
  }
  const resps = tsharkHttpResponses(pcap);
  for (const r of t.requests) {
    const f = resps.find((h) => h.dstPort === r.localPort);
    if (f && r.firstByte != null) pairs.push({ what: `response frame ${f.frame} -> client parsed head of ${r.method} ${r.target}`, log: r.firstByte, frame: f.ts, deltaMs: Number(((r.firstByte - f.ts) * 1000).toFixed(3)) });
  }
  for (const d of t.socketEvents.filter((e) => e.event === 'destroy')) {
    const c = t.captureFacts.find((x) => x.clientPort === d.localPort);
    if (c?.clientFin) pairs.push({ what: `client destroy() -> its FIN frame ${c.clientFin.frame}`, log: d.ts, frame: c.clientFin.ts, deltaMs: Number(((c.clientFin.ts - d.ts) * 1000).toFixed(3)) });
  }
  for (const e of t.serverEvents.filter((x) => x.event === 'connection-lost')) {
    const c = t.captureFacts.find((x) => x.clientPort === e.clientPort);
    if (c?.clientFin) pairs.push({ what: `client FIN frame ${c.clientFin.frame} -> uvicorn "connection lost"`, log: e.ts, frame: c.clientFin.ts, deltaMs: Number(((e.ts - c.clientFin.ts) * 1000).toFixed(3)) });
  }
  return { note: 'deltaMs = later minus earlier of the pair; program clocks and tcpdump both read CLOCK_REALTIME', pairs };
}

function buildTruth(sc, ctx, serverInfo) {
  const clientLines = readJsonLines(ctx.clientLog);
  const serverLines = readJsonLines(ctx.serverLog);
  const { impl, ip = '127.0.0.1', ...serverRest } = serverInfo;
  const t = {
    scenario: sc.name,
    description: sc.description,
    generatedWith: generatedWith(),
    server: { ip, port: ctx.port, impl, ...serverRest },
    capture: {
      file: 'capture.pcap',
      iface: ctx.capture.iface,
      netns: ctx.capture.netns ?? null,
      snaplen: ctx.capture.snaplen,
      linkType: 'EN10MB',
      packets: ctx.tcpdumpStats?.captured ?? null,
      droppedByKernel: ctx.tcpdumpStats?.droppedByKernel ?? null,
      bytes: statSync(ctx.pcap).size,
    },
    requests: requestsFrom(clientLines),
    socketEvents: socketEventsFrom(clientLines),
    serverEvents: serverEventsFrom(serverLines),
    labEvents: ctx.labEvents,
    ...(sc.extra ? sc.extra(ctx, clientLines) : {}),
  };
  if (tsharkAvailable()) {
    t.captureFacts = connectionFacts(ctx.pcap, ctx.port);
  }
  t.expect = sc.expect(t);
  if (tsharkAvailable() && sc.name === 'a-incident') t.clockCheck = clockCheck(t, ctx.pcap);
  return t;
}

// ---------------------------------------------------------------- main

function pick(args) {
  if (!args.length) return SCENARIOS;
  return args.map((a) => {
    const s = SCENARIOS.find((x) => x.name === a || x.name.split('-')[0] === a);
    if (!s) {
      console.error(`lab: unknown scenario ${a}; known: ${SCENARIOS.map((x) => x.name).join(', ')}`);
      process.exit(2);
    }
    return s;
  });
}

async function main() {
  const chosen = pick(process.argv.slice(2));
  checkPrerequisites();
  mkdirSync(WORK, { recursive: true });
  const t0 = Date.now();
  let failed = 0;
  for (const sc of chosen) {
    const ctx = context(sc.name, sc.port);
    const s0 = Date.now();
    process.stdout.write(`lab: ${sc.name} ... `);
    try {
      const serverInfo = await sc.run(ctx);
      const truth = buildTruth(sc, ctx, serverInfo);
      writeFileSync(path.join(ctx.work, 'truth.json'), JSON.stringify(truth, null, 2) + '\n');
      const dest = path.join(FIXTURES, sc.name);
      rmSync(dest, { recursive: true, force: true });
      mkdirSync(dest, { recursive: true });
      for (const f of ['capture.pcap', 'truth.json', 'client.log', 'server.log']) copyFileSync(path.join(ctx.work, f), path.join(dest, f));
      if (sc.name === 'a-incident') {
        mkdirSync(SAMPLES, { recursive: true });
        copyFileSync(ctx.pcap, path.join(SAMPLES, 'incident.pcap'));
      }
      const outcome = truth.requests.map((r) => `${r.method} ${r.target.split('?')[0]}=${r.status ?? r.error}`).join(', ');
      console.log(`ok in ${((Date.now() - s0) / 1000).toFixed(1)} s, ${truth.capture.bytes} B capture; ${outcome}`);
    } catch (err) {
      failed++;
      console.log('FAILED');
      console.error(`lab: ${sc.name}: ${err.stack ?? err}`);
      console.error(`lab: logs kept in ${ctx.work}`);
      await stopAll();
    }
  }
  console.log(`lab: ${chosen.length - failed}/${chosen.length} scenarios in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  process.exitCode = failed ? 1 : 0;
}

process.on('SIGINT', async () => {
  await stopAll();
  deleteNamespaces();
  process.exit(130);
});

await main().catch(async (e) => {
  console.error(e);
  await stopAll();
  process.exitCode = 1;
});
