/**
 * Checks the truth loaders (truth.ts) on the real truth files of the corpus.
 * Every expected value here is a fact stated in ../shared/corpus/README.md
 * (manifest table, "How to read them") or visible in the truth file itself
 * (quoted in the comment); nothing is hangscope output.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  connKey,
  endpointKey,
  epochToMicros,
  findCorpus,
  firstClosePerStream,
  loadManifest,
  loadZeekLog,
  mergeHttpTruth,
  parseTsharkConv,
  parseTsharkHttp,
  parseTsharkTcp,
  parseZeekLog,
  readTruth,
  rstBehaviorLine,
  splitCells,
  streamsByPair,
  tsharkRequests,
  zeekConnRows,
  zeekFirstCloser,
  zeekHttpRows,
  type ManifestEntry,
} from './truth.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const corpus = findCorpus(repoRoot);
const inCI = process.env['CI'] === 'true';

if (!corpus) {
  console.log(`[corpus] ${path.resolve(repoRoot, '../shared/corpus')} not found: truth loader tests skipped`);
}

describe('corpus present (required in CI)', () => {
  it.runIf(inCI)('finds ../shared/corpus', () => {
    expect(corpus, `corpus directory ${path.resolve(repoRoot, '../shared/corpus')} is missing`).not.toBeNull();
  });
});

/* Pure helpers: no corpus needed. */
describe('truth helpers', () => {
  it('turns tshark epoch strings into integer microseconds (truncating ns digits)', () => {
    expect(epochToMicros('1320329772.929872000')).toBe(1320329772929872);
    expect(epochToMicros('1.000000999')).toBe(1000000);
    expect(epochToMicros('0.302460000')).toBe(302460);
    expect(epochToMicros('5')).toBe(5000000);
  });
  it('keys IPv6 endpoints with brackets and connections direction-free', () => {
    expect(endpointKey('::1', 80)).toBe('[::1]:80');
    expect(endpointKey('10.0.0.1', 80)).toBe('10.0.0.1:80');
    expect(connKey('a:1', 'b:2')).toBe(connKey('b:2', 'a:1'));
  });
  it('splits occurrence=a cells only when the count fits', () => {
    expect(splitCells('POST,GET', 2)).toEqual(['POST', 'GET']);
    expect(splitCells('/a,b', 1)).toEqual(['/a,b']);
    expect(splitCells('/a,b,/c', 2)).toBeNull();
  });
  it('reads Zeek history close order', () => {
    expect(zeekFirstCloser('ShADTadttfR')).toEqual({ side: 'resp', kind: 'FIN' });
    expect(zeekFirstCloser('ShADadFf')).toEqual({ side: 'orig', kind: 'FIN' });
    expect(zeekFirstCloser('ShAaDd')).toBeNull();
    expect(zeekFirstCloser('SR')).toEqual({ side: 'orig', kind: 'RST' });
  });
});

