/**
 * Capture gaps, a capture that starts mid-connection, truncated captures,
 * the memory bounds, and payloads that are not HTTP/1.x. Bytes come from
 * the corpus fixtures (test/fixtures/http) or from real programs on
 * loopback (Node's tls and http2 clients).
 */

import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { HttpConnectionParser, sniffPayload } from '../../lib/http/index.js';
import { Anomalies, type Exchange } from '../../lib/types.js';
import { bytewise, loadSegments, randomSplits, replay, type Segment, type StreamResult } from './replay.js';
import { loadTsharkHttp } from './truth.js';

const FIX = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/http');
const segs = (name: string): Segment[] => loadSegments(path.join(FIX, `${name}.segments.tsv`));
const rows = (name: string) => loadTsharkHttp(path.join(FIX, `${name}.tshark-http.tsv`));
const brief = (e: Exchange) => [e.index, e.method, e.target, e.status, e.responseBodyBytes, e.gapBytes, e.outcome];

/** Replay, and require the same result for 1-byte and random cuts. */
function run(name: string, opts: Parameters<typeof replay>[3] = {}, filter: (s: Segment) => boolean = () => true): { r: StreamResult[]; a: Anomalies } {
  const s = segs(name).filter(filter);
  const a = new Anomalies();
  const r = replay(s, undefined, a, opts);
  for (const split of [bytewise, randomSplits(3)]) {
    const a2 = new Anomalies();
    const r2 = replay(s, split, a2, opts);
    expect(JSON.parse(JSON.stringify(r2.map((x) => x.parser.exchanges)))).toEqual(JSON.parse(JSON.stringify(r.map((x) => x.parser.exchanges))));
    expect(a2.toJSON()).toEqual(a.toJSON());
  }
  return { r, a };
}

describe('capture gaps', () => {
  test('inside a Content-Length body: counted as body, stays in sync (get.pcap, frame 7 lost)', () => {
    const { r, a } = run('get', { lose: new Set([7]) });
    const [e] = r[0]!.parser.exchanges;
    // 4705 = Content-Length of the response (Zeek response_body_len), 1448 = tcp.len of frame 7.
    expect(brief(e!)).toEqual([1, 'GET', '/download/CHANGES.bro-aux.txt', 200, 4705, 1448, 'complete']);
    expect(e!.responseEnd).toBe(rows('get').find((x) => x.frame === 9)!.ts);
    expect(a.toJSON()).toEqual({});
  });

  test('inside chunk data: stays in sync (100-continue.pcap, frame 20 lost)', () => {
    // tshark's http.chunk_size for the 200 is 8558,8496,12615,...; frame 20
    // (seq 7326, 1460 bytes) lies inside the first chunk's data.
    const { r, a } = run('100-continue', { lose: new Set([20]) });
    const [e] = r[0]!.parser.exchanges;
    expect(brief(e!)).toEqual([1, 'POST', '/', 200, 60731, 1460, 'complete']);
    expect(a.toJSON()).toEqual({});
  });

  test('across a chunk-size line: sync lost, response incomplete (100-continue.pcap, frame 21 lost)', () => {
    // Frame 21 (seq 8786..10246) holds the end of chunk 1 and the size line of chunk 2 (at seq 8877).
    const { r, a } = run('100-continue', { lose: new Set([21]) });
    const [e] = r[0]!.parser.exchanges;
    expect(e!.status).toBe(200);
    expect(e!.outcome).toBe('incomplete-response');
    expect(e!.responseEnd).toBeNull();
    expect(a.toJSON()).toEqual({ 'http-gap-lost-sync': 1 });
  });

  test('a whole response lost between pipelined responses: resync on the next status line', () => {
    // pipelined-requests.pcap frame 15 is the whole third response (head + 94 body bytes).
    const { r, a } = run('pipelined-requests', { lose: new Set([15]) });
    const ex = r[0]!.parser.exchanges;
    expect(ex.map((e) => [e.index, e.target, e.status, e.outcome])).toEqual([
      [1, '/style/enhanced.css', 200, 'complete'],
      [2, '/script/urchin.js', 200, 'complete'],
      [3, '/images/template/screen/bullet_utility.png', null, 'incomplete-response'],
      [4, '/images/template/screen/key-point-top.png', 200, 'complete'],
      [5, '/projects/calendar/images/header-sunbird.png', 200, 'complete'],
    ]);
    expect(ex[2]!.gapBytes).toBe(456);
    // Response sizes as in Zeek's http.log for trans_depth 4 and 5.
    expect(ex[3]!.responseBodyBytes).toBe(2349);
    expect(ex[4]!.responseBodyBytes).toBe(27579);
    expect(a.toJSON()).toEqual({ 'http-gap-lost-sync': 1, 'http-resync': 1 });
  });

  test('a whole request lost: a placeholder keeps the pairing and the numbering', () => {
    // Frame 14 is the third request (GET .../bullet_utility.png).
    const { r, a } = run('pipelined-requests', { lose: new Set([14]) });
    const ex = r[0]!.parser.exchanges;
    expect(ex.map((e) => [e.index, e.method, e.status, e.responseBodyBytes, e.outcome])).toEqual([
      [1, 'GET', 200, 946, 'complete'],
      [2, 'GET', 200, 6716, 'complete'],
      [3, '', 200, 94, 'complete'],
      [4, 'GET', 200, 2349, 'complete'],
      [5, 'GET', 200, 27579, 'complete'],
    ]);
    expect(ex[2]!.gapBytes).toBe(644);
    expect(ex[2]!.requestEnd).toBeNull();
    expect(a.toJSON()).toEqual({ 'http-gap-lost-sync': 1, 'http-resync': 1 });
  });
});

