/**
 * Per-connection diagnosis rules. Each rule looks at one finished
 * ConnectionRecord and returns findings; docs/findings.md defines every code.
 * Evidence durations are seconds (6 decimals), times are epoch seconds.
 */
import type { ConnectionRecord } from '../correlate/index.js';
import { redactTarget } from '../report/redact.js';
import type { CloseEvent, Exchange, Micros } from '../types.js';
import type { Finding } from './finding.js';

export interface RuleOptions {
  /** slow-first-byte threshold (µs). */
  slowFirstByte: Micros;
  /** half-close-stuck: the peer did not close within this long after a FIN (µs). */
  halfCloseAfter: Micros;
  /** keepalive-race: a request this close to the server's FIN (µs) crossed it. */
  raceWindow: Micros;
  /** keepalive-race: the server's FIN must follow at least this much idle time (µs). */
  raceMinIdle: Micros;
  /** heartbeat-bytes: a response that trickles for at least this long (µs) with few bytes. */
  heartbeatMin: Micros;
  showSecrets: boolean;
}

export const DEFAULT_RULES: RuleOptions = {
  slowFirstByte: 5_000_000,
  halfCloseAfter: 2_000_000,
  raceWindow: 1_000_000,
  raceMinIdle: 1_000_000,
  heartbeatMin: 1_000_000,
  showSecrets: false,
};

/** Seconds with 6 decimals, for evidence. */
export function s6(us: Micros): number {
  return Math.round(us) / 1e6;
}

/** "5.001 s" in sentences. */
export function fmtS(us: Micros): string {
  const v = us / 1e6;
  if (Math.abs(us) < 1000) return `${Math.round(us)} µs`;
  if (Math.abs(v) >= 100) return `${v.toFixed(0)} s`;
  if (Math.abs(v) >= 1) return `${v.toFixed(3)} s`;
  return `${(us / 1000).toFixed(1)} ms`;
}

export function label(ex: Exchange, o: RuleOptions): string {
  return `${ex.method || '?'} ${redactTarget(ex.target, o.showSecrets)}`;
}

/** Path without the query, for grouping requests by route. */
export function route(ex: Exchange): string {
  const q = ex.target.indexOf('?');
  return `${ex.method} ${q < 0 ? ex.target : ex.target.slice(0, q)}`;
}

function exRef(ex: Exchange, o: RuleOptions): Record<string, unknown> {
  return {
    index: ex.index,
    method: ex.method,
    target: redactTarget(ex.target, o.showSecrets),
    status: ex.status,
    userAgent: ex.requestHeaders['user-agent'] ?? null,
  };
}

/**
 * Bytes of the exchange the capture does not hold (snaplen, capture loss) make
 * its timing unknowable: the first response byte may be among them. Such
 * exchanges are not judged; the gap shows in the connection's gapBytes.
 */
function judgeable(ex: Exchange): boolean {
  return ex.gapBytes === 0;
}

function hasConnectionClose(headers: Record<string, string>): boolean {
  const v = headers['connection'];
  // The usual values first (this runs for every message): no regular expression for them.
  if (v === undefined || v === 'keep-alive' || v === 'Keep-Alive') return false;
  if (v === 'close') return true;
  return /(^|,)\s*close\s*(,|$)/i.test(v);
}

/** The exchange is still waiting for (part of) its response at time t. */
function inFlightAt(ex: Exchange, t: Micros): boolean {
  return ex.requestStart <= t && (ex.responseEnd === null || ex.responseEnd > t);
}

function noResponseByteAt(ex: Exchange, t: Micros): boolean {
  return ex.requestStart <= t && (ex.responseStart === null || ex.responseStart > t);
}

function firstClose(rec: ConnectionRecord, by: 'client' | 'server', kind?: 'FIN' | 'RST'): CloseEvent | null {
  for (const c of rec.closes) if (c.by === by && (kind === undefined || c.kind === kind)) return c;
  return null;
}

