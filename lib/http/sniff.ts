/**
 * First-bytes classification of a TCP payload stream: is this HTTP/1.x,
 * TLS, HTTP/2 prior knowledge, or something else?
 *
 * Used twice: by HttpConnectionParser while a connection's protocol is still
 * unknown, and (through sniffPayload) by the correlator to orient a
 * connection whose SYN was not captured.
 */

/** Verdict of classify(); 'more' = the bytes so far are a consistent prefix, wait for more. */
export type Sniff = 'request' | 'response' | 'tls' | 'http2' | 'unknown' | 'more';

/** RFC 9110 section 5.6.2 tchar, as a lookup table. */
export const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TCHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TCHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TCHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TCHAR[c] = 1;

/** RFC 9113 section 3.4: the client connection preface starts with this line. */
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const HTTP_SLASH = Buffer.from('HTTP/', 'latin1');
/** Longest first line we wait for before calling a stream 'unknown'. */
const MAX_SNIFF_LINE = 16 * 1024;

const TOKEN_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const VERSION_RE = /^HTTP\/\d\.\d$/;
/**
 * A versionless (HTTP/0.9) request line is accepted only when its method
 * contains a standard method name: Zeek's heuristic (it logs "CCM_POST
 * /HTTP/1.1" from methods.pcap as 0.9 but calls "T /zeek.html" in
 * http_09.pcap a bad_HTTP_request).
 */
const SIMPLE_METHOD_RE = /GET|HEAD|POST|PUT|DELETE|CONNECT|OPTIONS|TRACE|PATCH/;

/** A parsed request line (RFC 9112 section 3), or null when it is not one. */
export interface RequestLine {
  method: string;
  target: string;
  version: string;
}

/**
 * Parse a request line, tolerant like Zeek: any token method, a target that
 * may contain spaces (www-odd-url.pcap), a missing target ("GET HTTP/1.1",
 * no-uri.pcap), and the HTTP/0.9 simple request "GET /path" with no version
 * (http_09.pcap, no-version.pcap). To avoid calling line-based text protocols
 * HTTP/0.9 (SMTP "EHLO host", POP3 "USER bob"), a versionless line needs a
 * known method (see SIMPLE_METHOD_RE), a target starting with "/" and no
 * further spaces; Zeek logs those as 0.9 too ("GET /HTTP/1.1" in methods.pcap).
 */
export function parseRequestLine(s: string): RequestLine | null {
  const sp1 = s.indexOf(' ');
  if (sp1 <= 0) return null;
  const method = s.slice(0, sp1);
  if (!TOKEN_RE.test(method)) return null;
  const rest = s.slice(sp1 + 1).trim();
  const sp2 = rest.lastIndexOf(' ');
  if (sp2 >= 0) {
    const version = rest.slice(sp2 + 1);
    // A broken version ("GET / HTTP/1." in methods.pcap) still makes a request:
    // the server answered it, and Zeek logs it. Kept as sent.
    if (VERSION_RE.test(version) || version.startsWith('HTTP/')) return { method, target: rest.slice(0, sp2).trim(), version };
    return null;
  }
  if (VERSION_RE.test(rest)) return { method, target: '', version: rest };
  if (rest.length > 0 && rest.charCodeAt(0) === 0x2f /* / */ && SIMPLE_METHOD_RE.test(method)) {
    return { method, target: rest, version: 'HTTP/0.9' };
  }
  return null;
}

/** A parsed status line (RFC 9112 section 4), or null. */
export interface StatusLine {
  version: string;
  status: number;
  reason: string;
}

const STATUS_RE = /^(HTTP\/\d\.\d)[ \t]+(\d{3})(?:[ \t]+(.*))?$/;

export function parseStatusLine(s: string): StatusLine | null {
  const m = STATUS_RE.exec(s);
  if (!m) return null;
  return { version: m[1]!, status: Number(m[2]), reason: (m[3] ?? '').trim() };
}

