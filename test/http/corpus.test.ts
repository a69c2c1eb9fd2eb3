/**
 * HttpConnectionParser on real captures from the corpus: TCP segments
 * extracted by tshark (test/fixtures/http/extract.sh, committed), replayed
 * in order, and compared with tshark's own HTTP rows and Zeek's http.log
 * baselines copied beside them.
 *
 * tshark reports a message at the frame carrying its last byte (HTTP
 * reassembly is on by default), so request rows must line up with the
 * frame that set requestEnd, response rows with the frame that set
 * responseEnd, and http.request_in with the request's frame.
 */

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { Anomalies } from '../../lib/types.js';
import { bytewise, loadSegments, randomSplits, replay, summary, type ExchangeRecord, type StreamResult } from './replay.js';
import { loadTsharkHttp, loadZeekHttp, zeekUri, type ZeekHttpRow } from './truth.js';

const FIX = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/http');

const NAMES = [
  'get',
  'get-without-fins',
  'pipelined-requests',
  '100-continue',
  'connect-with-header',
  'methods',
  'version-mismatch',
  'websocket',
  'http_09',
  'curl_http_09',
  'no-uri',
  'no-version',
  'http-11-request-then-cruft',
  'concurrent-range-requests',
  'content-length-overflow',
  'm57-long-49583-80',
  'query-method',
  'deeply-nested-mime',
  'http-post-large',
  'basic-auth-with-colon',
  'vnd.ms-cab-compressed-multi-conn',
  'wikipedia',
  'workshop_2011_browse',
  'www-odd-url',
  'print-flags',
  'ctu-62604-80',
  'cooper-grill-dvwa',
  'zeek-image-1080-80-x',
  'wstunnel-http',
  'missing-syn',
  'miss_end_data',
  'tcp-http-with-padding',
  'http-on-irc-port-missing-syn',
  'handshake-reorder',
];

/** Fixtures used by other tests in this folder (not HTTP, so no HTTP truth to compare). */
const OTHER_FIXTURES = ['ssh.client-side-half-duplex'];

/**
 * tshark rows hangscope reads differently, with the reason. Keyed by
 * capture, then frame number.
 */
const TSHARK_DISAGREES: Record<string, Record<number, string>> = {
  // "GET HTTP/1.1": tshark takes "HTTP/1.1" as the URI and no version; Zeek (and we) read an empty URI and version 1.1.
  'no-uri': { 4: 'target/version of a request line without URI' },
  methods: {
    14: 'target/version of "OPTIONS HTTP/1.1" (as no-uri.pcap)',
    // "OPTIONS" alone on the line: tshark calls it a request with an empty URI;
    // Zeek calls it bad_HTTP_request and logs the 400 with method "-", as we do
    // (a response without request).
    34: 'method-only request line',
    36: 'its 400 belongs to a request we do not accept',
  },
  // tshark shows the 200 at the last frame although 2200000000 body bytes were
  // announced and 100 came: we wait for the last byte (outcome incomplete-response).
  'content-length-overflow': { 8: 'response body never finished' },
  // Frame 53 is a retransmission that fills a hole in the middle of the 206 on
  // stream 1: tshark 4.0 (tcp.reassemble_out_of_order off by default) never
  // completes that PDU and shows no response; Zeek logs all three 206s, as we do.
  'concurrent-range-requests': { 53: 'hole filled by a retransmission' },
};

/**
 * Zeek http.log rows hangscope reads differently (a predicate on the row), with the reason.
 * Also, in general: Zeek's response_body_len is the size after Content-Encoding
 * is undone (gzip); ours is the bytes on the wire after de-chunking, so it is
 * compared only when the response had no Content-Encoding.
 */
const ZEEK_DISAGREES: Record<string, { when: (z: ZeekHttpRow) => boolean; why: string }> = {
  // curl --http0.9: an HTTP/1.1 request answered with raw bytes. Zeek gives up
  // (status "-", body 0); we read the raw reply until the close as curl shows it.
  curl_http_09: { when: () => true, why: 'raw reply to an HTTP/1.1 request' },
  // Versionless requests answered with a status line: Zeek reads the answer to a
  // 0.9 request raw (status 0, whole reply as body); we parse the status line
  // when there is one, as tshark does (403/400/411 with request_in).
  methods: { when: (z) => z.version === '0.9', why: 'status line in the reply to a 0.9 request' },
};

function recordsOf(results: StreamResult[], stream: number): ExchangeRecord[] {
  return results.find((r) => r.stream === stream)?.records ?? [];
}