/** A client abort: the first client FIN/RST while a request had no response byte yet. */
export interface ClientAbort {
  conn: number;
  exchange: Exchange;
  previous: Exchange | null;
  close: CloseEvent;
  sinceRequestStart: Micros;
  sinceLastByte: Micros | null;
  sincePreviousEnd: Micros | null;
  /** The socket had carried an earlier exchange (keep-alive reuse). */
  reused: boolean;
}

export function clientAbort(rec: ConnectionRecord): ClientAbort | null {
  const c = firstClose(rec, 'client');
  if (c === null) return null;
  for (let i = 0; i < rec.exchanges.length; i++) {
    const ex = rec.exchanges[i]!;
    if (!noResponseByteAt(ex, c.ts) || !judgeable(ex)) continue;
    const previous = i > 0 ? rec.exchanges[i - 1]! : null;
    return {
      conn: rec.id,
      exchange: ex,
      previous,
      close: c,
      sinceRequestStart: c.ts - ex.requestStart,
      sinceLastByte: c.lastData !== null ? c.ts - c.lastData : null,
      sincePreviousEnd: previous?.responseEnd != null ? c.ts - previous.responseEnd : null,
      reused: i > 0,
    };
  }
  return null;
}

export function ruleClientAbort(rec: ConnectionRecord, o: RuleOptions, abort: ClientAbort | null): Finding[] {
  if (abort === null) return [];
  const { exchange: ex, previous, close } = abort;
  const parts = [
    `The client closed the socket (${close.kind}) ${fmtS(abort.sinceRequestStart)} into ${label(ex, o)}, before any response byte`,
  ];
  if (abort.sinceLastByte !== null) parts.push(`${fmtS(abort.sinceLastByte)} after the socket's last byte`);
  if (previous !== null) {
    const ua = previous.requestHeaders['user-agent'];
    parts.push(`the socket had first carried ${label(previous, o)}${ua ? ` (${ua})` : ''}`);
  }
  return [
    {
      code: 'client-abort-before-response',
      severity: 'error',
      connection: rec.id,
      exchange: ex.index,
      ts: close.ts,
      summary: `${parts.join('; ')}.`,
      evidence: {
        closeKind: close.kind,
        closeTs: s6(close.ts),
        clientPort: rec.client.port,
        request: exRef(ex, o),
        requestStart: s6(ex.requestStart),
        sinceRequestStart: s6(abort.sinceRequestStart),
        sinceRequestEnd: ex.requestEnd !== null ? s6(close.ts - ex.requestEnd) : null,
        sinceLastByte: abort.sinceLastByte !== null ? s6(abort.sinceLastByte) : null,
        sincePreviousExchangeEnd: abort.sincePreviousEnd !== null ? s6(abort.sincePreviousEnd) : null,
        previousExchange: previous !== null ? exRef(previous, o) : null,
        reusedSocket: abort.reused,
      },
    },
  ];
}

/** keepalive-race's advice, the same for both shapes. */
const RACE_ADVICE = "Make the client's keep-alive idle timeout shorter than the server's (or retry idempotent requests on a fresh socket).";

/**
 * keepalive-race: the server closed an idle kept-alive connection at about
 * the time the client sent a new request on it; the request got an RST or no
 * response. Two shapes on the wire:
 * - FIN: the server's FIN and the request crossed (the server's kernel then
 *   answers the request with RST);
 * - RST, no FIN: the request arrived just before the server closed the
 *   socket, so the server closed it with the request unread, and a close with
 *   unread data is an RST (RFC 9293 section 3.10.4, RFC 2525 section 2.17).
 *   uvicorn does this when its keep-alive timer runs late, after blocking work
 *   in an async handler held its event loop (lab scenario m).
 * Either way the socket had been idle (at least raceMinIdle) before the
 * request, the close came within raceWindow of it, and no response byte came.
 */
