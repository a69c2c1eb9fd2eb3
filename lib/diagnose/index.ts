/**
 * Diagnosis: turns finished connections into findings (stable codes,
 * evidence with numbers, one plain sentence) and a verdict. Per-connection
 * rules live in rules.ts; the capture-wide ones (timeout signature, socket
 * reuse pattern, Connection: close honoured) keep small aggregates here, so
 * memory does not grow with the capture.
 */
import type { ConnectionRecord } from '../correlate/index.js';
import { redactTarget } from '../report/redact.js';
import type { Micros } from '../types.js';
import type { Finding } from './finding.js';
import {
  DEFAULT_RULES,
  clientAbort,
  fmtS,
  hasConnectionClose,
  ruleClientAbort,
  ruleCloseIgnored,
  ruleHalfClose,
  ruleHeartbeat,
  ruleKeepaliveRace,
  ruleServerClose,
  ruleSlowFirstByte,
  ruleSocketReuse,
  ruleStale,
  s6,
  type ClientAbort,
  type RuleOptions,
} from './rules.js';

export type { Finding, Severity } from './finding.js';
export { buildVerdict, type Verdict } from './verdict.js';
export { DEFAULT_RULES, type RuleOptions } from './rules.js';

export interface DiagnoseOptions {
  /** Time to first response byte above which `slow-first-byte` is reported (µs, default 5 s). */
  slowFirstByte?: Micros;
  /** Half-close threshold (µs, default 2 s). */
  halfCloseAfter?: Micros;
  showSecrets?: boolean;
}

/** Aborts whose delays agree within this much form one signature (the issue's "5.00 s +/- 20 ms"). */
const SIGNATURE_TOLERANCE: Micros = 20_000;
/** Delays shorter than this are not a timer's. */
const MIN_TIMER: Micros = 100_000;
/** Bounds on the capture-wide aggregates. */
const MAX_ABORTS = 10_000;
const MAX_ROUTES = 2_000;
const MAX_HONORED_REPORTED = 20;
const RECENT_REQUESTS = 64;
/** Client and server pairs remembered for connection-close-honored. */
const MAX_PAIRS = 10_000;
/** Per-socket socket-reuse findings for sockets with no failure, at most (failing sockets always get one). */
const MAX_QUIET_REUSE = 100;

interface RouteStats {
  route: string;
  total: number;
  reused: number;
  failed: number;
  failedReused: number;
  failedFresh: number;
  fresh: number;
  /** What the socket carried before, for failed exchanges on reused sockets. */
  previous: Map<string, number>;
  example: string;
}

interface Flagged {
  conn: number;
  index: number;
  label: string;
  ts: Micros;
  next: { conn: number; index: number; ts: Micros } | null;
}

interface PairState {
  flagged: Flagged[];
  /** The last RECENT_REQUESTS requests of the pair (a ring, oldest at `head` once full): connection, index, start. */
  recentConn: Float64Array;
  recentIndex: Float64Array;
  recentTs: Float64Array;
  recentLen: number;
  head: number;
}

/** A path segment is an identifier: all digits, or at least 8 hex digits and '-', or at least 12 characters with a digit. */
function isIdentifier(n: number, digits: number, hexDash: number): boolean {
  return n > 0 && (digits === n || (n >= 8 && hexDash === n) || (n >= 12 && digits > 0));
}

const isDigitCode = (c: number): boolean => c >= 0x30 && c <= 0x39;
const isHexLetterOrDash = (c: number): boolean => (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46) || c === 0x2d;

/**
 * The path segments of target[0, end) that look like identifiers (see
 * isIdentifier), as [start, end) pairs in ID_SEGMENTS (reused, so scanning
 * allocates nothing); returns how many. One pass over the characters: this
 * runs for every exchange.
 */
