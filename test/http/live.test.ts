/**
 * HttpConnectionParser on real HTTP made on loopback: a Node http server
 * answers requests written on a raw net socket; the test records, in order,
 * every chunk the client wrote and read (with its time), the server's FIN
 * and the close, and replays that through the parser. The byte counts
 * expected come from what the server handlers themselves saw and wrote.
 */

import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { HttpConnectionParser } from '../../lib/http/index.js';
import { Anomalies, type Dir, type Exchange, type Micros } from '../../lib/types.js';
import { bytewise, randomSplits, type Splitter } from './replay.js';

type Ev =
  | { k: 'data'; dir: Dir; buf: Buffer; ts: Micros }
  | { k: 'fin'; dir: Dir; ts: Micros }
  | { k: 'end'; ts: Micros; reason: 'reset' | 'closed' | 'capture-end' };

let lastTs = 0;
/** Wall-clock microseconds, strictly increasing so event order is visible in the times. */
function now(): Micros {
  const t = Math.floor((performance.timeOrigin + performance.now()) * 1000);
  lastTs = t > lastTs ? t : lastTs + 1;
  return lastTs;
}

/** What the server handlers observed, per request, for the expectations. */
interface Seen {
  method: string;
  url: string;
  bodyBytes: number;
}
const seen: Seen[] = [];
/** Bytes each handler wrote as body, keyed by URL. */
const sentBody = new Map<string, number>();

let server: http.Server;
/** Sockets handed to the 'upgrade' handler: the server no longer tracks them. */
const upgraded = new Set<net.Socket>();
let port = 0;

function handler(req: http.IncomingMessage, res: http.ServerResponse): void {
  let n = 0;
  req.on('data', (c: Buffer) => (n += c.length));
  req.on('end', () => {
    seen.push({ method: req.method!, url: req.url!, bodyBytes: n });
    const u = new URL(req.url!, 'http://x');
    const send = (body: string | Buffer): void => {
      sentBody.set(req.url!, Buffer.byteLength(body));
      res.end(body);
    };
    switch (u.pathname) {
      case '/cl':
        res.setHeader('Content-Length', 1234);
        send(Buffer.alloc(1234, 0x61));
        return;
      case '/chunked': {
        // Several writes without Content-Length: Node frames them chunked (HTTP/1.1) and adds a trailer.
        res.setHeader('Trailer', 'x-checksum');
        let total = 0;
        for (let i = 1; i <= 5; i++) {
          const part = Buffer.alloc(i * 700, 0x62);
          total += part.length;
          res.write(part);
        }
        res.addTrailers({ 'x-checksum': 'abc' });
        sentBody.set(req.url!, total);
        res.end();
        return;
      }
      case '/stream': {
        // Several writes, no Content-Length, no trailer: chunked for 1.1, close-delimited for 1.0.
        let total = 0;
        for (let i = 1; i <= 5; i++) {
          const part = Buffer.alloc(i * 900, 0x65);
          total += part.length;
          res.write(part);
        }
        sentBody.set(req.url!, total);
        res.end();
        return;
      }
      case '/head':
        res.setHeader('Content-Length', 5000);
        if (req.method === 'HEAD') {
          sentBody.set(req.url!, 0);
          res.end();
        } else send(Buffer.alloc(5000));
        return;
      case '/204':
        res.statusCode = 204;
        send('');
        return;
      case '/304':
        res.statusCode = 304;
        send('');
        return;
      case '/echo':
        res.setHeader('Content-Length', n);
        send(Buffer.alloc(n, 0x63));
        return;
      case '/slow':
        setTimeout(() => send('late'), Number(u.searchParams.get('ms') ?? '50'));
        return;
      case '/never':
        return; // no answer at all
      case '/reset-mid-body':
        res.setHeader('Content-Length', 100000);
        res.write(Buffer.alloc(3000, 0x64));
        sentBody.set(req.url!, 3000);
        setTimeout(() => req.socket.resetAndDestroy(), 30);
        return;
      default:
        res.statusCode = 404;
        send('not found');
    }
  });
}

