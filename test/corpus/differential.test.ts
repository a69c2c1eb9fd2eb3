/**
 * Differential tests of hangscope against the external corpus
 * (../shared/corpus: 69 real captures with tshark and Zeek truth).
 *
 * 1. HTTP: every request the truth tools report (tshark and Zeek where both
 *    have it, tshark alone where there is no Zeek baseline, and the reasoned
 *    decisions of TOOL_DECISIONS where they disagree) is found by hangscope
 *    with the same method, target, status and index on its connection.
 *    Exchanges hangscope reports that no truth tool has are listed too.
 * 2. TCP: for every tcp.stream with a FIN or RST, hangscope's firstClose has
 *    the sender (ip:port, not the client/server label), kind, time (to the
 *    microsecond) and frame of tshark's first FIN/RST row; connection ids
 *    follow tshark's tcp.stream order (checked on every conversation of
 *    `-z conv,tcp`, whose relative starts also give each connection's start
 *    and whose frame counts each connection's packets).
 *    Also compared, with the same allow-list rule: the whole `closes` list
 *    and `state` (from all FIN/RST rows), requestEnd/responseEnd against the
 *    frames tshark shows the messages at, gapBytes against Zeek's
 *    missed_bytes, and packets read against capinfos' count.
 * 3. At least 99% agreement for requests and for first closers; every
 *    remaining difference is in ALLOWED with its reason, and every ALLOWED
 *    entry must still be a difference (the list stays true).
 * 4. The CLI reads every capture without crashing: exit 0 with JSON, or
 *    exit 2 with one line on stderr; never a stack trace.
 *
 * Needs ../shared/corpus (skipped with a message when absent, unless
 * CI=true) and, for part 4, a build (`npm run build` writes dist/).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ConnectionJSON, ReportJSON } from '../../lib/report/schema.js';
import {
  connKey,
  endpointKey,
  findCorpus,
  firstClosePerStream,
  loadManifest,
  loadZeekLog,
  mergeHttpTruth,
  parseTsharkConv,
  parseTsharkHttp,
  parseTsharkTcp,
  readTruth,
  requestLocator,
  streamsByPair,
  tsharkRequests,
  zeekHttpRows,
  type HttpField,
  type ManifestEntry,
  type RequestTruth,
  type ToolDiff,
  type TsharkCloseRow,
} from './truth.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const corpus = findCorpus(repoRoot);
const inCI = process.env['CI'] === 'true';
if (!corpus) {
  console.log(`[corpus] ${path.resolve(repoRoot, '../shared/corpus')} not found: differential tests skipped`);
}

/* ================================================================== */
/* Where tshark and Zeek disagree: what hangscope should match, and why */
/* ================================================================== */

/**
 * Whose value hangscope must match: tshark's, Zeek's, neither ('none': not
 * compared), or `{ wire }`: a value read from the packets where the only
 * truth tool present is demonstrably wrong (the reason cites the frames).
 */
type Take = 'tshark' | 'zeek' | 'none' | { wire: string | number | null };

interface Decision {
  capture: string;
  /** requestLocator() values (`stream 3 #1`). */
  requests: string[];
  /**
   * For each field the tools disagree on: whose value hangscope must match.
   * `exists` = whether the request is there at all (a request only one tool
   * saw). Other fields may be set to 'none' or `{ wire }`.
   */
  take: Partial<Record<HttpField, Take>>;
  why: string;
}

/**
 * Every disagreement between the two truth tools, reasoned from the packets
 * (tshark -r F -x / -V). The test fails if a disagreement has no entry here
 * or an entry no longer matches a disagreement.
 */
