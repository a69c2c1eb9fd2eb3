/**
 * HTTP/1.x parser for one TCP connection: an incremental state machine over
 * the in-order bytes of each direction (in the spirit of llhttp/undici),
 * tolerant of real-world oddities like Zeek's and Wireshark's HTTP analyzers.
 * See index.ts for the contract (outcomes, anomalies, options).
 */

import type { Anomalies, AppProtocol, Dir, Exchange, MessageHeaders, Micros } from '../types.js';
import { BlockCache, MAX_CACHED_BLOCK, MAX_VALUE_CHARS, newHeaders, storeHeader, type CachedBlock } from './headers.js';
import { TCHAR, classify, parseRequestLine, parseStatusLine, type RequestLine, type StatusLine } from './sniff.js';

export interface HttpParserOptions {
  anomalies: Anomalies;
  /**
   * Longest line of a message head (start line, header field, trailer field) read; default 64 KiB.
   * A longer field line is skipped up to its end and counted 'http-header-too-large' (the message
   * is still parsed: its framing does not depend on that line); a longer start line loses sync.
   */
  maxHeaderBytes?: number;
  /** Header fields kept per message, default 64 (more are counted in 'http-too-many-headers', not kept). */
  maxHeaders?: number;
  /** Exchanges kept in `exchanges` per connection, default 10_000 (older ones dropped from memory, counted). */
  maxExchanges?: number;
  /** Called once per exchange when it is finished (final response complete, or finalized at end()). */
  onExchange?: (ex: Exchange) => void;
}

export type EndReason = 'reset' | 'closed' | 'capture-end' | 'evicted';

/** Request targets are cut to this many characters. */
const MAX_TARGET_CHARS = 8192;
/** A chunk-size line (size + extensions) longer than this is garbage. */
const MAX_CHUNK_LINE = 4096;
/** While resynchronising, a line longer than this cannot be a start line we would accept. */
const MAX_RESYNC_LINE = 8192;
/** Bytes of a connection not known to be HTTP scanned for a start line before giving up. */
const MAX_UNKNOWN_SCAN = 256 * 1024;
/** While the protocol is not known yet, buffer at most this much per direction. */
const MAX_PRE_BYTES = 16 * 1024;

