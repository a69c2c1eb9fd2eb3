/**
 * Loopback HTTP/1.1 load for the live part of the benchmark: a Node http
 * server on 127.0.0.1:PORT and keep-alive clients (16 requests in flight over
 * at most 8 sockets) for --seconds; responses of 0 to 64 KiB, a third chunked.
 * --rate N paces the clients to about N requests per second (0: as fast as
 * they go). Stops issuing at the deadline, waits for what is in flight, closes
 * the sockets, then prints { seconds, requests } (requests answered) as JSON.
 *
 * --raw: the same exchange pattern without Node's http stack (too slow to
 * load a capture much): 16 keep-alive sockets, each sending a GET and waiting
 * for its canned 200 (Content-Length, 0 to 1 KiB) before the next: about 3
 * packets per exchange at several times the rate.
 *
 *   node bench/loadgen.js --port 18080 --seconds 10 [--rate 2000] [--raw]
 */
import http from 'node:http';

const argv = process.argv.slice(2);
const opt = (n, d) => (argv.indexOf(n) >= 0 ? argv[argv.indexOf(n) + 1] : d);
const port = Number(opt('--port', '18080'));
const seconds = Number(opt('--seconds', '10'));
const rate = Number(opt('--rate', '0'));
const body = Buffer.alloc(65536, 'x');

if (argv.includes('--raw')) await raw();

const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const n = Math.floor(Math.random() ** 3 * 65536);
    if (n % 3 === 0) {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write(body.subarray(0, n >> 1));
      res.end(body.subarray(0, n - (n >> 1)));
    } else {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': n });
      res.end(body.subarray(0, n));
    }
  });
});
server.keepAliveTimeout = 60_000;
await new Promise((r) => server.listen(port, '127.0.0.1', r));

const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
let requests = 0;
const t0 = Date.now();
const deadline = t0 + seconds * 1000;

function one() {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: `/item/${requests}?page=2`, agent, method: requests % 10 === 0 ? 'POST' : 'GET' }, (res) => {
      res.resume();
      res.on('end', () => {
        requests++;
        resolve();
      });
    });
    req.on('error', reject);
    if (requests % 10 === 0) req.end(JSON.stringify({ n: requests }));
    else req.end();
  });
}

let slot = t0;
async function loop() {
  while (Date.now() < deadline) {
    if (rate > 0) {
      // Each request takes the next slot of a 1/rate grid.
      const at = slot;
      slot += 1000 / rate;
      const wait = at - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (Date.now() >= deadline) break;
    }
    await one();
  }
}
await Promise.all(Array.from({ length: 16 }, loop));
const elapsed = (Date.now() - t0) / 1000;
agent.destroy();
await new Promise((r) => server.close(r));
process.stdout.write(`${JSON.stringify({ seconds: elapsed, requests })}\n`);

/** --raw: plain sockets, canned messages. */
async function raw() {
  const net = await import('node:net');
  const sizes = [0, 37, 120, 512, 1024];
  const responses = sizes.map((n) => Buffer.from(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${n}\r\n\r\n${'x'.repeat(n)}`, 'latin1'));
  const request = (i) => Buffer.from(`GET /item/${i}?page=2 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: keep-alive\r\n\r\n`, 'latin1');
  const srv = net.createServer((sock) => {
    let pending = '';
    let k = 0;
    sock.on('data', (d) => {
      pending += d.toString('latin1');
      let e;
      while ((e = pending.indexOf('\r\n\r\n')) >= 0) {
        pending = pending.slice(e + 4);
        sock.write(responses[k++ % responses.length]);
      }
    });
    sock.on('error', () => {});
  });
  await new Promise((r) => srv.listen(port, '127.0.0.1', r));
  let done = 0;
  const t0 = Date.now();
  const deadline = t0 + seconds * 1000;
  let slot = t0;
  const clients = Array.from({ length: 16 }, (_, c) =>
    new Promise((resolve) => {
      const sock = net.connect(port, '127.0.0.1');
      let k = 0;
      let want = 0;
      let got = 0;
      const next = async () => {
        if (Date.now() >= deadline) return sock.end(resolve);
        if (rate > 0) {
          const at = slot;
          slot += 1000 / rate;
          const wait = at - Date.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        }
        want = responses[k % responses.length].length;
        got = 0;
        sock.write(request(c * 1e9 + k));
        k++;
      };
      sock.on('connect', next);
      sock.on('data', (d) => {
        got += d.length;
        if (got >= want) {
          done++;
          void next();
        }
      });
      sock.on('error', resolve);
    }),
  );
  await Promise.all(clients);
  const elapsed = (Date.now() - t0) / 1000;
  await new Promise((r) => srv.close(r));
  process.stdout.write(`${JSON.stringify({ seconds: elapsed, requests: done })}\n`);
  process.exit(0);
}
