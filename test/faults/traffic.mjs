#!/usr/bin/env node
/**
 * Steady HTTP traffic for the fault and soak tests: a Node http server and a
 * Node http client (keep-alive agent) making requests one after the other.
 *
 *   node test/faults/traffic.mjs both PORT SECONDS [INTERVAL_MS] [SOCKETS]   server and client on 127.0.0.1
 *   node test/faults/traffic.mjs server HOST PORT                             server only (until killed)
 *   node test/faults/traffic.mjs client HOST PORT SECONDS [INTERVAL_MS] [SOCKETS]
 *
 * The client prints one JSON line at the end: requests, responses, errors.
 * SOCKETS parallel loops (default 1) on a keep-alive agent, each waiting
 * INTERVAL_MS (default 10) between its requests; SOCKETS 0: one loop, a new
 * connection for every request. The server answers 200 with a small body.
 */
import http from 'node:http';

function serve(host, port) {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '3' });
      res.end('ok\n');
    });
  });
  server.keepAliveTimeout = 30_000;
  return new Promise((resolve) => server.listen(port, host, () => resolve(server)));
}

async function client(host, port, seconds, interval, sockets) {
  const fresh = sockets === 0;
  const agent = fresh ? false : new http.Agent({ keepAlive: true, maxSockets: sockets });
  if (fresh) sockets = 1;
  const stats = { requests: 0, responses: 0, errors: 0 };
  const until = Date.now() + seconds * 1000;
  const loop = async (k) => {
    let i = 0;
    while (Date.now() < until) {
      stats.requests++;
      await new Promise((resolve) => {
        const req = http.get({ host, port, path: `/t/${k}/${i++}`, agent }, (res) => {
          res.resume();
          res.on('end', () => {
            stats.responses++;
            resolve();
          });
        });
        req.setTimeout(5000, () => req.destroy(new Error('timeout')));
        req.on('error', () => {
          stats.errors++;
          resolve();
        });
      });
      if (interval > 0) await new Promise((r) => setTimeout(r, interval));
    }
  };
  await Promise.all(Array.from({ length: sockets }, (_, k) => loop(k)));
  if (agent) agent.destroy();
  return stats;
}

const [mode, ...a] = process.argv.slice(2);
if (mode === 'both') {
  const [port, seconds, interval = '10', sockets = '1'] = a;
  const server = await serve('127.0.0.1', Number(port));
  const stats = await client('127.0.0.1', Number(port), Number(seconds), Number(interval), Number(sockets));
  server.close();
  server.closeAllConnections();
  console.log(JSON.stringify(stats));
} else if (mode === 'server') {
  await serve(a[0], Number(a[1]));
  console.log('listening');
} else if (mode === 'client') {
  const [host, port, seconds, interval = '10', sockets = '1'] = a;
  console.log(JSON.stringify(await client(host, Number(port), Number(seconds), Number(interval), Number(sockets))));
} else {
  console.error('usage: traffic.mjs both PORT SECONDS [INTERVAL_MS] [SOCKETS] | server HOST PORT | client HOST PORT SECONDS [INTERVAL_MS] [SOCKETS]');
  process.exit(2);
}
