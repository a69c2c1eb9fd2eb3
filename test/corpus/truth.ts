/**
 * Loaders for the ground truth that sits beside every corpus capture
 * (../shared/corpus, see its README.md): the manifest, the three tshark
 * outputs and Zeek's btest baselines (http.log, conn.log, cut or not).
 *
 * Nothing here knows about hangscope: these functions only turn the truth
 * files into plain records, so that differential.test.ts can compare them
 * with hangscope's JSON report and truth.test.ts can check the loaders
 * themselves against facts stated in the corpus README.
 *
 * Times: tshark prints frame.time_epoch with 9 decimals whatever the file's
 * precision. hangscope works in integer microseconds, so every time is also
 * given as integer microseconds (the first 6 decimals, truncated: for the
 * usec captures the last 3 digits are always 000; for nanosecond captures
 * truncation is what a reader that keeps microseconds does).
 */

import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

/* ------------------------------------------------------------------ */
/* Corpus location and manifest                                        */
/* ------------------------------------------------------------------ */

/** `../shared/corpus` beside the repository checkout, or null when absent. */
export function findCorpus(repoRoot: string): string | null {
  const dir = path.resolve(repoRoot, '../shared/corpus');
  return existsSync(path.join(dir, 'MANIFEST.tsv')) ? dir : null;
}

export interface ManifestEntry {
  /** Capture path relative to the corpus directory, e.g. `zeek/http/get.pcap`. */
  file: string;
  /** `file` without `.pcap` / `.pcapng`: the truth files are `<stem>.*`. */
  stem: string;
  sourceRepo: string;
  commit: string;
  sourcePath: string;
  linktype: string;
  header: string;
  packets: number;
  sha256: string;
  tsharkHttpRows: number;
  tsharkFinRstRows: number;
  /** Truth file paths relative to the corpus directory. */
  truthFiles: string[];
  note: string;
}

/** Splits a TSV document into rows of cells (a trailing newline adds no row). */
function tsvRows(text: string): string[][] {
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines.map((l) => l.replace(/\r$/, '').split('\t'));
}

/** Rows of a TSV with a header line, as objects keyed by the header cells. */
function tsvObjects(text: string, what: string): Record<string, string>[] {
  const rows = tsvRows(text);
  if (rows.length === 0) throw new Error(`${what}: empty file (no header line)`);
  const header = rows[0]!;
  return rows.slice(1).map((cells, i) => {
    if (cells.length !== header.length) {
      throw new Error(`${what}: row ${i + 2} has ${cells.length} cells, header has ${header.length}`);
    }
    const o: Record<string, string> = {};
    header.forEach((h, j) => (o[h] = cells[j]!));
    return o;
  });
}

function int(s: string, what: string): number {
  if (!/^-?\d+$/.test(s)) throw new Error(`${what}: not an integer: ${JSON.stringify(s)}`);
  return Number(s);
}

export function parseManifest(text: string): ManifestEntry[] {
  return tsvObjects(text, 'MANIFEST.tsv').map((o) => ({
    file: o['file']!,
    stem: o['file']!.replace(/\.(pcap|pcapng)$/, ''),
    sourceRepo: o['source_repo']!,
    commit: o['commit']!,
    sourcePath: o['source_path']!,
    linktype: o['linktype']!,
    header: o['header']!,
    packets: int(o['packets']!, 'packets'),
    sha256: o['sha256']!,
    tsharkHttpRows: int(o['tshark_http_rows']!, 'tshark_http_rows'),
    tsharkFinRstRows: int(o['tshark_fin_rst_rows']!, 'tshark_fin_rst_rows'),
    truthFiles: o['truth_files']! === '' ? [] : o['truth_files']!.split(';'),
    note: o['note']!,
  }));
}

export function loadManifest(corpusDir: string): ManifestEntry[] {
  return parseManifest(readFileSync(path.join(corpusDir, 'MANIFEST.tsv'), 'utf8'));
}

/** Reads `<stem><suffix>` from the corpus, or null when that truth file does not exist. */
export function readTruth(corpusDir: string, stem: string, suffix: string): string | null {
  const p = path.join(corpusDir, stem + suffix);
  return existsSync(p) ? readFileSync(p, 'utf8') : null;
}

/* ------------------------------------------------------------------ */
/* Shared bits                                                         */
/* ------------------------------------------------------------------ */

/**
 * frame.time_epoch ("1320329772.929872000") to integer microseconds,
 * truncating digits past the sixth decimal.
 */
export function epochToMicros(s: string): number {
  const m = /^(\d+)(?:\.(\d*))?$/.exec(s);
  if (!m) throw new Error(`not an epoch time: ${JSON.stringify(s)}`);
  const frac = ((m[2] ?? '') + '000000').slice(0, 6);
  return Number(m[1]) * 1_000_000 + Number(frac);
}