describe.skipIf(!corpus)('truth loaders on the corpus', () => {
  const dir = corpus!;
  const manifest: ManifestEntry[] = corpus ? loadManifest(dir) : [];
  const byFile = (f: string): ManifestEntry => {
    const e = manifest.find((m) => m.file === f);
    if (!e) throw new Error(`${f} not in MANIFEST.tsv`);
    return e;
  };
  const http = (stem: string) => tsharkRequests(parseTsharkHttp(readTruth(dir, stem, '.tshark-http.tsv')!, stem));
  const closes = (stem: string) => firstClosePerStream(parseTsharkTcp(readTruth(dir, stem, '.tshark-tcp.tsv')!, stem));

  it('MANIFEST.tsv lists the 69 DEV captures, each present with its sha256 and truth files', () => {
    expect(manifest.length).toBe(69);
    for (const e of manifest) {
      const buf = readFileSync(path.join(dir, e.file));
      expect(createHash('sha256').update(buf).digest('hex'), e.file).toBe(e.sha256);
      for (const t of e.truthFiles) expect(existsSync(path.join(dir, t)), t).toBe(true);
      expect(e.truthFiles).toContain(`${e.stem}.tshark-http.tsv`);
      expect(e.truthFiles).toContain(`${e.stem}.tshark-tcp.tsv`);
      expect(e.truthFiles).toContain(`${e.stem}.tshark-conv.txt`);
    }
  });

  it('manifest row counts match the TSVs (http rows include the no-method/no-code frames)', () => {
    for (const e of manifest) {
      const h = readTruth(dir, e.stem, '.tshark-http.tsv')!;
      const t = readTruth(dir, e.stem, '.tshark-tcp.tsv')!;
      const rows = (s: string) => s.split('\n').filter((l) => l !== '').length - 1;
      expect(rows(h), `${e.file} http rows`).toBe(e.tsharkHttpRows);
      expect(rows(t), `${e.file} fin+rst rows`).toBe(e.tsharkFinRstRows);
      expect(parseTsharkTcp(t, e.stem).length).toBe(e.tsharkFinRstRows);
    }
  });

  it('every DEV truth file parses', () => {
    for (const e of manifest) {
      parseTsharkHttp(readTruth(dir, e.stem, '.tshark-http.tsv')!, e.stem);
      parseTsharkConv(readTruth(dir, e.stem, '.tshark-conv.txt')!);
      for (const f of e.truthFiles.filter((x) => /\.zeek-(.*-)?(http|conn)(-[\w-]+)?\.log(\.cut|\.one-sided)?$/.test(x))) {
        const log = loadZeekLog(dir, '', f)!;
        expect(log.fields.length, f).toBeGreaterThan(0);
      }
    }
  });

  it('workshop_2011_browse: 17 requests over 6 keep-alive connections, client FINs all at the end', () => {
    const reqs = http('zeek/workshop_2011_browse');
    expect(reqs.length).toBe(17);
    expect(new Set(reqs.map((r) => r.stream)).size).toBe(6);
    // Every request got a response (all 304 Not Modified in the TSV).
    expect(reqs.every((r) => r.status === 304)).toBe(true);
    // Stream 4 carries 6 requests numbered 1..6 (frames 32, 70, 86, 92, 98, 104).
    expect(reqs.filter((r) => r.stream === 4).map((r) => [r.frame, r.number])).toEqual([
      [32, 1],
      [70, 2],
      [86, 3],
      [92, 4],
      [98, 5],
      [104, 6],
    ]);
    const fc = closes('zeek/workshop_2011_browse');
    expect(fc.size).toBe(6);
    for (const c of fc.values()) {
      expect(c.by.startsWith('10.0.2.15:')).toBe(true);
      expect(c.kind).toBe('FIN');
    }
    // First row of the TSV: frame 110, stream 1, 10.0.2.15:49283.
    expect(fc.get(1)).toMatchObject({ frame: 110, by: '10.0.2.15:49283', tsMicros: 1320329772929872 });
  });

  it('pipelined-requests: 5 requests numbered 1..5, Zeek trans_depth agrees', () => {
    const stem = 'zeek/http/pipelined-requests';
    const reqs = http(stem);
    expect(reqs.map((r) => r.number)).toEqual([1, 2, 3, 4, 5]);
    expect(reqs.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    const z = zeekHttpRows(loadZeekLog(dir, stem, '.zeek-http.log')!);
    expect(z.map((r) => r.transDepth)).toEqual([1, 2, 3, 4, 5]);
    const merged = mergeHttpTruth(reqs, z);
    expect(merged.every((m) => m.source === 'both' && m.diffs.length === 0)).toBe(true);
  });

  it('methods: tshark sees 27 requests but 49 responses over 49 connections with 98 FINs', () => {
    const stem = 'zeek/http/methods';
    const msgs = parseTsharkHttp(readTruth(dir, stem, '.tshark-http.tsv')!, stem);
    expect(msgs.filter((m) => m.kind === 'request').length).toBe(27);
    expect(msgs.filter((m) => m.kind === 'response').length).toBe(49);
    const rows = parseTsharkTcp(readTruth(dir, stem, '.tshark-tcp.tsv')!);
    expect(rows.length).toBe(98);
    expect(rows.every((r) => r.fin && !r.rst)).toBe(true);
    expect(closes(stem).size).toBe(49);
    expect(parseTsharkConv(readTruth(dir, stem, '.tshark-conv.txt')!).length).toBe(49);
    expect(zeekHttpRows(loadZeekLog(dir, stem, '.zeek-http.log')!).length).toBe(49);
  });

  it('connect-with-header: tunnel payload rows (no method, no code) are skipped; IPv6 endpoints', () => {
    const stem = 'zeek/http/connect-with-header';
    expect(byFile('zeek/http/connect-with-header.pcap').tsharkHttpRows).toBe(19);
    const msgs = parseTsharkHttp(readTruth(dir, stem, '.tshark-http.tsv')!, stem);
    expect(msgs.length).toBe(2);
    const [req] = tsharkRequests(msgs);
    expect(req).toMatchObject({
      method: 'CONNECT',
      uri: 'secure.newegg.com:443',
      client: '[::1]:52522',
      server: '[::1]:80',
      status: 200,
    });
    expect(closes(stem).size).toBe(0);
  });

  it('te_cl_desync: one frame holding two requests yields two records', () => {
    const reqs = http('zeek/http/261/variant-04-te_cl_desync');
    expect(reqs.map((r) => [r.frame, r.method, r.uri, r.number, r.inFrame])).toEqual([
      [4, 'POST', '/', 1, 0],
      [4, 'GET', '/smuggled-te-cl', 2, 1],
    ]);
    // Zeek (a uid-only cut log without status) lists depth 2 first; the merge pairs by depth.
    const z = zeekHttpRows(loadZeekLog(dir, 'zeek/http/261/variant-04-te_cl_desync', '.zeek-http.log')!);
    expect(z.map((r) => r.transDepth)).toEqual([2, 1]);
    const merged = mergeHttpTruth(reqs, z);
    expect(merged.map((m) => [m.index, m.source, m.diffs.length])).toEqual([
      [1, 'both', 0],
      [2, 'both', 0],
    ]);
  });

  it('www-odd-url: a URI with a comma is not split; Zeek logs it percent-decoded', () => {
    const [req] = http('zeek/www-odd-url');
    expect(req!.uri).toContain('Dialogue,%20Narrative');
    expect(req!.status).toBe(404);
    const z = zeekHttpRows(loadZeekLog(dir, 'zeek/www-odd-url', '.zeek-http.log')!);
    // `\xfc` in the log is the byte 0xFC, i.e. %FC decoded.
    expect(z[0]!.uri).toContain('uurimisr\u00fchma');
    const [m] = mergeHttpTruth([req!], z);
    expect(m!.source).toBe('both');
    expect(m!.diffs.map((d) => d.field)).toEqual(['target']);
  });

  it('100-continue: the 100 is not paired; the request gets the final 200 (tshark numbers it 2)', () => {
    const stem = 'zeek/http/100-continue';
    const msgs = parseTsharkHttp(readTruth(dir, stem, '.tshark-http.tsv')!, stem);
    expect(msgs.filter((m) => m.kind === 'response').map((m) => (m.kind === 'response' ? m.code : 0))).toEqual([100, 200]);
    const [req] = tsharkRequests(msgs);
    expect(req).toMatchObject({ frame: 10, number: 2, status: 200, finalStatus: 200 });
    const z = zeekHttpRows(loadZeekLog(dir, stem, '.zeek-http.log')!);
    expect(z[0]).toMatchObject({ transDepth: 1, method: 'POST', status: 200 });
  });

  it('websocket: 101 is the status both tools give the upgrade request', () => {
    const [req] = http('zeek/http/websocket');
    expect(req).toMatchObject({ status: 101, finalStatus: null });
    const z = zeekHttpRows(loadZeekLog(dir, 'zeek/http/websocket', '.zeek-http.log')!);
    expect(z[0]!.status).toBe(101);
  });

  it('first FIN/RST per stream, as the README describes each capture', () => {
    // m57: server FIN (seen twice) then client RST (twice)
    expect(closes('zeek/http/m57-long-49583-80').get(0)).toMatchObject({ by: '208.111.129.62:80', kind: 'FIN', frame: 222 });
    // curl_http_09: ends with RST, no FIN
    expect(closes('zeek/http/curl_http_09').get(0)).toMatchObject({ by: '127.0.0.1:80', kind: 'RST' });
    // deeply-nested-mime: server (port 8080) sends FIN then RST
    expect(closes('zeek/http/deeply-nested-mime').get(0)).toMatchObject({ by: '127.0.0.1:8080', kind: 'FIN' });
    // ctu-62604-80: torn down with RSTs only
    expect(closes('zeek/http/ctu-62604-80').get(0)).toMatchObject({ by: '192.168.1.108:62604', kind: 'RST' });
    // wstunnel: client sends FIN then RST
    expect(closes('zeek/websocket/wstunnel-http').get(0)).toMatchObject({ by: '127.0.0.1:51102', kind: 'FIN' });
    // irc-starttls: client FIN, client RST, server FIN, client RST
    expect(closes('zeek/tls/irc-starttls').get(0)).toMatchObject({ by: '203.143.168.47:55123', kind: 'FIN' });
    // fin_retransmission: the first FIN row is itself flagged as a retransmission
    expect(closes('zeek/tcp/fin_retransmission').get(0)).toMatchObject({
      by: '10.1.30.117:55344',
      kind: 'FIN',
      retransmission: true,
      frame: 2,
    });
    // single-rst: a lone RST
    expect(closes('zeek/tcp/single-rst').get(0)!.kind).toBe('RST');
    // vnd.ms-cab: 5 connections, server FIN first on each, 10 RSTs in all
    const cab = parseTsharkTcp(readTruth(dir, 'zeek/http/vnd.ms-cab-compressed-multi-conn', '.tshark-tcp.tsv')!);
    expect(cab.filter((r) => r.rst).length).toBe(10);
    const cabFirst = firstClosePerStream(cab);
    expect(cabFirst.size).toBe(5);
    for (const c of cabFirst.values()) expect(c).toMatchObject({ by: '65.54.95.7:80', kind: 'FIN' });
    // ssh half duplex: 20 connections (ports reused: 51880, 57189, ... appear twice in conn.log)
    expect(closes('zeek/ssh/ssh.client-side-half-duplex').size).toBe(20);
  });

  it('no DEV segment carries both FIN and RST (so the RST-wins rule is never exercised here)', () => {
    for (const e of manifest) {
      const rows = parseTsharkTcp(readTruth(dir, e.stem, '.tshark-tcp.tsv')!, e.stem);
      expect(rows.filter((r) => r.fin && r.rst), e.file).toEqual([]);
    }
  });

  it('conv,tcp: workshop has 6 conversations, wikipedia 10, relative starts in microseconds', () => {
    const w = parseTsharkConv(readTruth(dir, 'zeek/workshop_2011_browse', '.tshark-conv.txt')!);
    expect(w.length).toBe(6);
    // "10.0.2.15:49282 <-> 192.150.187.43:80  13 1501 bytes  12 2492 bytes  25 3993 bytes  0.000000000  15.4714"
    expect(w.find((c) => c.a === '10.0.2.15:49282')).toMatchObject({
      b: '192.150.187.43:80',
      framesBtoA: 13,
      bytesBtoA: 1501,
      framesAtoB: 12,
      bytesAtoB: 2492,
      frames: 25,
      relStartMicros: 0,
      duration: '15.4714',
    });
    const wiki = parseTsharkConv(readTruth(dir, 'zeek/wikipedia', '.tshark-conv.txt')!);
    expect(wiki.length).toBe(10);
    const ipv6 = parseTsharkConv(readTruth(dir, 'zeek/http/connect-with-header', '.tshark-conv.txt')!);
    expect(ipv6.map((c) => connKey(c.a, c.b))).toEqual([connKey('[::1]:52522', '[::1]:80')]);
  });

  it('Zeek logs: #fields, header-line and header-less cut files', () => {
    const get = loadZeekLog(dir, 'zeek/http/get', '.zeek-http.log')!;
    expect(get.header).toBe('#fields');
    expect(zeekHttpRows(get)[0]).toMatchObject({
      orig: '141.142.228.5:59856',
      resp: '192.150.187.43:80',
      transDepth: 1,
      method: 'GET',
      uri: '/download/CHANGES.bro-aux.txt',
      status: 200,
    });
    const ctu = loadZeekLog(dir, 'zeek/http/ctu-62604-80', '.zeek-http.log.cut')!;
    expect(ctu.header).toBe('header-line');
    expect(zeekHttpRows(ctu)[0]).toMatchObject({ method: 'POST', uri: '/c2sock', status: 200, transDepth: 1 });
    const cab = zeekHttpRows(loadZeekLog(dir, 'zeek/http/vnd.ms-cab-compressed-multi-conn', '.zeek-http.log.cut')!);
    expect(cab.length).toBe(5);
    expect(cab[0]).toMatchObject({ uri: undefined, transDepth: null, status: 206, orig: null });
    const hr = loadZeekLog(dir, 'zeek/tcp/handshake-reorder', '.zeek-conn.log.cut')!;
    expect(hr.header).toBe('given');
    expect(zeekConnRows(hr)[0]).toMatchObject({ orig: '141.142.228.5:59856', resp: '192.150.187.43:80', proto: 'tcp' });
    // `(empty)` is an empty string, `-` unset
    const noUri = zeekHttpRows(loadZeekLog(dir, 'zeek/http/no-uri', '.zeek-http.log')!);
    expect(noUri[0]!.uri).toBe('');
    expect(() => parseZeekLog('1.2.3.4\t80\n')).toThrow(/no #fields line/);
  });

  it('conn.log: history and conn_state', () => {
    const rows = zeekConnRows(loadZeekLog(dir, 'zeek/http/get', '.zeek-conn.log')!);
    expect(rows[0]).toMatchObject({ history: 'ShADadFf', connState: 'SF' });
    const rst = readTruth(dir, 'zeek/tcp/single-rst', '.zeek-out')!;
    expect(rstBehaviorLine(rst, 'zeek/tcp/single-rst')).toEqual({ history: 'R', connState: 'OTH' });
    expect(rstBehaviorLine(rst, 'zeek/tcp/syn-then-stuff-then-rst')).toEqual({ history: 'SaFR', connState: 'OTH' });
  });

  it('Zeek and tshark agree on the first closer wherever a conn.log has endpoints and history', () => {
    // Cross-check of the two truth sources (not of hangscope): Zeek's first
    // F/f/R/r letter and tshark's first FIN/RST row name the same sender and kind.
    const checked: string[] = [];
    for (const e of manifest) {
      for (const f of e.truthFiles.filter((x) => /zeek-(.*-)?conn(-[\w-]+)?\.log/.test(x))) {
        const rows = zeekConnRows(loadZeekLog(dir, '', f)!).filter((r) => r.proto !== 'udp');
        if (!rows.every((r) => r.orig && r.history)) continue;
        const tcp = parseTsharkTcp(readTruth(dir, e.stem, '.tshark-tcp.tsv')!);
        const byPair = streamsByPair(tcp);
        const first = firstClosePerStream(tcp);
        const zeekPerPair = new Map<string, number>();
        for (const r of rows) zeekPerPair.set(connKey(r.orig!, r.resp!), (zeekPerPair.get(connKey(r.orig!, r.resp!)) ?? 0) + 1);
        for (const r of rows) {
          const zc = zeekFirstCloser(r.history!);
          const streams = byPair.get(connKey(r.orig!, r.resp!)) ?? [];
          // Port reuse, or Zeek splitting one tshark stream in two (ssh half-duplex:
          // 25 Zeek connections for tshark's 20 streams): the logs hide timestamps,
          // so such pairs cannot be lined up.
          if (streams.length !== 1 || zeekPerPair.get(connKey(r.orig!, r.resp!)) !== 1) continue;
          const tc = first.get(streams[0]!)!;
          expect(zc, `${f} ${r.uid}`).not.toBeNull();
          expect({ by: zc!.side === 'orig' ? r.orig : r.resp, kind: zc!.kind }, `${f} ${r.uid}`).toEqual({
            by: tc.by,
            kind: tc.kind,
          });
          checked.push(`${f}:${r.uid}`);
        }
      }
    }
    console.log(`[corpus] Zeek history and tshark agree on the first closer of ${checked.length} connections`);
    expect(checked.length).toBeGreaterThan(10);
  });
});