const TOOL_DECISIONS: Decision[] = [
  {
    capture: 'zeek/http/100-continue.pcap',
    requests: ['stream 0 #2'],
    take: { index: 'zeek' },
    why:
      'One request only: the POST headers are in frame 4 and the body ends in frame 10, with "100 Continue" in ' +
      'frame 6 between them. tshark attributes the request to frame 10 (where its reassembly of headers+body ends) ' +
      'and numbers it 2 because the 100 response (frame 6) was counted first; Zeek trans_depth 1 is the position ' +
      'of the request on the connection.',
  },
  {
    capture: 'zeek/http/concurrent-range-requests.pcap',
    requests: ['stream 1 #1'],
    take: { status: 'zeek' },
    why:
      'The "HTTP/1.1 206 Partial Content" headers are in frame 14, but a later segment of that response (seq 8449, ' +
      'frame 53) arrives after seq 10285: tshark 4.0 does not reassemble out-of-order segments by default ' +
      '(tcp.reassemble_out_of_order=FALSE) so never completes the response; Zeek reassembles it and logs 206.',
  },
  {
    capture: 'zeek/http/cooper-grill-dvwa.pcapng',
    requests: ['stream 1 #1', 'stream 2 #1', 'stream 3 #1'],
    take: { target: 'tshark' },
    why:
      'Zeek logs the URI percent-decoded (%27 -> \', %2C -> ,); tshark gives the request-target as sent. hangscope ' +
      'reports the target as on the wire (RFC 9112 section 3.2), so tshark.',
  },
  {
    capture: 'zeek/www-odd-url.pcap',
    requests: ['stream 0 #1'],
    take: { target: 'tshark' },
    why: 'Same as cooper-grill: Zeek decodes %20 and %FC in its uri column; the wire (frame 4) has the %-escapes.',
  },
  {
    capture: 'zeek/http/no-uri.pcap',
    requests: ['stream 0 #1'],
    take: { target: 'none' },
    why:
      'The request line is "GET HTTP/1.1" (one space, frame 4): not a valid request-line (RFC 9112 section 3 ' +
      'needs method SP request-target SP HTTP-version). tshark takes "HTTP/1.1" as the target, Zeek sees a ' +
      'version and an empty URI. Both are guesses; the target is not compared (method, status and index are).',
  },
  // methods.pcap streams 2, 7, 8, 10-14, 17, 18, 22, 23, 27, 28, 32, 33, 37, 38, 42, 43, 47, 48 need no
  // decision: their request lines have no valid method token ("OPTIONSHTTP/1.1", "GET/ HTTP/1.1",
  // "\xc3\x83\xc3\x82\xc3\x83 / HTTP/1.", ...). tshark shows only the server's response #1 (400, or 405 on
  // stream 10), Zeek logs exchange 1 with method and uri unset and the same status: both see one exchange
  // answered with that status, and that is what is compared (an unreadable method/target never is).
  {
    capture: 'zeek/http/methods.pcap',
    requests: ['stream 1 #1'],
    take: { target: 'none' },
    why: 'Request line "OPTIONS HTTP/1.1" (frame 14): the same one-space line as no-uri.pcap; target not compared.',
  },
  {
    capture: 'zeek/http/methods.pcap',
    requests: ['stream 3 #1'],
    take: { method: 'none', target: 'none' },
    why:
      'Request line "OPTIONS" alone (frame 34, no space, no target, no version): not a request-line (RFC 9112 ' +
      'section 3). tshark still calls OPTIONS the method with an empty target; Zeek cannot parse the line and ' +
      'leaves method and uri unset, as for the other unreadable lines of this capture. Both agree on exchange 1 ' +
      'answered 400 (frame 36), which is compared; what an invalid line "means" is not.',
  },
  {
    capture: 'zeek/http/methods.pcap',
    requests: ['stream 6 #1', 'stream 16 #1', 'stream 21 #1', 'stream 26 #1', 'stream 31 #1', 'stream 36 #1', 'stream 41 #1', 'stream 46 #1'],
    take: { status: 'tshark' },
    why:
      'Request lines "M /HTTP/1.1" without a version (e.g. "GET /HTTP/1.1", frame 172): Zeek takes them as HTTP/0.9 ' +
      'and so reads the reply as a 0.9 body (status_code 0, "<empty>"), but the server answered with a status ' +
      'line ("HTTP/1.0 403 Forbidden" in frame 174, 400/411 on the others), which tshark reports.',
  },
  {
    capture: 'zeek/http/http-11-request-then-cruft.pcap',
    requests: ['stream 0 #2'],
    take: { exists: 'tshark' },
    why:
      'After GET / (frames 4+6, answered 301 in frame 8) the client sends "T / HTTP\n\n" (frame 10), which is no ' +
      'request line; nginx answers "HTTP/1.1 400 Bad Request" (frame 11). tshark shows that response as #2; Zeek ' +
      'only logs weirds (bad_HTTP_request) and no second row. The 400 is on the wire, so exchange 2 exists with ' +
      'status 400; its method and target are unreadable and not compared.',
  },
  {
    capture: 'zeek/http/http_09.pcap',
    requests: ['stream 0 #1', 'stream 1 #1'],
    take: { exists: 'zeek' },
    why:
      'HTTP/0.9 Simple-Requests "GET /zeek.html\\n" (frame 4) and "POST /zeek.html\\n" (frame 14), answered by bare ' +
      'bodies: tshark 4.0 does not dissect HTTP/0.9; Zeek logs them (RFC 1945 section 4.1). Status null: no status line.',
  },
  {
    capture: 'zeek/http/http_09.pcap',
    requests: ['stream 0 #2', 'stream 1 #2'],
    take: { exists: 'none' },
    why:
      'Zeek also logs a trans_depth 2 row with every field unset on both connections; the client sent one line ' +
      'only (frames 4 and 14 are its only payload), so no second request exists on the wire. Neither is expected.',
  },
  {
    capture: 'zeek/http/no-version.pcap',
    requests: ['stream 0 #1'],
    take: { exists: 'zeek' },
    why:
      'Request line without version (frame 4, "GET /cgi-bin/formmail.pl?... " then CRLF), answered by a bare HTML ' +
      'body (frame 6): HTTP/0.9, which tshark 4.0 does not dissect; Zeek logs it with no status.',
  },
  {
    capture: 'zeek/http/no-version.pcap',
    requests: ['stream 0 #2'],
    take: { exists: 'none' },
    why: 'Zeek\'s empty trans_depth 2 row again (see http_09): frame 4 is the only client payload.',
  },
  {
    capture: 'zeek/http/query-method.pcap',
    requests: ['stream 0 #1'],
    take: { method: 'zeek', target: 'zeek' },
    why:
      '"QUERY /users HTTP/1.1" (frame 4) answered 200 (frame 6): tshark 4.0 only knows a fixed list of methods ' +
      'and shows just the response (unpaired, #1 200); QUERY is a valid method token (RFC 9110 section 9.1) and ' +
      'Zeek logs QUERY /users.',
  },
  {
    capture: 'zeek/tcp-http-with-padding.pcap',
    requests: ['stream 0 #1'],
    take: { method: 'zeek', target: 'zeek' },
    why:
      '"GET / HTTP/1.0" is sent one to eight bytes per segment (frames 4-18) to port 27272, which is not an HTTP ' +
      'port for tshark; its heuristics only catch the response (unpaired, #1 200). Zeek finds HTTP by content ' +
      'and logs GET / 200.',
  },
  {
    capture: 'zeek/wikipedia.pcap',
    requests: ['stream 0 #1'],
    take: { exists: 'tshark' },
    why:
      'The capture starts inside this connection (no SYN; Zeek conn.log history "DdA", service unset): Zeek attaches ' +
      'no HTTP analyzer, but the request "GET /" (frame 6) and its 304 (frame 7) are whole in the capture.',
  },
  {
    capture: 'zeek/websocket/wstunnel-http.pcap',
    requests: ['stream 0 #1'],
    take: { status: 'tshark' },
    why:
      'GET /v1/events is answered "101 Switching Protocols" (frame 6). Zeek logs 301, the status of an HTTP response ' +
      'carried inside a WebSocket frame later (frame 9); its own test says "something in the HTTP scripts gets ' +
      'confused". After the 101 the connection carries WebSocket, not HTTP/1.1 exchanges.',
  },
  {
    capture: 'zeek/websocket/wstunnel-http.pcap',
    requests: ['stream 0 #?'],
    take: { exists: 'none' },
    why:
      'Zeek\'s second row (GET / Host: zeek.org) is HTTP inside WebSocket frames (frame 8, after the 101): not an ' +
      'HTTP/1.1 exchange on the TCP connection, which is what hangscope reports.',
  },
  {
    capture: 'tcpdump/accecn_handshake.pcap',
    requests: ['stream 0 #1'],
    take: { status: { wire: 200 } },
    why:
      'tshark alone (no Zeek baseline) lists GET /1M without a response, but frame 6 starts "HTTP/1.1 200 OK" ' +
      '(Content-Length: 1000000; the capture ends after this first 1448-byte segment). tshark reassembles the whole ' +
      'body before it dissects a response (http.desegment_body), so it never shows this one. Status 200 is on the wire.',
  },
];

