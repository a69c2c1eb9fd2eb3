#!/usr/bin/env node
// Records the fixtures in test/fixtures/attribute/: real programs on loopback
// (the lab's uvicorn app and clients, test/lab/), captured by tcpdump while
// hangscope's bpftrace program (lib/attribute, built into dist/) traces the
// kernel, and `ss -tanpi` is sampled.
//
//   npm run build && node test/attribute/record.mjs [keepalive-race|server-killed|close-wait ...]
//
// Needs root, bpftrace, tcpdump, ss, Debian's python3-uvicorn. Every process
// it starts is stopped by PID (the lab harness keeps the list); every wait is
// bounded. Ports 18605-18607 (not the lab's, which may run at the same time).
import { mkdirSync, writeFileSync, copyFileSync, rmSync, readFileSync, appendFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import {
  REPO, PYTHON, startProcess, startNodeServer, startUvicorn, startClient, startTcpdump, stopTcpdump, stopProcess, stopAll, waitExit, waitForLine, readJsonLines,
} from '../lab/harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const OUT = path.join(REPO, 'test', 'fixtures', 'attribute');
const WORK = path.join(tmpdir(), 'hangscope-attribute-record');
const { Attributor, probe, buildScript } = await import(path.join(REPO, 'dist', 'lib', 'attribute', 'index.js'));

function context(name, port) {
  const work = path.join(WORK, name);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  return {
    name, port, work,
    pcap: path.join(work, 'capture.pcap'),
    bpf: path.join(work, 'bpftrace.txt'),
    ss: path.join(work, 'ss.txt'),
    clientLog: path.join(work, 'client.log'),
    clientErr: path.join(work, 'client.stderr'),
    serverLog: path.join(work, 'server.log'),
    processes: { clients: [] },
    notes: [],
  };
}

/** bpftrace (and optionally ss) up, server up, tcpdump up, body(), then everything down in reverse. */
async function session(ctx, { ssIntervalMs = 0, server = uvicornServer } = {}, body) {
  writeFileSync(ctx.bpf, '');
  const att = await Attributor.start({
    ports: [ctx.port],
    ebpf: true,
    ssIntervalMs,
    onNotice: (l) => { console.warn(`record: ${ctx.name}: ${l}`); ctx.notes.push(l); },
    onBpftraceLine: (l) => appendFileSync(ctx.bpf, `${l}\n`),
    onSsSample: (text, now) => appendFileSync(ctx.ss, `# ts=${now}\n${text}`),
  });
  if (att.session === null) throw new Error(`bpftrace did not start: ${ctx.notes.join('; ')}`);
  ctx.clock = { samples: att.session.clock.toJSON(), tracefs: att.session.tracefs, used: att.session.used, missing: att.session.missing };
  try {
    const srv = await server(ctx);
    try {
      const td = await startTcpdump({ port: ctx.port, file: ctx.pcap });
      try {
        await body(srv);
      } finally {
        ctx.tcpdump = await stopTcpdump(td);
      }
    } finally {
      await stopProcess(srv, 'SIGINT', 3000);
    }
  } finally {
    // Let the last kernel events (TIME-WAIT, CLOSE) come through before stopping.
    await delay(300);
    await att.stop();
    ctx.bpftraceStats = { events: att.session.events, unparsed: att.session.unparsed };
  }
}

async function uvicornServer(ctx) {
  const srv = await startUvicorn({ port: ctx.port, logFile: ctx.serverLog });
  ctx.processes.server = { pid: srv.pid, comm: 'python3', cmd: '/usr/bin/python3 -u -m uvicorn app:app --timeout-keep-alive 5' };
  return srv;
}

async function forgetfulServer(ctx) {
  const script = path.join(HERE, 'servers', 'forgetful-server.py');
  const srv = startProcess('forgetful-server', PYTHON, ['-u', script, String(ctx.port)], { stdoutFile: ctx.serverLog, stderrFile: ctx.serverLog });
  await waitForLine('the server to listen', ctx.serverLog, (l) => l.event === 'listening', 10_000, srv);
  ctx.processes.server = { pid: srv.pid, comm: 'python3', cmd: `/usr/bin/python3 -u test/attribute/servers/forgetful-server.py ${ctx.port}` };
  return srv;
}

async function nodeServerV6(ctx) {
  const srv = await startNodeServer({ port: ctx.port, host: '::1', logFile: ctx.serverLog });
  ctx.processes.server = { pid: srv.pid, comm: 'node', cmd: `node test/lab/servers/node-server.mjs --host ::1 --port ${ctx.port}` };
  return srv;
}

/** GET from this recorder (Node http, agent: false: "Connection: close"). */
function get(host, port, target) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: target, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, localPort: req.socket?.localPort ?? null }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error('request timed out')));
  });
}