const ID_SEGMENTS: number[] = [];
function identifierSegments(target: string, end: number): number {
  let n = 0;
  let segStart = 0;
  let digits = 0;
  let hexDash = 0;
  for (let i = 0; i <= end; i++) {
    const c = i < end ? target.charCodeAt(i) : 0x2f;
    if (c === 0x2f) {
      if (isIdentifier(i - segStart, digits, hexDash)) {
        ID_SEGMENTS[2 * n] = segStart;
        ID_SEGMENTS[2 * n + 1] = i;
        n++;
      }
      segStart = i + 1;
      digits = 0;
      hexDash = 0;
    } else if (isDigitCode(c)) {
      digits++;
      hexDash++;
    } else if (isHexLetterOrDash(c)) hexDash++;
  }
  return n;
}

/** Where a request target's path ends (its query is not part of the route). */
function pathEnd(target: string): number {
  const q = target.indexOf('?');
  return q < 0 ? target.length : q;
}

/** Path segments that look like identifiers are grouped: /files/3f2a9c -> /files/{id}. */
export function routeOf(method: string, target: string): string {
  const end = pathEnd(target);
  const n = identifierSegments(target, end);
  if (n === 0) return `${method} ${target.slice(0, end)}`;
  let out = `${method} `;
  let copied = 0;
  for (let k = 0; k < n; k++) {
    out += target.slice(copied, ID_SEGMENTS[2 * k]) + '{id}';
    copied = ID_SEGMENTS[2 * k + 1]!;
  }
  return out + target.slice(copied, end);
}

// A 53-bit string hash in two 32-bit lanes (FNV-1a and a multiply-xorshift), kept in module state so that
// mixing a character allocates nothing.
let laneA = 0;
let laneB = 0;
function hashStart(): void {
  laneA = 0x811c9dc5;
  laneB = 0x6a09e667;
}
function mix(c: number): void {
  laneA = Math.imul(laneA ^ c, 0x01000193);
  laneB = Math.imul(laneB ^ c, 0x5bd1e995);
  laneB ^= laneB >>> 13;
}
const hashValue = (): number => (laneA >>> 0) * 0x200000 + (laneB >>> 11);

/**
 * A 53-bit hash of routeOf(method, target), from the same segment scan
 * without building the string: the key of the per-route statistics, which
 * are counted for every exchange. Equal routes give equal keys (it hashes
 * the route's characters: routeKey(m, t) === routeHash(routeOf(m, t))); two
 * different routes share a key with a probability of about n^2 / 2^54 for n
 * routes (at most MAX_ROUTES = 2,000: 2e-10).
 */
export function routeKey(method: string, target: string): number {
  hashStart();
  for (let i = 0; i < method.length; i++) mix(method.charCodeAt(i));
  mix(0x20);
  const end = pathEnd(target);
  const n = identifierSegments(target, end);
  // The route's characters in order: the path, with each identifier segment hashed as "{id}".
  let p = 0;
  for (let k = 0; k < n; k++) {
    for (const stop = ID_SEGMENTS[2 * k]!; p < stop; p++) mix(target.charCodeAt(p));
    for (let j = 0; j < 4; j++) mix(ID_CHARS[j]!);
    p = ID_SEGMENTS[2 * k + 1]!;
  }
  for (; p < end; p++) mix(target.charCodeAt(p));
  return hashValue();
}
const ID_CHARS = [0x7b, 0x69, 0x64, 0x7d]; // "{id}"

/** The same hash over a route string: routeKey(m, t) === routeHash(routeOf(m, t)). */
export function routeHash(route: string): number {
  hashStart();
  for (let i = 0; i < route.length; i++) mix(route.charCodeAt(i));
  return hashValue();
}

/** Runs the per-connection rules as connections finish, and the capture-wide rules at the end. */
export class Diagnoser {
  private readonly o: RuleOptions;
  private readonly aborts: ClientAbort[] = [];
  private abortsDropped = 0;
  /** By routeKey() (a 53-bit hash of the route; routeOf() is built once per route, not per exchange). */
  private readonly routes = new Map<number, RouteStats>();
  private readonly pairs = new Map<string, PairState>();
  private lastTs: Micros = 0;
  /** Sockets that carried several requests, all complete. */
  private quietReuse = 0;

