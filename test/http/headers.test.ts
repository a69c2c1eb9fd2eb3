/**
 * The field-block cache (lib/http/headers.ts): identical heads share one
 * header map; heads that differ (in a Content-Length value, say) each get
 * their own; framing read from a cached block frames the body like a parsed
 * one; odd lines read as the line parser reads them; and a parser with a
 * lower field limit does not take a cached map that has more fields than it
 * keeps.
 */
import { describe, expect, test } from 'vitest';
import { HttpConnectionParser } from '../../lib/http/index.js';
import { Anomalies, type Exchange } from '../../lib/types.js';

function run(wire: { dir: 0 | 1; text: string }[], opts: { maxHeaders?: number } = {}) {
  const anomalies = new Anomalies();
  const p = new HttpConnectionParser({ anomalies, ...opts });
  let ts = 1_000_000;
  for (const m of wire) p.data(m.dir, Buffer.from(m.text, 'latin1'), ts++);
  p.end(ts, 'closed');
  return { exchanges: p.exchanges as Exchange[], anomalies };
}

const post = (n: number, extra = ''): string =>
  `POST /exec HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: axios/1.8.4\r\nContent-Type: application/json\r\n${extra}Content-Length: ${n}\r\n\r\n${'x'.repeat(n)}`;
const ok = (body: string): string => `HTTP/1.1 200 OK\r\nserver: uvicorn\r\ncontent-length: ${body.length}\r\n\r\n${body}`;

describe('field-block cache', () => {
  const get = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: axios/1.8.4\r\n${extra}Connection: keep-alive\r\n\r\n`;
  const chunked = 'HTTP/1.1 200 OK\r\nserver: uvicorn\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n';

  test('identical heads without Content-Length share one map, across connections too', () => {
    const a = run([{ dir: 0, text: get('/a') }, { dir: 1, text: chunked }]);
    const b = run([{ dir: 0, text: get('/b') + get('/c') }, { dir: 1, text: chunked + chunked }]);
    const [e1, e2] = b.exchanges;
    expect(b.exchanges.map((e) => [e.target, e.outcome, e.responseBodyBytes])).toEqual([
      ['/b', 'complete', 2],
      ['/c', 'complete', 2],
    ]);
    expect(a.exchanges[0]!.requestHeaders).toBe(e1!.requestHeaders);
    expect(e1!.requestHeaders).toBe(e2!.requestHeaders);
    expect(e1!.responseHeaders).toBe(e2!.responseHeaders);
    expect({ ...e1!.requestHeaders }).toEqual({ host: '127.0.0.1:8000', 'user-agent': 'axios/1.8.4', connection: 'keep-alive' });
  });

  test('heads that differ only in the Content-Length value: each its own value, in its place, framing its own body', () => {
    const r = run([{ dir: 0, text: post(7) + post(8) + post(123) }, { dir: 1, text: ok('{}') + ok('{"a":1}') + ok('[]') }]);
    expect(r.exchanges.map((e) => [e.outcome, e.requestBodyBytes, e.responseBodyBytes])).toEqual([
      ['complete', 7, 2],
      ['complete', 8, 7],
      ['complete', 123, 2],
    ]);
    expect(r.exchanges.map((e) => e.requestHeaders['content-length'])).toEqual(['7', '8', '123']);
    expect(r.exchanges.map((e) => e.responseHeaders['content-length'])).toEqual(['2', '7', '2']);
    // Key order as on the wire (what the JSON report lists).
    for (const e of r.exchanges) expect(Object.keys(e.requestHeaders)).toEqual(['host', 'user-agent', 'content-type', 'content-length']);
    expect(r.exchanges[0]!.requestHeaders).not.toBe(r.exchanges[1]!.requestHeaders);
    expect(r.anomalies.toJSON()).toEqual({});
  });

  test('heads that differ elsewhere do not match', () => {
    const r = run([{ dir: 0, text: get('/a', 'Accept: a\r\n') + get('/b', 'Accept: b\r\n') }]);
    expect(r.exchanges.map((e) => e.requestHeaders['accept'])).toEqual(['a', 'b']);
  });

  test('a parser keeping fewer fields parses the block itself: limit and anomaly as without the cache', () => {
    const head = post(3, 'Accept: */*\r\nX-A: 1\r\n');
    run([{ dir: 0, text: head }]); // cache it (6 fields)
    const r = run([{ dir: 0, text: head }], { maxHeaders: 3 });
    expect(Object.keys(r.exchanges[0]!.requestHeaders)).toEqual(['host', 'user-agent', 'content-type']);
    expect(r.anomalies.get('http-too-many-headers')).toBe(1);
    // Framing still honoured (Content-Length is the sixth field): the 3-byte body is counted.
    expect(r.exchanges[0]!.requestBodyBytes).toBe(3);
  });

  test('odd Content-Length lines after a cached block read as the line parser reads them', () => {
    run([{ dir: 0, text: post(5) }]); // the block, cached
    // A CR inside the value: the line parser keeps "5\r6", not a number.
    const cr = run([{ dir: 0, text: post(5).replace('Content-Length: 5', 'Content-Length: 5\r6') }]);
    expect(cr.exchanges[0]!.requestHeaders['content-length']).toBe('5\r6');
    expect(cr.anomalies.get('http-parse-error') + cr.anomalies.get('http-bad-content-length')).toBeGreaterThan(0);
    // A bare LF ends the line: two fields.
    const lf = run([{ dir: 0, text: post(5).replace('Content-Length: 5\r\n', 'Content-Length: 5\nX-B: 1\r\n') }]);
    expect(lf.exchanges[0]!.requestHeaders['content-length']).toBe('5');
    expect(lf.exchanges[0]!.requestHeaders['x-b']).toBe('1');
    expect(lf.exchanges[0]!.requestBodyBytes).toBe(5);
  });

  test('repeated fields are joined and a doubled Content-Length is left to the line parser', () => {
    const text = 'GET / HTTP/1.1\r\nAccept: a\r\nAccept: b\r\n\r\n';
    const r = run([{ dir: 0, text: text + text }]);
    expect(r.exchanges[0]!.requestHeaders['accept']).toBe('a, b');
    expect(r.exchanges[0]!.requestHeaders).toBe(r.exchanges[1]!.requestHeaders);
    const bad = run([{ dir: 0, text: 'POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy' }]);
    expect(bad.anomalies.get('http-bad-content-length')).toBe(1);
  });
});