/** `ip:port`, with IPv6 in brackets so that the port stays unambiguous. */
export function endpointKey(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** The same key for both directions of a connection. */
export function connKey(a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}

/**
 * With `-E occurrence=a`, an address cell of tunnelled traffic holds
 * "outer,inner"; the TCP header that tcp.srcport/dstport come from belongs
 * to the innermost IP header, i.e. the last one.
 */
function innermost(cell: string): string {
  const parts = cell.split(',');
  return parts[parts.length - 1]!;
}

/** The row's address: ip.* for IPv4, ipv6.* for IPv6 (the other cell is empty). */
function address(v4: string, v6: string, what: string): string {
  if (v4 !== '' && v6 !== '') {
    // IPv6 in IPv4 (or the reverse): the innermost header is the one TCP rides on.
    // tshark cannot tell us which one is innermost across the two columns; none in DEV.
    throw new Error(`${what}: both ip and ipv6 addresses present (${v4} / ${v6}); cannot tell the inner one`);
  }
  const a = v4 !== '' ? v4 : v6;
  if (a === '') throw new Error(`${what}: no IP address`);
  return innermost(a);
}

/* ------------------------------------------------------------------ */
/* tshark http TSV                                                     */
/* ------------------------------------------------------------------ */

export interface TsharkHttpRequest {
  kind: 'request';
  frame: number;
  ts: string;
  tsMicros: number;
  stream: number;
  client: string; // endpointKey of the sender
  server: string;
  method: string;
  /** http.request.uri; null when it cannot be told apart (see splitCells). */
  uri: string | null;
  version: string;
  host: string;
  /** http.request_number: 1-based index of the request on its connection. */
  number: number;
  /** Position of this message inside its frame (several when a frame holds several messages). */
  inFrame: number;
}

export interface TsharkHttpResponse {
  kind: 'response';
  frame: number;
  ts: string;
  tsMicros: number;
  stream: number;
  server: string; // endpointKey of the sender
  client: string;
  code: number;
  /** http.response_number. */
  number: number;
  /** http.request_in: frame of the request it answers, or null when tshark did not pair it. */
  requestIn: number | null;
  inFrame: number;
}

export type TsharkHttpMessage = TsharkHttpRequest | TsharkHttpResponse;

/**
 * Splits an `occurrence=a` cell holding `n` values joined by ",".
 * Returns null when the split is ambiguous: a value may itself contain a
 * comma (a URI like ".../Dialogue,%20Narrative..." in www-odd-url), so a
 * cell for n values that does not split into exactly n parts cannot be
 * trusted. With n = 1 the cell is the value, commas included.
 */
export function splitCells(cell: string, n: number): string[] | null {
  if (n === 1) return [cell];
  const parts = cell.split(',');
  return parts.length === n ? parts : null;
}

/**
 * Parses `*.tshark-http.tsv`. Rows that carry neither http.request.method
 * nor http.response.code are frames tshark only tags as HTTP (CONNECT tunnel
 * payload, body continuations, the HTTP/0.9 reply in curl_http_09): they are
 * not messages and are skipped. A frame carrying several messages (the
 * te_cl_desync smuggled request) yields one record per message.
 */
export function parseTsharkHttp(text: string, what = 'tshark-http.tsv'): TsharkHttpMessage[] {
  const out: TsharkHttpMessage[] = [];
  for (const o of tsvObjects(text, what)) {
    const methodCell = o['http.request.method']!;
    const codeCell = o['http.response.code']!;
    if (methodCell === '' && codeCell === '') continue;
    const frame = int(o['frame.number']!, `${what} frame.number`);
    const where = `${what} frame ${frame}`;
    const ts = o['frame.time_epoch']!;
    const tsMicros = epochToMicros(ts);
    const stream = int(o['tcp.stream']!, `${where} tcp.stream`);
    const src = endpointKey(address(o['ip.src']!, o['ipv6.src']!, where), int(o['tcp.srcport']!, `${where} srcport`));
    const dst = endpointKey(address(o['ip.dst']!, o['ipv6.dst']!, where), int(o['tcp.dstport']!, `${where} dstport`));
    if (methodCell !== '') {
      const methods = methodCell.split(',');
      const n = methods.length;
      const uris = splitCells(o['http.request.uri']!, n);
      const versions = splitCells(o['http.request.version']!, n);
      const hosts = splitCells(o['http.host']!, n);
      const numbers = splitCells(o['http.request_number']!, n);
      if (!numbers) throw new Error(`${where}: ${n} methods but request numbers ${o['http.request_number']}`);
      methods.forEach((method, i) =>
        out.push({
          kind: 'request',
          frame,
          ts,
          tsMicros,
          stream,
          client: src,
          server: dst,
          method,
          uri: uris ? uris[i]! : null,
          version: versions ? versions[i]! : '',
          host: hosts ? hosts[i]! : '',
          number: int(numbers[i]!, `${where} http.request_number`),
          inFrame: i,
        }),
      );
    }
    if (codeCell !== '') {
      const codes = codeCell.split(',');
      const n = codes.length;
      const numbers = splitCells(o['http.response_number']!, n);
      if (!numbers) throw new Error(`${where}: ${n} codes but response numbers ${o['http.response_number']}`);
      const reqIn = o['http.request_in']!;
      // request_in is only printed for responses tshark paired; with several
      // responses in a frame and fewer request_in values, pairing is unknown.
      const reqIns = reqIn === '' ? null : splitCells(reqIn, n);
      codes.forEach((code, i) =>
        out.push({
          kind: 'response',
          frame,
          ts,
          tsMicros,
          stream,
          server: src,
          client: dst,
          code: int(code, `${where} http.response.code`),
          number: int(numbers[i]!, `${where} http.response_number`),
          requestIn: reqIns ? int(reqIns[i]!, `${where} http.request_in`) : null,
          inFrame: i,
        }),
      );
    }
  }
  return out;
}

/**
 * One HTTP exchange as tshark shows it: a request with the responses tshark
 * paired with it, or (`orphan`) a final response tshark could not pair with
 * any request. An orphan still proves an exchange at that position on the
 * connection: the request was there but tshark could not read it (an invalid
 * request line, a method tshark does not know, HTTP on a port tshark does
 * not dissect) or the capture began after it. Its method and uri are null
 * (unknown), its number is http.response_number.
 */
export interface TsharkRequestTruth {
  orphan: boolean;
  /** Frame of the request (of the response, for an orphan). */
  frame: number;
  ts: string;
  tsMicros: number;
  stream: number;
  client: string;
  server: string;
  method: string | null;
  /** http.request.uri; null when unknown (orphan) or when the cell cannot be split (see splitCells). */
  uri: string | null;
  version: string;
  host: string;
  /** http.request_number (http.response_number for an orphan). */
  number: number;
  inFrame: number;
  /** All responses tshark paired with this request (by http.request_in), in frame order. */
  responses: TsharkHttpResponse[];
  /** Code of the last paired response that is not 1xx... */
  finalStatus: number | null;
  /** ...or, when every paired response is 1xx, the last of those (101 Switching Protocols ends HTTP/1.1 on the connection). */
  status: number | null;
}

/**
 * Requests with their responses. tshark pairs a response with a request
 * through http.request_in (a frame number). When a frame holds several
 * requests, request_in cannot say which one, so response_number is used to
 * pick the request with the same http.request_number in that frame.
 *
 * A final (non-1xx) response without request_in becomes an orphan entry,
 * unless a request of the same stream with the same number has no response
 * yet (then it is that request's). Unpaired 1xx responses are interim ones
 * (the "100 Continue" of 100-continue.pcap comes before tshark finishes the
 * request it answers) and make no entry.
 *
 * `status` is the status the request finally got: the last non-1xx
 * response, else the last 1xx one (101 Switching Protocols is the last HTTP
 * message on an upgraded connection; both tshark and Zeek report it as the
 * request's status), else null.
 */
export function tsharkRequests(messages: TsharkHttpMessage[]): TsharkRequestTruth[] {
  const reqs: TsharkRequestTruth[] = messages
    .filter((m): m is TsharkHttpRequest => m.kind === 'request')
    .map((r) => ({
      orphan: false,
      frame: r.frame,
      ts: r.ts,
      tsMicros: r.tsMicros,
      stream: r.stream,
      client: r.client,
      server: r.server,
      method: r.method,
      uri: r.uri,
      version: r.version,
      host: r.host,
      number: r.number,
      inFrame: r.inFrame,
      responses: [],
      finalStatus: null,
      status: null,
    }));
  const orphans: TsharkRequestTruth[] = [];
  for (const resp of messages) {
    if (resp.kind !== 'response') continue;
    if (resp.requestIn !== null) {
      const inFrame = reqs.filter((r) => r.frame === resp.requestIn && r.stream === resp.stream);
      const req = inFrame.length === 1 ? inFrame[0] : inFrame.find((r) => r.number === resp.number);
      if (req) {
        req.responses.push(resp);
        continue;
      }
    }
    if (resp.code >= 100 && resp.code < 200) continue;
    const same = reqs.find((r) => r.stream === resp.stream && r.number === resp.number && r.responses.length === 0);
    if (same) {
      same.responses.push(resp);
      continue;
    }
    orphans.push({
      orphan: true,
      frame: resp.frame,
      ts: resp.ts,
      tsMicros: resp.tsMicros,
      stream: resp.stream,
      client: resp.client,
      server: resp.server,
      method: null,
      uri: null,
      version: '',
      host: '',
      number: resp.number,
      inFrame: resp.inFrame,
      responses: [resp],
      finalStatus: null,
      status: null,
    });
  }
  const all = [...reqs, ...orphans].sort((a, b) => a.frame - b.frame || a.inFrame - b.inFrame);
  for (const r of all) {
    r.responses.sort((a, b) => a.frame - b.frame || a.inFrame - b.inFrame);
    const finals = r.responses.filter((x) => x.code >= 200 || x.code < 100);
    r.finalStatus = finals.length ? finals[finals.length - 1]!.code : null;
    r.status = r.finalStatus ?? (r.responses.length ? r.responses[r.responses.length - 1]!.code : null);
  }
  return all;
}

/* ------------------------------------------------------------------ */
/* tshark tcp TSV (every FIN / RST segment)                            */
/* ------------------------------------------------------------------ */

export interface TsharkCloseRow {
  frame: number;
  ts: string;
  tsMicros: number;
  stream: number;
  src: string;
  dst: string;
  syn: boolean;
  ack: boolean;
  fin: boolean;
  rst: boolean;
  seqRaw: number;
  len: number;
  retransmission: boolean;
}

export function parseTsharkTcp(text: string, what = 'tshark-tcp.tsv'): TsharkCloseRow[] {
  return tsvObjects(text, what).map((o) => {
    const frame = int(o['frame.number']!, `${what} frame.number`);
    const where = `${what} frame ${frame}`;
    const flag = (k: string): boolean => {
      const v = o[k]!;
      if (v !== '0' && v !== '1') throw new Error(`${where}: ${k} = ${JSON.stringify(v)}`);
      return v === '1';
    };
    return {
      frame,
      ts: o['frame.time_epoch']!,
      tsMicros: epochToMicros(o['frame.time_epoch']!),
      stream: int(o['tcp.stream']!, `${where} tcp.stream`),
      src: endpointKey(address(o['ip.src']!, o['ipv6.src']!, where), int(o['tcp.srcport']!, `${where} srcport`)),
      dst: endpointKey(address(o['ip.dst']!, o['ipv6.dst']!, where), int(o['tcp.dstport']!, `${where} dstport`)),
      syn: flag('tcp.flags.syn'),
      ack: flag('tcp.flags.ack'),
      fin: flag('tcp.flags.fin'),
      rst: flag('tcp.flags.reset'),
      seqRaw: int(o['tcp.seq_raw']!, `${where} tcp.seq_raw`),
      len: int(o['tcp.len']!, `${where} tcp.len`),
      retransmission: o['tcp.analysis.retransmission']! !== '',
    };
  });
}

export interface FirstClose {
  stream: number;
  frame: number;
  ts: string;
  tsMicros: number;
  /** endpointKey of the sender. */
  by: string;
  /** The other end. */
  to: string;
  /**
   * FIN or RST. A segment with both flags counts as RST: RFC 9293 section
   * 3.10.7.4 has the receiver check RST (step "second, check the RST bit")
   * before FIN (step "eighth"), so the connection is reset, never half
   * closed. No DEV capture has such a segment (checked by truth.test.ts).
   */
  kind: 'FIN' | 'RST';
  /** tshark flagged the segment as a retransmission (its original was not captured). */
  retransmission: boolean;
}

/** First FIN/RST row of each tcp.stream, in file order (the TSV is in frame order). */
export function firstClosePerStream(rows: TsharkCloseRow[]): Map<number, FirstClose> {
  const out = new Map<number, FirstClose>();
  for (const r of rows) {
    if (out.has(r.stream)) continue;
    out.set(r.stream, {
      stream: r.stream,
      frame: r.frame,
      ts: r.ts,
      tsMicros: r.tsMicros,
      by: r.src,
      to: r.dst,
      kind: r.rst ? 'RST' : 'FIN',
      retransmission: r.retransmission,
    });
  }
  return out;
}

/* ------------------------------------------------------------------ */
/* tshark conv,tcp                                                     */
/* ------------------------------------------------------------------ */

export interface TsharkConversation {
  a: string;
  b: string;
  framesBtoA: number;
  bytesBtoA: number;
  framesAtoB: number;
  bytesAtoB: number;
  frames: number;
  bytes: number;
  /** Relative start (s, from the capture's first frame) as printed, and in microseconds. */
  relStart: string;
  relStartMicros: number;
  /** Duration as printed (4 decimals). */
  duration: string;
}

/** tshark 4.0 prints sizes as "<n> bytes" or "<n> kB"/"MB" (1000-based, rounded). */
function convBytes(n: string, unit: string): number {
  const mult: Record<string, number> = { bytes: 1, kB: 1e3, MB: 1e6, GB: 1e9 };
  const m = mult[unit];
  if (m === undefined) throw new Error(`tshark-conv: unknown unit ${unit}`);
  return Number(n.replace(/,/g, '')) * m;
}

/** "10.0.2.15:49286" or "::1:52522" (tshark prints IPv6 without brackets) to an endpointKey. */
function convEndpoint(s: string): string {
  const i = s.lastIndexOf(':');
  return endpointKey(s.slice(0, i), int(s.slice(i + 1), `conv port in ${s}`));
}

/**
 * Parses `-z conv,tcp`. Rows come sorted by tshark (by bytes), not by
 * tcp.stream; sort by relStart to get stream order (ties are possible).
 * Sizes above 9999 bytes are printed rounded to kB, so `bytes*` is exact only
 * below that.
 */
export function parseTsharkConv(text: string): TsharkConversation[] {
  const out: TsharkConversation[] = [];
  const re =
    /^(\S+)\s+<->\s+(\S+)\s+(\d+)\s+([\d,]+)\s+(bytes|kB|MB|GB)\s+(\d+)\s+([\d,]+)\s+(bytes|kB|MB|GB)\s+(\d+)\s+([\d,]+)\s+(bytes|kB|MB|GB)\s+(\d+\.\d+)\s+(\d+\.\d+)\s*$/;
  for (const line of text.split('\n')) {
    if (!line.includes('<->')) continue;
    const m = re.exec(line);
    if (!m) {
      if (/^\s*\|/.test(line) || line.trim().startsWith('|')) continue; // column titles
      throw new Error(`tshark-conv: cannot parse ${JSON.stringify(line)}`);
    }
    out.push({
      a: convEndpoint(m[1]!),
      b: convEndpoint(m[2]!),
      framesBtoA: Number(m[3]),
      bytesBtoA: convBytes(m[4]!, m[5]!),
      framesAtoB: Number(m[6]),
      bytesAtoB: convBytes(m[7]!, m[8]!),
      frames: Number(m[9]),
      bytes: convBytes(m[10]!, m[11]!),
      relStart: m[12]!,
      relStartMicros: epochToMicros(m[12]!),
      duration: m[13]!,
    });
  }
  return out;
}

/* ------------------------------------------------------------------ */
/* Zeek logs                                                           */
/* ------------------------------------------------------------------ */

/**
 * Column lists of cut baselines that were written without a header line.
 * Only one in DEV: testing/btest/scripts/policy/protocols/conn/
 * community-id-logging-flipped.zeek runs
 * `zeek-cut id.orig_h id.orig_p id.resp_h id.resp_p proto service community_id < conn.log > conn.log.cut`.
 */
export const ZEEK_CUT_COLUMNS: Record<string, string[]> = {
  'zeek/tcp/handshake-reorder.zeek-conn.log.cut': [
    'id.orig_h',
    'id.orig_p',
    'id.resp_h',
    'id.resp_p',
    'proto',
    'service',
    'community_id',
  ],
};

export interface ZeekLog {
  fields: string[];
  /** Values as written, after the btest header; `-` is unset, `(empty)` an empty set/string. */
  rows: Record<string, string>[];
  /** Where the column names came from. */
  header: '#fields' | 'header-line' | 'given';
}

/** Known Zeek field name shape (lower case, digits, '_' and '.'). */
const FIELD_NAME = /^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$/;

/**
 * Parses a Zeek ASCII log as btest stores it. Three shapes occur:
 *  - a full log: `#separator`, `#fields ...`, data, `#close`;
 *  - `zeek-cut -m` / `btest-diff-cut -m` output: a first line of column names;
 *  - plain `zeek-cut` output: data only (pass `columns`).
 * The `### BTest baseline ...` line is dropped. Every data row must have
 * as many cells as there are columns.
 */
export function parseZeekLog(text: string, columns?: string[], what = 'zeek log'): ZeekLog {
  let lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
  lines = lines.filter((l) => l !== '' && !l.startsWith('### '));
  let fields: string[] | null = null;
  let header: ZeekLog['header'] = 'given';
  const fieldsLine = lines.find((l) => l.startsWith('#fields\t'));
  if (fieldsLine) {
    fields = fieldsLine.split('\t').slice(1);
    header = '#fields';
  }
  const data = lines.filter((l) => !l.startsWith('#'));
  if (!fields && data.length > 0) {
    const first = data[0]!.split('\t');
    if (first.every((c) => FIELD_NAME.test(c))) {
      fields = first;
      header = 'header-line';
      data.shift();
    }
  }
  if (!fields) {
    if (!columns) throw new Error(`${what}: no #fields line, no header line and no column list given`);
    fields = columns;
    header = 'given';
  }
  const rows = data.map((l, i) => {
    const cells = l.split('\t');
    if (cells.length !== fields!.length) {
      throw new Error(`${what}: data row ${i + 1} has ${cells.length} cells for ${fields!.length} fields`);
    }
    const o: Record<string, string> = {};
    fields!.forEach((f, j) => (o[f] = cells[j]!));
    return o;
  });
  return { fields, rows, header };
}

/** Loads `<stem><suffix>` as a Zeek log, using ZEEK_CUT_COLUMNS for header-less cut files. */
export function loadZeekLog(corpusDir: string, stem: string, suffix: string): ZeekLog | null {
  const text = readTruth(corpusDir, stem, suffix);
  if (text === null) return null;
  return parseZeekLog(text, ZEEK_CUT_COLUMNS[stem + suffix], stem + suffix);
}

/**
 * Zeek writes bytes outside printable ASCII as `\xNN` (and a literal
 * backslash as `\x5c`). Returns the value as a latin1 string of the bytes.
 */
export function zeekUnescape(v: string): string {
  return v.replace(/\\x([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

/** A Zeek http.log row, reduced to what the differential test compares. */
export interface ZeekHttpRow {
  uid: string | null;
  /** endpointKey of originator / responder when the log has them. */
  orig: string | null;
  resp: string | null;
  /** trans_depth, or null when the column was cut away. */
  transDepth: number | null;
  /**
   * For each compared value: undefined = column not in the log (no truth),
   * null = unset (`-`), else the value. `(empty)` reads as "".
   */
  method: string | null | undefined;
  uri: string | null | undefined;
  host: string | null | undefined;
  status: number | null | undefined;
  version: string | null | undefined;
  /** Row index in the log (Zeek writes a row when the exchange ends, not in request order). */
  line: number;
}

function zeekValue(row: Record<string, string>, field: string): string | null | undefined {
  if (!(field in row)) return undefined;
  const v = row[field]!;
  if (v === '-') return null;
  if (v === '(empty)') return '';
  return zeekUnescape(v);
}

export function zeekHttpRows(log: ZeekLog): ZeekHttpRow[] {
  return log.rows.map((r, line) => {
    const origH = zeekValue(r, 'id.orig_h');
    const origP = zeekValue(r, 'id.orig_p');
    const respH = zeekValue(r, 'id.resp_h');
    const respP = zeekValue(r, 'id.resp_p');
    const depth = zeekValue(r, 'trans_depth');
    const status = zeekValue(r, 'status_code');
    return {
      uid: zeekValue(r, 'uid') ?? null,
      orig: origH && origP ? endpointKey(origH, Number(origP)) : null,
      resp: respH && respP ? endpointKey(respH, Number(respP)) : null,
      transDepth: depth ? Number(depth) : null,
      method: zeekValue(r, 'method'),
      uri: zeekValue(r, 'uri'),
      host: zeekValue(r, 'host'),
      status: status === undefined ? undefined : status === null ? null : Number(status),
      version: zeekValue(r, 'version'),
      line,
    };
  });
}

/** A conn.log row: identity, history and conn_state (when the columns exist). */
export interface ZeekConnRow {
  uid: string | null;
  orig: string | null;
  resp: string | null;
  proto: string | null;
  history: string | null;
  connState: string | null;
}

export function zeekConnRows(log: ZeekLog): ZeekConnRow[] {
  return log.rows.map((r) => {
    const origH = zeekValue(r, 'id.orig_h');
    const origP = zeekValue(r, 'id.orig_p');
    const respH = zeekValue(r, 'id.resp_h');
    const respP = zeekValue(r, 'id.resp_p');
    return {
      uid: zeekValue(r, 'uid') ?? null,
      orig: origH && origP ? endpointKey(origH, Number(origP)) : null,
      resp: respH && respP ? endpointKey(respH, Number(respP)) : null,
      proto: zeekValue(r, 'proto') ?? null,
      history: zeekValue(r, 'history') ?? null,
      connState: zeekValue(r, 'conn_state') ?? null,
    };
  });
}

/**
 * Who closed first according to a Zeek history string: the first of
 * F/f/R/r. Upper case is the originator. Zeek records each letter the
 * first time the event happens, so their order is the wire order (as Zeek
 * saw it). Returns null when there is no close letter.
 */
export function zeekFirstCloser(history: string): { side: 'orig' | 'resp'; kind: 'FIN' | 'RST' } | null {
  for (const ch of history) {
    if (ch === 'F' || ch === 'R') return { side: 'orig', kind: ch === 'F' ? 'FIN' : 'RST' };
    if (ch === 'f' || ch === 'r') return { side: 'resp', kind: ch === 'f' ? 'FIN' : 'RST' };
  }
  return null;
}

/**
 * The zeek `out` shared by the four tcp/*rst* traces: one `history, conn_state`
 * line per trace, in the order the README gives.
 */
export const RST_BEHAVIOR_ORDER = [
  'zeek/tcp/single-rst',
  'zeek/tcp/syn-then-rst',
  'zeek/tcp/syn-then-ack-then-rst',
  'zeek/tcp/syn-then-stuff-then-rst',
];

export function rstBehaviorLine(outText: string, stem: string): { history: string; connState: string } | null {
  const i = RST_BEHAVIOR_ORDER.indexOf(stem);
  if (i < 0) return null;
  const lines = outText.split('\n').filter((l) => l !== '' && !l.startsWith('### '));
  const m = /^(\S+), (\S+)$/.exec(lines[i] ?? '');
  return m ? { history: m[1]!, connState: m[2]! } : null;
}

/* ------------------------------------------------------------------ */
/* Merging tshark and Zeek into one list of requests                   */
/* ------------------------------------------------------------------ */

/** Percent-decodes to a latin1 string of bytes (never throws, unlike decodeURIComponent). */
export function percentDecode(s: string): string {
  return s.replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

export type HttpField = 'exists' | 'method' | 'target' | 'status' | 'index';

export interface ToolDiff {
  field: HttpField;
  tshark: string | number | null;
  zeek: string | number | null;
}

/** One HTTP request as the truth tools see it, before any decision about their disagreements. */
export interface RequestTruth {
  /** tcp.stream (from tshark; for Zeek-only rows, from the tshark-tcp rows of that 4-tuple when unique). */
  stream: number | null;
  client: string | null;
  server: string | null;
  uid: string | null;
  /**
   * Values both tools agree on (or the only tool that has the column); a
   * field in `diffs` holds tshark's value here (Zeek's for Zeek-only rows).
   * index is null only for a Zeek-only row from a log without trans_depth.
   */
  index: number | null;
  method: string | null;
  target: string | null;
  status: number | null;
  /** tshark's request frame (the frame where tshark finished reassembling the request), and its time. */
  frame: number | null;
  tsMicros: number | null;
  source: 'both' | 'tshark' | 'zeek';
  diffs: ToolDiff[];
  tshark: TsharkRequestTruth | null;
  zeek: ZeekHttpRow | null;
}

/** Stable name of a request for allow-lists and decisions: `stream 3 #1`, else `A>B #1`, else `uid C.. #1`. */
export function requestLocator(r: Pick<RequestTruth, 'stream' | 'client' | 'server' | 'uid' | 'index'>): string {
  const i = r.index === null ? '?' : String(r.index);
  if (r.stream !== null) return `stream ${r.stream} #${i}`;
  if (r.client !== null) return `${r.client}>${r.server} #${i}`;
  return `uid ${r.uid} #${i}`;
}

/**
 * Zeek's status for a request. Zeek logs status_code 0 (status_msg
 * "<empty>") when it read the reply as an HTTP/0.9 body without a status
 * line: there is no status code, which is null everywhere else.
 */
function zeekStatus(z: ZeekHttpRow): number | null | undefined {
  return z.status === 0 ? null : z.status;
}

/**
 * Pairs Zeek http.log rows with tshark requests, and lists where they differ.
 *
 * Pairing: a Zeek row can only pair with a tshark request on the same
 * 4-tuple (when the log has the columns) and, through `uid`, all rows of one
 * Zeek connection pair with requests of one tcp.stream. Among those
 * candidates, pairs are taken greedily by score: same index (trans_depth vs
 * http.request_number) counts most, then method, URI (compared
 * percent-decoded, because Zeek logs URIs decoded), host and status. A pair
 * needs a positive score. Unpaired rows on either side are requests only
 * one tool saw (field `exists` in diffs).
 *
 * `streamsByPair` (connKey -> tcp.stream list) gives Zeek-only rows a stream.
 */
export function mergeHttpTruth(
  tshark: TsharkRequestTruth[],
  zeek: ZeekHttpRow[] | null,
  streamsByPair: Map<string, number[]> = new Map(),
): RequestTruth[] {
  const fromT = (t: TsharkRequestTruth, source: RequestTruth['source']): RequestTruth => ({
    stream: t.stream,
    client: t.client,
    server: t.server,
    uid: null,
    index: t.number,
    method: t.method,
    target: t.uri,
    status: t.status,
    frame: t.frame,
    tsMicros: t.tsMicros,
    source,
    diffs: [],
    tshark: t,
    zeek: null,
  });
  if (zeek === null) return tshark.map((t) => fromT(t, 'tshark'));

  interface Pair {
    z: ZeekHttpRow;
    t: TsharkRequestTruth;
    score: number;
  }
  const pairs: Pair[] = [];
  for (const z of zeek) {
    for (const t of tshark) {
      if (z.orig !== null && (t.client !== z.orig || t.server !== z.resp)) continue;
      let score = 0;
      if (z.transDepth !== null && z.transDepth === t.number) score += 16;
      if (z.method != null && z.method === t.method) score += 4;
      if (z.method === null && t.method === null) score += 2; // both could not read the request line
      if (z.uri != null && t.uri !== null && z.uri === percentDecode(t.uri)) score += 4;
      if (z.host != null && z.host === t.host) score += 2;
      const zs = zeekStatus(z);
      if (zs !== undefined && zs === t.status) score += 1;
      // Same 4-tuple is itself evidence when the log has it.
      if (z.orig !== null) score += 1;
      if (score > 0) pairs.push({ z, t, score });
    }
  }
  pairs.sort((a, b) => b.score - a.score || a.t.frame - b.t.frame || a.t.inFrame - b.t.inFrame || a.z.line - b.z.line);
  const zTaken = new Map<ZeekHttpRow, TsharkRequestTruth>();
  const tTaken = new Set<TsharkRequestTruth>();
  const uidStream = new Map<string, number>();
  const streamUid = new Map<number, string>();
  for (const p of pairs) {
    if (zTaken.has(p.z) || tTaken.has(p.t)) continue;
    const uid = p.z.uid;
    if (uid !== null) {
      const s = uidStream.get(uid);
      if (s !== undefined && s !== p.t.stream) continue;
      const u = streamUid.get(p.t.stream);
      if (u !== undefined && u !== uid) continue;
      uidStream.set(uid, p.t.stream);
      streamUid.set(p.t.stream, uid);
    }
    zTaken.set(p.z, p.t);
    tTaken.add(p.t);
  }

  const out: RequestTruth[] = [];
  for (const t of tshark) {
    const z = [...zTaken].find(([, tt]) => tt === t)?.[0];
    if (!z) {
      const r = fromT(t, 'tshark');
      r.diffs.push({ field: 'exists', tshark: 'yes', zeek: 'no' });
      out.push(r);
      continue;
    }
    const r = fromT(t, 'both');
    r.uid = z.uid;
    r.zeek = z;
    if (z.transDepth !== null && z.transDepth !== t.number) r.diffs.push({ field: 'index', tshark: t.number, zeek: z.transDepth });
    if (z.method !== undefined && z.method !== t.method) r.diffs.push({ field: 'method', tshark: t.method, zeek: z.method });
    if (z.uri !== undefined && z.uri !== t.uri) r.diffs.push({ field: 'target', tshark: t.uri, zeek: z.uri });
    const zs = zeekStatus(z);
    if (zs !== undefined && zs !== t.status) r.diffs.push({ field: 'status', tshark: t.status, zeek: zs });
    out.push(r);
  }
  for (const z of zeek) {
    if (zTaken.has(z)) continue;
    let stream: number | null = null;
    if (z.uid !== null && uidStream.has(z.uid)) stream = uidStream.get(z.uid)!;
    else if (z.orig !== null && z.resp !== null) {
      const s = streamsByPair.get(connKey(z.orig, z.resp));
      if (s && s.length === 1) stream = s[0]!;
    }
    const client = z.orig ?? tshark.find((t) => t.stream === stream)?.client ?? null;
    const server = z.resp ?? tshark.find((t) => t.stream === stream)?.server ?? null;
    out.push({
      stream,
      client,
      server,
      uid: z.uid,
      index: z.transDepth,
      method: z.method ?? null,
      target: z.uri ?? null,
      status: zeekStatus(z) ?? null,
      frame: null,
      tsMicros: null,
      source: 'zeek',
      diffs: [{ field: 'exists', tshark: 'no', zeek: 'yes' }],
      tshark: null,
      zeek: z,
    });
  }
  return out;
}

/** connKey -> tcp.stream numbers, from the tshark-tcp rows (and tshark-http messages). */
export function streamsByPair(rows: { stream: number; src?: string; dst?: string; client?: string; server?: string }[]): Map<string, number[]> {
  const m = new Map<string, number[]>();
  for (const r of rows) {
    const a = r.src ?? r.client!;
    const b = r.dst ?? r.server!;
    const k = connKey(a, b);
    const l = m.get(k) ?? [];
    if (!l.includes(r.stream)) l.push(r.stream);
    m.set(k, l);
  }
  return m;
}
