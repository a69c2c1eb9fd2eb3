/**
 * The text report: what an on-call engineer reads in a terminal. It leads
 * with the verdict (the most severe findings), then one block per socket:
 * the requests it carried as a chain, and who closed it first.
 */
import type { Analysis } from '../lib/index.js';
import type { ConnectionRecord } from '../lib/correlate/index.js';
import { buildVerdict, type Finding } from '../lib/diagnose/index.js';
import { fmtClock, fmtDuration, redactTarget } from '../lib/report/index.js';
import type { CloseEvent, Exchange, Micros } from '../lib/types.js';

export interface TextOptions {
  showSecrets?: boolean;
  /** Sockets listed in full at most (failing ones first); default 50. */
  maxSockets?: number;
  color?: boolean;
}

const SEVERITY_ORDER = { error: 0, warning: 1, info: 2 } as const;

function paint(on: boolean, code: string, s: string): string {
  return on ? `\x1b[${code}m${s}\x1b[0m` : s;
}

/** One exchange as a link of the socket's chain: `GET /files/x 200 12ms`. */
export function exchangeLink(ex: Exchange, rec: ConnectionRecord, showSecrets: boolean): string {
  const target = shorten(redactTarget(ex.target, showSecrets), 60);
  const head = `${ex.method || '?'} ${target}`;
  switch (ex.outcome) {
    case 'complete': {
      const t = ex.responseEnd !== null ? ` ${fmtDuration(ex.responseEnd - ex.requestStart)}` : '';
      return `${head} ${ex.status ?? '-'}${t}`;
    }
    case 'incomplete-response':
      return `${head} ${ex.status ?? '-'} response cut off${closeAfter(rec, ex)}`;
    case 'no-response':
      return `${head} no response${closeAfter(rec, ex)}`;
    case 'aborted':
      return `${head} request cut off${closeAfter(rec, ex)}`;
  }
}

/** ", client FIN after 5.001s": the first close after the exchange started, timed from its start. */
function closeAfter(rec: ConnectionRecord, ex: Exchange): string {
  const c = rec.closes.find((x) => x.ts >= ex.requestStart);
  if (c === undefined) return rec.state === 'open' ? ', still open at the end of the capture' : '';
  return `, ${c.by} ${c.kind} after ${fmtDuration(c.ts - ex.requestStart)}`;
}

function plural(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

function shorten(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n - 1)}…`;
}

/** Links shown at most per socket; a long keep-alive socket shows its first and last ones and every failed one. */
const MAX_LINKS = 12;

/** The socket's requests as a chain: `GET /files/x 200 12ms -> POST /exec no response, client FIN after 5.001s`. */
function chainOf(rec: ConnectionRecord, show: boolean): string {
  const ex = rec.exchanges;
  if (ex.length <= MAX_LINKS) return ex.map((e) => exchangeLink(e, rec, show)).join(' -> ');
  const keep = new Set<number>();
  for (let i = 0; i < 3; i++) keep.add(i);
  for (let i = ex.length - 3; i < ex.length; i++) keep.add(i);
  for (let i = 0; i < ex.length && keep.size < MAX_LINKS; i++) if (ex[i]!.outcome !== 'complete') keep.add(i);
  const parts: string[] = [];
  let skipped = 0;
  for (let i = 0; i < ex.length; i++) {
    if (!keep.has(i)) {
      skipped++;
      continue;
    }
    if (skipped > 0) parts.push(`… ${skipped} more …`);
    skipped = 0;
    parts.push(exchangeLink(ex[i]!, rec, show));
  }
  return parts.join(' -> ');
}

export function socketFailing(rec: ConnectionRecord): boolean {
  return rec.state === 'reset' || rec.exchanges.some((e) => e.outcome !== 'complete');
}

/** attributedReason (lib/attribute) in words. */
const KERNEL_REASONS: Record<string, string> = {
  'no-socket': 'no socket',
  'timewait-socket': 'socket already closed, in TIME-WAIT',
  'abort-on-data': 'data after close',
  'abort-on-close': 'closed with unread data',
  'abort-on-linger': 'linger timeout',
  state: 'abortive close (SO_LINGER 0)',
  'keepalive-timeout': 'keep-alive timeout',
};

/** " sent by pid 41 python3", " sent by the kernel: no socket": who sent a close, when --attribute found out. */
export function closeSender(c: CloseEvent): string {
  if (c.attributed === undefined) return '';
  const who = c.pid !== undefined ? `pid ${c.pid}${c.comm !== undefined ? ` ${c.comm}` : ''}` : (c.comm ?? null);
  const reason = c.attributedReason;
  const why = reason !== undefined ? (KERNEL_REASONS[reason] ?? reason) : null;
  switch (c.attributed) {
    case 'process':
      return ` sent by ${who ?? 'a process'}${why !== null ? ` (${why})` : ''}`;
    case 'owner':
      return ` sent by the kernel for ${who ?? 'the socket\'s owner'}${why !== null ? ` (${why})` : ''}`;
    case 'kernel':
      if (reason === 'process-exited') return ` sent by the kernel as ${who ?? 'its process'} exited`;
      return ` sent by the kernel${why !== null ? `: ${why}` : ''}${who !== null ? ` (owner was ${who})` : ''}`;
  }
}

/** "client FIN first at 17:52:06.130512 (+5.001s)" */
function closedLine(rec: ConnectionRecord): string {
  const first = rec.closes[0];
  const span = `lasted ${fmtDuration(rec.end - rec.start)}`;
  if (first === undefined) return rec.state === 'open' ? `still open at the end of the capture, ${span}` : span;
  const others = rec.closes
    .slice(1)
    .map((c) => `${c.by} ${c.kind} +${fmtDuration(c.ts - first.ts)}${closeSender(c)}`)
    .join(', ');
  return `${first.by} ${first.kind} first at ${fmtClock(first.ts)}${closeSender(first)}${others ? ` (then ${others})` : ''}, ${span}`;
}

export function renderSocket(rec: ConnectionRecord, o: TextOptions = {}): string {
  const color = o.color === true;
  const show = o.showSecrets === true;
  const fail = socketFailing(rec);
  const title = `socket ${rec.client.ip}:${rec.client.port} -> ${rec.server.ip}:${rec.server.port}`;
  const lines = [
    `${paint(color, fail ? '31;1' : '1', title)}  #${rec.id} from ${fmtClock(rec.start)}  ${rec.history}`,
  ];
  if (rec.exchanges.length > 0) {
    lines.push(`  ${chainOf(rec, show)}`);
  } else if (rec.protocol !== 'none' && rec.protocol !== 'http') {
    lines.push(`  ${rec.protocol} payload, not HTTP/1.x`);
  } else if (rec.bytes[0] + rec.bytes[1] === 0) {
    lines.push('  no payload');
  }
  lines.push(`  ${closedLine(rec)}`);
  const extra: string[] = [];
  if (rec.retransmissions[0] + rec.retransmissions[1] > 0)
    extra.push(`retransmissions client ${rec.retransmissions[0]}, server ${rec.retransmissions[1]}`);
  if (rec.gapBytes[0] + rec.gapBytes[1] > 0) extra.push(`bytes not captured client ${rec.gapBytes[0]}, server ${rec.gapBytes[1]}`);
  if (extra.length) lines.push(`  ${extra.join('; ')}`);
  return lines.join('\n');
}