/* ================================================================== */
/* Known differences between hangscope and the (decided) truth         */
/* ================================================================== */

interface Allowed {
  /** `<capture> | <where> | <field>` as printed by the test. */
  key: string;
  /** What hangscope reports there (JSON), so a change of behaviour shows up. */
  got: string;
  why: string;
}

/** Only genuine tool disagreements or deliberate hangscope choices belong here, never engine bugs. */
const ALLOWED: Allowed[] = [
  {
    key: 'zeek/tcp/truncated-header.pcap | conv 128.3.26.249:25<>201.186.157.67:60827 @0.000227000 | conv.connection',
    got: '[{"id":0,"start":1103139821634774}]',
    why:
      'tshark disagrees with itself: frame 1 (a SYN whose options are cut by the 68-byte snaplen) is in tcp.stream 0, ' +
      'but the TCP dissector throws on the cut options before the conversation tap runs, so `-z conv,tcp` counts 23 ' +
      'frames from frame 2 (relative start 0.000227). hangscope starts the connection at frame 1, like tcp.stream.',
  },
  {
    key: 'zeek/tcp/truncated-header.pcap | conn 0 201.186.157.67:60827<>128.3.26.249:25 | conv.extra-connection',
    got: '{"start":1103139821.634774}',
    why: 'The same connection as the entry above, seen from hangscope\'s side (its start is frame 1, not frame 2).',
  },
  {
    key: 'zeek/http/content-length-overflow.pcap | stream 0 #1 | timing.responseEnd',
    got: 'null',
    why:
      'Deliberate: the 200 says "Content-Length: 2200000000" and frame 6 carries 100 body bytes before the server\'s ' +
      'FIN (frame 8). tshark ends the response at the FIN; hangscope reports it unfinished (responseEnd null, ' +
      'outcome incomplete-response, finding server-close-mid-response), which is what the bytes say.',
  },
  {
    key: 'zeek/tcp/tcp-fast-open.pcap | stream 0 #1 | timing.responseEnd',
    got: '1402321033745631',
    why:
      'Deliberate: the 302 has no Content-Length and ends with the connection (RFC 9112 section 6.3, item 8). Its ' +
      'last byte is in frame 5; tshark dissects it at the FIN (frame 6), where it learns the body is over. The ' +
      'schema defines responseEnd as the last byte\'s packet.',
  },
  {
    key: 'zeek/tcp/tcp-fast-open.pcap | stream 1 #1 | timing.responseEnd',
    got: '1402321033750859',
    why: 'Same as stream 0: close-delimited 200, last byte in frame 12, tshark shows it at the FIN in frame 14.',
  },
];