  constructor(o: DiagnoseOptions = {}) {
    this.o = {
      ...DEFAULT_RULES,
      ...(o.slowFirstByte !== undefined ? { slowFirstByte: o.slowFirstByte } : {}),
      ...(o.halfCloseAfter !== undefined ? { halfCloseAfter: o.halfCloseAfter } : {}),
      showSecrets: o.showSecrets === true,
    };
  }

  /** The capture's clock: the time of the latest packet (for "by the end of the capture"). */
  setClock(ts: Micros): void {
    if (ts > this.lastTs) this.lastTs = ts;
  }

  /** Findings about one finished connection. */
  connection(rec: ConnectionRecord): Finding[] {
    if (rec.end > this.lastTs) this.lastTs = rec.end;
    const o = this.o;
    const abort = clientAbort(rec);
    const race = ruleKeepaliveRace(rec, o);
    // A race explains the client's close too: the client saw the FIN or the RST.
    const out: Finding[] = [
      ...(abort !== null && race.explained.has(abort.exchange.index) ? [] : ruleClientAbort(rec, o, abort)),
      ...race.findings,
      ...ruleServerClose(rec, o, race.explained, abort),
      ...ruleStale(rec, o),
      ...ruleHalfClose(rec, o, this.lastTs),
      ...ruleCloseIgnored(rec, o),
      ...ruleSlowFirstByte(rec, o),
      ...ruleHeartbeat(rec, o),
    ];
    // Reuse without a failure is context, not news: report it for the first sockets only, count the rest
    // (and do not build the findings that would be dropped: a chain of 50 redacted requests each).
    if (rec.exchanges.length >= 2) {
      const failing = rec.exchanges.some((ex, i) => i > 0 && ex.outcome !== 'complete');
      if (failing || ++this.quietReuse <= MAX_QUIET_REUSE) out.push(...ruleSocketReuse(rec, o));
    }
    // stale-connection explains a silent socket better than a generic abort.
    const stale = out.some((f) => f.code === 'stale-connection');
    const result = stale ? out.filter((f) => f.code !== 'client-abort-before-response') : out;
    if (abort !== null && !race.explained.has(abort.exchange.index) && !stale) {
      if (this.aborts.length < MAX_ABORTS) this.aborts.push(abort);
      else this.abortsDropped++;
    }
    this.aggregate(rec);
    return result;
  }

  /** Capture-wide findings, once all connections are finished. */
  finish(): Finding[] {
    const out = [...this.timeoutSignature(), ...this.reusePattern(), ...this.closeHonored()];
    if (this.quietReuse > MAX_QUIET_REUSE)
      out.push({
        code: 'socket-reuse',
        severity: 'info',
        connection: null,
        exchange: null,
        ts: null,
        summary: `${this.quietReuse} sockets carried several requests that all completed; the first ${MAX_QUIET_REUSE} are listed.`,
        evidence: { socketsReused: this.quietReuse, listed: MAX_QUIET_REUSE },
      });
    return out;
  }

