// The incident's server side, as a Node http server on loopback (test support for watch.test.ts):
// GET /files/:id answers at once; POST /exec answers after EXEC_DELAY_MS (default 7000), longer
// than the client's 5 s idle timer left on the pooled socket by axios' `timeout: 5000`.
// Prints {"port":N} on stdout once listening; exits on SIGTERM.
import http from 'node:http';

const delay = Number(process.env.EXEC_DELAY_MS ?? 7000);
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (req.method === 'GET' && req.url.startsWith('/files/')) {
      const id = req.url.slice('/files/'.length).split('?')[0];
      const body = JSON.stringify({ id, name: `${id}.txt`, size: 1234, detail: 'summary' });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    } else if (req.method === 'POST' && req.url === '/exec') {
      const t = setTimeout(() => {
        if (res.destroyed || res.socket === null || res.socket.destroyed) return;
        const body = JSON.stringify({ ok: true, took: delay });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      }, delay);
      req.socket.on('close', () => clearTimeout(t));
    } else {
      res.writeHead(404, { 'content-length': 0 });
      res.end();
    }
  });
});
// Like uvicorn, send no "Keep-Alive: timeout=N" hint: Node's agent would otherwise shorten the pooled
// socket's idle timer to N - 1 s, and the incident is about the 5 s axios left on it.
server.keepAliveTimeout = 0;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