/* ================================================================== */
/* Comparison machinery                                                */
/* ================================================================== */

interface Difference {
  key: string;
  expected: string;
  got: string;
}

const ep = (e: { ip: string; port: number }): string => endpointKey(e.ip, e.port);
const micros = (s: number): number => Math.round(s * 1e6);
const show = (v: unknown): string => (v === undefined ? 'undefined' : JSON.stringify(v));

/** The hangscope connection for a 4-tuple seen at time `ts` (µs); port reuse is settled by time, then by id. */
function findConn(report: ReportJSON, a: string, b: string, ts: number | null, stream: number | null): ConnectionJSON | null {
  const k = connKey(a, b);
  let c = report.connections.filter((x) => connKey(ep(x.client), ep(x.server)) === k);
  if (ts !== null && c.length > 1) {
    const inWindow = c.filter((x) => micros(x.start) <= ts && ts <= micros(x.end));
    if (inWindow.length > 0) c = inWindow;
  }
  if (c.length > 1 && stream !== null) {
    const byId = c.find((x) => x.id === stream);
    if (byId) return byId;
  }
  return c[0] ?? null;
}

interface Expected {
  locator: string;
  stream: number | null;
  client: string;
  server: string;
  tsMicros: number | null;
  index: number;
  /** tshark's frame times (µs) of the request and of its final response, when tshark saw them. */
  requestFrameTs: number | null;
  responseFrameTs: number | null;
  /** undefined = not compared */
  method?: string | null;
  target?: string | null;
  status?: number | null;
}

/** Applies TOOL_DECISIONS to the merged truth; reports undecided disagreements. */
function resolve(
  file: string,
  merged: RequestTruth[],
  used: Set<Decision>,
  undecided: string[],
): { expected: Expected[]; excused: { client: string; server: string; index: number | null; ts: number | null }[] } {
  const expected: Expected[] = [];
  const excused: { client: string; server: string; index: number | null; ts: number | null }[] = [];
  for (const r of merged) {
    const loc = requestLocator(r);
    const d = TOOL_DECISIONS.find((x) => x.capture === file && x.requests.includes(loc));
    const take: Partial<Record<HttpField, Take>> = d ? d.take : {};
    if (d) used.add(d);
    const diffOf = (f: HttpField): ToolDiff | undefined => r.diffs.find((x) => x.field === f);
    for (const diff of r.diffs) {
      if (!take[diff.field]) undecided.push(`${file} | ${loc} | ${diff.field}: tshark ${show(diff.tshark)} vs zeek ${show(diff.zeek)}`);
    }
    if (d) {
      for (const [f, t] of Object.entries(d.take)) {
        if (typeof t === 'object') {
          if ((r as unknown as Record<string, unknown>)[f] === t.wire) undecided.push(`${file} | ${loc} | wire correction of ${f} equals the truth already`);
        } else if (t !== 'none' && !diffOf(f as HttpField)) {
          undecided.push(`${file} | ${loc} | decision on ${f} but the tools agree there`);
        }
      }
    }
    const existsDiff = diffOf('exists');
    if (existsDiff) {
      const t = take.exists;
      const keep =
        t === 'tshark' ? existsDiff.tshark === 'yes' : t === 'zeek' ? existsDiff.zeek === 'yes' : typeof t === 'object' ? t.wire === 'yes' : false;
      if (!keep) {
        if (r.client && r.server) excused.push({ client: r.client, server: r.server, index: r.index, ts: r.tsMicros });
        continue;
      }
    }
    if (r.client === null || r.server === null || r.index === null) {
      undecided.push(`${file} | ${loc} | request without endpoints or index cannot be compared`);
      continue;
    }
    const e: Expected = {
      locator: loc,
      stream: r.stream,
      client: r.client,
      server: r.server,
      tsMicros: r.tsMicros,
      index: r.index,
      requestFrameTs: r.tshark && !r.tshark.orphan ? r.tshark.tsMicros : null,
      responseFrameTs: null,
    };
    if (r.tshark) {
      const finals = r.tshark.responses.filter((x) => x.code >= 200);
      const last = finals[finals.length - 1] ?? r.tshark.responses[r.tshark.responses.length - 1];
      if (last) e.responseFrameTs = last.tsMicros;
    }
    const pick = (f: 'method' | 'target' | 'status' | 'index', own: unknown): unknown => {
      const diff = diffOf(f);
      const t = take[f];
      if (t === 'none') return undefined;
      if (typeof t === 'object') return t.wire;
      if (diff && t === 'tshark') return diff.tshark;
      if (diff && t === 'zeek') return diff.zeek;
      return own;
    };
    const idx = pick('index', r.index);
    if (typeof idx === 'number') e.index = idx;
    const method = pick('method', r.method) as string | null | undefined;
    const target = pick('target', r.target) as string | null | undefined;
    // A method or target no tool could read (null) is not compared; a missing status is (null = no final response).
    if (method !== undefined && method !== null) e.method = method;
    if (target !== undefined && target !== null) e.target = target;
    const status = pick('status', r.status) as number | null | undefined;
    if (status !== undefined) e.status = status;
    expected.push(e);
  }
  return { expected, excused };
}