  private aggregate(rec: ConnectionRecord): void {
    const pairKey = `${rec.client.ip} ${rec.server.ip} ${rec.server.port}`;
    let pair = this.pairs.get(pairKey);
    for (let i = 0; i < rec.exchanges.length; i++) {
      const ex = rec.exchanges[i]!;
      if (ex.method === '') continue;
      const key = routeKey(ex.method, ex.target);
      let st = this.routes.get(key);
      if (st === undefined && this.routes.size < MAX_ROUTES) {
        st = {
          route: routeOf(ex.method, ex.target),
          total: 0,
          reused: 0,
          failed: 0,
          failedReused: 0,
          failedFresh: 0,
          fresh: 0,
          previous: new Map(),
          example: `${ex.method} ${redactTarget(ex.target, this.o.showSecrets)}`,
        };
        this.routes.set(key, st);
      }
      if (st !== undefined) {
        const reused = i > 0;
        const failed = ex.outcome !== 'complete';
        st.total++;
        if (reused) st.reused++;
        else st.fresh++;
        if (failed) {
          st.failed++;
          if (reused) {
            st.failedReused++;
            const prev = rec.exchanges[i - 1]!;
            const pr = routeOf(prev.method, prev.target);
            st.previous.set(pr, (st.previous.get(pr) ?? 0) + 1);
          } else st.failedFresh++;
        }
      }
      // Connection: close bookkeeping, per client and server pair.
      if (pair === undefined) {
        // Bounded: past MAX_PAIRS the pair seen first is forgotten (its Connection: close, if any, goes unanswered).
        if (this.pairs.size >= MAX_PAIRS) this.pairs.delete(this.pairs.keys().next().value!);
        pair = {
          flagged: [],
          recentConn: new Float64Array(RECENT_REQUESTS),
          recentIndex: new Float64Array(RECENT_REQUESTS),
          recentTs: new Float64Array(RECENT_REQUESTS),
          recentLen: 0,
          head: 0,
        };
        this.pairs.set(pairKey, pair);
      }
      for (const f of pair.flagged) offerNext(f, rec.id, ex.index, ex.requestStart);
      // Remember the request; once the ring is full it replaces the oldest.
      let slot: number;
      if (pair.recentLen < RECENT_REQUESTS) slot = pair.recentLen++;
      else {
        slot = pair.head;
        pair.head = (pair.head + 1) % RECENT_REQUESTS;
      }
      pair.recentConn[slot] = rec.id;
      pair.recentIndex[slot] = ex.index;
      pair.recentTs[slot] = ex.requestStart;
      const last = i === rec.exchanges.length - 1;
      if (last && (hasConnectionClose(ex.requestHeaders) || hasConnectionClose(ex.responseHeaders))) {
        const f: Flagged = {
          conn: rec.id,
          index: ex.index,
          label: `${ex.method} ${redactTarget(ex.target, this.o.showSecrets)}`,
          ts: ex.responseEnd ?? ex.requestStart,
          next: null,
        };
        // Oldest first, as they came (ties in time go to the one offered first).
        for (let k = 0; k < pair.recentLen; k++) {
          const j = (pair.head + k) % RECENT_REQUESTS;
          offerNext(f, pair.recentConn[j]!, pair.recentIndex[j]!, pair.recentTs[j]!);
        }
        if (pair.flagged.length < 1000) pair.flagged.push(f);
      }
    }
  }

  private timeoutSignature(): Finding[] {
    if (this.aborts.length === 0) return [];
    const clocks = [
      { name: 'request-start', values: this.aborts.map((a) => a.sinceRequestStart) },
      {
        name: 'last-activity',
        values: this.aborts.map((a) => a.sinceLastByte).filter((v): v is number => v !== null),
      },
    ];
    const best = clocks
      .map((c) => ({ name: c.name, ...largestCluster(c.values) }))
      .filter((c) => c.count > 0)
      .sort((a, b) => b.count - a.count || a.spread - b.spread);
    if (best.length === 0) return [];
    const top = best[0]!;
    // Under 100 ms no timer is at work (a client that half-closes right after its request, say).
    if (top.center < MIN_TIMER) return [];
    const other = best[1];
    const both = other !== undefined && other.count === top.count && Math.abs(other.center - top.center) <= SIGNATURE_TOLERANCE;
    const n = this.aborts.length;
    const clockText = both
      ? 'after the request started, which was also the socket\'s last activity'
      : top.name === 'request-start'
        ? 'after the request started (data kept flowing, so not an idle timer)'
        : 'after the socket\'s last byte in either direction (an idle timer: it restarts on every byte)';
    const rounded = (top.center / 1e6).toFixed(2);
    return [
      {
        code: 'client-timeout-signature',
        severity: 'warning',
        connection: null,
        exchange: null,
        ts: null,
        summary:
          `${top.count} of ${n} client abort${n > 1 ? 's' : ''} came ${rounded} s ${clockText}` +
          `${top.count > 1 ? ` (spread ${fmtS(top.spread)})` : ''}: look for a ${rounded} s timer in the client (a request timeout or a socket idle timeout), not in the server.`,
        evidence: {
          clock: both ? 'request-start+last-activity' : top.name,
          delay: s6(top.center),
          count: top.count,
          aborts: n,
          spread: s6(top.spread),
          tolerance: s6(SIGNATURE_TOLERANCE),
          signature: top.count > 1,
          values: top.members.slice(0, 50).map(s6),
          connections: this.aborts.slice(0, 50).map((a) => a.conn),
          ...(this.abortsDropped ? { abortsNotKept: this.abortsDropped } : {}),
        },
      },
    ];
  }