/** A connection attempt that the kernel refuses (RST, no socket). */
function refused(host, port) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.on('connect', () => { s.destroy(); resolve({ error: null }); });
    s.on('error', (e) => resolve({ error: e.code ?? e.message }));
  });
}

const LAB_CLIENTS = path.join(REPO, 'test', 'lab', 'clients');

/** A lab client (test/lab/clients) or one of ours (dir: test/attribute/clients), stdout to client.log. */
function client(ctx, script, args, dir = LAB_CLIENTS) {
  const p = startClient(path.join(path.relative(LAB_CLIENTS, dir), script), args, { logFile: ctx.clientLog, stderrFile: ctx.clientErr });
  ctx.processes.clients.push({ script, pid: p.pid, comm: 'node' });
  return p;
}

const SCENARIOS = {
  'keepalive-race': {
    port: 18605,
    description:
      "uvicorn (keep-alive 5 s) and two clients: request-after-fin.mjs (writes a second GET after reading the server's idle FIN: the server's kernel answers with RST, every time) and the lab's keepalive-race.mjs (reuses its pooled socket at delays around 5.000 s; rounds until one raced, the last round with the client busy for 20 ms before each reuse).",
    async run(ctx) {
      await session(ctx, {}, async () => {
        const late = client(ctx, 'request-after-fin.mjs', ['--host', '127.0.0.1', '--port', String(ctx.port)], path.join(HERE, 'clients'));
        const delays = '4.9985,4.99875,4.9990,4.99925,4.9995,4.99975,5.0000,5.00025,5.0005,5.00075,5.0010,5.00125,5.0015,5.0020,5.0025';
        ctx.raceRounds = [];
        for (const spin of [0, 0, 20]) {
          const before = readJsonLines(ctx.clientLog).length;
          const c = client(ctx, 'keepalive-race.mjs', ['--base', `http://127.0.0.1:${ctx.port}`, '--delays', delays, '--spin-ms', String(spin), '--stagger-ms', '450']);
          await waitExit(c, 40_000);
          const summary = readJsonLines(ctx.clientLog).slice(before).find((l) => l.event === 'race-summary');
          ctx.raceRounds.push({ spinMs: spin, raced: summary?.raced ?? [], pid: c.pid });
          if (summary?.raced?.length) break;
        }
        await waitExit(late, 20_000);
      });
    },
  },
  'server-killed': {
    port: 18606,
    description: 'uvicorn SIGKILLed (by PID) while streaming a slow chunked body (GET /slow, a chunk every 0.25 s) to the lab client slow-body.mjs (Node http).',
    async run(ctx) {
      await session(ctx, {}, async (srv) => {
        const c = client(ctx, 'slow-body.mjs', ['--base', `http://127.0.0.1:${ctx.port}`, '--target', '/slow?chunks=40&interval=0.25']);
        try {
          await waitForLine('the 6th chunk', ctx.serverLog, (l) => l.event === 'slow-chunk' && l.index >= 5, 15_000);
          ctx.killedAt = Number(((performance.timeOrigin + performance.now()) / 1000).toFixed(6));
          process.kill(srv.pid, 'SIGKILL');
          await waitExit(c, 15_000);
        } finally {
          await stopProcess(c, 'SIGKILL', 500);
        }
      });
    },
  },
  'server-close-wait': {
    port: 18608,
    description:
      "A python3 server that answers and never closes its sockets (test/attribute/servers/forgetful-server.py, dual-stack on [::]). This recorder (Node http, Connection: close) sends GET over 127.0.0.1 and over ::1; Node closes each socket after the response, the server's sockets sit in CLOSE-WAIT. ss -tanpi every 250 ms; 3 s later one more GET (its socket stays in CLOSE-WAIT too), then the capture stops.",
    async run(ctx) {
      await session(ctx, { ssIntervalMs: 250, server: forgetfulServer }, async () => {
        ctx.requests = [];
        ctx.requests.push({ host: '127.0.0.1', ...(await get('127.0.0.1', ctx.port, '/files/v4?detail=summary')) });
        ctx.requests.push({ host: '::1', ...(await get('::1', ctx.port, '/files/v6?detail=summary')) });
        await delay(3000);
        ctx.requests.push({ host: '127.0.0.1', ...(await get('127.0.0.1', ctx.port, '/files/later?detail=summary')) });
        await delay(500);
      });
      ctx.processes.clients.push({ script: 'record.mjs (Node http)', pid: process.pid, comm: 'node' });
    },
  },
  'no-socket': {
    port: 18609,
    description:
      "The lab's Node http server on [::1] answers one GET (from this recorder), then is stopped (SIGINT by PID); then this recorder connects to [::1] and to 127.0.0.1 on the same port: nothing listens, the kernel answers each SYN with RST (no socket).",
    async run(ctx) {
      await session(ctx, { server: nodeServerV6 }, async (srv) => {
        ctx.requests = [{ host: '::1', ...(await get('::1', ctx.port, '/files/x?detail=summary')) }];
        await stopProcess(srv, 'SIGINT', 3000);
        ctx.requests.push({ host: '::1', refused: await refused('::1', ctx.port) });
        ctx.requests.push({ host: '127.0.0.1', refused: await refused('127.0.0.1', ctx.port) });
        await delay(200);
      });
      ctx.processes.clients.push({ script: 'record.mjs (Node http, net)', pid: process.pid, comm: 'node' });
    },
  },
  'close-wait': {
    port: 18607,
    description:
      "The lab's half-open.mjs (raw net.Socket, allowHalfOpen) sends one keep-alive GET to uvicorn and never closes after uvicorn's idle FIN (5 s): the client's socket sits in CLOSE-WAIT. ss -tanpi sampled every 250 ms; 3 s after the FIN one health-check GET on a fresh connection (from the recorder), then the capture stops while the client still holds the socket.",
    async run(ctx) {
      await session(ctx, { ssIntervalMs: 250 }, async () => {
        const c = client(ctx, 'half-open.mjs', ['--host', '127.0.0.1', '--port', String(ctx.port), '--hold-ms', '12000']);
        ctx.holder = c;
        await waitForLine('the server FIN', ctx.clientLog, (l) => l.event === 'half-open', 15_000, c);
        await delay(3000);
        // One request on a fresh connection (from this recorder, Node http): the capture's clock
        // moves past the FIN, so a reader of the file sees the CLOSE-WAIT last 3 s.
        ctx.processes.healthCheck = { pid: process.pid, comm: 'node', ...(await get('127.0.0.1', ctx.port, '/files/health?detail=summary')) };
      });
      await stopProcess(ctx.holder, 'SIGKILL', 1000);
    },
  },
};

