#!/usr/bin/env node
/**
 * Real HTTP traffic past hangscope's per-message and per-connection bounds,
 * on loopback, captured with tcpdump (needs root):
 *
 *   node test/bounds/http-traffic.mjs limits OUT.pcap
 *     a Node http server (maxHeaderSize 1 MiB, so it accepts what hangscope
 *     does not keep) and a raw socket client, one connection each for:
 *       1. a request with a 100 KiB header line, then GET /after-big on the same socket;
 *       2. a request with 100 header fields;
 *       3. GET /many-response-headers, answered with 100 header fields and a 100 KiB one;
 *       4. 10,050 pipelined requests (50 per write) on one keep-alive socket.
 *     Prints (and writes to OUT.json) the responses each client counted, with its port.
 *
 *   node test/bounds/http-traffic.mjs huge-head OUT.pcap BYTES
 *     a client sending a head that never ends (BYTES of one header line) to a
 *     plain TCP server that reads and discards: what a broken or hostile
 *     client does to a proxy.
 */
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tcpdumpListening } from '../tcpdump.mjs';

async function startTcpdump(file, port) {
  const { td, stderr } = await tcpdumpListening('tcpdump', ['-i', 'lo', '-s', '0', '-U', '--immediate-mode', '-B', '131072', '-w', file, `tcp port ${port}`]);
  return async () => {
    await new Promise((r) => setTimeout(r, 400));
    const done = new Promise((r) => td.on('exit', r));
    td.kill('SIGTERM');
    await done;
    return /(\d+) packets? dropped by kernel/.exec(stderr())?.[1] ?? null;
  };
}

/** Send `chunks` on a new socket; resolve with the client port once `expect` responses (count of "HTTP/1.1 ") arrived. */
function exchange(port, chunks, expect) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, async () => {
      for (const c of chunks) {
        if (!s.write(c)) await new Promise((r) => s.once('drain', r));
      }
    });
    let seen = 0;
    let tail = '';
    s.setEncoding('latin1');
    s.on('data', (d) => {
      const t = tail + d;
      seen += t.split('HTTP/1.1 ').length - 1;
      tail = t.slice(-8);
      if (seen >= expect) s.end();
    });
    s.on('error', reject);
    s.on('close', () => resolve({ clientPort: s.localPort, responses: seen }));
  });
}

async function limits(out) {
  const server = http.createServer({ maxHeaderSize: 1 << 20, keepAliveTimeout: 10_000 }, (req, res) => {
    req.resume();
    if (req.url === '/many-response-headers') {
      for (let i = 0; i < 100; i++) res.setHeader(`X-R${i}`, String(i));
      res.setHeader('X-Big-Response', 'r'.repeat(100 * 1024));
    }
    res.setHeader('Content-Length', '3');
    res.end('ok\n');
  });
  server.maxRequestsPerSocket = 0;
  server.headersTimeout = 60_000;
  server.requestTimeout = 120_000;
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = server.address().port;
  const stop = await startTcpdump(out, port);
  const host = `Host: 127.0.0.1:${port}\r\n`;
  const res = {};
  res.bigHeader = await exchange(port, [`GET /big-header HTTP/1.1\r\n${host}X-Big: ${'b'.repeat(100 * 1024)}\r\n\r\n`, `GET /after-big HTTP/1.1\r\n${host}\r\n`], 2);
  let many = `GET /many-headers HTTP/1.1\r\n${host}`;
  for (let i = 0; i < 100; i++) many += `X-H${i}: ${i}\r\n`;
  res.manyHeaders = await exchange(port, [`${many}\r\n`], 1);
  res.manyResponseHeaders = await exchange(port, [`GET /many-response-headers HTTP/1.1\r\n${host}\r\n`], 1);
  const N = 10_050;
  const batches = [];
  for (let i = 1; i <= N; i += 50) {
    let b = '';
    for (let j = i; j < i + 50 && j <= N; j++) b += `GET /r/${j} HTTP/1.1\r\n${host}\r\n`;
    batches.push(b);
  }
  res.pipelined = { ...(await exchange(port, batches, N)), requests: N };
  const dropped = await stop();
  server.close();
  server.closeAllConnections();
  const log = JSON.stringify({ port, tcpdumpDropped: dropped === null ? null : Number(dropped), ...res });
  // The client's own count of responses, beside the capture (tshark's HTTP dissector misses some pipelined ones).
  writeFileSync(out.replace(/\.pcap$/, '.json'), `${log}\n`);
  console.log(log);
}

async function hugeHead(out, bytes) {
  const server = net.createServer((s) => {
    s.resume();
    s.on('error', () => {});
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = server.address().port;
  const stop = await startTcpdump(out, port);
  await new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, async () => {
      s.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Endless: `);
      const piece = Buffer.alloc(64 * 1024, 'a');
      for (let sent = 0; sent < bytes; sent += piece.length) {
        if (!s.write(piece)) await new Promise((r) => s.once('drain', r));
      }
      s.end();
    });
    s.on('error', reject);
    s.on('close', resolve);
  });
  const dropped = await stop();
  server.close();
  console.log(JSON.stringify({ port, bytes, tcpdumpDropped: dropped === null ? null : Number(dropped) }));
}

const [mode, out, arg] = process.argv.slice(2);
if (mode === 'limits' && out) await limits(out);
else if (mode === 'huge-head' && out && arg) await hugeHead(out, Number(arg));
else {
  console.error('usage: http-traffic.mjs limits OUT.pcap | huge-head OUT.pcap BYTES');
  process.exit(2);
}
