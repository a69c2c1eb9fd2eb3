// A client that ignores the server's FIN: one keep-alive GET on a raw socket
// (allowHalfOpen), then, once the server has closed the idle connection (its
// FIN read here), a second GET on the same socket. The server's socket is
// closed, so its kernel answers the request with RST: the keep-alive race
// made certain instead of lucky.
//
//   node request-after-fin.mjs --host 127.0.0.1 --port 8000 [--after-fin-ms 50]
//
// Writes JSON lines: {ts, event, ...}; ts is wall-clock seconds with 6 decimals
// (performance.timeOrigin + performance.now(), CLOCK_REALTIME like tcpdump's stamps).
import net from 'node:net';
import { parseArgs } from 'node:util';
import { writeSync } from 'node:fs';

const { values: opts } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '8000' },
    'after-fin-ms': { type: 'string', default: '50' },
    'give-up-ms': { type: 'string', default: '15000' },
  },
});
const now = () => Number(((performance.timeOrigin + performance.now()) / 1000).toFixed(6));
const log = (f) => writeSync(1, JSON.stringify({ ts: now(), ...f }) + '\n');
const req = (path) => `GET ${path} HTTP/1.1\r\nHost: ${opts.host}:${opts.port}\r\nConnection: keep-alive\r\n\r\n`;

const socket = net.connect({ host: opts.host, port: Number(opts.port), allowHalfOpen: true });
let localPort = null;
socket.on('connect', () => {
  localPort = socket.localPort;
  log({ event: 'connect', localPort, pid: process.pid });
  socket.write(req('/files/after-fin?detail=summary'));
  log({ event: 'request', localPort, n: 1 });
});
socket.on('data', (d) => log({ event: 'data', localPort, bytes: d.length, status: /^HTTP\/1\.1 (\d{3})/.exec(d.toString('latin1'))?.[1] ?? null }));
socket.on('end', () => {
  log({ event: 'peer-fin', localPort });
  setTimeout(() => {
    socket.write(req('/files/after-fin-2?detail=summary'));
    log({ event: 'request', localPort, n: 2, note: 'written after the server FIN' });
  }, Number(opts['after-fin-ms']));
});
socket.on('error', (e) => log({ event: 'error', localPort, error: e.message, code: e.code ?? null }));
socket.on('close', () => {
  log({ event: 'close', localPort });
  setTimeout(() => process.exit(0), 100);
});
setTimeout(() => { log({ event: 'give-up', localPort }); process.exit(1); }, Number(opts['give-up-ms']));