describe('capture that starts mid-connection', () => {
  test('server side starts inside a body: scan for the next status line (pipelined-requests.pcap from frame 9)', () => {
    const { r, a } = run('pipelined-requests', {}, (s) => s.frame >= 9);
    const p = r[0]!.parser;
    expect(p.protocol).toBe('http');
    const truth = rows('pipelined-requests').filter((x) => x.method !== '' && x.frame >= 14);
    expect(p.exchanges.map((e) => [e.method, e.target])).toEqual(truth.map((x) => [x.method, x.uri]));
    expect(p.exchanges.map((e) => [e.index, e.status, e.responseBodyBytes, e.outcome])).toEqual([
      [1, 200, 94, 'complete'],
      [2, 200, 2349, 'complete'],
      [3, 200, 27579, 'complete'],
    ]);
    expect(a.get('http-resync')).toBe(2);
  });

  test('HTTP on a non-HTTP port without SYN (http-on-irc-port-missing-syn.pcapng)', () => {
    const { r } = run('http-on-irc-port-missing-syn');
    expect(r[0]!.parser.protocol).toBe('http');
    expect(r[0]!.parser.exchanges.map((e) => [e.method, e.target, e.status, e.outcome])).toEqual([
      ['GET', '/download/CHANGES.bro-aux.txt', 200, 'complete'],
    ]);
  });
});

describe('capture ends early', () => {
  // get.pcap: request in frame 4, response in frames 6..9, FINs after.
  test('before any response byte: no-response', () => {
    const { r } = run('get', {}, (s) => s.frame <= 5);
    const [e] = r[0]!.parser.exchanges;
    expect(e!.outcome).toBe('no-response');
    expect(e!.requestEnd).not.toBeNull();
    expect(e!.responseStart).toBeNull();
  });
  test('inside the response body: incomplete-response', () => {
    const { r } = run('get', {}, (s) => s.frame <= 7);
    const [e] = r[0]!.parser.exchanges;
    expect(e!.outcome).toBe('incomplete-response');
    const f6 = segs('get').find((x) => x.frame === 6)!.payload;
    expect(e!.responseBodyBytes).toBe(1448 + 1448 - (f6.indexOf('\r\n\r\n') + 4));
    expect(e!.responseEnd).toBeNull();
  });
  test('inside the request body: aborted (http-post-large.pcap, first POST cut)', () => {
    const t = rows('http-post-large').find((x) => x.method === 'POST')!;
    const { r } = run('http-post-large', {}, (s) => s.stream === 0 && s.frame < t.frame);
    const [e] = r[0]!.parser.exchanges;
    expect(e!.method).toBe('POST');
    expect(e!.requestEnd).toBeNull();
    expect(e!.requestBodyBytes).toBeGreaterThan(0);
    expect(e!.outcome).toBe('aborted');
  });
});

