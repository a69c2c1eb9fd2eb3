// Client-side instrumentation for hangscope's repro lab.
//
// Import this module FIRST in every lab client (before axios / node-fetch), so
// the prototype wrappers below are in place when those libraries capture
// `socket.destroy` as a listener.
//
// It writes one JSON object per line to stdout (the scenario runner stores it
// as client.log). Every line has `ts`: wall-clock seconds since the epoch with
// 6 decimals, from performance.timeOrigin + performance.now() — the same
// CLOCK_REALTIME tcpdump stamps packets with.
//
// What it records, and why:
// - per socket (diagnostics_channel 'net.client.socket'): connect (localPort),
//   free (returned to the agent's pool), end (peer FIN read), close;
// - every Socket#setTimeout call, with a summary of the caller's stack: the
//   idle timer is what fires in the incident, so we want to know who armed it;
// - every 'timeout' listener added or removed on a socket, with the stack of
//   whoever added it (follow-redirects adds `socket.destroy` itself);
// - every 'timeout' event, with the listeners it will call;
// - every Socket#destroy call, with who called it. When destroy runs inside a
//   'timeout' emit, the caller's stack is only EventEmitter internals, so the
//   record names the listener registration instead (where socket.destroy was
//   added as a 'timeout' listener);
// - per HTTP request (diagnostics_channel 'http.client.request.start' and
//   ClientRequest events): localPort, reusedSocket, start, response head,
//   body end, low-level error; `track()` adds the library-level outcome and
//   writes one `{"event":"request"}` summary line.
import net from 'node:net';
import http from 'node:http';
import dc from 'node:diagnostics_channel';
import { writeSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

Error.stackTraceLimit = 40;
const SELF = fileURLToPath(import.meta.url);

/** Wall-clock seconds since the epoch, 6 decimals. */
export function now() {
  return Number(((performance.timeOrigin + performance.now()) / 1000).toFixed(6));
}

export function log(fields) {
  writeSync(1, JSON.stringify({ ts: now(), ...fields }) + '\n');
}

// ---------------------------------------------------------------- stacks

/** Shortens one V8 stack frame to "fn (where:line)". */
function shortFrame(line) {
  const m = /^\s*at (?:(.*?) \()?(.*?)\)?$/.exec(line);
  if (!m) return line.trim();
  const fn = m[1] ?? '<anonymous>';
  let where = m[2];
  const nm = where.lastIndexOf('node_modules/');
  if (nm >= 0) where = where.slice(nm + 'node_modules/'.length);
  else if (where.startsWith('file://')) where = where.slice(where.indexOf('/test/lab/') >= 0 ? where.indexOf('/test/lab/') + 1 : 7);
  else if (where.includes('/test/lab/')) where = where.slice(where.indexOf('/test/lab/') + 1);
  where = where.replace(/:\d+$/, ''); // drop the column
  return `${fn} (${where})`;
}

/** The caller's stack without this module's frames, shortened. */
function callerStack() {
  const lines = (new Error().stack ?? '').split('\n').slice(1);
  return lines.filter((l) => !l.includes(SELF)).map(shortFrame);
}

// Event-emitter and stream plumbing: never the interesting caller.
const PLUMBING = /^(?:emit |Socket\.emit|[A-Za-z]*\.emit |EventEmitter\.|Object\.onceWrapper|onceWrapper|process\.processTicksAndRejections|listOnTimeout|process\.processTimers|node:internal\/)|\(node:events|\(node:internal\/process|\(node:internal\/timers/;
const APP_OR_LIB = /\((?:[^()]*node_modules\/|test\/lab\/clients\/)/;

/**
 * One line naming who did it: the first frame in a library (node_modules) or
 * in the lab client's own code; failing that, the first two frames of Node
 * itself that are not event plumbing ("a <- b": a was called by b).
 */
function summarize(frames) {
  const own = frames.find((f) => APP_OR_LIB.test(f) || /^\S+ \((?:axios|follow-redirects|node-fetch)\//.test(f));
  if (own) return own;
  const core = frames.filter((f) => !PLUMBING.test(f));
  return core.slice(0, 2).join(' <- ') || frames[0] || '?';
}

// ---------------------------------------------------------------- sockets

let nextSocketId = 1;
const kInfo = Symbol('hangscope.lab.info');
const kInTimeout = Symbol('hangscope.lab.inTimeout');

function info(socket) {
  let i = socket[kInfo];
  if (!i) {
    i = { id: nextSocketId++, localPort: null, timeoutRegs: [] };
    socket[kInfo] = i;
  }
  return i;
}

function portOf(socket) {
  const i = info(socket);
  if (i.localPort == null && typeof socket.localPort === 'number') i.localPort = socket.localPort;
  return i.localPort;
}

function sockLog(socket, event, fields = {}) {
  const i = info(socket);
  log({ event, socket: i.id, localPort: portOf(socket), ...fields });
}

function listenerName(fn) {
  if (fn?.listener) fn = fn.listener;
  if (fn === net.Socket.prototype.destroy || fn === origDestroy) return 'socket.destroy';
  return fn?.name || '<anonymous>';
}

const proto = net.Socket.prototype;
const origDestroy = proto.destroy;
const origSetTimeout = proto.setTimeout;
const origEmit = proto.emit;
const origOn = proto.on;
const origAddListener = proto.addListener;
const origPrepend = proto.prependListener;
const origRemoveListener = proto.removeListener;
const origOff = proto.off;

proto.setTimeout = function setTimeoutInstrumented(msecs, callback) {
  const frames = callerStack();
  sockLog(this, 'socket-setTimeout', { ms: msecs, by: summarize(frames), stack: frames.slice(0, 6) });
  return origSetTimeout.call(this, msecs, callback);
};

function wrapAdd(orig, how) {
  return function addInstrumented(event, fn) {
    if (event === 'timeout') {
      const frames = callerStack();
      const by = summarize(frames);
      info(this).timeoutRegs.push({ fn, by, stack: frames.slice(0, 6) });
      sockLog(this, 'socket-timeout-listener-added', { how, listener: listenerName(fn), by, stack: frames.slice(0, 6) });
    }
    return orig.call(this, event, fn);
  };
}
proto.on = wrapAdd(origOn, 'on');
proto.addListener = wrapAdd(origAddListener, 'addListener');
// once() goes through this.on() with a wrapper function (fn.listener is the original).
proto.prependListener = wrapAdd(origPrepend, 'prependListener');

function wrapRemove(orig) {
  return function removeInstrumented(event, fn) {
    if (event === 'timeout') {
      const i = info(this);
      const before = this.listeners('timeout').length;
      const r = orig.call(this, event, fn);
      const after = this.listeners('timeout').length;
      if (after < before) {
        const k = i.timeoutRegs.findIndex((reg) => reg.fn === fn || reg.fn?.listener === fn);
        if (k >= 0) i.timeoutRegs.splice(k, 1);
        sockLog(this, 'socket-timeout-listener-removed', { listener: listenerName(fn), by: summarize(callerStack()) });
      }
      return r;
    }
    return orig.call(this, event, fn);
  };
}
proto.removeListener = wrapRemove(origRemoveListener);
proto.off = wrapRemove(origOff);

proto.emit = function emitInstrumented(event, ...args) {
  if (event !== 'timeout') return origEmit.call(this, event, ...args);
  const regs = info(this).timeoutRegs;
  sockLog(this, 'socket-timeout', {
    idleMs: this.timeout,
    listeners: this.listeners('timeout').map((fn) => {
      const reg = regs.find((r) => r.fn === fn || r.fn?.listener === fn);
      return { listener: listenerName(fn), addedBy: reg?.by ?? null };
    }),
  });
  this[kInTimeout] = true;
  try {
    return origEmit.call(this, event, ...args);
  } finally {
    this[kInTimeout] = false;
  }
};

const origEnd = proto.end;
proto.end = function endInstrumented(...args) {
  if (!this.writableEnded && !this.destroyed) {
    const frames = callerStack();
    sockLog(this, 'socket-shutdown', { by: summarize(frames), note: 'end(): our FIN', stack: frames.slice(0, 8) });
  }
  return origEnd.apply(this, args);
};

proto.destroy = function destroyInstrumented(err) {
  if (!this.destroyed) {
    const frames = callerStack();
    let by = summarize(frames);
    let cause = 'call';
    if (this[kInTimeout]) {
      // Called as a 'timeout' listener: name where that listener was added.
      const reg = info(this).timeoutRegs.find((r) => r.fn === proto.destroy || r.fn === origDestroy);
      cause = 'timeout-listener';
      by = reg
        ? `socket.destroy registered as 'timeout' listener by ${reg.by}`
        : `a 'timeout' listener: ${by}`;
    }
    sockLog(this, 'socket-destroy', {
      cause,
      by,
      idleMs: this.timeout ?? null,
      error: err ? err.message : null,
      errorCode: err?.code ?? null,
      stack: frames.slice(0, 8),
    });
  }
  return origDestroy.call(this, err);
};

dc.subscribe('net.client.socket', ({ socket }) => {
  const i = info(socket);
  log({ event: 'socket-created', socket: i.id });
  origOn.call(socket, 'connect', () => {
    sockLog(socket, 'socket-connect', { remote: `${socket.remoteAddress}:${socket.remotePort}` });
  });
  origOn.call(socket, 'free', () => sockLog(socket, 'socket-free'));
  origOn.call(socket, 'end', () => sockLog(socket, 'socket-peer-end', { note: 'peer FIN read' }));
  origOn.call(socket, 'close', (hadError) => sockLog(socket, 'socket-close', { hadError }));
});

// ---------------------------------------------------------------- requests

/** Requests started by track() and not yet bound to a ClientRequest. */
const pending = [];
const kRec = Symbol('hangscope.lab.rec');

/**
 * Binds a ClientRequest to the oldest pending track() record with the same
 * method and path. Called when the request gets its socket, when it first
 * writes to the socket, and from 'http.client.request.start' (which Node 20
 * publishes late, from ClientRequest#_finish), whichever comes first.
 */
function bindRequest(request) {
  let rec = request[kRec];
  if (rec) return rec;
  const k = pending.findIndex((r) => !r.bound && r.method === request.method && r.target === request.path);
  rec = k >= 0 ? pending.splice(k, 1)[0] : { method: request.method, target: request.path, untracked: true };
  rec.bound = true;
  request[kRec] = rec;
  return rec;
}

dc.subscribe('http.client.request.start', ({ request }) => {
  bindRequest(request);
});

// `start` of a request = just before its first bytes (the request head) are
// written to the kernel. net's _writeGeneric does the write syscall
// synchronously (libuv tries the write at once); while the socket is still
// connecting it parks the data and calls itself again on 'connect', so the
// wrapper sees the real write then. On loopback the packet is captured during
// that syscall, so the request's frame lies between `start` and `startAfter`
// (taken when _writeGeneric returns); on a busy machine the process can be
// descheduled in between, which `startAfter` makes visible.
const origWriteGeneric = proto._writeGeneric;
proto._writeGeneric = function writeGenericInstrumented(...args) {
  const req = this._httpMessage;
  const rec = !this.connecting && req instanceof http.ClientRequest ? bindRequest(req) : null;
  if (!rec || rec.start != null) return origWriteGeneric.apply(this, args);
  // Set before the call: the write can re-enter _writeGeneric (buffered
  // chunks flushed from the write callback), and the first syscall is ours.
  rec.start = now();
  const r = origWriteGeneric.apply(this, args);
  rec.startAfter = now();
  log({ event: 'request-start', client: rec.client ?? null, method: rec.method, target: rec.target, socket: info(this).id, localPort: portOf(this), start: rec.start, startAfter: rec.startAfter });
  return r;
};

dc.subscribe('http.client.request.error', ({ request, error }) => {
  const rec = request[kRec];
  if (!rec || rec.error) return;
  rec.error = error.message;
  rec.errorCode = error.code ?? null;
  rec.errorTs = now();
  log({ event: 'request-error', client: rec.client ?? null, method: rec.method, target: rec.target, localPort: rec.localPort ?? null, error: rec.error, errorCode: rec.errorCode });
});

const reqEmit = http.ClientRequest.prototype.emit;
http.ClientRequest.prototype.emit = function emitRequestInstrumented(event, ...args) {
  const rec = event === 'socket' ? bindRequest(this) : this[kRec];
  if (rec) {
    if (event === 'socket') {
      const socket = args[0];
      rec.reusedSocket = !!this.reusedSocket;
      const bind = () => {
        rec.localPort = portOf(socket);
        rec.socket = info(socket).id;
        log({ event: 'request-socket', client: rec.client ?? null, method: rec.method, target: rec.target, socket: rec.socket, localPort: rec.localPort, reusedSocket: rec.reusedSocket });
      };
      if (socket.connecting) socket.once('connect', bind);
      else bind();
    } else if (event === 'response') {
      const res = args[0];
      rec.firstByte = now();
      rec.status = res.statusCode;
      log({ event: 'response-head', client: rec.client ?? null, method: rec.method, target: rec.target, localPort: rec.localPort ?? null, status: res.statusCode, headers: res.headers });
      res.once('end', () => {
        rec.resEnd = now();
        log({ event: 'response-end', client: rec.client ?? null, method: rec.method, target: rec.target, localPort: rec.localPort ?? null });
      });
      res.once('aborted', () => {
        rec.aborted = now();
        log({ event: 'response-aborted', client: rec.client ?? null, method: rec.method, target: rec.target, localPort: rec.localPort ?? null });
      });
    }
  }
  return reqEmit.call(this, event, ...args);
};

/**
 * Runs one library call and logs one `{"event":"request"}` summary line.
 * `fn` returns a promise of `{status}`; it must start exactly one HTTP request
 * with this method and target (path + query, as sent on the wire).
 */
export async function track(client, method, target, fn, extra = {}) {
  const rec = { client, method, target, libCall: now(), bound: false };
  pending.push(rec);
  let status = null;
  let libError = null;
  let libErrorCode = null;
  let result;
  try {
    result = await fn();
    status = result?.status ?? null;
  } catch (err) {
    libError = err?.message ?? String(err);
    libErrorCode = err?.code ?? null;
  }
  const settled = now();
  const k = pending.indexOf(rec);
  if (k >= 0) pending.splice(k, 1);
  const summary = {
    event: 'request',
    client,
    method,
    target,
    localPort: rec.localPort ?? null,
    socket: rec.socket ?? null,
    reusedSocket: rec.reusedSocket ?? null,
    libCall: rec.libCall,
    start: rec.start ?? null,
    startAfter: rec.startAfter ?? null,
    firstByte: rec.firstByte ?? null,
    // Body complete, else the low-level error, else when the library settled.
    end: rec.resEnd ?? rec.errorTs ?? settled,
    settled,
    status: status ?? rec.status ?? null,
    error: rec.error ?? (libError && !rec.resEnd ? libError : null),
    errorCode: rec.errorCode ?? (libError && !rec.resEnd ? libErrorCode : null),
    libError,
    libErrorCode,
    ...extra,
  };
  log(summary);
  return { summary, result };
}

/**
 * GET `base + target` through `agent` (Node's http), body read and dropped:
 * {status, endedAt (performance.now() at the end of the body), req}.
 */
export function getThrough(base, agent, target) {
  return new Promise((resolve, reject) => {
    const req = http.request(base + target, { agent, method: 'GET' }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, endedAt: performance.now(), req }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Sleeps `ms` on a timer (the event loop stays free). */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

process.on('uncaughtException', (err) => {
  log({ event: 'uncaught-exception', error: err.message, errorCode: err.code ?? null, stack: (err.stack ?? '').split('\n').slice(0, 6) });
  process.exit(1);
});
