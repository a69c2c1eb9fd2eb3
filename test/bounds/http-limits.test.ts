/**
 * HTTP bounds on real traffic (http-traffic.mjs: a Node http server that
 * accepts 1 MiB heads, a raw socket client), each degrading in a counted way
 * while the rest of the connection stays right:
 *  - a header line over maxHeaderBytes (64 KiB; here 100 KiB, request and
 *    response): skipped and counted (http-header-too-large); the exchange and
 *    the next one on the socket are still complete and framed right;
 *  - more than maxHeaders (64) fields (here 100, request and response): the
 *    first 64 kept, counted once per message (http-too-many-headers);
 *  - more than maxExchanges (10,000) exchanges on one connection (here
 *    10,050 pipelined): the oldest sixteenth leaves memory (625, counted in
 *    http-exchanges-dropped), the last ones are kept, none fails;
 *  - (root and tcpdump) a head that never ends (4 MiB and 32 MiB of one
 *    header line): the heap does not grow with it.
 * The committed capture (fixtures/http-limits.pcap.gz, with the client's own
 * counts in http-limits.json) is made by `node test/bounds/http-traffic.mjs
 * limits http-limits.pcap`. Request counts come from tshark; response counts
 * from the client (tshark's dissector misses some pipelined responses).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { hasCommand as has, isRoot, need } from '../need.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(here, '../..');
const MAIN = path.join(REPO, 'dist/cli/main.js');
const FIXTURE = path.join(here, 'fixtures/http-limits.pcap.gz');
const CLIENT = JSON.parse(readFileSync(path.join(here, 'fixtures/http-limits.json'), 'utf8'));
const MiB = 1024 * 1024;

const tmp = mkdtempSync(path.join(tmpdir(), 'hangscope-http-limits-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function report(file: string): any {
  const r = spawnSync(process.execPath, [MAIN, 'analyze', file, '--format', 'json'], { encoding: 'utf8', maxBuffer: 512 * MiB, timeout: 120_000 });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
}

/** Requests per tcp.stream, by tshark (every request of a pipelined segment counted). */
function tsharkRequests(file: string): number[] {
  const r = spawnSync('tshark', ['-n', '-r', file, '-Y', 'http.request', '-T', 'fields', '-E', 'occurrence=a', '-E', 'aggregator=|', '-e', 'tcp.stream', '-e', 'http.request.uri'], {
    encoding: 'utf8',
    maxBuffer: 64 * MiB,
  });
  const per: number[] = [];
  for (const l of r.stdout.split('\n').filter((x) => x !== '')) {
    const [s, uris] = l.split('\t');
    per[Number(s)] = (per[Number(s)] ?? 0) + uris!.split('|').length;
  }
  return per;
}