export function ruleKeepaliveRace(rec: ConnectionRecord, o: RuleOptions): { findings: Finding[]; explained: Set<number> } {
  const explained = new Set<number>();
  const close = firstClose(rec, 'server');
  if (close === null) return { findings: [], explained };
  const byFin = close.kind === 'FIN';
  // The RST shape: not when the client closed first (the RST then answers the client).
  const clientFirst = firstClose(rec, 'client');
  if (!byFin && clientFirst !== null && clientFirst.ts <= close.ts) return { findings: [], explained };
  const findings: Finding[] = [];
  for (let i = 0; i < rec.exchanges.length; i++) {
    const ex = rec.exchanges[i]!;
    if (ex.outcome === 'complete' || ex.responseStart !== null || !judgeable(ex)) continue;
    const gap = ex.requestStart - close.ts;
    if (Math.abs(gap) > o.raceWindow) continue;
    // The RST shape needs the request on the wire before the reset.
    if (!byFin && gap > 0) continue;
    // The close must end an idle connection: nothing in flight before this request.
    const prev = i > 0 ? rec.exchanges[i - 1]! : null;
    const idleFrom = prev?.responseEnd ?? close.lastData ?? rec.start;
    const idle = Math.min(close.ts, ex.requestStart) - idleFrom;
    if (idle < o.raceMinIdle) continue;
    // The RST shape: the previous exchange on the socket must have finished (an idle socket, not one busy with
    // an unfinished response that the reset cut).
    if (!byFin && prev !== null && prev.responseEnd === null) continue;
    const rst = byFin ? (rec.closes.find((c) => c.kind === 'RST' && c.ts >= Math.min(close.ts, ex.requestStart)) ?? null) : close;
    explained.add(ex.index);
    const idleBeforeFin = byFin ? close.ts - (close.lastData ?? idleFrom) : null;
    const idleBeforeRequest = ex.requestStart - idleFrom;
    findings.push({
      code: 'keepalive-race',
      severity: 'error',
      connection: rec.id,
      exchange: ex.index,
      ts: close.ts,
      summary: byFin
        ? `The server closed the idle kept-alive socket (FIN after ${fmtS(idleBeforeFin!)} idle) ` +
          `${gap >= 0 ? `${fmtS(gap)} before` : `${fmtS(-gap)} after`} the client sent ${label(ex, o)} on it; ` +
          `the request got ${rst ? `an RST from the ${rst.by}` : 'no response'}. ${RACE_ADVICE}`
        : `The server reset the kept-alive socket ${fmtS(-gap)} after the client sent ${label(ex, o)} on it, after ${fmtS(idleBeforeRequest)} idle, ` +
          `with no FIN and no response: it closed the socket with the request unread, as a keep-alive timer firing just as the request arrives does ` +
          `(a late timer: an event loop held by blocking work makes this window wider). ${RACE_ADVICE}`,
      evidence: {
        serverCloseKind: close.kind,
        serverCloseTs: s6(close.ts),
        idleBeforeRequest: s6(idleBeforeRequest),
        requestMinusClose: s6(gap),
        serverFinTs: byFin ? s6(close.ts) : null,
        serverIdleBeforeFin: idleBeforeFin !== null ? s6(idleBeforeFin) : null,
        requestStart: s6(ex.requestStart),
        requestMinusFin: byFin ? s6(gap) : null,
        request: exRef(ex, o),
        previousExchange: prev !== null ? exRef(prev, o) : null,
        rst: rst ? { by: rst.by, ts: s6(rst.ts) } : null,
        clientPort: rec.client.port,
      },
    });
  }
  return { findings, explained };
}

