// Builds truth.json for a lab scenario from the programs' own logs
// (client.log from clients/instrument.mjs, server.log from uvicorn/app.py or
// node-server.mjs), plus a few facts read from the capture with tshark for
// cross-checking (kept apart, in `captureFacts`). Shape: see README.md.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { readJsonLines, run, has, PYTHON, REPO } from './harness.mjs';

const require = createRequire(path.join(REPO, 'package.json'));

let versionsCache;
/** Versions of everything that made the capture. */
export function generatedWith() {
  if (versionsCache) return versionsCache;
  const pkg = (name) => {
    try { return JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')).version; } catch { return null; }
  };
  let py = {};
  try {
    py = JSON.parse(run(PYTHON, ['-c', 'import json,sys,uvicorn,fastapi,h11,starlette; print(json.dumps({"python": sys.version.split()[0], "uvicorn": uvicorn.__version__, "fastapi": fastapi.__version__, "starlette": starlette.__version__, "h11": h11.__version__}))']));
  } catch { /* reported by the prerequisite check */ }
  const firstLine = (cmd, args) => {
    try { return run(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0].trim(); } catch (e) { return String(e.stdout ?? e.stderr ?? '').split('\n')[0].trim() || null; }
  };
  versionsCache = {
    node: process.version,
    axios: pkg('axios'),
    followRedirects: pkg('follow-redirects'),
    nodeFetch: pkg('node-fetch'),
    uvicorn: py.uvicorn ?? null,
    fastapi: py.fastapi ?? null,
    starlette: py.starlette ?? null,
    h11: py.h11 ?? null,
    python: py.python ?? null,
    tcpdump: firstLine('tcpdump', ['--version']),
    kernel: run('uname', ['-r']).trim(),
  };
  return versionsCache;
}

const r6 = (x) => (x == null ? null : Number(Number(x).toFixed(6)));

/** Requests: one per `{"event":"request"}` summary line of the client log. */
export function requestsFrom(clientLines) {
  return clientLines.filter((l) => l.event === 'request').map((l) => {
    const out = {
      client: l.client,
      method: l.method,
      target: l.target,
      localPort: l.localPort ?? null,
      start: r6(l.start),
      firstByte: r6(l.firstByte),
      end: r6(l.end),
      status: l.status ?? null,
      error: l.error ?? null,
      errorCode: l.errorCode ?? null,
    };
    if (l.reusedSocket != null) out.reusedSocket = l.reusedSocket;
    if (l.libError != null) { out.libError = l.libError; out.libErrorCode = l.libErrorCode ?? null; }
    if (l.attempt != null) out.attempt = l.attempt;
    return out;
  });
}

/**
 * Socket events from the client instrumentation: connect, returned to the
 * pool, idle timeout fired, destroy (and who), peer FIN read, close; plus
 * where a `socket.destroy` 'timeout' listener was installed.
 */
export function socketEventsFrom(clientLines) {
  const portById = new Map();
  for (const l of clientLines) if (l.socket != null && l.localPort != null) portById.set(l.socket, l.localPort);
  const port = (l) => l.localPort ?? portById.get(l.socket) ?? null;
  const out = [];
  const connected = new Set();
  const closed = new Set();
  for (const l of clientLines) {
    switch (l.event) {
      case 'socket-connect':
        out.push({ localPort: port(l), ts: l.ts, event: 'connect' });
        break;
      case 'socket-free':
        out.push({ localPort: port(l), ts: l.ts, event: 'returned-to-pool' });
        break;
      case 'request-socket':
        if (l.reusedSocket) out.push({ localPort: port(l), ts: l.ts, event: 'reused', by: `${l.client} ${l.method} ${l.target}` });
        break;
      case 'socket-timeout-listener-added':
        if (l.listener === 'socket.destroy') out.push({ localPort: port(l), ts: l.ts, event: 'destroy-on-timeout-listener-added', by: l.by });
        break;
      case 'socket-timeout':
        out.push({ localPort: port(l), ts: l.ts, event: 'idle-timeout', idleMs: l.idleMs, listeners: l.listeners.map((x) => x.listener) });
        break;
      case 'socket-destroy':
        out.push({ localPort: port(l), ts: l.ts, event: 'destroy', by: l.by, cause: l.cause, error: l.error, errorCode: l.errorCode });
        break;
      case 'socket-peer-end':
        out.push({ localPort: port(l), ts: l.ts, event: 'peer-fin' });
        break;
      case 'socket-shutdown':
        out.push({ localPort: port(l), ts: l.ts, event: 'shutdown', by: l.by });
        break;
      case 'half-open':
        out.push({ localPort: port(l), ts: l.ts, event: 'half-open-kept', by: 'net.Socket with allowHalfOpen: the client never ends its side' });
        break;
      case 'socket-close':
        out.push({ localPort: port(l), ts: l.ts, event: 'close', hadError: l.hadError });
        closed.add(port(l));
        break;
      case 'client-exit':
        // Sockets still open now are closed by the kernel when the process exits.
        for (const p of connected) {
          if (!closed.has(p)) out.push({ localPort: p, ts: l.ts, event: 'process-exit', by: 'client process exit (the kernel closes the socket)' });
        }
        break;
      default:
    }
    if (l.event === 'socket-connect') connected.add(port(l));
  }
  return out;
}

const UVICORN_CONN = /^([\d.]+):(\d+) - HTTP connection (made|lost)$/;
const UVICORN_ACCESS = /^([\d.]+):(\d+) - "(\S+) (\S+) HTTP\/([\d.]+)" (\d+)$/;

/** Server events from uvicorn/app.py or node-server.mjs JSON lines. */
export function serverEventsFrom(serverLines) {
  const out = [];
  for (const l of serverLines) {
    if (l.raw != null) continue;
    if (l.logger === 'uvicorn.error' && typeof l.msg === 'string') {
      const m = UVICORN_CONN.exec(l.msg);
      if (m) out.push({ ts: l.ts, event: m[3] === 'made' ? 'connection-made' : 'connection-lost', clientPort: Number(m[2]) });
      continue;
    }
    if (l.logger === 'uvicorn.access' && typeof l.msg === 'string') {
      const m = UVICORN_ACCESS.exec(l.msg);
      if (m) out.push({ ts: l.ts, event: 'access-log', clientPort: Number(m[2]), method: m[3], target: m[4], status: Number(m[6]) });
      continue;
    }
    if ((l.logger === 'lab.app' || l.logger === 'node-server' || l.logger === 'lab-runner') && l.event) {
      if (l.event === 'listening') continue;
      const { logger, level, msg, ...rest } = l;
      out.push(rest);
    }
  }
  return out;
}

// ---------------------------------------------------------------- tshark

export function tsharkAvailable() {
  return has('tshark');
}

/** Per-frame TCP fields from tshark (no reassembly), as objects. */
export function tsharkFrames(pcap) {
  const fields = ['frame.number', 'frame.time_epoch', 'tcp.stream', 'ip.src', 'tcp.srcport', 'ip.dst', 'tcp.dstport',
    'tcp.flags.syn', 'tcp.flags.ack', 'tcp.flags.fin', 'tcp.flags.reset', 'tcp.len'];
  const out = run('tshark', ['-r', pcap, '-n', '-o', 'tcp.desegment_tcp_streams:FALSE', '-Y', 'tcp', '-T', 'fields', '-E', 'separator=\t',
    ...fields.flatMap((f) => ['-e', f])], { stdio: ['ignore', 'pipe', 'ignore'] });
  return out.split('\n').filter(Boolean).map((line) => {
    const v = line.split('\t');
    const flag = (s) => s === '1' || s === 'True';
    return {
      frame: Number(v[0]), ts: Number(v[1]), stream: Number(v[2]), src: v[3], srcPort: Number(v[4]), dst: v[5], dstPort: Number(v[6]),
      syn: flag(v[7]), ack: flag(v[8]), fin: flag(v[9]), rst: flag(v[10]), len: Number(v[11]),
    };
  });
}

/** HTTP request frames (the frame holding the request line), tshark without reassembly. */
export function tsharkHttpRequests(pcap) {
  const out = run('tshark', ['-r', pcap, '-n', '-o', 'tcp.desegment_tcp_streams:FALSE', '-Y', 'http.request', '-T', 'fields', '-E', 'separator=\t',
    '-e', 'frame.number', '-e', 'frame.time_epoch', '-e', 'tcp.stream', '-e', 'tcp.srcport', '-e', 'http.request.method', '-e', 'http.request.uri'],
  { stdio: ['ignore', 'pipe', 'ignore'] });
  return out.split('\n').filter(Boolean).map((line) => {
    const v = line.split('\t');
    return { frame: Number(v[0]), ts: Number(v[1]), stream: Number(v[2]), srcPort: Number(v[3]), method: v[4], target: v[5] };
  });
}

/** HTTP response frames (status line), tshark without reassembly. */
export function tsharkHttpResponses(pcap) {
  const out = run('tshark', ['-r', pcap, '-n', '-o', 'tcp.desegment_tcp_streams:FALSE', '-Y', 'http.response', '-T', 'fields', '-E', 'separator=\t',
    '-e', 'frame.number', '-e', 'frame.time_epoch', '-e', 'tcp.stream', '-e', 'tcp.dstport', '-e', 'http.response.code'],
  { stdio: ['ignore', 'pipe', 'ignore'] });
  return out.split('\n').filter(Boolean).map((line) => {
    const v = line.split('\t');
    return { frame: Number(v[0]), ts: Number(v[1]), stream: Number(v[2]), dstPort: Number(v[3]), status: Number(v[4]) };
  });
}

/**
 * Per TCP connection: the client's port, and the first FIN / RST each side
 * sent (time and frame number). From tshark, not from the programs.
 */
export function connectionFacts(pcap, serverPort) {
  const frames = tsharkFrames(pcap);
  const byStream = new Map();
  for (const f of frames) {
    let c = byStream.get(f.stream);
    if (!c) {
      const clientPort = f.srcPort === serverPort ? f.dstPort : f.srcPort;
      c = { stream: f.stream, clientPort, firstFrame: f.frame, first: f.ts, last: f.ts, packets: 0, clientFin: null, serverFin: null, clientRst: null, serverRst: null, clientPayloadBytes: 0, serverPayloadBytes: 0 };
      byStream.set(f.stream, c);
    }
    c.packets++;
    c.last = f.ts;
    const fromServer = f.srcPort === serverPort;
    if (fromServer) c.serverPayloadBytes += f.len; else c.clientPayloadBytes += f.len;
    const at = { ts: f.ts, frame: f.frame };
    if (f.fin) { if (fromServer) c.serverFin ??= at; else c.clientFin ??= at; }
    if (f.rst) { if (fromServer) c.serverRst ??= at; else c.clientRst ??= at; }
  }
  return [...byStream.values()];
}