interface CaptureResult {
  file: string;
  report: ReportJSON | null;
  error: string | null;
  requests: number;
  requestsAgree: number;
  closers: number;
  closersAgree: number;
  conversations: number;
  conversationsAgree: number;
  timings: number;
  timingsAgree: number;
  gaps: number;
  gapsAgree: number;
  closeLists: number;
  closeListsAgree: number;
  differences: Difference[];
}

function compareCapture(dir: string, e: ManifestEntry, report: ReportJSON | null, error: string | null, used: Set<Decision>, undecided: string[]): CaptureResult {
  const file = e.file;
  const res: CaptureResult = {
    file,
    report,
    error,
    requests: 0,
    requestsAgree: 0,
    closers: 0,
    closersAgree: 0,
    conversations: 0,
    conversationsAgree: 0,
    timings: 0,
    timingsAgree: 0,
    gaps: 0,
    gapsAgree: 0,
    closeLists: 0,
    closeListsAgree: 0,
    differences: [],
  };
  const diff = (where: string, field: string, expected: unknown, got: unknown): void => {
    res.differences.push({ key: `${file} | ${where} | ${field}`, expected: show(expected), got: show(got) });
  };
  const empty: ReportJSON['connections'] = [];
  const rep: ReportJSON = report ?? ({ connections: empty, stats: { firstTs: null } } as unknown as ReportJSON);

  /* ---- HTTP ---- */
  const tReqs = tsharkRequests(parseTsharkHttp(readTruth(dir, e.stem, '.tshark-http.tsv')!, e.stem));
  const tcpRows: TsharkCloseRow[] = parseTsharkTcp(readTruth(dir, e.stem, '.tshark-tcp.tsv')!, e.stem);
  const zLog = loadZeekLog(dir, e.stem, '.zeek-http.log') ?? loadZeekLog(dir, e.stem, '.zeek-http.log.cut');
  const merged = mergeHttpTruth(tReqs, zLog ? zeekHttpRows(zLog) : null, streamsByPair([...tcpRows, ...tReqs]));
  const { expected, excused } = resolve(file, merged, used, undecided);
  const matched = new Set<string>(); // `${connId}#${index}`
  for (const x of excused) {
    const c = findConn(rep, x.client, x.server, x.ts, null);
    if (c && x.index !== null) matched.add(`${c.id}#${x.index}`);
  }
  for (const x of expected) {
    res.requests++;
    const where = x.locator;
    const c = findConn(rep, x.client, x.server, x.tsMicros, x.stream);
    if (!c) {
      diff(where, 'connection', `${x.client}>${x.server}`, null);
      continue;
    }
    let ok = true;
    if (ep(c.client) !== x.client) {
      diff(where, 'client', x.client, ep(c.client));
      ok = false;
    }
    const ex = c.exchanges.find((y) => y.index === x.index);
    if (!ex) {
      diff(where, 'exists', `#${x.index} ${x.method ?? '?'} ${x.target ?? '?'}`, c.exchanges.map((y) => `#${y.index} ${y.method} ${y.target}`));
      continue;
    }
    matched.add(`${c.id}#${ex.index}`);
    if (x.method !== undefined && ex.method !== x.method) {
      diff(where, 'method', x.method, ex.method);
      ok = false;
    }
    if (x.target !== undefined && ex.target !== x.target) {
      diff(where, 'target', x.target, ex.target);
      ok = false;
    }
    if (x.status !== undefined && ex.status !== x.status) {
      diff(where, 'status', x.status, ex.status);
      ok = false;
    }
    if (ok) res.requestsAgree++;
    // Timing: tshark lists a message at the frame where its reassembly ends, i.e. the packet carrying its
    // last byte: hangscope's requestEnd / responseEnd. Not for unreadable request lines (method not compared).
    if (x.method !== undefined) {
      for (const [name, want, got] of [
        ['requestEnd', x.requestFrameTs, ex.requestEnd],
        ['responseEnd', x.responseFrameTs, ex.responseEnd],
      ] as const) {
        if (want === null) continue;
        res.timings++;
        if (got !== null && micros(got) === want) res.timingsAgree++;
        else diff(where, `timing.${name}`, want, got === null ? null : micros(got));
      }
    }
  }
  for (const c of rep.connections) {
    for (const ex of c.exchanges) {
      if (matched.has(`${c.id}#${ex.index}`)) continue;
      diff(`conn ${c.id} ${ep(c.client)}>${ep(c.server)} #${ex.index}`, 'extra-exchange', null, `${ex.method} ${ex.target} -> ${ex.status}`);
    }
  }

  /* ---- first FIN/RST per tcp.stream ---- */
  for (const [stream, fc] of firstClosePerStream(tcpRows)) {
    res.closers++;
    const where = `stream ${stream}`;
    const c = findConn(rep, fc.by, fc.to, fc.tsMicros, stream);
    if (!c) {
      diff(where, 'close.connection', `${fc.by}<>${fc.to}`, null);
      continue;
    }
    if (c.id !== stream) diff(where, 'close.id', stream, c.id);
    const f = c.firstClose;
    const want = { by: fc.by, kind: fc.kind, ts: fc.tsMicros, frame: fc.frame };
    const got = f ? { by: ep(f.by === 'client' ? c.client : c.server), kind: f.kind, ts: micros(f.ts), frame: f.frame } : null;
    if (!got) {
      diff(where, 'firstClose', want, null);
      continue;
    }
    let ok = true;
    for (const k of ['by', 'kind', 'ts', 'frame'] as const) {
      if (got[k] !== want[k]) {
        diff(where, `firstClose.${k}`, want[k], got[k]);
        ok = false;
      }
    }
    if (ok) res.closersAgree++;
  }
  // The whole `closes` list (first FIN and first RST of each side, in wire order) and `state`.
  const rowsByStream = new Map<number, TsharkCloseRow[]>();
  for (const r of tcpRows) rowsByStream.set(r.stream, [...(rowsByStream.get(r.stream) ?? []), r]);
  for (const c of rep.connections) {
    res.closeLists++;
    const rows = rowsByStream.get(c.id) ?? [];
    const firsts = new Map<string, TsharkCloseRow>();
    for (const r of rows) {
      // A segment with FIN and RST counts as RST (see FirstClose.kind in truth.ts).
      const k = `${r.src} ${r.rst ? 'RST' : 'FIN'}`;
      if (!firsts.has(k)) firsts.set(k, r);
    }
    const want = [...firsts.entries()].sort((a, b) => a[1].frame - b[1].frame).map(([k, r]) => `${k} #${r.frame}`);
    const got = c.closes.map((x) => `${ep(x.by === 'client' ? c.client : c.server)} ${x.kind} #${x.frame}`);
    const fins = new Set(rows.filter((r) => r.fin && !r.rst).map((r) => r.src));
    const state = rows.some((r) => r.rst) ? 'reset' : fins.size >= 2 ? 'closed' : fins.size === 1 ? 'half-closed' : 'open';
    let ok = true;
    if (JSON.stringify(want) !== JSON.stringify(got)) {
      diff(`conn ${c.id}`, 'closes', want, got);
      ok = false;
    }
    if (c.state !== state) {
      diff(`conn ${c.id}`, 'state', state, c.state);
      ok = false;
    }
    if (ok) res.closeListsAgree++;
  }
  // A close hangscope reports must be a FIN/RST segment tshark lists.
  const closeFrames = new Map(tcpRows.map((r) => [r.frame, r]));
  for (const c of rep.connections) {
    for (const cl of c.closes) {
      const r = closeFrames.get(cl.frame);
      if (!r || (cl.kind === 'FIN' ? !r.fin : !r.rst)) diff(`conn ${c.id} frame ${cl.frame}`, 'close-not-in-tshark', null, cl);
    }
  }

  /* ---- every TCP conversation: ids in tcp.stream order, start times ---- */
  const conv = parseTsharkConv(readTruth(dir, e.stem, '.tshark-conv.txt')!)
    .map((c, i) => ({ ...c, i }))
    .sort((a, b) => a.relStartMicros - b.relStartMicros || a.i - b.i);
  const firstTs = rep.stats.firstTs === null ? null : micros(rep.stats.firstTs);
  const seen = new Set<number>();
  conv.forEach((cv, rank) => {
    res.conversations++;
    const where = `conv ${cv.a}<>${cv.b} @${cv.relStart}`;
    const start = firstTs === null ? null : firstTs + cv.relStartMicros;
    const cands = rep.connections.filter((x) => connKey(ep(x.client), ep(x.server)) === connKey(cv.a, cv.b));
    // start = first frame + relative start: each is truncated to the microsecond on its own (and tshark
    // prints some relative starts with nanosecond noise, "95798855.992323995" in ssh half-duplex), so
    // the sum may be 1 µs short of the frame's own time.
    const c = cands.find((x) => start !== null && Math.abs(micros(x.start) - start) <= 1) ?? null;
    if (!c) {
      diff(where, 'conv.connection', { start }, cands.map((x) => ({ id: x.id, start: micros(x.start) })));
      return;
    }
    seen.add(c.id);
    // Conversations starting in the same microsecond may be in either order.
    const tied = conv.map((o, j) => ({ o, j })).filter(({ o }) => o.relStartMicros === cv.relStartMicros).map(({ j }) => j);
    let ok = true;
    if (!tied.includes(c.id)) {
      diff(where, 'conv.id', rank, c.id);
      ok = false;
    }
    if (c.packets.client + c.packets.server !== cv.frames) {
      diff(where, 'conv.frames', cv.frames, c.packets.client + c.packets.server);
      ok = false;
    }
    if (ok) res.conversationsAgree++;
  });
  for (const c of rep.connections) {
    if (!seen.has(c.id)) diff(`conn ${c.id} ${ep(c.client)}<>${ep(c.server)}`, 'conv.extra-connection', null, { start: c.start });
  }
  /* ---- bytes lost in capture gaps vs Zeek's conn.log missed_bytes (both directions) ---- */
  for (const f of e.truthFiles.filter((x) => /\.zeek-(.*-)?conn(-[\w-]+)?\.log(\.cut)?$/.test(x))) {
    const log = loadZeekLog(dir, '', f)!;
    if (!log.fields.includes('missed_bytes') || !log.fields.includes('id.orig_h')) continue;
    const rows = log.rows.filter((r) => r['proto'] !== 'udp');
    const pair = (r: Record<string, string>): string =>
      connKey(endpointKey(r['id.orig_h']!, Number(r['id.orig_p'])), endpointKey(r['id.resp_h']!, Number(r['id.resp_p'])));
    for (const r of rows) {
      // One Zeek row and one hangscope connection per 4-tuple only: Zeek hides its timestamps, so port
      // reuse (and Zeek splitting a connection, as in ssh half-duplex) cannot be lined up.
      if (rows.filter((x) => pair(x) === pair(r)).length !== 1) continue;
      const cs = rep.connections.filter((x) => connKey(ep(x.client), ep(x.server)) === pair(r));
      if (cs.length !== 1) continue;
      res.gaps++;
      const got = cs[0]!.gapBytes.client + cs[0]!.gapBytes.server;
      if (got === Number(r['missed_bytes'])) res.gapsAgree++;
      else diff(`conn ${cs[0]!.id}`, 'gapBytes', Number(r['missed_bytes']), got);
    }
  }

  // Every frame of the file is read (capinfos' count in the manifest).
  if (report && report.stats.packets !== e.packets) diff('stats', 'packets', e.packets, report.stats.packets);
  return res;
}

