// Scenario g: CLOSE-WAIT. A raw TCP client (net.Socket, allowHalfOpen: true)
// sends one keep-alive request, reads the response, and when the server closes
// the idle connection (FIN) it never closes its own side: the socket sits in
// CLOSE-WAIT until the process exits (after --hold-ms; the lab runner stops
// the capture and records `ss -tan` before that).
//
//   node half-open.mjs --host 127.0.0.1 --port 8007 [--hold-ms 6000]
import { log, now } from './instrument.mjs';
import net from 'node:net';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '8007' },
    'hold-ms': { type: 'string', default: '6000' },
  },
});
log({ event: 'client-start', script: 'half-open.mjs', node: process.version, opts });

const target = '/files/abc?detail=summary';
const socket = net.connect({ host: opts.host, port: Number(opts.port), allowHalfOpen: true });
const rec = { event: 'request', client: 'net', method: 'GET', target, localPort: null, start: null, firstByte: null, end: null, status: null, error: null, errorCode: null };
let buf = '';
socket.on('connect', () => {
  rec.localPort = socket.localPort;
  rec.start = now();
  socket.write(`GET ${target} HTTP/1.1\r\nHost: ${opts.host}:${opts.port}\r\nConnection: keep-alive\r\n\r\n`);
});
socket.on('data', (d) => {
  if (rec.firstByte == null) rec.firstByte = now();
  buf += d;
  const head = buf.indexOf('\r\n\r\n');
  if (head >= 0 && rec.end == null) {
    const len = Number(/content-length:\s*(\d+)/i.exec(buf.slice(0, head))?.[1] ?? 0);
    if (buf.length >= head + 4 + len) {
      rec.end = now();
      rec.status = Number(buf.slice(9, 12));
      log(rec);
    }
  }
});
socket.on('end', () => {
  // allowHalfOpen: Node does NOT end our side for us. We deliberately never
  // call socket.end() or destroy(): the application "forgot" the socket.
  log({ event: 'half-open', localPort: rec.localPort, note: 'peer FIN read; this client never closes its side (CLOSE-WAIT)' });
});
socket.on('error', (e) => log({ event: 'socket-error', localPort: rec.localPort, error: e.message, errorCode: e.code ?? null }));
setTimeout(() => { log({ event: 'client-exit' }); process.exit(0); }, Number(opts['hold-ms']));