/** server-reset and server-close-mid-response: the server ended the connection while an exchange was in flight. */
export function ruleServerClose(rec: ConnectionRecord, o: RuleOptions, explained: Set<number>, abort: ClientAbort | null): Finding[] {
  const out: Finding[] = [];
  const rst = firstClose(rec, 'server', 'RST');
  const fin = firstClose(rec, 'server', 'FIN');
  const clientFirst = firstClose(rec, 'client');
  for (const [close, code] of [
    [rst, 'server-reset'],
    [fin, 'server-close-mid-response'],
  ] as const) {
    if (close === null) continue;
    // After the client closed first, the server's RST/FIN is an answer, not the cause.
    if (clientFirst !== null && clientFirst.ts < close.ts && abort !== null) continue;
    for (const ex of rec.exchanges) {
      if (explained.has(ex.index) || !inFlightAt(ex, close.ts) || !judgeable(ex)) continue;
      // A close-delimited body ends with the server's FIN: that is how it completes.
      if (code === 'server-close-mid-response' && ex.outcome === 'complete') continue;
      const started = ex.responseStart !== null && ex.responseStart <= close.ts;
      out.push({
        code,
        severity: 'error',
        connection: rec.id,
        exchange: ex.index,
        ts: close.ts,
        summary:
          `The server ${close.kind === 'RST' ? 'reset' : 'closed'} the connection ${fmtS(close.ts - ex.requestStart)} into ${label(ex, o)}, ` +
          (started
            ? `after ${ex.responseBodyBytes} body bytes of ${ex.status !== null ? `a ${ex.status} response` : 'a response without a status line (HTTP/0.9)'} that was not finished.`
            : 'before any response byte.'),
        evidence: {
          closeKind: close.kind,
          closeTs: s6(close.ts),
          sinceRequestStart: s6(close.ts - ex.requestStart),
          responseStarted: started,
          responseBodyBytes: ex.responseBodyBytes,
          status: ex.status,
          request: exRef(ex, o),
          sinceLastByte: close.lastData !== null ? s6(close.ts - close.lastData) : null,
          clientPort: rec.client.port,
        },
      });
      break;
    }
  }
  return out;
}

/** half-close-stuck: one side sent FIN and the other did not close within the threshold (or by the end of the capture). */
export function ruleHalfClose(rec: ConnectionRecord, o: RuleOptions, captureEnd: Micros): Finding[] {
  const first = rec.closes[0];
  if (first === undefined || first.kind !== 'FIN') return [];
  const peer: 'client' | 'server' = first.by === 'client' ? 'server' : 'client';
  const peerClose = firstClose(rec, peer);
  // An RST from the side that sent the FIN ends the connection for both: nothing is left in CLOSE-WAIT.
  if (peerClose === null && firstClose(rec, first.by, 'RST') !== null) return [];
  // A one-sided capture (the peer's packets are not in it) cannot tell whether the peer closed.
  if (rec.packets[peer === 'client' ? 0 : 1] === 0) return [];
  // A server that got the client's FIN while still working on a request closes when it is done: that is not stuck.
  if (peer === 'server' && rec.exchanges.some((ex) => inFlightAt(ex, first.ts))) return [];
  const waited = (peerClose?.ts ?? captureEnd) - first.ts;
  if (waited < o.halfCloseAfter) return [];
  const never = peerClose === null;
  // The process holding the CLOSE-WAIT socket, when watch --attribute saw it (eBPF owner or ss).
  const holder = first.peer;
  const proc = holder?.pid != null ? `pid ${holder.pid}${holder.comm !== null ? ` ${holder.comm}` : ''}` : (holder?.comm ?? null);
  return [
    {
      code: 'half-close-stuck',
      severity: 'warning',
      connection: rec.id,
      exchange: null,
      ts: first.ts,
      summary: never
        ? `The ${first.by} sent FIN and the ${peer} never closed its side in the ${fmtS(waited)} the capture went on: the ${peer} (port ${peer === 'client' ? rec.client.port : rec.server.port}${proc !== null ? `, ${proc}` : ''}) sat in CLOSE-WAIT.`
        : `The ${first.by} sent FIN and the ${peer} took ${fmtS(waited)} to close its side: the ${peer}${proc !== null ? ` (${proc})` : ''} sat in CLOSE-WAIT that long.`,
      evidence: {
        finBy: first.by,
        finTs: s6(first.ts),
        closeWaitSide: peer,
        closeWaitEndpoint: peer === 'client' ? rec.client : rec.server,
        peerCloseTs: peerClose ? s6(peerClose.ts) : null,
        waited: s6(waited),
        closedByEndOfCapture: !never,
        ...(holder !== undefined
          ? {
              closeWaitProcess: holder.pid !== null || holder.comm !== null ? { pid: holder.pid, comm: holder.comm } : null,
              ss: holder.ss !== null ? { state: holder.ss.state, process: holder.ss.process, pid: holder.ss.pid, seenFor: s6(holder.ss.seenFor) } : null,
            }
          : {}),
      },
    },
  ];
}