function findingLine(f: Finding, color: boolean): string {
  const sev = f.severity === 'error' ? paint(color, '31;1', 'error') : f.severity === 'warning' ? paint(color, '33', 'warn ') : 'info ';
  return `  ${sev} ${f.code}: ${f.summary}`;
}

export function renderText(a: Analysis, o: TextOptions = {}): string {
  const color = o.color === true;
  const e = a.engine;
  const out: string[] = [];
  const span = e.firstTs !== null && e.lastTs !== null ? `, ${fmtDuration(e.lastTs - e.firstTs)} of traffic` : '';
  out.push(
    `hangscope: ${a.source.name}: ${plural(e.packets, 'packet')}, ${plural(e.connections, 'TCP connection')}, ${plural(e.exchanges, 'HTTP exchange')}${span}`,
  );

  const findings = [...a.findings].sort((x, y) => SEVERITY_ORDER[x.severity] - SEVERITY_ORDER[y.severity] || (x.ts ?? 0) - (y.ts ?? 0));
  const verdict = buildVerdict(a.findings);
  out.push('');
  if (verdict === null) {
    out.push(
      a.connections.some(socketFailing)
        ? 'Verdict: some exchanges did not complete, but no known failure pattern matched; see the sockets below.'
        : 'Verdict: no failed HTTP exchanges and no abnormal closes.',
    );
  } else {
    out.push(`${paint(color, '1', 'Verdict')} (${verdict.confidence} confidence): ${verdict.headline}`);
    out.push(`${paint(color, '1', 'Change')}: ${verdict.advice}`);
  }
  if (findings.length > 0) {
    out.push('', 'Findings:');
    for (const f of findings.slice(0, 40)) out.push(findingLine(f, color));
    if (findings.length > 40) out.push(`  … ${findings.length - 40} more in --format json`);
  }

  const max = o.maxSockets ?? 50;
  const failing = a.connections.filter(socketFailing);
  const fine = a.connections.filter((c) => !socketFailing(c));
  const shown = [...failing, ...fine].slice(0, max).sort((x, y) => x.id - y.id);
  if (shown.length > 0) {
    out.push('', `Sockets (${a.connections.length}, in order of first packet; ${failing.length} with a failed exchange or reset):`);
    for (const rec of shown) out.push(renderSocket(rec, o));
    if (a.connections.length > shown.length)
      out.push(`… ${a.connections.length - shown.length} more sockets, all exchanges complete (--format json lists every one)`);
  }
  const anomalies = e.anomalies.toJSON();
  const keys = Object.keys(anomalies);
  out.push('', keys.length ? `Anomalies: ${keys.map((k) => `${k} ${anomalies[k]}`).join(', ')}` : 'Anomalies: none');
  out.push(legend(a.connections));
  return `${out.join('\n')}\n`;
}

function legend(conns: ConnectionRecord[]): string {
  return conns.length > 0
    ? 'History letters (Zeek): S syn, H syn-ack, A ack, D data, F fin, R rst, T retransmission, G bytes not captured; upper case client, lower case server.'
    : '';
}

export function relTime(us: Micros, base: Micros): string {
  return `+${fmtDuration(us - base)}`;
}