/* ================================================================== */
/* The tests                                                           */
/* ================================================================== */

describe('corpus present (required in CI)', () => {
  it.runIf(inCI)('finds ../shared/corpus', () => {
    expect(corpus, `corpus directory ${path.resolve(repoRoot, '../shared/corpus')} is missing`).not.toBeNull();
  });
});

describe.skipIf(!corpus)('differential: hangscope vs tshark/Zeek on the corpus', () => {
  const dir = corpus!;
  const manifest = corpus ? loadManifest(dir) : [];
  const results: CaptureResult[] = [];
  const used = new Set<Decision>();
  const undecided: string[] = [];
  let loadError: string | null = null;

  beforeAll(async () => {
    let analyze: (input: string, opts?: { port?: number | null; showSecrets?: boolean }) => Promise<ReportJSON>;
    try {
      ({ analyze } = (await import('../../lib/index.js')) as unknown as { analyze: typeof analyze });
    } catch (err) {
      loadError = `cannot load lib/index.ts (analyze): ${(err as Error).message}`;
      return;
    }
    for (const e of manifest) {
      let report: ReportJSON | null = null;
      let error: string | null = null;
      try {
        // showSecrets: targets must be compared as on the wire, not with query values redacted.
        report = await analyze(path.join(dir, e.file), { port: null, showSecrets: true });
      } catch (err) {
        const x = err as Error;
        error = `${x.name}: ${x.message}`;
      }
      results.push(compareCapture(dir, e, report, error, used, undecided));
    }
  });

  it('loads the engine', () => {
    expect(loadError).toBeNull();
  });

  it('analyze() reads every capture (a UserError is allowed only where the CLI exits 2)', () => {
    const crashes = results.filter((r) => r.error !== null && !r.error.startsWith('UserError')).map((r) => `${r.file}: ${r.error}`);
    for (const r of results.filter((x) => x.error?.startsWith('UserError'))) console.log(`[corpus] ${r.file}: ${r.error}`);
    expect(crashes).toEqual([]);
  });

  it('every tshark/Zeek disagreement has a reasoned decision, and every decision is still needed', () => {
    expect(undecided).toEqual([]);
    const stale = TOOL_DECISIONS.filter((d) => !used.has(d)).map((d) => `${d.capture} ${d.requests.join(', ')}`);
    expect(stale).toEqual([]);
  });

  it('agrees on >= 99% of requests and first closers; every difference is allow-listed, every allow-listed one still differs', () => {
    const sum = (f: (r: CaptureResult) => number): number => results.reduce((a, r) => a + f(r), 0);
    const reqs = sum((r) => r.requests);
    const reqsOk = sum((r) => r.requestsAgree);
    const cl = sum((r) => r.closers);
    const clOk = sum((r) => r.closersAgree);
    const cv = sum((r) => r.conversations);
    const cvOk = sum((r) => r.conversationsAgree);
    const tm = sum((r) => r.timings);
    const tmOk = sum((r) => r.timingsAgree);
    const gp = sum((r) => r.gaps);
    const gpOk = sum((r) => r.gapsAgree);
    const cls = sum((r) => r.closeLists);
    const clsOk = sum((r) => r.closeListsAgree);
    const pct = (a: number, b: number): string => (b === 0 ? 'n/a' : `${((100 * a) / b).toFixed(2)}%`);
    console.log(
      `[corpus] ${results.length} captures: requests ${reqsOk}/${reqs} (${pct(reqsOk, reqs)}), ` +
        `first closers ${clOk}/${cl} (${pct(clOk, cl)}), connections in tcp.stream order with tshark's start and frame count ${cvOk}/${cv} (${pct(cvOk, cv)}), ` +
        `closes lists + state ${clsOk}/${cls} (${pct(clsOk, cls)}), request/response end times ${tmOk}/${tm} (${pct(tmOk, tm)}), ` +
        `gap bytes vs Zeek missed_bytes ${gpOk}/${gp} (${pct(gpOk, gp)})`,
    );
    const all = results.flatMap((r) => r.differences);
    const allowed = new Map(ALLOWED.map((a) => [a.key, a]));
    const unlisted = all
      .filter((d) => allowed.get(d.key)?.got !== d.got)
      .map((d) => `${d.key}: expected ${d.expected}, got ${d.got}` + (allowed.has(d.key) ? ` (allow-listed with got ${allowed.get(d.key)!.got})` : ''));
    const keys = new Set(all.map((d) => d.key));
    const stale = ALLOWED.filter((a) => !keys.has(a.key)).map((a) => `${a.key} no longer differs (allow-listed: ${a.why})`);
    if (unlisted.length) console.log(`[corpus] differences not in ALLOWED:\n  ${unlisted.join('\n  ')}`);
    expect(unlisted).toEqual([]);
    expect(stale).toEqual([]);
    expect(reqs).toBeGreaterThan(0);
    expect(reqsOk / reqs).toBeGreaterThanOrEqual(0.99);
    expect(clOk / cl).toBeGreaterThanOrEqual(0.99);
  });
});