beforeAll(async () => {
  server = http.createServer({ keepAliveTimeout: 2000 }, handler);
  // RFC 9110 section 7.8: Upgrade -> 101, then raw bytes in both directions.
  server.on('upgrade', (req, socket: net.Socket, head: Buffer) => {
    seen.push({ method: req.method!, url: req.url!, bodyBytes: 0 });
    upgraded.add(socket);
    socket.on('close', () => upgraded.delete(socket));
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
    if (head.length > 0) socket.write(head);
    socket.on('data', (d: Buffer) => socket.write(d));
    socket.on('end', () => socket.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  for (const s of upgraded) s.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/**
 * Open a raw socket, run `script` (which writes through `write`), record
 * everything until the socket closes or `timeoutMs` passes.
 */
async function session(
  script: (write: (s: string | Buffer) => void, sock: net.Socket, events: Ev[]) => Promise<void> | void,
  timeoutMs = 3000,
  allowHalfOpen = false,
): Promise<Ev[]> {
  const events: Ev[] = [];
  const sock = net.connect({ port, host: '127.0.0.1', allowHalfOpen });
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  const closed = new Promise<void>((resolve) => {
    let reset = false;
    sock.on('data', (d: Buffer) => events.push({ k: 'data', dir: 1, buf: Buffer.from(d), ts: now() }));
    sock.on('end', () => events.push({ k: 'fin', dir: 1, ts: now() }));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ECONNRESET' || e.code === 'EPIPE') reset = true;
    });
    sock.on('close', () => {
      events.push({ k: 'end', ts: now(), reason: reset ? 'reset' : 'closed' });
      resolve();
    });
  });
  const write = (s: string | Buffer): void => {
    const buf = Buffer.isBuffer(s) ? s : Buffer.from(s, 'latin1');
    events.push({ k: 'data', dir: 0, buf, ts: now() });
    sock.write(buf);
  };
  await script(write, sock, events);
  const timer = setTimeout(() => {
    events.push({ k: 'end', ts: now(), reason: 'capture-end' });
    sock.destroy();
  }, timeoutMs);
  await closed;
  clearTimeout(timer);
  // Keep only the first 'end'.
  const i = events.findIndex((e) => e.k === 'end');
  return events.slice(0, i + 1);
}

function waitFor(events: Ev[], pred: (all: Buffer) => boolean, ms = 2000): Promise<void> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      const all = Buffer.concat(events.filter((e): e is Extract<Ev, { k: 'data' }> => e.k === 'data' && e.dir === 1).map((e) => e.buf));
      if (pred(all)) resolve();
      else if (Date.now() - t0 > ms) reject(new Error('timed out waiting for server bytes'));
      else setTimeout(tick, 5);
    };
    tick();
  });
}

function parse(events: Ev[], split: Splitter = (b) => [b], anomalies = new Anomalies()): { p: HttpConnectionParser; finished: Exchange[] } {
  const finished: Exchange[] = [];
  const p = new HttpConnectionParser({ anomalies, onExchange: (ex) => finished.push(ex) });
  for (const e of events) {
    if (e.k === 'data') for (const piece of split(e.buf)) p.data(e.dir, piece, e.ts);
    else if (e.k === 'fin') p.fin(e.dir, e.ts);
    else p.end(e.ts, e.reason);
  }
  return { p, finished };
}

/** Parse, and check the result does not depend on how the bytes are cut. */
function parseChecked(events: Ev[]): { p: HttpConnectionParser; finished: Exchange[]; anomalies: Anomalies } {
  const anomalies = new Anomalies();
  const r = parse(events, undefined, anomalies);
  for (const split of [bytewise, randomSplits(99)]) {
    const a2 = new Anomalies();
    const again = parse(events, split, a2);
    expect(JSON.parse(JSON.stringify(again.p.exchanges))).toEqual(JSON.parse(JSON.stringify(r.p.exchanges)));
    expect(a2.toJSON()).toEqual(anomalies.toJSON());
  }
  return { ...r, anomalies };
}

const firstTs = (events: Ev[], dir: Dir): Micros => events.find((e) => e.k === 'data' && e.dir === dir)!.ts;
const lastTsOf = (events: Ev[], dir: Dir): Micros => events.filter((e) => e.k === 'data' && e.dir === dir).at(-1)!.ts;

