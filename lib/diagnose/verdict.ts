/**
 * The verdict: what happened, how sure, what to change, in words an on-call
 * engineer reads in ten seconds. Built from the findings, most decisive first.
 */
import type { Finding } from './finding.js';

export interface Verdict {
  /** What happened, one or two sentences. */
  headline: string;
  /** How sure: high when the timing is exact or repeats, medium when it rests on one event. */
  confidence: 'high' | 'medium' | 'low';
  /** What to change. */
  advice: string;
  /** The finding codes it rests on. */
  basedOn: string[];
  /** How many findings of the leading code. */
  occurrences: number;
}

type Ev = Record<string, any>;

function sec(v: unknown): string {
  return typeof v === 'number' ? `${v.toFixed(v >= 10 ? 1 : 2)} s` : '?';
}

function nearWholeSecond(v: unknown): boolean {
  return typeof v === 'number' && v >= 1 && Math.abs(v - Math.round(v)) <= 0.02;
}

function req(e: Ev | null | undefined): string {
  return e ? `${e.method} ${e.target}` : '?';
}

/** The leading finding code decides the story; the others add to it. */
const ORDER = [
  'keepalive-race',
  'stale-connection',
  'client-abort-before-response',
  'server-reset',
  'server-close-mid-response',
  'half-close-stuck',
  'connection-close-ignored',
  'slow-first-byte',
];

export function buildVerdict(findings: Finding[]): Verdict | null {
  const by = new Map<string, Finding[]>();
  for (const f of findings) {
    const list = by.get(f.code) ?? [];
    list.push(f);
    by.set(f.code, list);
  }
  const lead = ORDER.find((c) => by.has(c));
  if (lead === undefined) return null;
  const list = by.get(lead)!;
  const f = list[0]!;
  const e = f.evidence as Ev;
  const n = list.length;
  const times = n > 1 ? ` (${n} times)` : '';
  switch (lead) {
    case 'client-abort-before-response': {
      const sig = by.get('client-timeout-signature')?.[0];
      const se = (sig?.evidence ?? {}) as Ev;
      const idle = e.sinceLastByte;
      const idleTimer = se.clock === 'last-activity' || se.clock === 'request-start+last-activity';
      const prev = e.previousExchange as Ev | null;
      const parts = [
        `The client closed the socket ${sec(e.sinceRequestStart)} into ${req(e.request)}${times}` +
          (idle !== null && idle !== undefined ? `, ${sec(idle)} after the socket's last byte` : '') +
          `: a client ${idleTimer ? 'idle timer' : 'timeout'}, not the server`,
      ];
      if (prev) parts.push(`the socket had carried ${req(prev)}${prev.userAgent ? ` from ${prev.userAgent}` : ''} first`);
      const delay = typeof se.delay === 'number' ? se.delay : e.sinceRequestStart;
      const high = (se.count ?? 0) > 1 || nearWholeSecond(delay);
      const axios = typeof prev?.userAgent === 'string' && /^axios\//i.test(prev.userAgent);
      const advice = prev
        ? `Send the first response byte before ${sec(delay)} (heartbeat bytes), or close the socket after ${req(prev)} (Connection: close), or give the slow call its own agent. ` +
          `Look for a ${sec(delay)} idle timeout on the pooled socket (Node 20's default agent arms one) and for what the earlier call left on the socket` +
          (axios ? ': axios (through follow-redirects) leaves a listener that destroys the socket when that timer fires.' : '.')
        : `Find the client's ${sec(delay)} timer (request timeout, socket idle timeout, proxy timeout) and raise it above the server's response time, or send the first response byte sooner.`;
      return {
        headline: `${parts.join('; ')}.`,
        confidence: high ? 'high' : 'medium',
        advice,
        basedOn: sig ? [lead, 'client-timeout-signature'] : [lead],
        occurrences: n,
      };
    }
    case 'keepalive-race':
      if (e.serverCloseKind === 'RST')
        return {
          headline: `The server reset an idle kept-alive socket, ${sec(e.idleBeforeRequest)} idle, just as the client reused it for ${req(e.request)}${times}: a keep-alive race, the server closed the socket with the request unread (RST, no FIN).`,
          confidence: n > 1 ? 'high' : 'medium',
          advice: `Make the client's pooled-socket idle timeout shorter than the server's keep-alive timeout (the socket had been idle ${sec(e.idleBeforeRequest)}), or raise the server's; retry idempotent requests on a fresh socket. If that idle time is already past the server's timeout, its timer ran late: look for blocking work in the server's async handlers.`,
          basedOn: [lead],
          occurrences: n,
        };
      return {
        headline: `The server closed an idle kept-alive socket after ${sec(e.serverIdleBeforeFin)} just as the client reused it for ${req(e.request)}${times}: a keep-alive race, the request crossed the server's FIN.`,
        confidence: n > 1 || nearWholeSecond(e.serverIdleBeforeFin) ? 'high' : 'medium',
        advice: `Make the client's pooled-socket idle timeout shorter than the server's keep-alive timeout (${sec(e.serverIdleBeforeFin)}), or raise the server's; retry idempotent requests on a fresh socket.`,
        basedOn: [lead],
        occurrences: n,
      };
    case 'stale-connection':
      return {
        headline: `${req(e.request)} went out on a pooled socket the server no longer knew${times}: no ACK, only retransmissions. A middlebox (NAT, load balancer, firewall) dropped the connection's state while it sat idle.`,
        confidence: 'medium',
        advice: 'Use a pool idle timeout shorter than the middlebox idle timeout, or enable TCP keep-alive on pooled sockets.',
        basedOn: [lead],
        occurrences: n,
      };
    case 'server-reset':
    case 'server-close-mid-response':
      return {
        headline: `The server ${e.closeKind === 'RST' ? 'reset' : 'closed'} the connection ${sec(e.sinceRequestStart)} into ${req(e.request)}${e.responseStarted ? ', in the middle of its response' : ', before any response byte'}${times}.`,
        confidence: 'high',
        advice: 'Look at the server side at that moment: a crash, a kill (OOM, deploy), a worker timeout, or a proxy in front of it. The client did nothing wrong on the wire.',
        basedOn: [lead],
        occurrences: n,
      };
    case 'half-close-stuck':
      return {
        headline: `The ${e.finBy} sent FIN and the ${e.closeWaitSide} never closed its side${times}: a socket left in CLOSE-WAIT.`,
        confidence: 'medium',
        advice: `Fix the ${e.closeWaitSide}'s code to close the socket when it reads end-of-stream (for Node, handle 'end'; avoid allowHalfOpen without a close).`,
        basedOn: [lead],
        occurrences: n,
      };
    case 'connection-close-ignored':
      return {
        headline: `A message said "Connection: close" and the client sent another request on the same socket${times}.`,
        confidence: 'medium',
        advice: 'Fix the client (or proxy) to open a new connection after Connection: close.',
        basedOn: [lead],
        occurrences: n,
      };
    default:
      return {
        headline: `${req(e.request)} waited ${sec(e.timeToFirstByte)} for its first response byte${times}.`,
        confidence: 'medium',
        advice: 'Client or proxy timeouts near that value will cut such requests off; send the first byte sooner or raise the timeouts.',
        basedOn: [lead],
        occurrences: n,
      };
  }
}