  private reusePattern(): Finding[] {
    const out: Finding[] = [];
    for (const st of this.routes.values()) {
      const route = st.route;
      // A pattern needs a count: several failures, or fresh sockets to compare with. One failure on a
      // reused socket is told by the per-socket finding.
      if (st.failedReused === 0 || (st.failed < 2 && st.fresh === 0)) continue;
      const prev = [...st.previous.entries()].sort((a, b) => b[1] - a[1])[0]!;
      const freshPart = st.fresh > 0 ? `; ${st.failedFresh} of ${st.fresh} on fresh sockets failed` : '; none went out on a fresh socket';
      out.push({
        code: 'socket-reuse',
        severity: 'info',
        connection: null,
        exchange: null,
        ts: null,
        summary: `${st.failedReused} of ${st.failed} failed ${route} reused a socket${prev[1] === st.failedReused ? ` that had carried ${prev[0]}` : ''} (${st.reused} of ${st.total} ${route} reused one)${freshPart}.`,
        evidence: {
          route,
          total: st.total,
          failed: st.failed,
          reused: st.reused,
          fresh: st.fresh,
          failedReused: st.failedReused,
          failedFresh: st.failedFresh,
          previousOnSocket: Object.fromEntries(st.previous),
        },
      });
    }
    return out;
  }

  private closeHonored(): Finding[] {
    const out: Finding[] = [];
    let extra = 0;
    for (const pair of this.pairs.values()) {
      for (const f of pair.flagged) {
        if (f.next === null) continue;
        if (out.length >= MAX_HONORED_REPORTED) {
          extra++;
          continue;
        }
        out.push({
          code: 'connection-close-honored',
          severity: 'info',
          connection: f.conn,
          exchange: f.index,
          ts: f.ts,
          summary: `After "Connection: close" on ${f.label}, the client's next request went out on a fresh socket (connection ${f.next.conn}, ${fmtS(f.next.ts - f.ts)} later).`,
          evidence: { nextConnection: f.next.conn, nextExchange: f.next.index, gap: s6(f.next.ts - f.ts) },
        });
      }
    }
    if (extra > 0) out[out.length - 1]!.evidence.moreNotListed = extra;
    return out;
  }
}

/** A request of the pair (connection, index, start): the earliest at or after f.ts on another connection is f's next. */
function offerNext(f: Flagged, conn: number, index: number, ts: Micros): void {
  if (conn === f.conn || ts < f.ts) return;
  if (f.next === null || ts < f.next.ts) f.next = { conn, index, ts };
}

/** The largest group of values within ±SIGNATURE_TOLERANCE of its middle. */
function largestCluster(values: number[]): { count: number; center: number; spread: number; members: number[] } {
  const v = [...values].sort((a, b) => a - b);
  let best = { count: 0, center: 0, spread: 0, members: [] as number[] };
  let j = 0;
  for (let i = 0; i < v.length; i++) {
    while (v[i]! - v[j]! > 2 * SIGNATURE_TOLERANCE) j++;
    const count = i - j + 1;
    const spread = v[i]! - v[j]!;
    if (count > best.count || (count === best.count && spread < best.spread)) {
      const members = v.slice(j, i + 1);
      best = { count, center: members[Math.floor(members.length / 2)]!, spread, members };
    }
  }
  return best;
}