/** Does the buffer start with as much of `pat` as it holds? Returns matched length, or -1 on mismatch. */
function prefixMatch(buf: Buffer, start: number, pat: Buffer): number {
  const n = Math.min(buf.length - start, pat.length);
  for (let i = 0; i < n; i++) if (buf[start + i] !== pat[i]) return -1;
  return n;
}

/**
 * Classify the first bytes of one direction. `expect` says which direction
 * this is ('request' for client to server, 'response' for server to client,
 * null when unknown, as in sniffPayload). Leading CR/LF are skipped (RFC 9112
 * section 2.2 lets a server ignore empty lines before a request line).
 */
export function classify(buf: Buffer, expect: 'request' | 'response' | null): Sniff {
  let p = 0;
  while (p < buf.length && (buf[p] === 13 || buf[p] === 10)) p++;
  if (p >= buf.length) return 'more';
  const b0 = buf[p]!;
  // TLS record header: ContentType handshake(22), legacy_version major 3 (RFC 8446 section 5.1).
  if (b0 === 0x16) {
    if (buf.length - p < 2) return 'more';
    return buf[p + 1] === 0x03 ? 'tls' : 'unknown';
  }
  if (b0 === 0x50 /* P */) {
    const m = prefixMatch(buf, p, H2_PREFACE);
    if (m >= 16) return 'http2'; // "PRI * HTTP/2.0\r\n" is enough to tell
    if (m >= 0) return 'more';
  }
  if (expect !== 'request' && b0 === 0x48 /* H */) {
    const m = prefixMatch(buf, p, HTTP_SLASH);
    if (m === 5) {
      if (buf.length - p < 6) return 'more';
      const d = buf[p + 5]!;
      if (d >= 0x30 && d <= 0x39) return 'response';
    } else if (m >= 0) {
      return 'more';
    }
  }
  if (expect === 'response') return 'unknown';
  // Request line: token SP ... up to the line end.
  let i = p;
  while (i < buf.length && TCHAR[buf[i]!] === 1 && i - p < 64) i++;
  if (i === buf.length) return i - p < 64 ? 'more' : 'unknown';
  if (buf[i] !== 0x20 || i === p) return 'unknown';
  const nl = buf.indexOf(10, i);
  if (nl < 0) {
    if (buf.length - p > MAX_SNIFF_LINE) return 'unknown';
    // Everything so far must be printable to stay a candidate.
    for (let k = i; k < buf.length; k++) {
      const c = buf[k]!;
      if (c < 0x20 && c !== 0x09 && c !== 0x0d) return 'unknown';
      if (c === 0x7f) return 'unknown';
    }
    return 'more';
  }
  let end = nl;
  if (end > p && buf[end - 1] === 13) end--;
  return parseRequestLine(buf.toString('latin1', p, end)) ? 'request' : 'unknown';
}

/**
 * Sniff the first payload bytes of one direction: 'request' (method token SP
 * ...), 'response' ("HTTP/" digit), 'tls' (0x16 0x03 xx), 'http2'
 * ("PRI * HTTP/2.0" preface), or 'unknown'. Used by the correlator to orient
 * a connection whose SYN was not captured. A request line cut before its end
 * counts as 'request' when what is there (token, space, printable target) fits.
 */
export function sniffPayload(buf: Buffer): 'request' | 'response' | 'tls' | 'http2' | 'unknown' {
  const r = classify(buf, null);
  if (r !== 'more') return r;
  // Not enough bytes to be sure: decide on what is there.
  let p = 0;
  while (p < buf.length && (buf[p] === 13 || buf[p] === 10)) p++;
  let i = p;
  while (i < buf.length && TCHAR[buf[i]!] === 1) i++;
  if (i > p && i + 1 < buf.length && buf[i] === 0x20 && buf[i + 1] !== 0x20) return 'request';
  return 'unknown';
}