describe('HTTP bounds on the committed capture', () => {
  let r: any;
  const conn = (target: string): any => r.connections.find((c: any) => c.exchanges.some((e: any) => e.target === target));
  beforeAll(() => {
    r = report(FIXTURE);
  });

  it('requests per connection as tshark counts them; every response the clients counted is complete', () => {
    const wanted = { '/big-header': 2, '/many-headers': 1, '/many-response-headers': 1, '/r/10050': 10_050 };
    if (need(has('tshark'), 'tshark is not installed', 'bounds: http limits vs tshark')) {
      const per = tsharkRequests(FIXTURE);
      expect([...per].sort((a, b) => a - b)).toEqual(Object.values(wanted).sort((a, b) => a - b));
    }
    expect(r.stats.exchanges).toBe(2 + 1 + 1 + 10_050);
    expect(CLIENT.bigHeader.responses + CLIENT.manyHeaders.responses + CLIENT.manyResponseHeaders.responses + CLIENT.pipelined.responses).toBe(r.stats.exchanges);
    for (const c of r.connections) for (const e of c.exchanges) expect(`${e.target} ${e.outcome} ${e.status}`).toBe(`${e.target} complete 200`);
    expect(r.findings.filter((f: any) => f.severity !== 'info')).toEqual([]);
  });

  it('a 100 KiB header line: skipped and counted; this exchange and the next on the socket are right', () => {
    const c = conn('/big-header');
    expect(c.exchanges.map((e: any) => e.target)).toEqual(['/big-header', '/after-big']);
    expect(c.exchanges[0].requestHeaders['x-big']).toBeUndefined();
    expect(c.exchanges[0].requestHeaders.host).toBe(`127.0.0.1:${CLIENT.port}`);
    // The response to /many-response-headers: 100 fields, one of them 100 KiB; its body is still read by Content-Length.
    const m = conn('/many-response-headers').exchanges[0];
    expect(m.responseHeaders['x-big-response']).toBeUndefined();
    expect(m.responseBodyBytes).toBe(3);
    expect(r.stats.anomalies['http-header-too-large']).toBe(2);
  });

  it('100 header fields: the first 64 kept, counted once per message', () => {
    const e = conn('/many-headers').exchanges[0];
    expect(Object.keys(e.requestHeaders)).toHaveLength(64);
    expect(e.requestHeaders.host).toBe(`127.0.0.1:${CLIENT.port}`);
    // Host, then X-H0 .. X-H62: 64 fields.
    expect(e.requestHeaders['x-h62']).toBe('62');
    expect(e.requestHeaders['x-h63']).toBeUndefined();
    expect(Object.keys(conn('/many-response-headers').exchanges[0].responseHeaders)).toHaveLength(64);
    expect(r.stats.anomalies['http-too-many-headers']).toBe(2);
  });

  it('10,050 exchanges on one socket: the oldest 625 leave memory (counted), the rest are kept in order', () => {
    const ex = conn('/r/10050').exchanges;
    expect(ex).toHaveLength(10_050 - 625);
    expect(ex[0].index).toBe(626);
    expect(ex[0].target).toBe('/r/626');
    expect(ex.at(-1).index).toBe(10_050);
    expect(ex.at(-1).target).toBe('/r/10050');
    expect(r.stats.anomalies['http-exchanges-dropped']).toBe(625);
  });
});

const SUITE = 'bounds: a head that never ends (4 and 32 MiB), captured now';
const live = need(isRoot, 'not root (tcpdump needs it)', SUITE) && need(has('tcpdump'), 'tcpdump is not installed', SUITE);

describe.runIf(live)(SUITE, () => {
  it('the heap does not grow with the head; the request is aborted, the line counted', () => {
    const out: Record<number, any> = {};
    for (const n of [4 * MiB, 32 * MiB]) {
      const f = path.join(tmp, `huge-head-${n}.pcap`);
      const g = spawnSync(process.execPath, [path.join(here, 'http-traffic.mjs'), 'huge-head', f, String(n)], { encoding: 'utf8', timeout: 120_000 });
      if (g.status !== 0) throw new Error(g.stderr);
      const m = spawnSync(process.execPath, ['--expose-gc', path.join(here, 'measure.mjs'), f, JSON.stringify({ keep: true, every: 1 })], { encoding: 'utf8', timeout: 120_000 });
      if (m.status !== 0) throw new Error(m.stderr);
      out[n] = JSON.parse(m.stdout);
      const rep = report(f);
      const e = rep.connections[0].exchanges[0];
      expect(e.target).toBe('/');
      expect(e.outcome).toBe('aborted');
      expect(rep.stats.anomalies['http-header-too-large']).toBe(1);
      expect(rep.connections[0].bytes.client).toBeGreaterThan(n);
    }
    console.log(
      `[bounds] endless head: 4 MiB -> heap ${(out[4 * MiB].maxHeap / MiB).toFixed(1)} MiB, rss ${(out[4 * MiB].maxRss / MiB).toFixed(0)} MiB; ` +
        `32 MiB -> heap ${(out[32 * MiB].maxHeap / MiB).toFixed(1)} MiB, rss ${(out[32 * MiB].maxRss / MiB).toFixed(0)} MiB`,
    );
    expect((out[32 * MiB].maxHeap - out[4 * MiB].maxHeap) / MiB).toBeLessThan(2);
  });
});