/* ---- the CLI never crashes on a corpus capture ---- */

interface Run {
  file: string;
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

function runCli(file: string): Promise<Run> {
  return new Promise((resolveRun) => {
    execFile(
      process.execPath,
      [path.join(repoRoot, 'bin/hangscope.js'), 'analyze', file, '--format', 'json'],
      { timeout: 60_000, maxBuffer: 256 * 1024 * 1024, cwd: repoRoot },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: number | string; signal?: string }) | null;
        resolveRun({
          file,
          code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
          signal: e?.signal ?? null,
          stdout,
          stderr,
        });
      },
    );
  });
}

describe.skipIf(!corpus)('CLI on every corpus capture', () => {
  it('exits 0 with a JSON report, or 2 with one line on stderr; never another code or a stack trace', async () => {
    const main = path.join(repoRoot, 'dist/cli/main.js');
    expect(existsSync(main), `${main} is missing: run \`npm run build\` before the corpus tests`).toBe(true);
    const files = loadManifest(corpus!).map((e) => path.join(corpus!, e.file));
    const runs: Run[] = [];
    const queue = [...files];
    await Promise.all(
      [0, 1, 2].map(async () => {
        for (let f = queue.shift(); f !== undefined; f = queue.shift()) runs.push(await runCli(f));
      }),
    );
    const bad: string[] = [];
    for (const r of runs.sort((a, b) => a.file.localeCompare(b.file))) {
      const name = path.relative(corpus!, r.file);
      if (/^\s+at .+[:(]/m.test(r.stderr)) bad.push(`${name}: stack trace on stderr: ${r.stderr.slice(0, 300)}`);
      if (r.code === 0) {
        try {
          const j = JSON.parse(r.stdout) as ReportJSON;
          if (j.tool !== 'hangscope' || j.schemaVersion !== 1) bad.push(`${name}: JSON is not a hangscope report`);
        } catch (err) {
          bad.push(`${name}: exit 0 but stdout is not JSON (${(err as Error).message})`);
        }
      } else if (r.code === 2) {
        const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
        if (lines.length !== 1) bad.push(`${name}: exit 2 with ${lines.length} lines on stderr: ${JSON.stringify(r.stderr.slice(0, 300))}`);
        else console.log(`[corpus] ${name}: exit 2: ${lines[0]}`);
      } else {
        bad.push(`${name}: exit ${r.code} signal ${r.signal}: ${r.stderr.slice(0, 300)}`);
      }
    }
    expect(bad).toEqual([]);
  }, 600_000);
});