/** stale-connection: a request on a reused connection got no ACK from the server, only retransmissions, then a timeout or RST. */
export function ruleStale(rec: ConnectionRecord, o: RuleOptions): Finding[] {
  for (let i = 0; i < rec.exchanges.length; i++) {
    const ex = rec.exchanges[i]!;
    if (ex.responseStart !== null || !judgeable(ex)) continue;
    const reused = i > 0 || !rec.synSeen;
    if (!reused) continue;
    const serverLive = rec.lastLiveTs[1];
    if (serverLive !== null && serverLive >= ex.requestStart) continue;
    const retrans = rec.lastRetransTs[0];
    if (retrans === null || retrans < ex.requestStart) continue;
    const idle = i > 0 && rec.exchanges[i - 1]!.responseEnd !== null ? ex.requestStart - rec.exchanges[i - 1]!.responseEnd! : null;
    const end = rec.closes.find((c) => c.ts >= ex.requestStart) ?? null;
    return [
      {
        code: 'stale-connection',
        severity: 'error',
        connection: rec.id,
        exchange: ex.index,
        ts: ex.requestStart,
        summary:
          `${label(ex, o)} went out on a pooled socket${idle !== null ? ` idle for ${fmtS(idle)}` : ''} and the server never acknowledged it: ` +
          `${rec.retransmissions[0]} retransmissions, then ${end ? `${end.by} ${end.kind} after ${fmtS(end.ts - ex.requestStart)}` : 'silence'}. ` +
          `Something between the two (a NAT, load balancer or firewall) dropped the connection's state; use a pool idle timeout shorter than the middlebox's, or TCP keep-alive.`,
        evidence: {
          request: exRef(ex, o),
          requestStart: s6(ex.requestStart),
          idleBefore: idle !== null ? s6(idle) : null,
          clientRetransmissions: rec.retransmissions[0],
          serverLastPacketBefore: serverLive !== null ? s6(serverLive) : null,
          end: end ? { by: end.by, kind: end.kind, ts: s6(end.ts), sinceRequestStart: s6(end.ts - ex.requestStart) } : null,
          clientPort: rec.client.port,
        },
      },
    ];
  }
  return [];
}

/** connection-close-ignored: a message said `Connection: close` and another request still went on the connection. */
export function ruleCloseIgnored(rec: ConnectionRecord, o: RuleOptions): Finding[] {
  for (let i = 0; i + 1 < rec.exchanges.length; i++) {
    const ex = rec.exchanges[i]!;
    const inReq = hasConnectionClose(ex.requestHeaders);
    const inResp = hasConnectionClose(ex.responseHeaders);
    if (!inReq && !inResp) continue;
    const next = rec.exchanges[i + 1]!;
    return [
      {
        code: 'connection-close-ignored',
        severity: 'warning',
        connection: rec.id,
        exchange: next.index,
        ts: next.requestStart,
        summary: `The ${inResp ? 'response' : 'request'} to ${label(ex, o)} said "Connection: close", yet ${label(next, o)} went out on the same socket ${fmtS(next.requestStart - (ex.responseEnd ?? ex.requestStart))} later.`,
        evidence: {
          closeIn: inResp ? 'response' : 'request',
          exchange: exRef(ex, o),
          next: exRef(next, o),
          gap: s6(next.requestStart - (ex.responseEnd ?? ex.requestStart)),
        },
      },
    ];
  }
  return [];
}