describe.each(NAMES)('%s', (name) => {
  const segs = loadSegments(path.join(FIX, `${name}.segments.tsv`));
  const anomalies = new Anomalies();
  const results = replay(segs, undefined, anomalies);

  test('requests and responses line up with tshark', () => {
    const rows = loadTsharkHttp(path.join(FIX, `${name}.tshark-http.tsv`));
    const skip = TSHARK_DISAGREES[name] ?? {};
    let finals = 0;
    for (const row of rows) {
      if (skip[row.frame]) continue;
      const recs = recordsOf(results, row.stream);
      if (row.method !== '') {
        const rec = recs.find((r) => r.reqEndFrame === row.frame);
        expect(rec, `${name}: request at frame ${row.frame}`).toBeDefined();
        expect(rec!.ex.method).toBe(row.method);
        expect(rec!.ex.target).toBe(row.uri);
        // tshark leaves the version empty for a versionless (0.9) request line.
        expect(rec!.ex.version).toBe(row.version === '' ? 'HTTP/0.9' : row.version);
        expect(rec!.ex.requestEnd).toBe(row.ts);
      } else if (row.code !== null) {
        if (row.code >= 100 && row.code < 200 && row.code !== 101) {
          const rec = recs.find((r) => r.ex.interim.some((i) => i.status === row.code && i.ts === row.ts));
          expect(rec, `interim ${row.code} at frame ${row.frame}`).toBeDefined();
          continue;
        }
        finals++;
        const rec = recs.find((r) => r.respEndFrame === row.frame);
        expect(rec, `${name}: response at frame ${row.frame}`).toBeDefined();
        expect(rec!.ex.status).toBe(row.code);
        expect(rec!.ex.responseEnd).toBe(row.ts);
        expect(rec!.ex.outcome).toBe('complete');
        if (row.requestIn !== null) expect(rec!.reqEndFrame).toBe(row.requestIn);
      }
    }
    // No response tshark does not know about (except where noted).
    const ours = results.flatMap((r) => r.records).filter((r) => r.ex.status !== null && r.respEndFrame !== null);
    const extra = ours.filter((r) => !skip[r.respEndFrame!]).length;
    expect(extra).toBe(finals);
  });

  const zeek = loadZeekHttp(path.join(FIX, `${name}.zeek-http.log`)) ?? loadZeekHttp(path.join(FIX, `${name}.zeek-http.log.cut`));
  test.skipIf(!zeek)('agrees with Zeek http.log', () => {
    const dis = ZEEK_DISAGREES[name];
    for (const z of zeek!) {
      if (dis?.when(z)) continue;
      const res = results.find((r) => r.clientPort === z.origPort);
      expect(res, `connection from port ${z.origPort}`).toBeDefined();
      if (z.method === '-' && z.status === '-') continue; // Zeek's empty trailing rows (http_09.pcap), nothing was sent
      const ex = z.method === '-'
        ? res!.records.find((r) => r.ex.method === '' && String(r.ex.status) === z.status)?.ex
        : res!.records.find((r) => r.ex.index === z.transDepth)?.ex;
      expect(ex, `trans_depth ${z.transDepth} on port ${z.origPort}`).toBeDefined();
      if (z.method !== '-') {
        expect(ex!.method).toBe(z.method);
        expect(zeekUri(ex!.target)).toBe(z.uri);
        expect(ex!.requestBodyBytes).toBe(z.requestBodyLen);
      }
      expect(ex!.status === null ? '0' : String(ex!.status)).toBe(z.status === '-' ? '0' : z.status);
      if (ex!.responseHeaders['content-encoding'] === undefined) expect(ex!.responseBodyBytes).toBe(z.responseBodyLen);
    }
  });

  test('same exchanges whatever the cut of the byte stream', () => {
    const base = results.map((r) => ({ stream: r.stream, proto: r.parser.protocol, ex: r.parser.exchanges.map(summary), order: r.finishedOrder }));
    for (const split of [bytewise, randomSplits(7), randomSplits(1234567)]) {
      const a2 = new Anomalies();
      const again = replay(segs, split, a2).map((r) => ({ stream: r.stream, proto: r.parser.protocol, ex: r.parser.exchanges.map(summary), order: r.finishedOrder }));
      expect(again).toEqual(base);
      expect(a2.toJSON()).toEqual(anomalies.toJSON());
    }
  });

  test('every exchange is finished exactly once', () => {
    for (const r of results) {
      expect([...r.finishedOrder].sort((a, b) => a - b)).toEqual(r.parser.exchanges.map((e) => e.index));
    }
  });
});

describe('fixtures are what extract.sh makes from the corpus', () => {
  const corpus = path.resolve(FIX, '../../../../shared/corpus');
  const haveCorpus = existsSync(path.join(corpus, 'MANIFEST.tsv'));
  const haveTshark = spawnSync('tshark', ['--version'], { stdio: 'ignore' }).status === 0;
  const reason = !haveCorpus ? `corpus not found at ${corpus}` : !haveTshark ? 'tshark not installed' : '';
  // The fixtures are committed, so the other tests run anyway; in CI with the corpus present, tshark is required.
  if (reason && !(process.env['CI'] === 'true' && haveCorpus)) console.log(`skipping fixture provenance check: ${reason}`);
  const rows = readFileSync(path.join(FIX, 'README.md'), 'utf8')
    .split('\n')
    .map((l) => /^\| (\S+) \| `([^`]+)` \|$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null);
  test('README lists every fixture', () => {
    expect(rows.map((m) => m[1]).sort()).toEqual([...NAMES, ...OTHER_FIXTURES].sort());
  });
  test.skipIf(reason !== '' && !(process.env['CI'] === 'true' && haveCorpus)).each(rows.map((m) => [m[1]!, m[2]!]))('%s', (name, capture) => {
    const r = spawnSync(path.join(FIX, 'extract.sh'), [path.join(corpus, capture)], { encoding: 'utf8', maxBuffer: 64 << 20 });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(readFileSync(path.join(FIX, `${name}.segments.tsv`), 'utf8'));
  });
});