const HTTP1 = Buffer.from('HTTP/1.', 'latin1');
/** Resync: the end of a request line before "HTTP/1.": method SP target SP (target without spaces). */
const REQ_TAIL_RE = /([!#$%&'*+\-.^_`|~0-9A-Za-z]+) +[^ \x00-\x20\x7f]+ +$/;
/** A standard method (RFC 9110 section 9, plus PATCH) at the end of a token. */
const KNOWN_METHOD_SUFFIX_RE = /(?:GET|HEAD|POST|PUT|DELETE|CONNECT|OPTIONS|TRACE|PATCH)$/;
/** The start of a header field line: token ":". */
const HEADER_START_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+[ \t]*:/;

/** Decode bytes as latin1 without the argument checks of toString() (hot path: one call per header line). */
function latin1(b: Buffer, start: number, end: number): string {
  return (b as unknown as { latin1Slice(start: number, end: number): string }).latin1Slice(start, end);
}

/**
 * Placeholders that are replaced, never written to: the response headers of
 * an exchange until its final response head is parsed, and the 1xx list until
 * the first interim response. Frozen, so a write by mistake throws instead of
 * leaking into every exchange.
 */
const NO_HEADERS: MessageHeaders = Object.freeze(newHeaders());
const NO_INTERIM: { status: number; ts: Micros }[] = Object.freeze([]) as unknown as { status: number; ts: Micros }[];

/**
 * String.prototype.trim() whitespace among latin1 characters: TAB, LF, VT,
 * FF, CR, SP and NBSP (ECMA-262 WhiteSpace and LineTerminator). Byte-level
 * trimming with this table gives exactly what trim() gives on the decoded line.
 */
const TRIM_WS = new Uint8Array(256);
for (const c of [0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x20, 0xa0]) TRIM_WS[c] = 1;

/**
 * Interned short strings (direct-mapped cache, shared by every parser):
 * header names, methods, versions, reasons and most header values repeat on
 * every message, so one shared string each instead of a new one per line.
 * Fewer allocations, and exchanges held until their connection ends share
 * them. The cache only decides identity, never content.
 */
const INTERN_MAX = 64;
const INTERN_SLOTS = 4096;
const internTab: (string | undefined)[] = new Array<string | undefined>(INTERN_SLOTS).fill(undefined);

/** latin1 of b[start, end), from the cache when short. */
function intern(b: Buffer, start: number, end: number): string {
  const n = end - start;
  if (n > INTERN_MAX || n === 0) return n === 0 ? '' : latin1(b, start, end);
  // Hash of the length and four sampled bytes: values that differ elsewhere
  // only share a slot (the comparison below tells them apart).
  let h = Math.imul(n, 0x9e3779b1) ^ b[start]! ^ (b[end - 1]! << 8) ^ (b[start + (n >> 1)]! << 16) ^ (b[end - 1 - (n >> 2)]! << 24);
  h = Math.imul(h ^ (h >>> 13), 0x85ebca6b);
  const slot = (h ^ (h >>> 15)) & (INTERN_SLOTS - 1);
  const c = internTab[slot];
  if (c !== undefined && c.length === n) {
    let i = 0;
    while (i < n && c.charCodeAt(i) === b[start + i]) i++;
    if (i === n) return c;
  }
  const s = latin1(b, start, end);
  internTab[slot] = s;
  return s;
}

/** FNV-1a step over an ASCII-lower-cased byte (the name hash, computed while scanning the name). */
const lowerHash = (h: number, x: number): number => Math.imul(h ^ (x >= 0x41 && x <= 0x5a ? x | 0x20 : x), 0x01000193);
const HASH_START = 0x811c9dc5;

/**
 * ASCII-lower-cased latin1 of b[start, end), which holds only token
 * characters (RFC 9110 tchar); `h` is lowerHash over those bytes.
 */
function internLowerToken(b: Buffer, start: number, end: number, h: number): string {
  const n = end - start;
  if (n > INTERN_MAX) return latin1(b, start, end).toLowerCase();
  const slot = (h ^ (h >>> 15)) & (INTERN_SLOTS - 1);
  const c = internTab[slot];
  if (c !== undefined && c.length === n) {
    let i = 0;
    for (; i < n; i++) {
      const x = b[start + i]!;
      if (c.charCodeAt(i) !== (x >= 0x41 && x <= 0x5a ? x | 0x20 : x)) break;
    }
    if (i === n) return c;
  }
  const s = latin1(b, start, end).toLowerCase();
  internTab[slot] = s;
  return s;
}

const isDigit = (x: number): boolean => x >= 0x30 && x <= 0x39;

/** Value of a hex digit byte, -1 for any other byte. */
const HEX = new Int8Array(256).fill(-1);
for (let c = 0; c < 10; c++) HEX[0x30 + c] = c;
for (let c = 0; c < 6; c++) HEX[0x41 + c] = HEX[0x61 + c] = 10 + c;

/** b[p, p+8) reads HTTP/d.d (RFC 9112 section 2.3). */
function isHttpVersion(b: Buffer, p: number): boolean {
  return (
    b[p] === 0x48 && b[p + 1] === 0x54 && b[p + 2] === 0x54 && b[p + 3] === 0x50 && b[p + 4] === 0x2f &&
    isDigit(b[p + 5]!) && b[p + 6] === 0x2e && isDigit(b[p + 7]!)
  );
}

/** Field blocks seen before, shared by every parser (see ./headers.ts). */
const blockCache = new BlockCache();
const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');

/**
 * The common request line "token SP target SP HTTP/d.d" (target without
 * whitespace), parsed from bytes. Returns exactly what parseRequestLine()
 * returns for the decoded line, or null to let it decide (anything else).
 */
function fastRequestLine(b: Buffer, start: number, end: number): RequestLine | null {
  let i = start;
  while (i < end && TCHAR[b[i]!] === 1) i++;
  if (i === start || i >= end || b[i] !== 0x20) return null;
  const t = i + 1;
  let j = t;
  while (j < end && TRIM_WS[b[j]!] === 0) j++;
  if (j === t || j + 9 !== end || b[j] !== 0x20 || !isHttpVersion(b, j + 1)) return null;
  return { method: intern(b, start, i), target: latin1(b, t, j), version: intern(b, j + 1, end) };
}

/**
 * The common status line "HTTP/d.d SP ddd [SP reason]" parsed from bytes:
 * exactly what parseStatusLine() returns for the decoded line, or null to
 * let it decide (several spaces, a CR inside, anything else).
 */
function fastStatusLine(b: Buffer, start: number, end: number): StatusLine | null {
  if (end - start < 12 || !isHttpVersion(b, start) || b[start + 8] !== 0x20) return null;
  const d0 = b[start + 9]!;
  const d1 = b[start + 10]!;
  const d2 = b[start + 11]!;
  if (!isDigit(d0) || !isDigit(d1) || !isDigit(d2)) return null;
  let rs = start + 12;
  if (rs < end) {
    if (b[rs] !== 0x20 && b[rs] !== 0x09) return null;
    // STATUS_RE's (.*) stops at CR: leave such lines to the regex.
    for (let k = rs; k < end; k++) if (b[k] === 0x0d) return null;
  }
  let re = end;
  while (rs < re && TRIM_WS[b[rs]!] === 1) rs++;
  while (re > rs && TRIM_WS[b[re - 1]!] === 1) re--;
  return {
    version: intern(b, start, start + 8),
    status: (d0 - 0x30) * 100 + (d1 - 0x30) * 10 + (d2 - 0x30),
    reason: intern(b, rs, re),
  };
}

/** States of one direction's parser. */
const enum St {
  /** Reading a start line and header fields. */
  Head,
  /** Body with a known remaining length (Content-Length, RFC 9112 section 6.3 rule 6). */
  BodyLen,
  /** Reading a chunk-size line (RFC 9112 section 7.1). */
  ChunkSize,
  /** Inside chunk data. */
  ChunkData,
  /** The CRLF after chunk data. */
  ChunkEnd,
  /** Trailer section after the last chunk (RFC 9112 section 7.1.2). */
  Trailer,
  /** Response body delimited by the connection close (RFC 9112 section 6.3 rule 8). */
  BodyClose,
  /** Out of sync: scanning for the next start line. */
  Lost,
  /** Request side after a CONNECT or Upgrade request: hold bytes until the response says tunnel or not. */
  Hold,
  /** After 101 Switching Protocols or a 2xx to CONNECT: the rest is not HTTP/1.x. */
  Tunnel,
  /** Nothing more to parse (not HTTP, FIN seen, or ended). */
  Dead,
}

/** Internal per-exchange bookkeeping that is not part of the Exchange contract. */
interface ExState {
  ex: Exchange;
  /** Request fully sent (or nothing more is expected from the client for it). */
  reqDone: boolean;
  /** Request side lost sync inside this request: we cannot tell whether it finished. */
  reqLost: boolean;
  /** Final response complete. */
  respDone: boolean;
  finished: boolean;
  /** No request was seen for this response. */
  orphan: boolean;
}

interface HeldPiece {
  buf: Buffer | null;
  gap: number;
  ts: Micros;
}

class Side {
  state: St = St.Head;
  /** Bytes of an unfinished line (copies). */
  parts: Buffer[] = [];
  partLen = 0;
  /** Head bytes of the current message so far. */
  headBytes = 0;
  /** Inside a field line longer than maxHeaderBytes: its bytes are dropped up to its LF. */
  skipLine = false;
  /** 'http-header-too-large' was counted for the current message. */
  tooLarge = false;
  msgStarted = false;
  msgStartTs: Micros = 0;
  startLineDone = false;
  /** Response side: the first bytes were checked for "HTTP/". */
  prefixChecked = false;
  /** Messages whose start line parsed on this side. */
  messages = 0;
  /** The exchange whose message is being parsed on this side. */
  cur: ExState | null = null;
  // Header state of the current message.
  headers: MessageHeaders = newHeaders();
  /**
   * The head's fields came from the block cache (HttpConnectionParser.blockHead):
   * `headers` was never filled nor kept, and serves the next message.
   */
  headersUnused = false;
  /** Response side: the cached map of the current head, until headDone() hands it to the exchange. */
  shared: MessageHeaders | null = null;
  headerCount = 0;
  tooMany = false;
  pendName: string | null = null;
  pendValue = '';
  inTrailer = false;
  // Framing headers (tracked whether or not the header is kept).
  cl = -1;
  clBad = false;
  te: string | null = null;
  upgrade = false;
  // Current response's status line (response side).
  status = 0;
  respVersion = '';
  reason = '';
  /** Remaining bytes of the body or chunk. */
  remaining = 0;
  // Resync state.
  carry: Buffer | null = null;
  /** Arrival times of the carried bytes: pairs (offset in carry, ts), offsets increasing, from 0. */
  carryMarks: number[] = [];
  atLineStart = true;
  // Buffered bytes before the protocol is known, and held request bytes.
  pre: HeldPiece[] = [];
  preLen = 0;
  held: HeldPiece[] = [];
  heldLen = 0;
  heldOverflow = false;
  fin = false;
  lastTs: Micros = 0;

  constructor(readonly dir: Dir) {}

  resetMessage(): void {
    this.parts.length = 0;
    this.partLen = 0;
    this.headBytes = 0;
    this.skipLine = false;
    this.tooLarge = false;
    this.msgStarted = false;
    this.startLineDone = false;
    this.prefixChecked = false;
    if (this.headersUnused) this.headersUnused = false;
    else this.headers = newHeaders();
    this.shared = null;
    this.headerCount = 0;
    this.tooMany = false;
    this.pendName = null;
    this.pendValue = '';
    this.inTrailer = false;
    this.cl = -1;
    this.clBad = false;
    this.te = null;
    this.upgrade = false;
    this.status = 0;
    this.respVersion = '';
    this.reason = '';
    this.remaining = 0;
  }
}

export class HttpConnectionParser {
  /** Exchanges in request order (at most maxExchanges; older ones are dropped, see droppedExchanges). */
  readonly exchanges: Exchange[] = [];
  /** 'none' until payload is seen, then 'http' | 'tls' | 'http2' | 'unknown'. */
  protocol: AppProtocol = 'none';
  /** Exchanges dropped from `exchanges` to bound memory. */
  droppedExchanges = 0;

  private readonly anomalies: Anomalies;
  private readonly maxHeaderBytes: number;
  private readonly maxHeaders: number;
  private readonly maxExchanges: number;
  private readonly onExchange: ((ex: Exchange) => void) | undefined;
  private readonly req = new Side(0);
  private readonly res = new Side(1);
  /** Exchanges waiting for (the end of) their response, oldest first (RFC 9112 section 9.3.2: responses come in request order). */
  private awaiting: ExState[] = [];
  private awaitHead = 0;
  private nextIndex = 1;
  private ended = false;
  private sawPayload = false;
  /** Bytes scanned for a start line while the protocol is not known to be HTTP. */
  private unknownScanned = 0;

  constructor(opts: HttpParserOptions) {
    this.anomalies = opts.anomalies;
    this.maxHeaderBytes = opts.maxHeaderBytes ?? 64 * 1024;
    this.maxHeaders = opts.maxHeaders ?? 64;
    this.maxExchanges = Math.max(1, opts.maxExchanges ?? 10_000);
    this.onExchange = opts.onExchange;
  }

  // ---------------------------------------------------------------- input

  data(dir: Dir, buf: Buffer, ts: Micros): void {
    if (this.ended || buf.length === 0) return;
    const side = dir === 0 ? this.req : this.res;
    if (this.protocol === 'none') {
      this.sawPayload = true;
      if (side.state !== St.Lost) {
        this.preData(side, buf, ts);
        return;
      }
    }
    this.consume(side, buf, ts);
  }

  gap(dir: Dir, len: number, ts: Micros): void {
    if (this.ended || len <= 0) return;
    const side = dir === 0 ? this.req : this.res;
    if (this.protocol === 'none' && side.state !== St.Lost) {
      // The start of this direction is missing: what was buffered is cut off.
      side.pre.length = 0;
      side.preLen = 0;
      this.loseSync(side, true, null);
      return;
    }
    this.consumeGap(side, len, ts);
  }

  fin(dir: Dir, ts: Micros): void {
    if (this.ended) return;
    const side = dir === 0 ? this.req : this.res;
    if (side.fin) return;
    if (this.protocol === 'none' && side.pre.length > 0) this.flushPre(side);
    side.fin = true;
    if (dir === 1 && side.state === St.BodyClose) {
      // RFC 9112 section 6.3 rule 8: the close ends a close-delimited body; a FIN is a clean close.
      const st = side.cur;
      if (st) this.responseDone(st, side.lastTs);
    }
    void ts;
    // Request bytes held for a possible tunnel stay held until the response decides.
    if (side.state !== St.Tunnel && side.state !== St.Hold) side.state = St.Dead;
  }

  end(ts: Micros, reason: EndReason): void {
    if (this.ended) return;
    if (this.protocol === 'none') {
      if (this.req.pre.length > 0) this.flushPre(this.req);
      if (this.res.pre.length > 0) this.flushPre(this.res);
    }
    void reason;
    void ts;
    if (this.protocol === 'none' && this.sawPayload) this.protocol = 'unknown';
    this.ended = true;
    const res = this.res;
    // A close-delimited body is complete only on a clean close (FIN, handled in fin()).
    for (let i = this.awaitHead; i < this.awaiting.length; i++) {
      const st = this.awaiting[i]!;
      if (st.finished) continue;
      const ex = st.ex;
      if (st.respDone) ex.outcome = 'complete';
      else if (!st.reqDone && !st.reqLost && !st.orphan) ex.outcome = 'aborted';
      else if (ex.responseStart !== null) ex.outcome = 'incomplete-response';
      else ex.outcome = 'no-response';
      this.finish(st);
    }
    const cur = this.req.cur;
    if (cur && !cur.finished) {
      cur.ex.outcome = cur.respDone ? 'complete' : 'aborted';
      this.finish(cur);
    }
    this.awaiting = [];
    this.awaitHead = 0;
    this.req.state = St.Dead;
    res.state = St.Dead;
  }

  // ------------------------------------------------------ protocol sniffing

  private preData(side: Side, buf: Buffer, ts: Micros): void {
    side.pre.push({ buf: Buffer.from(buf), gap: 0, ts });
    side.preLen += buf.length;
    const all = side.pre.length === 1 ? side.pre[0]!.buf! : Buffer.concat(side.pre.map((p) => p.buf!));
    let v = classify(all, side.dir === 0 ? 'request' : 'response');
    if (v === 'more' && side.preLen > MAX_PRE_BYTES) v = 'unknown';
    if (v !== 'more') this.decide(side, v);
  }

  /** The direction ended (or the connection did) while its first bytes were still undecided. */
  private flushPre(side: Side): void {
    const all = Buffer.concat(side.pre.map((p) => p.buf!));
    const v = classify(all, side.dir === 0 ? 'request' : 'response');
    this.decide(side, v === 'more' ? 'unknown' : v);
  }

  private decide(side: Side, v: 'request' | 'response' | 'tls' | 'http2' | 'unknown' | 'more'): void {
    if (v === 'tls' || v === 'http2') {
      // Not HTTP/1.x: stop here rather than misparse (Zeek's DPD gives up the same way).
      this.protocol = v;
      this.req.state = St.Dead;
      this.res.state = St.Dead;
      this.req.pre = [];
      this.res.pre = [];
      return;
    }
    const other = side === this.req ? this.res : this.req;
    if (v === 'request' || v === 'response') {
      this.becomeHttp();
      return;
    }
    // Unknown first bytes: perhaps the capture began in the middle of a
    // connection. Scan both directions for a start line; protocol becomes
    // 'http' if one is found. No anomaly: non-HTTP connections are normal.
    this.protocol = 'unknown';
    for (const s of [side, other]) {
      const pieces = s.pre;
      s.pre = [];
      s.preLen = 0;
      if (s.state !== St.Lost) this.loseSync(s, true, null);
      for (const p of pieces) this.consume(s, p.buf!, p.ts);
    }
  }

  /** The connection is HTTP: parse what each direction buffered meanwhile, client bytes first so responses find their requests. */
  private becomeHttp(): void {
    if (this.protocol === 'http') return;
    this.protocol = 'http';
    this.replayPre(this.req);
    this.replayPre(this.res);
  }

  private replayPre(side: Side): void {
    const pieces = side.pre;
    side.pre = [];
    side.preLen = 0;
    for (const p of pieces) this.consume(side, p.buf!, p.ts);
  }

  // --------------------------------------------------------------- engine

  /** Feed in-order bytes of one direction through its state machine. */
  private consume(side: Side, buf: Buffer, ts: Micros): void {
    const len = buf.length;
    let pos = 0;
    let guard = 0;
    while (pos < len) {
      // Each iteration consumes bytes or changes state; the guard only protects against a bug looping forever.
      if (++guard > len * 4 + 64) {
        this.anomalies.add('http-parser-stuck');
        side.state = St.Dead;
        return;
      }
      switch (side.state) {
        case St.Head:
          pos = this.head(side, buf, pos, ts);
          break;
        case St.BodyLen: {
          const n = Math.min(side.remaining, len - pos);
          side.remaining -= n;
          pos += n;
          this.countBody(side, n);
          side.lastTs = ts;
          if (side.remaining === 0) this.messageDone(side, ts);
          break;
        }
        case St.ChunkSize:
          pos = this.chunkSize(side, buf, pos, ts);
          break;
        case St.ChunkData: {
          const n = Math.min(side.remaining, len - pos);
          side.remaining -= n;
          pos += n;
          this.countBody(side, n);
          side.lastTs = ts;
          if (side.remaining === 0) side.state = St.ChunkEnd;
          break;
        }
        case St.ChunkEnd:
          pos = this.chunkEnd(side, buf, pos, ts);
          break;
        case St.Trailer:
          pos = this.head(side, buf, pos, ts);
          break;
        case St.BodyClose: {
          const n = len - pos;
          pos = len;
          this.countBody(side, n);
          side.lastTs = ts;
          break;
        }
        case St.Lost:
          pos = this.scan(side, buf, pos, ts);
          break;
        case St.Hold: {
          if (side.heldLen + (len - pos) > this.maxHeaderBytes) side.heldOverflow = true;
          else {
            side.held.push({ buf: Buffer.from(buf.subarray(pos)), gap: 0, ts });
            side.heldLen += len - pos;
          }
          pos = len;
          break;
        }
        case St.Tunnel:
        case St.Dead:
          return;
      }
    }
  }

  private consumeGap(side: Side, len: number, ts: Micros): void {
    let left = len;
    while (left > 0) {
      switch (side.state) {
        case St.BodyLen:
        case St.ChunkData: {
          // Known length: the gap is body bytes and we stay in sync.
          const n = Math.min(side.remaining, left);
          side.remaining -= n;
          left -= n;
          this.countBody(side, n);
          this.countGap(side, n);
          side.lastTs = ts;
          if (side.remaining === 0) {
            if (side.state === St.BodyLen) this.messageDone(side, ts);
            else side.state = St.ChunkEnd;
          }
          break;
        }
        case St.BodyClose:
          this.countBody(side, left);
          this.countGap(side, left);
          side.lastTs = ts;
          return;
        case St.Hold:
          side.held.push({ buf: null, gap: left, ts });
          return;
        case St.Tunnel:
        case St.Dead:
          return;
        case St.Lost:
          this.countGap(side, left);
          side.carry = null;
          side.atLineStart = true;
          return;
        default:
          // In a head, a chunk-size line or between messages: framing is lost.
          this.gapOwner(side, ts);
          this.countGap(side, left);
          this.anomalies.add('http-gap-lost-sync');
          this.loseSync(side, true, null);
          return;
      }
    }
  }

  /**
   * A gap where a message head was or may start: whose bytes were they? On
   * the client side, any bytes are (part of) a request: if its request line
   * was not seen, keep a placeholder exchange (method '') so that its
   * response does not get paired with the next request. On the server side
   * they belong to the response of the oldest waiting request.
   */
  private gapOwner(side: Side, ts: Micros): void {
    if (side.cur) return;
    if (side.dir === 0) {
      const st = this.addExchange(this.blankExchange(ts, null), false);
      st.reqLost = true;
      side.cur = st;
      return;
    }
    const st = this.peekAwaiting();
    if (!st) return;
    side.cur = st;
    if (st.ex.responseStart === null) st.ex.responseStart = ts;
  }

  private blankExchange(requestStart: Micros, responseStart: Micros | null): Exchange {
    return {
      index: 0,
      method: '',
      target: '',
      version: '',
      requestHeaders: NO_HEADERS,
      requestStart,
      requestEnd: null,
      requestBodyBytes: 0,
      status: null,
      reason: null,
      responseVersion: null,
      responseHeaders: NO_HEADERS,
      interim: NO_INTERIM,
      responseStart,
      responseEnd: null,
      responseBodyBytes: 0,
      gapBytes: 0,
      outcome: responseStart === null ? 'no-response' : 'incomplete-response',
    };
  }

  private countBody(side: Side, n: number): void {
    const st = side.cur;
    if (!st || n === 0) return;
    if (side.dir === 0) st.ex.requestBodyBytes += n;
    else st.ex.responseBodyBytes += n;
  }

  private countGap(side: Side, n: number): void {
    const st = side.cur ?? (side.dir === 1 ? this.peekAwaiting() : null);
    if (st) st.ex.gapBytes += n;
  }

  private peekAwaiting(): ExState | null {
    return this.awaitHead < this.awaiting.length ? this.awaiting[this.awaitHead]! : null;
  }

  /**
   * Give up on the current framing of one direction. `atLineStart`: the next
   * byte may begin a message (after a gap, or after a complete bad line).
   */
  private loseSync(side: Side, atLineStart: boolean, anomaly: string | null): void {
    if (anomaly) this.anomalies.add(anomaly);
    if (side.dir === 0 && side.cur && !side.cur.reqDone) side.cur.reqLost = true;
    if (side.dir === 0) side.cur = null;
    side.resetMessage();
    side.state = St.Lost;
    side.carry = null;
    side.atLineStart = atLineStart;
  }

  // ------------------------------------------------------------ head parsing

  /**
   * Read lines of a message head (or a trailer section). Lines end at LF;
   * a CR before it is dropped (RFC 9112 section 2.2 allows a bare LF).
   */
  private head(side: Side, buf: Buffer, pos: number, ts: Micros): number {
    const len = buf.length;
    while (pos < len) {
      if (!side.startLineDone && !side.inTrailer && side.partLen === 0) {
        // RFC 9112 section 2.2: ignore empty lines before a start line.
        while (pos < len && (buf[pos] === 13 || buf[pos] === 10)) pos++;
        if (pos === len) return pos;
        if (!side.msgStarted) this.messageStart(side, ts);
      }
      if (side.dir === 1 && !side.startLineDone && !side.prefixChecked) {
        const r = this.checkStatusPrefix(side, buf, pos);
        if (r === 1) {
          // Raw response without a status line (HTTP/0.9 style): body until close.
          const st = side.cur!;
          st.ex.responseVersion = 'HTTP/0.9';
          st.ex.responseBodyBytes += side.partLen;
          side.parts.length = 0;
          side.partLen = 0;
          side.state = St.BodyClose;
          side.lastTs = ts;
          return pos;
        }
        if (r === 2) {
          this.loseSync(side, false, 'http-parse-error');
          return pos;
        }
      }
      const nl = buf.indexOf(10, pos);
      const end = nl < 0 ? len : nl + 1;
      side.headBytes += end - pos;
      if (side.skipLine) {
        // The rest of an overlong field line.
        if (nl < 0) return len;
        side.skipLine = false;
        pos = nl + 1;
        continue;
      }
      if (side.partLen + (end - pos) > this.maxHeaderBytes) {
        // One line longer than the limit. Memory stays bounded by the limit
        // per line (and maxHeaders fields of at most MAX_VALUE_CHARS), however
        // long the head. A start line that long cannot be parsed: sync is
        // lost. A field line is dropped and the head goes on, so a large but
        // legitimate head (big cookies, a long CSP) keeps its framing and its
        // exchange instead of turning into an unfinished one.
        if (!side.startLineDone && !side.inTrailer) {
          this.loseSync(side, false, 'http-header-too-large');
          return end;
        }
        if (!side.tooLarge) {
          side.tooLarge = true;
          this.anomalies.add('http-header-too-large');
        }
        this.flushHeader(side);
        side.parts.length = 0;
        side.partLen = 0;
        if (nl < 0) {
          side.skipLine = true;
          return len;
        }
        pos = nl + 1;
        continue;
      }
      if (nl < 0) {
        side.parts.push(Buffer.from(buf.subarray(pos)));
        side.partLen += len - pos;
        return len;
      }
      let s: string;
      if (side.partLen > 0) {
        side.parts.push(buf.subarray(pos, nl));
        const line = Buffer.concat(side.parts);
        side.parts.length = 0;
        side.partLen = 0;
        let e = line.length;
        if (e > 0 && line[e - 1] === 13) e--;
        s = latin1(line, 0, e);
      } else {
        // Common case: the whole line is in this buffer; parse it from the bytes.
        let e = nl;
        if (e > pos && buf[e - 1] === 13) e--;
        if (!side.inTrailer && e > pos) {
          if (side.startLineDone) {
            if (this.fieldLine(side, buf, pos, e)) {
              // A field line never changes the state.
              pos = nl + 1;
              continue;
            }
          } else {
            const start = side.dir === 0 ? fastRequestLine(buf, pos, e) : fastStatusLine(buf, pos, e);
            if (start !== null) {
              pos = nl + 1;
              side.startLineDone = true;
              if (side.dir === 0) this.requestLine(side, start as RequestLine, ts);
              else this.statusLine(side, start as StatusLine, ts);
              if (side.state !== St.Head && side.state !== St.Trailer) return pos;
              if (side.startLineDone && side.cur !== null && side.partLen === 0) {
                const after = this.blockHead(side, buf, pos, ts);
                if (after >= 0) {
                  pos = after;
                  if (side.state !== St.Head && side.state !== St.Trailer) return pos;
                }
              }
              continue;
            }
          }
        }
        s = latin1(buf, pos, e);
      }
      pos = nl + 1;
      this.line(side, s, ts);
      if (side.state !== St.Head && side.state !== St.Trailer) return pos;
    }
    return pos;
  }

  /**
   * Response side, before the status line is complete: do the first bytes read
   * "HTTP/"? 0 = yes or not known yet, 1 = no and a raw (HTTP/0.9 style)
   * response is plausible, 2 = no and it is garbage.
   */
  private checkStatusPrefix(side: Side, buf: Buffer, pos: number): number {
    const have = side.partLen + (buf.length - pos);
    const n = Math.min(5, have);
    for (let i = 0; i < n; i++) {
      const c = i < side.partLen ? this.partByte(side, i) : buf[pos + i - side.partLen]!;
      if (c !== HTTP1[i]) {
        const st = side.cur;
        // A response that does not start with a status line: HTTP/0.9 (RFC 1945
        // section 6 / curl --http0.9) when the request was 0.9, or when this is
        // the first response on the connection (curl_http_09.pcap); else garbage.
        if (st && !st.orphan && (st.ex.version === 'HTTP/0.9' || side.messages === 0)) {
          if (st.ex.version !== 'HTTP/0.9') this.anomalies.add('http-response-without-status-line');
          return 1;
        }
        return 2;
      }
    }
    if (n === 5) side.prefixChecked = true;
    return 0;
  }

  private partByte(side: Side, i: number): number {
    for (const p of side.parts) {
      if (i < p.length) return p[i]!;
      i -= p.length;
    }
    return -1;
  }

  /** First byte of a message on this side. */
  private messageStart(side: Side, ts: Micros): void {
    side.msgStarted = true;
    side.msgStartTs = ts;
    if (side.dir === 1) {
      const st = this.peekAwaiting();
      side.cur = st;
      if (st && st.ex.responseStart === null) st.ex.responseStart = ts;
    }
  }

  private line(side: Side, s: string, ts: Micros): void {
    if (side.inTrailer) {
      if (s.length === 0) this.messageDone(side, ts);
      // Trailer fields are not kept (RFC 9110 section 6.5: they must not be merged blindly).
      return;
    }
    if (!side.startLineDone) {
      side.startLineDone = true;
      if (side.dir === 0) this.requestLine(side, parseRequestLine(s), ts);
      else this.statusLine(side, parseStatusLine(s), ts);
      return;
    }
    if (s.length === 0) {
      this.flushHeader(side);
      this.headDone(side, ts);
      return;
    }
    const c0 = s.charCodeAt(0);
    if (c0 === 0x20 || c0 === 0x09) {
      // obs-fold (RFC 9112 section 5.2): continuation of the previous field value.
      if (side.pendName !== null) {
        // Bounded like a value (many fold lines, each under the line limit, could grow it without end).
        if (side.pendValue.length < MAX_VALUE_CHARS) side.pendValue = (side.pendValue + ' ' + s.trim()).slice(0, MAX_VALUE_CHARS);
      }
      else this.anomalies.add('http-bad-header-line');
      return;
    }
    this.flushHeader(side);
    const colon = s.indexOf(':');
    if (colon <= 0) {
      // Tolerate (Zeek logs these as weirds and carries on).
      this.anomalies.add('http-bad-header-line');
      return;
    }
    side.pendName = s.slice(0, colon).trim().toLowerCase();
    side.pendValue = s.slice(colon + 1).trim();
  }

  private flushHeader(side: Side): void {
    const name = side.pendName;
    if (name === null) return;
    side.pendName = null;
    const value = side.pendValue;
    side.pendValue = '';
    this.framing(side, name, value);
    if (side.headers[name] === undefined && side.headerCount >= this.maxHeaders) {
      if (!side.tooMany) this.anomalies.add('http-too-many-headers');
      side.tooMany = true;
      return;
    }
    if (storeHeader(side.headers, name, value) === 'stored') side.headerCount++;
  }

  /** Framing fields are honoured whether or not the header is kept (name lower-cased, value trimmed). */
  private framing(side: Side, name: string, value: string): void {
    if (name === 'content-length') {
      let digits = value.length > 0;
      for (let k = 0; digits && k < value.length; k++) digits = isDigit(value.charCodeAt(k));
      if (digits) {
        // The usual single value (the loop below gives the same for it).
        const n = Number(value);
        if (side.cl >= 0 && side.cl !== n) side.clBad = true;
        side.cl = n;
      } else {
        // RFC 9110 section 8.6: a list of identical values is the same as one value.
        for (const part of value.split(',')) {
          const t = part.trim();
          if (!/^\d+$/.test(t)) side.clBad = true;
          else {
            const n = Number(t);
            if (side.cl >= 0 && side.cl !== n) side.clBad = true;
            side.cl = n;
          }
        }
      }
    } else if (name === 'transfer-encoding') {
      side.te = side.te === null ? value : side.te + ', ' + value;
    } else if (name === 'upgrade') {
      side.upgrade = true;
    }
  }

  /**
   * Right after a start line parsed from bytes, when the blank line ending
   * the head is in this buffer too (nearly every head): a field block seen
   * before byte for byte takes the map built then (./headers.ts); a new one
   * whose lines are all plain `token ":" value` lines is parsed here in one
   * pass and cached. Returns the position after the head, with headDone()
   * called; or -1, having changed nothing, to let the line parser do it (a
   * head cut across segments, bare LF line ends, obs-fold, a line without a
   * colon, more than maxHeaders fields, a framing field given twice, ...).
   */
  private blockHead(side: Side, buf: Buffer, pos: number, ts: Micros): number {
    const blank = buf.indexOf(CRLFCRLF, pos);
    if (blank < 0) return -1;
    const end = blank + 2; // the block: field lines with their CRLFs
    const n = end - pos;
    if (n < 8 || n > MAX_CACHED_BLOCK || n > this.maxHeaderBytes) return -1;
    const slot = BlockCache.slotOf(buf, pos, end);
    let c = blockCache.get(slot, buf, pos, end);
    if (c === null || c.lines > this.maxHeaders) {
      c = this.parseBlock(buf, pos, end);
      if (c === null) return -1;
      blockCache.set(slot, c);
    }
    // The map is the block's (shared with every head like it): `headers` stays empty, for the next message.
    side.headersUnused = true;
    if (side.dir === 0) side.cur!.ex.requestHeaders = c.headers;
    else side.shared = c.headers;
    side.headBytes += end + 2 - pos;
    if (c.contentLength !== null) this.framing(side, 'content-length', c.contentLength);
    if (c.transferEncoding !== null) this.framing(side, 'transfer-encoding', c.transferEncoding);
    if (c.upgrade) side.upgrade = true;
    this.headDone(side, ts);
    return end + 2;
  }

  /**
   * Parse a field block b[start, end) (lines ending in CRLF, no blank line)
   * in one pass into a new map, or return null (nothing changed) when a line
   * is not a plain `token ":" value` line ending in CRLF, there are more than
   * maxHeaders, or a framing field is given twice. Line ends are found with a
   * loop, not indexOf(): header lines are short, and the call costs more
   * than the scan.
   */
  private parseBlock(b: Buffer, start: number, end: number): CachedBlock | null {
    const h = newHeaders();
    let lines = 0;
    let contentLength: string | null = null;
    let transferEncoding: string | null = null;
    let upgrade = false;
    for (let p = start; p < end; ) {
      let i = p;
      let hash = HASH_START;
      for (;;) {
        const x = b[i]!;
        if (TCHAR[x] !== 1) break;
        hash = lowerHash(hash, x);
        i++;
      }
      if (i === p || b[i] !== 0x3a) return null;
      // The block ends with CRLF, so an LF comes before `end`.
      let nl = i + 1;
      while (b[nl] !== 10) nl++;
      if (b[nl - 1] !== 13) return null; // a bare LF: the line parser decides where the head ends
      if (++lines > this.maxHeaders) return null;
      let vs = i + 1;
      let ve = nl - 1;
      while (vs < ve && TRIM_WS[b[vs]!] === 1) vs++;
      while (ve > vs && TRIM_WS[b[ve - 1]!] === 1) ve--;
      const name = internLowerToken(b, p, i, hash);
      const value = intern(b, vs, ve);
      if (name === 'content-length') {
        if (contentLength !== null) return null;
        contentLength = value;
      } else if (name === 'transfer-encoding') {
        if (transferEncoding !== null) return null;
        transferEncoding = value;
      } else if (name === 'upgrade') upgrade = true;
      storeHeader(h, name, value);
      p = nl + 1;
    }
    return { bytes: Buffer.from(b.subarray(start, end)), headers: h, lines, contentLength, transferEncoding, upgrade };
  }

  /**
   * A field line "token: value" whose name is all token characters, parsed
   * from the bytes (what line() does for it, without decoding the line).
   * Returns false to leave anything else to line(): obs-fold, no colon, odd names.
   */
  private fieldLine(side: Side, buf: Buffer, start: number, end: number): boolean {
    const c0 = buf[start]!;
    if (c0 === 0x20 || c0 === 0x09) return false;
    let i = start;
    let h = HASH_START;
    for (; i < end; i++) {
      const x = buf[i]!;
      if (TCHAR[x] !== 1) break;
      h = lowerHash(h, x);
    }
    if (i === start || i === end || buf[i] !== 0x3a) return false;
    let vs = i + 1;
    let ve = end;
    while (vs < ve && TRIM_WS[buf[vs]!] === 1) vs++;
    while (ve > vs && TRIM_WS[buf[ve - 1]!] === 1) ve--;
    this.flushHeader(side);
    side.pendName = internLowerToken(buf, start, i, h);
    side.pendValue = intern(buf, vs, ve);
    return true;
  }

  private requestLine(side: Side, rl: RequestLine | null, ts: Micros): void {
    if (!rl) {
      // Not a request line (Zeek: bad_HTTP_request). The line is consumed, so the next byte starts a line.
      this.loseSync(side, true, 'http-parse-error');
      return;
    }
    if (rl.method === 'PRI' && rl.version === 'HTTP/2.0') {
      // HTTP/2 prior-knowledge preface after HTTP/1.x traffic: not ours.
      this.protocol = this.protocol === 'http' ? 'http' : 'http2';
      side.state = St.Dead;
      return;
    }
    side.messages++;
    const ex: Exchange = {
      index: 0,
      method: rl.method,
      target: rl.target.length > MAX_TARGET_CHARS ? rl.target.slice(0, MAX_TARGET_CHARS) : rl.target,
      version: rl.version,
      requestHeaders: side.headers,
      requestStart: side.msgStartTs,
      requestEnd: null,
      requestBodyBytes: 0,
      status: null,
      reason: null,
      responseVersion: null,
      responseHeaders: NO_HEADERS,
      interim: NO_INTERIM,
      responseStart: null,
      responseEnd: null,
      responseBodyBytes: 0,
      gapBytes: 0,
      outcome: 'no-response',
    };
    const st = this.addExchange(ex, false);
    side.cur = st;
    if (rl.version === 'HTTP/0.9') {
      // A simple request is just the line (RFC 1945 section 4.1): no headers, no body.
      this.requestDone(side, ts);
    }
  }

  private statusLine(side: Side, sl: StatusLine | null, ts: Micros): void {
    if (!sl) {
      this.loseSync(side, true, 'http-parse-error');
      return;
    }
    side.messages++;
    side.status = sl.status;
    side.respVersion = sl.version;
    side.reason = sl.reason;
    let st = side.cur;
    if (!st) {
      // A response with no request waiting: capture began mid-connection, the
      // request was not parseable (Zeek logs such rows with method "-"), or an
      // extra response. Keep it as an exchange with method '' so it is not lost.
      this.anomalies.add('http-response-without-request');
      st = this.addExchange(this.blankExchange(side.msgStartTs, side.msgStartTs), true);
      side.cur = st;
    }
    void ts;
  }

  private addExchange(ex: Exchange, orphan: boolean): ExState {
    ex.index = this.nextIndex++;
    const st: ExState = { ex, reqDone: orphan, reqLost: false, respDone: false, finished: false, orphan };
    if (this.exchanges.length >= this.maxExchanges) {
      // Drop the oldest in batches so this stays O(1) amortised.
      const drop = Math.max(1, Math.ceil(this.maxExchanges / 16));
      this.exchanges.splice(0, drop);
      this.droppedExchanges += drop;
      this.anomalies.add('http-exchanges-dropped', drop);
    }
    this.exchanges.push(ex);
    this.awaiting.push(st);
    return st;
  }

  /** End of a message head: decide the body framing (RFC 9112 section 6.3). */
  private headDone(side: Side, ts: Micros): void {
    const st = side.cur;
    side.lastTs = ts;
    if (!st) {
      this.loseSync(side, true, null);
      return;
    }
    const ex = st.ex;
    const te = side.te;
    const chunked = te !== null && /(?:^|,)\s*chunked\s*$/i.test(te);
    if (te !== null && side.cl >= 0) this.anomalies.add('http-te-and-cl');
    if (side.dir === 0) {
      if (te !== null) {
        if (!chunked) {
          // RFC 9112 section 6.3 rule 4: a request's length cannot be known.
          this.loseSync(side, true, 'http-bad-transfer-encoding');
          return;
        }
        this.startChunked(side);
        return;
      }
      if (side.clBad) {
        this.loseSync(side, true, 'http-bad-content-length');
        return;
      }
      if (side.cl > 0) {
        side.state = St.BodyLen;
        side.remaining = side.cl;
        return;
      }
      this.requestDone(side, ts);
      return;
    }
    // Response.
    const status = side.status;
    if (status >= 100 && status < 200 && status !== 101) {
      // Interim response (RFC 9110 section 15.2): the final one follows.
      if (ex.interim === NO_INTERIM) ex.interim = [];
      ex.interim.push({ status, ts: side.msgStartTs });
      side.resetMessage();
      side.state = St.Head;
      return;
    }
    ex.status = status;
    ex.reason = side.reason;
    ex.responseVersion = side.respVersion;
    ex.responseHeaders = side.shared ?? side.headers;
    const method = ex.method;
    if (status === 101 || (method === 'CONNECT' && status >= 200 && status < 300)) {
      // RFC 9110 sections 15.2.2 and 9.3.6: after this the connection carries another protocol.
      this.req.state = St.Tunnel;
      this.req.held = [];
      this.req.heldLen = 0;
      this.holdFor = null;
      this.res.state = St.Tunnel;
      this.responseDone(st, ts);
      return;
    }
    // RFC 9112 section 6.3 rule 1. A reply with a status line to a versionless
    // request is framed like any other (methods.pcap: Google answers
    // "HEAD /HTTP/1.1" with a 400 whose Content-Length: 925 is not sent).
    if (method === 'HEAD' || status === 204 || status === 304) {
      this.responseDone(st, ts);
      return;
    }
    if (te !== null) {
      if (chunked) this.startChunked(side);
      else side.state = St.BodyClose;
      return;
    }
    if (side.clBad) {
      this.anomalies.add('http-bad-content-length');
      side.state = St.BodyClose;
      return;
    }
    if (side.cl >= 0) {
      if (side.cl === 0) this.responseDone(st, ts);
      else {
        side.state = St.BodyLen;
        side.remaining = side.cl;
      }
      return;
    }
    side.state = St.BodyClose;
  }

  private startChunked(side: Side): void {
    side.state = St.ChunkSize;
    side.parts.length = 0;
    side.partLen = 0;
  }

  // ---------------------------------------------------------------- chunked

  /** Read one line for chunked framing; returns [newPos, line or null when incomplete]. */
  private chunkLine(side: Side, buf: Buffer, pos: number): string | null {
    const nl = buf.indexOf(10, pos);
    if (nl < 0) {
      side.parts.push(Buffer.from(buf.subarray(pos)));
      side.partLen += buf.length - pos;
      this.chunkPos = buf.length;
      return null;
    }
    let line: Buffer;
    if (side.partLen > 0) {
      side.parts.push(buf.subarray(pos, nl));
      line = Buffer.concat(side.parts);
      side.parts.length = 0;
      side.partLen = 0;
    } else line = buf.subarray(pos, nl);
    this.chunkPos = nl + 1;
    let e = line.length;
    if (e > 0 && line[e - 1] === 13) e--;
    return line.toString('latin1', 0, e);
  }

  private chunkPos = 0;

  private chunkSize(side: Side, buf: Buffer, pos: number, ts: Micros): number {
    let size = -1;
    let next = -1;
    if (side.partLen === 0) {
      // The usual "hex CRLF" wholly in this buffer, read from the bytes: the
      // same size the regex below gives for it.
      let i = pos;
      let v = 0;
      while (i < buf.length && i - pos < 14) {
        const d = HEX[buf[i]!]!;
        if (d < 0) break;
        v = v * 16 + d;
        i++;
      }
      if (i > pos && i - pos <= 13 && i < buf.length) {
        if (buf[i] === 10) next = i + 1;
        else if (buf[i] === 13 && i + 1 < buf.length && buf[i + 1] === 10) next = i + 2;
        if (next >= 0) size = v;
      }
    }
    if (next < 0) {
      const s = this.chunkLine(side, buf, pos);
      if (s === null) {
        if (side.partLen > MAX_CHUNK_LINE) this.loseSync(side, false, 'http-parse-error');
        return this.chunkPos;
      }
      next = this.chunkPos;
      // chunk-size [ chunk-ext ] (RFC 9112 section 7.1); tolerate spaces before ';'.
      const m = /^\s*([0-9A-Fa-f]+)\s*(?:;.*)?$/.exec(s);
      if (!m || m[1]!.length > 13) {
        this.loseSync(side, true, 'http-parse-error');
        return next;
      }
      size = parseInt(m[1]!, 16);
    }
    side.lastTs = ts;
    if (size === 0) {
      side.state = St.Trailer;
      side.inTrailer = true;
      side.headBytes = 0;
      return next;
    }
    side.remaining = size;
    side.state = St.ChunkData;
    return next;
  }

  private chunkEnd(side: Side, buf: Buffer, pos: number, ts: Micros): number {
    if (side.partLen === 0) {
      // The usual CRLF (or bare LF) wholly in this buffer.
      const next = buf[pos] === 10 ? pos + 1 : buf[pos] === 13 && pos + 1 < buf.length && buf[pos + 1] === 10 ? pos + 2 : -1;
      if (next >= 0) {
        side.lastTs = ts;
        side.state = St.ChunkSize;
        return next;
      }
    }
    const s = this.chunkLine(side, buf, pos);
    if (s === null) {
      if (side.partLen > 2) this.loseSync(side, false, 'http-parse-error');
      return this.chunkPos;
    }
    side.lastTs = ts;
    if (s.length !== 0) {
      this.loseSync(side, true, 'http-parse-error');
      return this.chunkPos;
    }
    side.state = St.ChunkSize;
    return this.chunkPos;
  }

  // --------------------------------------------------------- message ends

  /** The current message on this side is complete at `ts`. */
  private messageDone(side: Side, ts: Micros): void {
    const st = side.cur;
    if (side.dir === 0) {
      if (st) this.requestDone(side, ts);
      else {
        side.resetMessage();
        side.state = St.Head;
      }
      return;
    }
    if (st) this.responseDone(st, ts);
    else {
      side.resetMessage();
      side.state = St.Head;
    }
  }

  private requestDone(side: Side, ts: Micros): void {
    const st = side.cur!;
    st.reqDone = true;
    st.ex.requestEnd = ts;
    const m = st.ex.method;
    const upgrade = side.upgrade;
    side.resetMessage();
    side.cur = null;
    side.state = St.Head;
    if (!st.respDone && (m === 'CONNECT' || upgrade)) {
      // Bytes after a CONNECT or Upgrade request belong to the tunnel if the
      // server agrees; hold them until the response says so.
      side.state = St.Hold;
      side.held = [];
      side.heldLen = 0;
      side.heldOverflow = false;
      this.holdFor = st;
    }
  }

  private holdFor: ExState | null = null;

  private responseDone(st: ExState, ts: Micros): void {
    const side = this.res;
    st.respDone = true;
    st.ex.responseEnd = ts;
    st.ex.outcome = 'complete';
    this.dropAwaiting(st);
    side.resetMessage();
    side.cur = null;
    if (side.state !== St.Tunnel && side.state !== St.Dead) side.state = St.Head;
    this.finish(st);
    // Release held request bytes if this response did not switch protocols.
    if (this.holdFor === st) {
      this.holdFor = null;
      const rq = this.req;
      if (rq.state === St.Hold) {
        const held = rq.held;
        const overflow = rq.heldOverflow;
        rq.held = [];
        rq.heldLen = 0;
        rq.state = St.Head;
        if (overflow) this.loseSync(rq, false, 'http-header-too-large');
        for (const p of held) {
          if (p.buf) this.consume(rq, p.buf, p.ts);
          else this.consumeGap(rq, p.gap, p.ts);
        }
        if (rq.fin && (rq.state as St) !== St.Tunnel) rq.state = St.Dead;
      }
    }
  }

  private finish(st: ExState): void {
    if (st.finished) return;
    st.finished = true;
    this.onExchange?.(st.ex);
  }

  // ------------------------------------------------------------- resync

  /**
   * Out of sync: look for the next message start. Searches with indexOf for
   * "HTTP/1." and accepts a candidate when
   * - responses: "HTTP/1.d NNN" that parses as a status line;
   * - requests: "token SP target SP HTTP/1.d" where the token starts a line
   *   or is a standard method (a pipelined request can follow a binary body
   *   with no line break in between);
   * and the line after it is empty or a header field ("name:"), so a body
   * that merely mentions "HTTP/1.1 200" is not taken for a message. Bytes
   * of an unfinished candidate are carried to the next call (at most
   * MAX_RESYNC_LINE), so the result does not depend on how data is cut.
   */
  private scan(side: Side, buf: Buffer, pos: number, ts: Micros): number {
    if (this.protocol !== 'http') {
      // Not known to be HTTP: look a while for a start line (a capture that began
      // mid-connection), then give up, as Zeek's protocol detection does.
      this.unknownScanned += buf.length - pos;
      if (this.unknownScanned > MAX_UNKNOWN_SCAN) {
        this.req.state = St.Dead;
        this.res.state = St.Dead;
        this.req.carry = null;
        this.res.carry = null;
        return buf.length;
      }
    }
    let b = buf.subarray(pos);
    let carryLen = 0;
    let marks: number[];
    if (side.carry) {
      carryLen = side.carry.length;
      b = Buffer.concat([side.carry, b]);
      side.carry = null;
      marks = side.carryMarks;
      if (marks[marks.length - 1] !== ts) marks.push(carryLen, ts);
    } else marks = [0, ts];
    side.carryMarks = [];
    const atStart = side.atLineStart;
    let from = 0;
    let found = -1;
    let waitFrom = -1;
    for (;;) {
      const h = b.indexOf(HTTP1, from);
      if (h < 0) break;
      from = h + 1;
      let start = h;
      if (side.dir === 0) {
        const ls = h === 0 ? 0 : b.lastIndexOf(10, h - 1) + 1;
        const lo = Math.max(ls, h - MAX_RESYNC_LINE);
        const m = REQ_TAIL_RE.exec(b.toString('latin1', lo, h));
        if (!m) continue;
        start = lo + m.index;
        const lineStart = start === ls && (ls > 0 || atStart);
        if (!lineStart) {
          // Not at a line start: only a standard method, possibly glued to the preceding bytes.
          const k = KNOWN_METHOD_SUFFIX_RE.exec(m[1]!);
          if (!k) continue;
          start += k.index;
        }
      }
      const v = this.checkCandidate(b, start, h, side.dir);
      if (v === 0) continue;
      if (v === 2) {
        waitFrom = start;
        break;
      }
      found = start;
      break;
    }
    if (found >= 0) {
      this.anomalies.add('http-resync');
      this.becomeHttp();
      if (side.dir === 1) {
        // The response that lost sync is over as far as we can tell.
        const st = side.cur;
        if (st && !st.finished) {
          st.ex.outcome = 'incomplete-response';
          this.dropAwaiting(st);
          this.finish(st);
        }
        side.cur = null;
      }
      side.resetMessage();
      side.state = St.Head;
      // Feed from the start line on, each part with the time of the call that brought it.
      for (let i = 0; i < marks.length; i += 2) {
        const lo = Math.max(marks[i]!, found);
        const hi = i + 2 < marks.length ? marks[i + 2]! : b.length;
        if (hi > lo) this.consume(side, b.subarray(lo, hi), marks[i + 1]!);
      }
      return buf.length;
    }
    // Keep what a later call may complete: an unfinished candidate, or the
    // last line's tail (room for "token SP target SP HTTP/1.d NNN").
    let keepFrom: number;
    if (waitFrom >= 0) keepFrom = waitFrom;
    else if (side.dir === 1) {
      // A status line can start anywhere: only a split "HTTP/1." matters.
      keepFrom = Math.max(0, b.length - (HTTP1.length - 1));
    } else {
      const lastNl = b.lastIndexOf(10);
      keepFrom = Math.max(lastNl + 1, b.length - MAX_RESYNC_LINE);
    }
    side.atLineStart = keepFrom === 0 ? atStart : b[keepFrom - 1] === 10;
    if (keepFrom >= b.length) side.carry = null;
    else {
      side.carry = Buffer.from(b.subarray(keepFrom));
      const kept: number[] = [];
      for (let i = 0; i < marks.length; i += 2) {
        const hi = i + 2 < marks.length ? marks[i + 2]! : b.length;
        if (hi > keepFrom) kept.push(Math.max(marks[i]!, keepFrom) - keepFrom, marks[i + 1]!);
      }
      side.carryMarks = kept;
    }
    return buf.length;
  }

  /**
   * Check a resync candidate whose "HTTP/1." is at h and whose start line
   * begins at `start`: 1 = accept, 0 = reject, 2 = not enough bytes yet.
   */
  private checkCandidate(b: Buffer, start: number, h: number, dir: Dir): number {
    if (b.length < h + 9) return b.length - start > MAX_RESYNC_LINE ? 0 : 2;
    const nl = b.indexOf(10, h);
    if (nl < 0) return b.length - start > MAX_RESYNC_LINE ? 0 : 2;
    let e = nl;
    if (e > start && b[e - 1] === 13) e--;
    const line = b.toString('latin1', start, e);
    if (dir === 1) {
      if (!parseStatusLine(line)) return 0;
    } else if (!/ HTTP\/1\.\d$/.test(line)) return 0;
    const nl2 = b.indexOf(10, nl + 1);
    if (nl2 < 0) return b.length - start > MAX_RESYNC_LINE ? 0 : 2;
    let e2 = nl2;
    if (e2 > nl + 1 && b[e2 - 1] === 13) e2--;
    if (e2 === nl + 1) return 1;
    return HEADER_START_RE.test(b.toString('latin1', nl + 1, Math.min(e2, nl + 1 + 256))) ? 1 : 0;
  }

  private dropAwaiting(st: ExState): void {
    const i = this.awaiting.indexOf(st, this.awaitHead);
    if (i < 0) return;
    if (i === this.awaitHead) this.shiftAwaiting();
    else this.awaiting.splice(i, 1);
  }

  private shiftAwaiting(): void {
    this.awaiting[this.awaitHead] = undefined as unknown as ExState;
    this.awaitHead++;
    if (this.awaitHead > 64 && this.awaitHead * 2 > this.awaiting.length) {
      this.awaiting = this.awaiting.slice(this.awaitHead);
      this.awaitHead = 0;
    }
  }
}