describe('Node http server on loopback', () => {
  test('keep-alive: Content-Length, chunked with trailer, HEAD, 204, 304 in sequence', async () => {
    seen.length = 0;
    const paths: [string, string][] = [
      ['GET', '/cl'],
      ['GET', '/chunked'],
      ['HEAD', '/head'],
      ['GET', '/204'],
      ['GET', '/304'],
    ];
    const events = await session(async (write, sock, ev) => {
      let expectResponses = 0;
      for (const [m, u] of paths) {
        write(`${m} ${u} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer secret-token\r\n\r\n`);
        expectResponses++;
        const want = expectResponses;
        // One at a time: wait until this response is complete before the next request.
        await waitFor(ev, (all) => {
          const s = all.toString('latin1');
          const heads = s.split('HTTP/1.1 ').length - 1;
          return heads >= want && (u !== '/chunked' || s.includes('x-checksum: abc\r\n\r\n')) && (u !== '/cl' || all.length >= 1234);
        });
      }
      sock.end();
    });
    const { p, finished, anomalies } = parseChecked(events);
    expect(anomalies.toJSON()).toEqual({});
    expect(p.protocol).toBe('http');
    const ex = p.exchanges;
    expect(ex.map((e) => [e.index, e.method, e.target, e.status])).toEqual([
      [1, 'GET', '/cl', 200],
      [2, 'GET', '/chunked', 200],
      [3, 'HEAD', '/head', 200],
      [4, 'GET', '/204', 204],
      [5, 'GET', '/304', 304],
    ]);
    expect(ex.map((e) => e.responseBodyBytes)).toEqual(paths.map(([, u]) => sentBody.get(u)));
    expect(ex.every((e) => e.outcome === 'complete')).toBe(true);
    expect(finished.map((e) => e.index)).toEqual([1, 2, 3, 4, 5]);
    expect(ex[1]!.responseHeaders['transfer-encoding']).toBe('chunked');
    expect(ex[2]!.responseHeaders['content-length']).toBe('5000');
    // Headers are kept as sent, secrets too (redaction is the report's job).
    expect(ex[0]!.requestHeaders['authorization']).toBe('Bearer secret-token');
    // Timing: each request is one write; the response ends with the last read before the next write.
    const writes = events.filter((e) => e.k === 'data' && e.dir === 0);
    ex.forEach((e, i) => {
      expect(e.requestStart).toBe(writes[i]!.ts);
      expect(e.requestEnd).toBe(writes[i]!.ts);
      expect(e.responseStart).toBeGreaterThan(e.requestEnd!);
      expect(e.responseEnd).toBeGreaterThanOrEqual(e.responseStart!);
      if (i + 1 < writes.length) expect(e.responseEnd).toBeLessThan(writes[i + 1]!.ts);
    });
    expect(ex[4]!.responseEnd).toBe(lastTsOf(events, 1));
  });

  test('pipelined requests on one write are answered in order', async () => {
    seen.length = 0;
    const events = await session(async (write, sock, ev) => {
      write(
        'GET /cl HTTP/1.1\r\nHost: a\r\n\r\n' +
          'POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789' +
          'GET /chunked HTTP/1.1\r\nHost: a\r\n\r\n' +
          'GET /slow?ms=20 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
      );
      await waitFor(ev, (all) => all.toString('latin1').endsWith('late'));
      void sock;
    });
    const { p } = parseChecked(events);
    expect(seen.map((s) => `${s.method} ${s.url} ${s.bodyBytes}`)).toEqual(['GET /cl 0', 'POST /echo 10', 'GET /chunked 0', 'GET /slow?ms=20 0']);
    expect(p.exchanges.map((e) => [e.index, e.method, e.target, e.requestBodyBytes, e.status, e.responseBodyBytes, e.outcome])).toEqual([
      [1, 'GET', '/cl', 0, 200, 1234, 'complete'],
      [2, 'POST', '/echo', 10, 200, 10, 'complete'],
      [3, 'GET', '/chunked', 0, 200, sentBody.get('/chunked'), 'complete'],
      [4, 'GET', '/slow?ms=20', 0, 200, 4, 'complete'],
    ]);
    // All four requests came in the one write.
    const w = firstTs(events, 0);
    expect(p.exchanges.every((e) => e.requestStart === w && e.requestEnd === w)).toBe(true);
  });

  test('Expect: 100-continue, then the body, then the final response', async () => {
    seen.length = 0;
    const events = await session(async (write, sock, ev) => {
      write('PUT /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2001\r\n\r\n');
      await waitFor(ev, (all) => all.toString('latin1').startsWith('HTTP/1.1 100 Continue\r\n\r\n'));
      write(Buffer.alloc(1000, 0x31));
      write(Buffer.alloc(1001, 0x32));
      await waitFor(ev, (all) => all.length > 25 + 2001);
      sock.end();
    });
    const { p } = parseChecked(events);
    const [e] = p.exchanges;
    expect(p.exchanges).toHaveLength(1);
    expect(e!.status).toBe(200);
    expect(e!.interim.map((i) => i.status)).toEqual([100]);
    expect(e!.requestBodyBytes).toBe(2001);
    expect(e!.responseBodyBytes).toBe(2001);
    const writes = events.filter((x) => x.k === 'data' && x.dir === 0);
    expect(e!.requestStart).toBe(writes[0]!.ts);
    expect(e!.requestEnd).toBe(writes[2]!.ts);
    // The interim response counts as the first response byte, before the body was sent.
    expect(e!.responseStart).toBe(firstTs(events, 1));
    expect(e!.interim[0]!.ts).toBe(e!.responseStart);
    expect(e!.responseStart).toBeLessThan(writes[1]!.ts);
    expect(e!.outcome).toBe('complete');
  });

  test('header names that are Object.prototype keys are kept as data', async () => {
    const events = await session(async (write, sock, ev) => {
      write('GET /cl HTTP/1.1\r\nHost: a\r\nConstructor: c1\r\n__proto__: p1\r\ntoString: t1\r\nhasOwnProperty: h1\r\n\r\n');
      await waitFor(ev, (all) => all.length >= 1234);
      sock.end();
    });
    const { p, anomalies } = parseChecked(events);
    const h = p.exchanges[0]!.requestHeaders;
    expect(anomalies.toJSON()).toEqual({});
    expect(Object.keys(h)).toEqual(['host', 'constructor', '__proto__', 'tostring', 'hasownproperty']);
    expect(h['constructor']).toBe('c1');
    expect(h['__proto__']).toBe('p1');
    expect(JSON.parse(JSON.stringify(h))).toEqual({ host: 'a', constructor: 'c1', ['__proto__']: 'p1', tostring: 't1', hasownproperty: 'h1' });
    expect(p.exchanges[0]!.status).toBe(200);
  });

  test('chunked request body', async () => {
    seen.length = 0;
    const events = await session(async (write, sock, ev) => {
      write('POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n');
      write('5;ext=1\r\nhello\r\n');
      write('1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-trailer: 1\r\n\r\n');
      await waitFor(ev, (all) => all.includes('\r\n\r\n') && all.length > 31);
      sock.end();
    });
    const { p } = parseChecked(events);
    expect(seen[0]!.bodyBytes).toBe(31);
    const [e] = p.exchanges;
    expect(e!.requestBodyBytes).toBe(31);
    expect(e!.responseBodyBytes).toBe(31);
    expect(e!.requestEnd).toBe(events.filter((x) => x.k === 'data' && x.dir === 0)[2]!.ts);
  });

  test('HTTP/1.0 request: body delimited by the server closing', async () => {
    seen.length = 0;
    const events = await session(async (write) => {
      write('GET /stream HTTP/1.0\r\nHost: a\r\n\r\n');
    });
    const { p } = parseChecked(events);
    const [e] = p.exchanges;
    expect(e!.responseHeaders['transfer-encoding']).toBeUndefined();
    expect(e!.responseHeaders['content-length']).toBeUndefined();
    expect(e!.responseBodyBytes).toBe(sentBody.get('/stream'));
    expect(e!.outcome).toBe('complete');
    expect(e!.responseEnd).toBe(lastTsOf(events, 1));
  });

  test('server resets in the middle of the body: incomplete-response', async () => {
    const events = await session(async (write) => {
      write('GET /reset-mid-body HTTP/1.1\r\nHost: a\r\n\r\n');
    });
    expect(events.at(-1)).toMatchObject({ k: 'end', reason: 'reset' });
    const { p } = parseChecked(events);
    const [e] = p.exchanges;
    expect(e!.status).toBe(200);
    expect(e!.responseBodyBytes).toBe(3000);
    expect(e!.responseEnd).toBeNull();
    expect(e!.outcome).toBe('incomplete-response');
  });

  test('no answer before the client gives up: no-response', async () => {
    const events = await session(async (write, sock) => {
      write('GET /never HTTP/1.1\r\nHost: a\r\n\r\n');
      await new Promise((r) => setTimeout(r, 50));
      sock.end();
    }, 300);
    const { p } = parseChecked(events);
    const [e] = p.exchanges;
    expect(e!.requestEnd).not.toBeNull();
    expect(e!.responseStart).toBeNull();
    expect(e!.outcome).toBe('no-response');
  });

  test('client stops in the middle of its body: aborted', async () => {
    const events = await session(async (write, sock) => {
      write('POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n');
      write(Buffer.alloc(1200, 0x30));
      await new Promise((r) => setTimeout(r, 30));
      sock.resetAndDestroy();
    });
    const { p } = parseChecked(events);
    const [e] = p.exchanges;
    expect(e!.requestBodyBytes).toBe(1200);
    expect(e!.requestEnd).toBeNull();
    expect(e!.outcome).toBe('aborted');
  });

  test('Upgrade request answered normally: later bytes are requests again', async () => {
    // A server with no 'upgrade' listener answers an Upgrade request as a plain
    // request. Node's parser does not read bytes pipelined behind it (it keeps
    // them as the would-be upgrade head), so the pipelined GET /204 is never
    // answered, while the same GET sent after the response is.
    const plain = http.createServer(handler);
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
    const savedPort = port;
    port = (plain.address() as AddressInfo).port;
    try {
      seen.length = 0;
      const events = await session(async (write, sock, ev) => {
        write('GET /cl HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nGET /204 HTTP/1.1\r\nHost: a\r\n\r\n');
        await waitFor(ev, (all) => all.length >= 1234);
        await new Promise((r) => setTimeout(r, 50));
        sock.end();
      }, 500);
      const { p, anomalies } = parseChecked(events);
      expect(seen.map((x) => x.url)).toEqual(['/cl']);
      expect(anomalies.toJSON()).toEqual({});
      expect(p.exchanges.map((e) => [e.index, e.target, e.status, e.responseBodyBytes, e.outcome])).toEqual([
        [1, '/cl', 200, 1234, 'complete'],
        [2, '/204', null, 0, 'no-response'],
      ]);
      // The second request came in the same write as the first.
      expect(p.exchanges[1]!.requestStart).toBe(firstTs(events, 0));

      seen.length = 0;
      const events2 = await session(async (write, sock, ev) => {
        write('GET /cl HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n');
        await waitFor(ev, (all) => all.length >= 1234);
        write('GET /204 HTTP/1.1\r\nHost: a\r\n\r\n');
        await waitFor(ev, (all) => all.includes('HTTP/1.1 204'));
        sock.end();
      });
      const r2 = parseChecked(events2);
      expect(seen.map((x) => x.url)).toEqual(['/cl', '/204']);
      expect(r2.anomalies.toJSON()).toEqual({});
      expect(r2.p.exchanges.map((e) => [e.index, e.target, e.status, e.outcome])).toEqual([
        [1, '/cl', 200, 'complete'],
        [2, '/204', 204, 'complete'],
      ]);
    } finally {
      port = savedPort;
      plain.closeAllConnections();
      await new Promise<void>((r) => plain.close(() => r()));
    }
  });

  test('keep-alive race: request written after the server closed the idle socket', async () => {
    // The server's keep-alive timer closes the idle connection (FIN); the
    // client, not having noticed, reuses it; the server host answers with RST.
    const quick = http.createServer({ keepAliveTimeout: 100 }, handler);
    await new Promise<void>((r) => quick.listen(0, '127.0.0.1', r));
    const savedPort = port;
    port = (quick.address() as AddressInfo).port;
    try {
      const events = await session(
        async (write, sock, ev) => {
          write('GET /cl HTTP/1.1\r\nHost: a\r\n\r\n');
          await waitFor(ev, (all) => all.length >= 1234);
          for (let i = 0; i < 200 && !ev.some((e) => e.k === 'fin'); i++) await new Promise((r) => setTimeout(r, 10));
          write('POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi');
          // The RST comes back at once on loopback, but a socket that already
          // read EOF only learns of it on its next write, which then fails
          // (EPIPE/ECONNRESET) without sending anything: probe with one.
          await new Promise((r) => setTimeout(r, 50));
          sock.write('x');
        },
        1000,
        true,
      );
      const fin = events.find((e) => e.k === 'fin')!;
      expect(fin).toBeDefined();
      const { p } = parseChecked(events);
      const [a, b] = p.exchanges;
      expect(a!.outcome).toBe('complete');
      expect(a!.responseEnd).toBeLessThan(fin.ts);
      expect(b!.method).toBe('POST');
      expect(b!.requestBodyBytes).toBe(2);
      expect(b!.requestStart).toBeGreaterThan(fin.ts);
      expect(b!.outcome).toBe('no-response');
      expect(events.at(-1)).toMatchObject({ k: 'end', reason: 'reset' });
    } finally {
      port = savedPort;
      quick.closeAllConnections();
      await new Promise<void>((r) => quick.close(() => r()));
    }
  });

  test('101 Switching Protocols: the rest is a tunnel', async () => {
    seen.length = 0;
    const events = await session(async (write, sock, ev) => {
      write('GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
      // Bytes the client sends right away are tunnel bytes, not a request.
      write('GET /not-a-request HTTP/1.1\r\n\r\n');
      await waitFor(ev, (all) => all.includes('not-a-request'));
      sock.end();
    });
    const { p, anomalies } = parseChecked(events);
    expect(anomalies.toJSON()).toEqual({});
    expect(p.protocol).toBe('http');
    expect(p.exchanges.map((e) => [e.method, e.target, e.status, e.outcome])).toEqual([['GET', '/ws', 101, 'complete']]);
  });
});
