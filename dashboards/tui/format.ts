/**
 * Text pieces of the dashboard, as plain functions (tested on their own):
 * the compact request chain of a socket row, ages and sizes, and the detail
 * view's timeline on a time axis.
 */
import { fmtClock, fmtDuration, redactTarget } from '../../lib/report/index.js';
import type { CloseEvent, Micros } from '../../lib/types.js';
import { ROW_HEAD, type ExchangeView, type SocketRow } from './model.js';

/** "5.00s", "12ms", "3m05s": short durations for table cells. */
export function shortDur(us: Micros): string {
  const a = Math.abs(us);
  const sign = us < 0 ? '-' : '';
  if (a < 1000) return `${sign}${Math.round(a)}us`;
  if (a < 1_000_000) return `${sign}${Math.round(a / 1000)}ms`;
  if (a < 100_000_000) return `${sign}${(a / 1e6).toFixed(2)}s`;
  if (a < 3_600_000_000) {
    const m = Math.floor(a / 60_000_000);
    return `${sign}${m}m${String(Math.floor((a % 60_000_000) / 1e6)).padStart(2, '0')}s`;
  }
  const h = Math.floor(a / 3_600_000_000);
  return `${sign}${h}h${String(Math.floor((a % 3_600_000_000) / 60_000_000)).padStart(2, '0')}m`;
}

