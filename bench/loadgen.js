/**
 * Loopback HTTP/1.1 load for the live part of the benchmark: a Node http
 * server on 127.0.0.1:PORT and keep-alive clients (16 requests in flight over
 * at most 8 sockets) for --seconds; responses of 0 to 64 KiB, a third chunked.
 * Stops issuing at the deadline, waits for what is in flight, closes the
 * sockets, then prints { seconds, requests } (requests answered) as JSON.
 *
 *   node bench/loadgen.js --port 18080 --seconds 10
 */
import http from 'node:http';

const argv = process.argv.slice(2);
const opt = (n, d) => (argv.indexOf(n) >= 0 ? argv[argv.indexOf(n) + 1] : d);
const port = Number(opt('--port', '18080'));
const seconds = Number(opt('--seconds', '10'));
const body = Buffer.alloc(65536, 'x');

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

async function loop() {
  while (Date.now() < deadline) await one();
}
await Promise.all(Array.from({ length: 16 }, loop));
const elapsed = (Date.now() - t0) / 1000;
agent.destroy();
await new Promise((r) => server.close(r));
process.stdout.write(`${JSON.stringify({ seconds: elapsed, requests })}\n`);