function kernelInfo() {
  const bt = execFileSync('bpftrace', ['--version'], { encoding: 'utf8' }).trim();
  const kernel = execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim();
  const tcpdump = execFileSync('tcpdump', ['--version'], { encoding: 'utf8' }).split('\n')[0];
  const ss = execFileSync('ss', ['-V'], { encoding: 'utf8' }).trim();
  return { bpftrace: bt, kernel, tcpdump, ss, node: process.version };
}

async function main() {
  if (process.getuid?.() !== 0) {
    console.error('record: needs root (bpftrace, tcpdump)');
    process.exit(2);
  }
  const names = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(SCENARIOS);
  mkdirSync(OUT, { recursive: true });
  // The tracepoint formats and the program built from them, once.
  const p = probe();
  if (!p.ok) throw new Error(p.notice);
  writeFileSync(path.join(OUT, 'formats.txt'), p.dump);
  writeFileSync(path.join(OUT, 'script-18605.bt'), buildScript({ ports: [18605], formats: p.formats, btf: p.btf }).text);
  const info = kernelInfo();
  for (const name of names) {
    const sc = SCENARIOS[name];
    if (!sc) throw new Error(`unknown scenario ${name}`);
    const ctx = context(name, sc.port);
    console.log(`record: ${name} on port ${sc.port}`);
    await sc.run(ctx);
    const dir = path.join(OUT, name);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    for (const f of ['pcap', 'bpf', 'ss', 'clientLog', 'serverLog']) {
      try { copyFileSync(ctx[f], path.join(dir, path.basename(ctx[f]))); } catch { /* ss.txt only where sampled */ }
    }
    const meta = {
      scenario: name,
      description: sc.description,
      port: sc.port,
      recordedWith: info,
      clock: ctx.clock,
      processes: ctx.processes,
      tcpdump: ctx.tcpdump,
      bpftrace: ctx.bpftraceStats,
      ...(ctx.raceRounds ? { raceRounds: ctx.raceRounds } : {}),
      ...(ctx.killedAt ? { killedAt: ctx.killedAt } : {}),
      ...(ctx.requests ? { requests: ctx.requests } : {}),
      notices: ctx.notes,
    };
    writeFileSync(path.join(dir, 'session.json'), JSON.stringify(meta, null, 2) + '\n');
    const stderr = (() => { try { return readFileSync(ctx.clientErr, 'utf8').trim(); } catch { return ''; } })();
    if (stderr) console.warn(`record: ${name}: client stderr:\n${stderr}`);
    console.log(`record: ${name}: ${ctx.bpftraceStats.events} kernel events, ${JSON.stringify(ctx.tcpdump)}`);
  }
}

main().catch(async (e) => {
  console.error(`record: ${e.stack ?? e}`);
  await stopAll();
  process.exit(1);
});