/** "00:01:23" */
export function clockDur(us: Micros): string {
  const s = Math.max(0, Math.floor(us / 1e6));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

export function humanBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GiB`;
}

export function truncate(s: string, n: number): string {
  if (n <= 0) return '';
  return s.length <= n ? s : n === 1 ? '…' : `${s.slice(0, n - 1)}…`;
}

/** The path of a target without its query, shortened: the table has no room for more. */
export function shortPath(target: string, max = 32): string {
  const q = target.indexOf('?');
  // Without the query (where tokens are) and without an absolute-form target's userinfo (user:password@).
  return truncate((q < 0 ? target : target.slice(0, q)).replace(/\/\/[^/@]*@/, '//'), max);
}

/** First close event at or after `ts`. */
export function closeAfter(closes: CloseEvent[], ts: Micros): CloseEvent | null {
  for (const c of closes) if (c.ts >= ts) return c;
  return null;
}

export interface Link {
  text: string;
  /** failed | waiting (in progress, slow) | ok */
  kind: 'ok' | 'failed' | 'waiting';
}

/**
 * One exchange as a link of the row's chain, e.g. `GET /files 200`,
 * `POST /exec x client FIN 5.00s` (the first close after the request started,
 * timed from its start), `POST /exec … 3.20s` (still waiting, live).
 */
export function chainLink(ex: ExchangeView, row: SocketRow, clock: Micros, slow: Micros): Link {
  const head = `${ex.method || '?'} ${shortPath(ex.target)}`;
  const close = closeAfter(row.closes, ex.requestStart);
  if (ex.done && ex.outcome === 'complete') return { text: `${head} ${ex.status ?? '-'}`, kind: 'ok' };
  const status = ex.status !== null ? ` ${ex.status}` : '';
  if (close !== null && (ex.done || ex.responseEnd === null))
    return { text: `${head}${status} x ${close.by} ${close.kind} ${shortDur(close.ts - ex.requestStart)}`, kind: 'failed' };
  if (!ex.done) {
    const waited = clock - ex.requestStart;
    if (ex.responseStart === null) return { text: `${head} … ${shortDur(waited)}`, kind: waited > slow ? 'waiting' : 'ok' };
    return { text: `${head}${status} …`, kind: 'ok' };
  }
  const why = ex.outcome === 'no-response' ? 'no response' : ex.outcome === 'aborted' ? 'request cut off' : 'response cut off';
  return { text: `${head}${status} x ${why}`, kind: 'failed' };
}

export function chainText(row: SocketRow, clock: Micros, slow: Micros): string {
  if (row.exchanges.length === 0) {
    if (row.protocol !== 'none' && row.protocol !== 'http') return `(${row.protocol}, not HTTP/1.x)`;
    return row.bytes[0] + row.bytes[1] === 0 ? '(no payload)' : '';
  }
  const links = (list: ExchangeView[]): string[] => list.map((e) => chainLink(e, row, clock, slow).text);
  // A long keep-alive socket: how it started and where it is now.
  if (row.exchanges.length > 5) {
    const more = row.exchangeCount - 4;
    return [...links(row.exchanges.slice(0, 2)), `… ${more} more`, ...links(row.exchanges.slice(-2))].join(' -> ');
  }
  return links(row.exchanges).join(' -> ');
}

export function firstCloser(row: SocketRow): string {
  const c = row.closes[0];
  return c === undefined ? '' : `${c.by} ${c.kind}`;
}

// ------------------------------------------------------------- timeline

export interface TimelineLine {
  text: string;
  kind: 'axis' | 'ok' | 'failed' | 'waiting' | 'client' | 'server' | 'note';
}

/** Characters of the timeline (kept ASCII-safe where a terminal might lack glyphs). */
export const TL = { request: '▒', wait: '·', response: '█', fail: 'x', base: '─' } as const;

interface Span {
  from: Micros;
  to: Micros;
}

/**
 * The selected socket on a time axis: one line per exchange (request bar,
 * wait for the first byte, response bar, an x where it failed), one line per
 * side with its FIN / RST markers (S / H for the handshake), and the idle
 * gaps: stretches with no payload either way.
 */
export function renderTimeline(row: SocketRow, width: number, clock: Micros, maxExchanges = 12): TimelineLine[] {
  const labelW = Math.max(12, Math.min(30, Math.floor(width * 0.3)));
  const trackW = Math.max(10, width - labelW - 1);
  const t0 = row.start;
  let t1 = row.live ? Math.max(row.end, clock) : row.end;
  if (t1 - t0 < 1000) t1 = t0 + 1000;
  const span = t1 - t0;
  const pos = (t: Micros): number => Math.max(0, Math.min(trackW - 1, Math.round(((t - t0) / span) * (trackW - 1))));
  const fill = (track: string[], a: number, b: number, ch: string): void => {
    for (let i = a; i <= b; i++) track[i] = ch;
  };
  const label = (s: string): string => truncate(s, labelW).padEnd(labelW);
  const out: TimelineLine[] = [];

  // Axis: +0 at the left, then evenly spaced labels that fit.
  const axis = new Array<string>(trackW).fill(' ');
  const marks = trackW >= 60 ? 4 : trackW >= 30 ? 2 : 1;
  for (let k = 0; k <= marks; k++) {
    const t = t0 + (span * k) / marks;
    const txt = k === 0 ? '+0' : `+${shortDur(t - t0)}`;
    let p = pos(t);
    if (k === marks) p = trackW - txt.length;
    else if (k > 0) p = Math.max(0, p - Math.floor(txt.length / 2));
    for (let i = 0; i < txt.length && p + i < trackW; i++) axis[p + i] = txt[i]!;
  }
  out.push({ text: `${label(`from ${fmtClock(t0)}`)} ${axis.join('')}`, kind: 'axis' });

  const activity: Span[] = [{ from: t0, to: t0 }];
  const shown = row.exchanges.slice(-maxExchanges);
  if (row.exchangeCount > shown.length) out.push({ text: `${label(`… ${row.exchangeCount - shown.length} earlier`)}`, kind: 'note' });
  for (const ex of shown) {
    const track = new Array<string>(trackW).fill(' ');
    const close = closeAfter(row.closes, ex.requestStart);
    const open = !ex.done;
    const endOfWait = close !== null ? close.ts : open ? t1 : row.end;
    const reqEnd = ex.requestEnd ?? (ex.responseStart ?? endOfWait);
    fill(track, pos(ex.requestStart), pos(reqEnd), TL.request);
    activity.push({ from: ex.requestStart, to: reqEnd });
    let failed = false;
    if (ex.responseStart !== null) {
      const waitFrom = pos(reqEnd) + 1;
      if (waitFrom < pos(ex.responseStart)) fill(track, waitFrom, pos(ex.responseStart) - 1, TL.wait);
      const respEnd = ex.responseEnd ?? (open && close === null ? t1 : endOfWait);
      fill(track, pos(ex.responseStart), pos(respEnd), TL.response);
      activity.push({ from: ex.responseStart, to: ex.responseEnd ?? ex.responseStart });
      if (ex.responseEnd === null && (!open || close !== null)) failed = true;
      if (failed) track[pos(respEnd)] = TL.fail;
    } else {
      const a = pos(reqEnd) + 1;
      const b = pos(endOfWait);
      if (a <= b) fill(track, a, b, TL.wait);
      if (!open || close !== null) {
        failed = !(ex.done && ex.outcome === 'complete');
        if (failed) track[b] = TL.fail;
      }
    }
    if (ex.done && ex.outcome !== 'complete') failed = true;
    const st = ex.status !== null ? ` ${ex.status}` : '';
    out.push({
      text: `${label(`#${ex.index} ${ex.method || '?'} ${shortPath(ex.target, 40)}${st}`)} ${track.join('')}`,
      kind: failed ? 'failed' : open && ex.responseStart === null ? 'waiting' : 'ok',
    });
  }

  for (const side of ['client', 'server'] as const) {
    const track = new Array<string>(trackW).fill(TL.base);
    const hs = side === 'client' ? 'S' : 'H';
    if (row.history.includes(side === 'client' ? 'S' : 'h')) track[0] = hs;
    for (const c of row.closes) {
      if (c.by !== side) continue;
      // A FIN and an RST close together share a column at this scale: put the later one beside it.
      const p = pos(c.ts);
      const free = [0, 1, -1, 2, -2].map((d) => p + d).find((q) => q >= 0 && q < trackW && track[q] === TL.base);
      track[free ?? p] = c.kind === 'FIN' ? 'F' : 'R';
      activity.push({ from: c.ts, to: c.ts });
    }
    const ep = side === 'client' ? row.client : row.server;
    out.push({ text: `${label(`${side} ${ep.ip}:${ep.port}`)} ${track.join('')}`, kind: side });
  }
  out.push({
    text: `${label('')} ${TL.request} request  ${TL.wait} waiting  ${TL.response} response  ${TL.fail} failed  S/H handshake  F FIN  R RST`,
    kind: 'note',
  });

  // Idle gaps: no payload either way between activity spans.
  activity.sort((a, b) => a.from - b.from);
  const gaps: { from: Micros; to: Micros }[] = [];
  let reach = activity[0]!.to;
  for (const s of activity.slice(1)) {
    if (s.from > reach) gaps.push({ from: reach, to: s.from });
    if (s.to > reach) reach = s.to;
  }
  if (row.live && t1 > reach) gaps.push({ from: reach, to: t1 });
  const minGap = Math.max(500_000, span * 0.2);
  for (const g of gaps
    .filter((g) => g.to - g.from >= minGap)
    .sort((a, b) => b.to - b.from - (a.to - a.from))
    .slice(0, 3)
    .sort((a, b) => a.from - b.from)) {
    const until = row.closes.find((c) => c.ts === g.to);
    out.push({
      text: `idle ${fmtDuration(g.to - g.from)} from +${fmtDuration(g.from - t0)} to +${fmtDuration(g.to - t0)}: no payload either way${until ? `, until the ${until.by}'s ${until.kind}` : row.live && g.to === t1 ? ', so far' : ''}`,
      kind: 'note',
    });
  }
  return out;
}

/** The facts of each exchange, one or two lines each, for the detail view. */
export function exchangeFacts(row: SocketRow, showSecrets: boolean, clock: Micros): string[] {
  const out: string[] = [];
  const t0 = row.start;
  const rel = (t: Micros | null): string => (t === null ? '-' : `+${fmtDuration(t - t0)}`);
  for (const [i, ex] of row.exchanges.entries()) {
    if (i === ROW_HEAD && row.omitted > 0) out.push(`… ${row.omitted} exchanges not shown …`);
    const target = redactTarget(ex.target, showSecrets);
    const resp =
      ex.status !== null ? `${ex.status}${ex.reason ? ` ${ex.reason}` : ''}` : ex.responseStart !== null ? 'response without status' : ex.done ? 'no response' : 'no response yet';
    const outcome = ex.done ? ex.outcome : ex.responseStart === null ? 'waiting for the first byte' : 'receiving';
    out.push(`#${ex.index} ${ex.method || '(no request)'} ${target} ${ex.version} -> ${resp}  [${outcome}]`);
    const parts = [`request ${rel(ex.requestStart)}`];
    if (ex.requestEnd !== null && ex.requestEnd !== ex.requestStart) parts.push(`sent by ${rel(ex.requestEnd)}`);
    parts.push(`body ${ex.requestBodyBytes} B`);
    if (ex.responseStart !== null) parts.push(`first byte after ${fmtDuration(ex.responseStart - ex.requestStart)}`);
    else if (!ex.done) parts.push(`waiting ${fmtDuration(clock - ex.requestStart)}`);
    if (ex.responseEnd !== null) parts.push(`done after ${fmtDuration(ex.responseEnd - ex.requestStart)}, ${ex.responseBodyBytes} B body`);
    const close = closeAfter(row.closes, ex.requestStart);
    if (ex.outcome !== 'complete' || !ex.done) {
      if (close !== null) parts.push(`${close.by} ${close.kind} ${fmtDuration(close.ts - ex.requestStart)} after the request started`);
    }
    if (ex.gapBytes > 0) parts.push(`${ex.gapBytes} B not captured`);
    const ua = ex.requestHeaders['user-agent'];
    if (ua) parts.push(`UA ${truncate(ua, 40)}`);
    if (ex.interim.length > 0) parts.push(`interim ${ex.interim.map((i) => i.status).join(',')}`);
    out.push(`   ${parts.join(', ')}`);
  }
  return out;
}