describe('bounds', () => {
  test('maxHeaderBytes: a start line longer than it loses sync, nothing thrown (longer field lines: test/bounds)', () => {
    const { r, a } = run('get', { maxHeaderBytes: 10 });
    expect(a.get('http-header-too-large')).toBeGreaterThanOrEqual(1);
    expect(r[0]!.parser.exchanges.every((e) => e.status === null)).toBe(true);
  });

  test('maxHeaders: the first N fields are kept, the rest counted once per message', () => {
    const { r, a } = run('get', { maxHeaders: 2 });
    const [e] = r[0]!.parser.exchanges;
    expect(Object.keys(e!.requestHeaders)).toEqual(['user-agent', 'accept']);
    expect(Object.keys(e!.responseHeaders)).toHaveLength(2);
    // Framing still follows Content-Length even though the header was not kept.
    expect(e!.responseBodyBytes).toBe(4705);
    expect(e!.outcome).toBe('complete');
    expect(a.get('http-too-many-headers')).toBe(2);
  });

  test('maxExchanges: old exchanges leave memory, onExchange still sees every one', () => {
    // workshop_2011_browse.pcap stream 4 carries 6 requests (tshark).
    const seen: number[] = [];
    const s = segs('workshop_2011_browse').filter((x) => x.stream === 4);
    const a = new Anomalies();
    const p = new HttpConnectionParser({ anomalies: a, maxExchanges: 2, onExchange: (e) => seen.push(e.index) });
    const client = s.find((x) => (x.flags & 0x12) === 0x02)!.srcPort;
    for (const x of s) if (x.payload.length > 0) p.data(x.srcPort === client ? 0 : 1, x.payload, x.ts);
    p.end(s.at(-1)!.ts, 'capture-end');
    expect(seen).toEqual([1, 2, 3, 4, 5, 6]);
    expect(p.exchanges.length).toBeLessThanOrEqual(2);
    expect(p.exchanges.at(-1)!.index).toBe(6);
    expect(p.droppedExchanges + p.exchanges.length).toBe(6);
    expect(a.get('http-exchanges-dropped')).toBe(p.droppedExchanges);
  });

  test('header values are cut to 1024 characters', () => {
    const p = new HttpConnectionParser({ anomalies: new Anomalies() });
    // The request line and Host of get.pcap's request, with a long cookie line from wikipedia.pcap's Referer repeated.
    const req = Buffer.from(segs('get').find((x) => x.frame === 4)!.payload);
    const head = req.toString('latin1').replace('\r\n\r\n', `\r\nX-Long: ${'v'.repeat(5000)}\r\n\r\n`);
    p.data(0, Buffer.from(head, 'latin1'), 1);
    expect(p.exchanges[0]!.requestHeaders['x-long']).toHaveLength(1024);
  });
});

describe('not HTTP/1.x', () => {
  test('SSH (ssh.client-side-half-duplex.pcap): protocol unknown, no exchange, no anomaly', () => {
    const { r, a } = run('ssh.client-side-half-duplex');
    expect(r[0]!.parser.protocol).toBe('unknown');
    expect(r[0]!.parser.exchanges).toEqual([]);
    expect(a.toJSON()).toEqual({});
    const first = segs('ssh.client-side-half-duplex').find((x) => x.payload.length > 0)!;
    expect(sniffPayload(first.payload)).toBe('unknown');
  });

  /** First bytes a real client writes, captured by a loopback server that never answers. */
  async function firstBytes(connect: (port: number) => { destroy(): void }): Promise<Buffer> {
    const got: Buffer[] = [];
    const srv = net.createServer((s) => s.on('data', (d: Buffer) => got.push(d)));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const c = connect((srv.address() as AddressInfo).port);
    for (let i = 0; i < 200 && Buffer.concat(got).length < 24; i++) await new Promise((r) => setTimeout(r, 5));
    c.destroy();
    await new Promise<void>((r) => srv.close(() => r()));
    return Buffer.concat(got);
  }

  test('TLS ClientHello from Node tls.connect: protocol tls, parsing stops', async () => {
    const hello = await firstBytes((port) => {
      const s = tls.connect({ port, host: '127.0.0.1', servername: 'example.test' });
      s.on('error', () => {});
      return s;
    });
    expect(hello[0]).toBe(0x16);
    expect(sniffPayload(hello)).toBe('tls');
    const a = new Anomalies();
    const p = new HttpConnectionParser({ anomalies: a });
    for (const b of bytewise(hello)) p.data(0, b, 1);
    p.end(2, 'closed');
    expect(p.protocol).toBe('tls');
    expect(p.exchanges).toEqual([]);
    expect(a.toJSON()).toEqual({});
  });

  test('HTTP/2 prior-knowledge preface from Node http2.connect: protocol http2', async () => {
    const pre = await firstBytes((port) => {
      const s = http2.connect(`http://127.0.0.1:${port}`);
      s.on('error', () => {});
      return s;
    });
    expect(pre.subarray(0, 24).toString('latin1')).toBe('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    expect(sniffPayload(pre)).toBe('http2');
    const p = new HttpConnectionParser({ anomalies: new Anomalies() });
    for (const b of bytewise(pre)) p.data(0, b, 1);
    expect(p.protocol).toBe('http2');
    expect(p.exchanges).toEqual([]);
  });

  test('sniffPayload orients corpus payloads', () => {
    for (const name of ['get', 'pipelined-requests', 'methods', 'wikipedia']) {
      for (const r of replay(segs(name))) {
        const first = segs(name).filter((s) => s.stream === r.stream && s.payload.length > 0);
        const c = first.find((s) => s.srcPort === r.clientPort);
        const s = first.find((x) => x.srcPort !== r.clientPort);
        if (c && r.parser.exchanges[0]?.method) expect(sniffPayload(c.payload)).toBe('request');
        if (s && r.parser.exchanges[0]?.status !== null) expect(sniffPayload(s.payload)).toBe('response');
      }
    }
  });
});
