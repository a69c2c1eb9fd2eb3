/**
 * The field-block cache (lib/http/headers.ts): identical heads share one
 * header map, framing read from a cached block frames the body like a parsed
 * one, and a parser with a lower field limit does not take a cached map
 * that has more fields than it keeps.
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
  test('identical heads share one map; the body is framed by the cached Content-Length', () => {
    const a = run([{ dir: 0, text: post(7) }, { dir: 1, text: ok('{}') }]);
    const b = run([{ dir: 0, text: post(7) + post(7) }, { dir: 1, text: ok('{}') + ok('{}') }]);
    const [e1, e2] = b.exchanges;
    expect(b.exchanges.map((e) => [e.outcome, e.requestBodyBytes, e.responseBodyBytes])).toEqual([
      ['complete', 7, 2],
      ['complete', 7, 2],
    ]);
    // Across connections too (the cache is shared by every parser).
    expect(a.exchanges[0]!.requestHeaders).toBe(e1!.requestHeaders);
    expect(e1!.requestHeaders).toBe(e2!.requestHeaders);
    expect(e1!.responseHeaders).toBe(e2!.responseHeaders);
    expect({ ...e1!.requestHeaders }).toEqual({
      host: '127.0.0.1:8000',
      'user-agent': 'axios/1.8.4',
      'content-type': 'application/json',
      'content-length': '7',
    });
  });

  test('heads that differ in one byte do not share, and each frames its own body', () => {
    const r = run([{ dir: 0, text: post(7) + post(8) }, { dir: 1, text: ok('{}') + ok('{"a":1}') }]);
    const [e1, e2] = r.exchanges;
    expect(e1!.requestHeaders).not.toBe(e2!.requestHeaders);
    expect([e1!.requestBodyBytes, e2!.requestBodyBytes, e1!.responseBodyBytes, e2!.responseBodyBytes]).toEqual([7, 8, 2, 7]);
    expect(e2!.requestHeaders['content-length']).toBe('8');
    expect(r.exchanges.every((e) => e.outcome === 'complete')).toBe(true);
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

  test('repeated fields are joined and a doubled Content-Length is left to the line parser', () => {
    const text = 'GET / HTTP/1.1\r\nAccept: a\r\nAccept: b\r\n\r\n';
    const r = run([{ dir: 0, text: text + text }]);
    expect(r.exchanges[0]!.requestHeaders['accept']).toBe('a, b');
    expect(r.exchanges[0]!.requestHeaders).toBe(r.exchanges[1]!.requestHeaders);
    const bad = run([{ dir: 0, text: 'POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy' }]);
    expect(bad.anomalies.get('http-bad-content-length')).toBe(1);
  });
});