/** heartbeat-bytes: the response sent early bytes long before completing (whitespace keep-alive, streamed progress). */
export function ruleHeartbeat(rec: ConnectionRecord, o: RuleOptions): Finding[] {
  const out: Finding[] = [];
  for (const ex of rec.exchanges) {
    // Only a response that completed: an unfinished one is a failure the close rules describe.
    if (ex.responseStart === null || ex.responseEnd === null || !judgeable(ex)) continue;
    const end = ex.responseEnd;
    const trickle = end - ex.responseStart;
    // Few bytes over a long time: bytes sent to keep the exchange alive, not a large download.
    if (trickle < o.heartbeatMin || ex.responseBodyBytes > 64 * 1024) continue;
    const base = ex.requestEnd ?? ex.requestStart;
    out.push({
      code: 'heartbeat-bytes',
      severity: 'info',
      connection: rec.id,
      exchange: ex.index,
      ts: ex.responseStart,
      summary: `${label(ex, o)} got its first response byte ${fmtS(ex.responseStart - base)} after the request and completed ${fmtS(end - base)} after it: early bytes kept the exchange alive.`,
      evidence: {
        request: exRef(ex, o),
        timeToFirstByte: s6(ex.responseStart - base),
        timeToComplete: s6(end - base),
        responseBodyBytes: ex.responseBodyBytes,
      },
    });
  }
  return out;
}

/** slow-first-byte: the first response byte came later than the threshold after the request was sent. */
export function ruleSlowFirstByte(rec: ConnectionRecord, o: RuleOptions): Finding[] {
  const out: Finding[] = [];
  for (const ex of rec.exchanges) {
    if (ex.responseStart === null || !judgeable(ex)) continue;
    const base = ex.requestEnd ?? ex.requestStart;
    const ttfb = ex.responseStart - base;
    if (ttfb <= o.slowFirstByte) continue;
    out.push({
      code: 'slow-first-byte',
      severity: 'warning',
      connection: rec.id,
      exchange: ex.index,
      ts: ex.responseStart,
      summary: `${label(ex, o)} waited ${fmtS(ttfb)} for its first response byte (threshold ${fmtS(o.slowFirstByte)}); a client or proxy timeout near that value would cut it off.`,
      evidence: { request: exRef(ex, o), timeToFirstByte: s6(ttfb), threshold: s6(o.slowFirstByte) },
    });
  }
  return out;
}

/** socket-reuse (per socket): which requests a socket carried, in order, when it carried more than one. */
export function ruleSocketReuse(rec: ConnectionRecord, o: RuleOptions): Finding[] {
  if (rec.exchanges.length < 2) return [];
  const failedAt = rec.exchanges.findIndex((ex, i) => i > 0 && ex.outcome !== 'complete');
  const chain = rec.exchanges.slice(0, 8).map((ex) => label(ex, o));
  const more = rec.exchanges.length > 8 ? ` and ${rec.exchanges.length - 8} more` : '';
  const failed = failedAt >= 0 ? rec.exchanges[failedAt]! : null;
  return [
    {
      code: 'socket-reuse',
      severity: 'info',
      connection: rec.id,
      exchange: failed !== null ? failed.index : rec.exchanges[1]!.index,
      ts: failed !== null ? failed.requestStart : rec.exchanges[1]!.requestStart,
      summary:
        `Socket ${rec.client.port} carried ${chain.join(' then ')}${more}` +
        (failed !== null ? `; ${label(failed, o)} (request ${failedAt + 1} on the socket) did not complete.` : '.'),
      evidence: {
        clientPort: rec.client.port,
        requests: rec.exchanges.length,
        failedIndex: failed !== null ? failed.index : null,
        chain: rec.exchanges.slice(0, 50).map((ex) => ({ ...exRef(ex, o), outcome: ex.outcome })),
      },
    },
  ];
}

export { hasConnectionClose };
