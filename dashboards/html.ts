/**
 * The HTML report (`hangscope analyze FILE --format html`): one self-contained
 * page an on-call engineer can attach to a ticket. It leads with the verdict,
 * then the findings with their numbers, then a waterfall of every socket on a
 * shared time axis: request and response bars, idle gaps, and who sent FIN or
 * RST when.
 *
 * Rendered here, server-side, from the JSON report (already secret-redacted
 * unless --show-secrets), so the page reads the same with scripts off and the
 * structure is testable without a browser. The inline script only adds
 * hover/click details (from <template>s rendered here), zoom and a filter.
 * The JSON report itself is embedded in a <script type="application/json">
 * for whoever wants the data back out.
 *
 * Everything from the wire (targets, headers, reasons, summaries) is escaped
 * by esc(); the embedded JSON by jsonForScript() so that "</script>" or
 * "<!--" in a target cannot end the element. A Content-Security-Policy meta
 * tag allows no fetches at all and only the page's own script (by hash), as
 * a second line of defence.
 */
import { createHash } from 'node:crypto';
import type { CloseJSON, ConnectionJSON, ExchangeJSON, FindingJSON, ReportJSON } from '../lib/report/index.js';
import { fmtClock, fmtDuration } from '../lib/report/index.js';
import { SCRIPT } from './html/script.js';
import { STYLE } from './html/style.js';

export interface HtmlOptions {
  /** Waterfall rows at most (sockets with a failure are kept first); default 300. */
  maxRows?: number;
  /** Findings listed at most (most severe first); default 200. */
  maxFindings?: number;
  /** The report was made with --show-secrets: say so at the top. */
  showSecrets?: boolean;
}

export const DEFAULT_MAX_ROWS = 300;
const DEFAULT_MAX_FINDINGS = 200;
const SEVERITY_ORDER = { error: 0, warning: 1, info: 2 } as const;

// ---------------------------------------------------------------- escaping

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/**
 * Text and attribute values for HTML. C0 controls other than tab and newline
 * (not allowed in HTML text, and meaningless in a target) become U+FFFD.
 */
export function esc(v: unknown): string {
  return String(v)
    .replace(/[&<>"']/g, (c) => ESC[c]!)
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/g, '\ufffd');
}

/**
 * JSON that is safe inside <script type="application/json">: '<', '>' and
 * '&' as \u escapes (so no "</script", "<!--" or "]]>" can appear), and the
 * line separators U+2028/2029 too. JSON.parse gives back the same value.
 */
export function jsonForScript(v: unknown): string {
  return JSON.stringify(v)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

// ---------------------------------------------------------------- time

/** JSON seconds to integer microseconds (the formatters' unit). */
function us(s: number): number {
  return Math.round(s * 1e6);
}

function dur(s: number): string {
  return fmtDuration(us(s));
}

function clock(s: number): string {
  return fmtClock(us(s));
}

function day(s: number): string {
  return new Date(Math.floor(s * 1000)).toISOString().slice(0, 10);
}

/** Seconds relative to the axis origin, 6 decimals, as a data attribute value. */
function num(s: number): string {
  return String(Number(s.toFixed(6)));
}

/** Tick step: 1, 2, 5 × 10^k below a minute, then whole minutes, hours, days. */
function tickStep(range: number, n: number): number {
  const raw = range / Math.max(1, n);
  if (raw < 60) {
    const p = 10 ** Math.floor(Math.log10(raw));
    for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  }
  for (const s of [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]) if (s >= raw) return s;
  return Math.ceil(raw / 86400) * 86400;
}

/** "+2.5s", "+4m30s", "+1h05m": a tick label, relative to the capture's first packet. */
function tickLabel(v: number, step: number): string {
  if (Math.abs(v) < step / 1e6) return '0';
  if (step < 60) return `+${v.toFixed(Math.max(0, Math.ceil(-Math.log10(step))))}s`;
  const m = Math.round(v / 60);
  return m < 60 ? `+${m}m` : `+${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** Tick positions within [v0, v1], never before the first packet (0). */
export function ticks(v0: number, v1: number, n = 8): { at: number; label: string }[] {
  const step = tickStep(v1 - v0, n);
  const out: { at: number; label: string }[] = [];
  for (let i = Math.ceil(Math.max(0, v0) / step); i * step <= v1 && out.length < 100; i++) {
    const at = Number((i * step).toFixed(9));
    out.push({ at, label: tickLabel(at, step) });
  }
  return out;
}

// ---------------------------------------------------------------- facts

export function connectionFailing(c: ConnectionJSON): boolean {
  return c.state === 'reset' || c.exchanges.some((e) => e.outcome !== 'complete');
}

function shorten(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n - 1)}…`;
}

/** Time the exchange's bars stop when its response never finished: the first close at or after `from`, else the socket's last packet. */
function stopAfter(c: ConnectionJSON, from: number): number {
  const cl = c.closes.find((x) => x.ts >= from);
  return cl !== undefined ? cl.ts : Math.max(c.end, from);
}

function outcomeWords(e: ExchangeJSON): string {
  switch (e.outcome) {
    case 'complete':
      return e.status !== null ? String(e.status) : 'complete';
    case 'no-response':
      return 'no response';
    case 'incomplete-response':
      return `${e.status ?? ''} response cut off`.trim();
    case 'aborted':
      return 'request cut off';
  }
}

/** One link of a socket's chain as HTML: `GET /files/x 200`, the failed ones marked. */
function chainLink(e: ExchangeJSON, n: number, dropQuery: boolean): string {
  const bad = e.outcome !== 'complete';
  const q = e.target.indexOf('?');
  const target = dropQuery && q > 0 ? `${e.target.slice(0, q)}?…` : e.target;
  const what = `${esc(e.method || '?')} ${esc(shorten(target, n))}`;
  return bad ? `${what} <span class="bad">✗ ${esc(outcomeWords(e))}</span>` : `${what} ${esc(outcomeWords(e))}`;
}

function chainHtml(c: ConnectionJSON): string {
  const ex = c.exchanges;
  if (ex.length === 0) {
    if (c.protocol !== 'none' && c.protocol !== 'http') return `${esc(c.protocol)} payload, not HTTP/1.x`;
    return c.bytes.client + c.bytes.server === 0 ? 'no payload' : 'no HTTP exchange';
  }
  // Several requests: paths without their query, so the whole chain fits the label column (the tips have the full targets).
  const many = ex.length > 1;
  const link = (e: ExchangeJSON) => chainLink(e, many ? 30 : 48, many);
  if (ex.length <= 4) return ex.map(link).join(' → ');
  return [link(ex[0]!), link(ex[1]!), `… ${ex.length - 4} more …`, link(ex[ex.length - 2]!), link(ex[ex.length - 1]!)].join(' → ');
}

/**
 * A close told against the socket's exchanges: "client FIN 5.004s into POST
 * /exec" when a request was still unanswered or its response unfinished,
 * "server FIN 5.001s after the last response" on an idle socket.
 */
export function closeStory(c: ConnectionJSON, cl: CloseJSON, targetLen = 40): string {
  const ex = c.exchanges;
  for (let i = ex.length - 1; i >= 0; i--) {
    const e = ex[i]!;
    if (e.requestStart <= cl.ts && (e.responseEnd === null || e.responseEnd > cl.ts))
      return `${cl.by} ${cl.kind} ${dur(cl.ts - e.requestStart)} into ${e.method} ${shorten(e.target, targetLen)}`;
  }
  for (let i = ex.length - 1; i >= 0; i--) {
    const end = ex[i]!.responseEnd;
    // A FIN that ends a close-delimited body carries the response's last byte.
    if (end !== null && end === cl.ts) return `${cl.by} ${cl.kind} with the last response byte`;
    if (end !== null && end < cl.ts) return `${cl.by} ${cl.kind} ${dur(cl.ts - end)} after the last response`;
  }
  return `${cl.by} ${cl.kind} ${dur(cl.ts - c.start)} after the socket's first packet`;
}

function storyLine(c: ConnectionJSON): { text: string; side: string } {
  const first = c.closes[0];
  if (first === undefined)
    return { text: c.state === 'open' ? 'still open at the end of the capture' : `lasted ${dur(c.end - c.start)}`, side: '' };
  const rest = c.closes.slice(1).map((x) => `${x.by} ${x.kind} +${dur(x.ts - first.ts)}`);
  return { text: `${closeStory(c, first)}${rest.length ? `; then ${rest.join(', ')}` : ''}`, side: first.by };
}

// ---------------------------------------------------------------- evidence

const DURATION_KEY = /^(since|time|delay|idle|spread|tolerance|gap|waited|threshold|values|serverIdle|requestMinus)/;
const TIME_KEY = /(^ts|Ts|Start|^end|Before)$/;

function exchangeRef(o: Record<string, unknown>): string {
  const status = o.status !== null && o.status !== undefined ? ` ${String(o.status)}` : '';
  const outcome = typeof o.outcome === 'string' && o.outcome !== 'complete' ? ` (${o.outcome})` : '';
  return `${String(o.method ?? '?')} ${shorten(String(o.target ?? ''), 60)}${status}${outcome}`;
}

/** One evidence value for people: durations as "5.004s", epoch times relative to the capture start, requests as "POST /exec". */
export function evidenceText(key: string, v: unknown, t0: number): string {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'number') {
    // "sinceRequestStart" is a duration, "requestStart" a time: test durations first.
    if (DURATION_KEY.test(key)) return dur(v);
    if (TIME_KEY.test(key) || (!Number.isInteger(v) && v > 1e8)) return `+${dur(v - t0)}`;
    return String(v);
  }
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'string') return shorten(v, 100);
  if (Array.isArray(v)) {
    const items = v.slice(0, 6).map((x) =>
      key === 'connections' && typeof x === 'number'
        ? `#${x}`
        : x !== null && typeof x === 'object' && 'method' in x
          ? exchangeRef(x as Record<string, unknown>)
          : evidenceText(key, x, t0),
    );
    return items.join(key === 'chain' ? ' → ' : ', ') + (v.length > 6 ? `, … ${v.length - 6} more` : '');
  }
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if ('method' in o) return exchangeRef(o);
    return Object.entries(o)
      .slice(0, 6)
      .map(([k, x]) => `${k}: ${evidenceText(k, x, t0)}`)
      .join(', ');
  }
  return String(v);
}

function evidenceHtml(f: FindingJSON, t0: number): string {
  const entries = Object.entries(f.evidence ?? {}).slice(0, 16);
  if (entries.length === 0) return '';
  return `<div class="ev">${entries.map(([k, v]) => `<span><i>${esc(k)}</i> ${esc(evidenceText(k, v, t0))}</span>`).join('')}</div>`;
}

// ---------------------------------------------------------------- page parts

interface Axis {
  t0: number;
  span: number;
  v0: number;
  v1: number;
}

function pct(ax: Axis, rel: number): string {
  return `${(((rel - ax.v0) / (ax.v1 - ax.v0)) * 100).toFixed(4)}%`;
}

/** A positioned element of the waterfall: `data-a`/`data-b` (seconds from the first packet) drive the script's zoom. */
function span(ax: Axis, cls: string, a: number, b: number, attrs: string, inner = ''): string {
  const ra = a - ax.t0;
  const rb = Math.max(b, a) - ax.t0;
  const w = (((rb - ra) / (ax.v1 - ax.v0)) * 100).toFixed(4);
  return `<div class="${cls}" data-a="${num(ra)}" data-b="${num(rb)}" style="left:${pct(ax, ra)};width:${w}%"${attrs}>${inner}</div>`;
}

const GLYPH = {
  clientFIN: '<svg viewBox="0 0 12 12" aria-hidden="true"><path d="M0 0.5H12L6 11.5Z" fill="currentColor"/></svg>',
  serverFIN: '<svg viewBox="0 0 12 12" aria-hidden="true"><path d="M0 11.5H12L6 0.5Z" fill="currentColor"/></svg>',
  RST: '<svg viewBox="0 0 12 12" aria-hidden="true"><rect x="0.5" y="0.5" width="11" height="11" rx="1.5" fill="currentColor"/><path d="M3.2 3.2L8.8 8.8M8.8 3.2L3.2 8.8" stroke="#fff" stroke-width="2" stroke-linecap="round"/></svg>',
};

function glyph(side: string, kind: string): string {
  return kind === 'RST' ? GLYPH.RST : side === 'client' ? GLYPH.clientFIN : GLYPH.serverFIN;
}

function sockName(c: ConnectionJSON): string {
  return `${c.client.ip}:${c.client.port} → ${c.server.ip}:${c.server.port}`;
}

function headersRows(title: string, h: Record<string, string>, names: string[]): string {
  const rows = names.filter((n) => h[n] !== undefined).map((n) => `${esc(n)}: ${esc(shorten(h[n]!, 160))}`);
  return rows.length ? `<tr><th>${esc(title)}</th><td colspan="2">${rows.join('<br>')}</td></tr>` : '';
}

function factRow(label: string, ts: number | null, ax: Axis, extra = ''): string {
  if (ts === null) return `<tr><th>${esc(label)}</th><td>none</td><td class="rel"></td><td>${extra}</td></tr>`;
  return `<tr><th>${esc(label)}</th><td class="clk">${esc(clock(ts))}</td><td class="rel">+${esc(dur(ts - ax.t0))}</td><td>${extra}</td></tr>`;
}

/** The facts of one exchange, shown on hover and pinned on click. */
function exchangeTemplate(c: ConnectionJSON, e: ExchangeJSON, ax: Axis): string {
  const bad = e.outcome !== 'complete';
  const stop = stopAfter(c, e.requestEnd ?? e.requestStart);
  const close = c.closes.find((x) => x.ts >= e.requestStart);
  const durs: string[] = [];
  if (e.requestEnd !== null) durs.push(`request sent in ${dur(e.requestEnd - e.requestStart)}`);
  if (e.responseStart !== null) durs.push(`first byte ${dur(e.responseStart - (e.requestEnd ?? e.requestStart))} after the request's end`);
  else if (e.requestEnd !== null && e.outcome !== 'complete') durs.push(`waited ${dur(stop - e.requestEnd)} with no response byte`);
  if (e.responseStart !== null && e.responseEnd !== null) durs.push(`response took ${dur(e.responseEnd - e.responseStart)}`);
  if (e.responseEnd !== null) durs.push(`total ${dur(e.responseEnd - e.requestStart)}`);
  const status = e.status !== null ? `${e.status}${e.reason ? ` ${e.reason}` : ''}` : 'none';
  const interim = e.interim.length ? e.interim.map((i) => `${i.status} at +${dur(i.ts - ax.t0)}`).join(', ') : '';
  const rows = [
    `<tr><th>status</th><td colspan="3">${esc(status)}${interim ? ` (interim ${esc(interim)})` : ''}</td></tr>`,
    factRow('request start', e.requestStart, ax),
    factRow('request end', e.requestEnd, ax, e.requestEnd !== null ? esc(`+${dur(e.requestEnd - e.requestStart)}`) : ''),
    factRow(
      'first response byte',
      e.responseStart,
      ax,
      e.responseStart !== null ? esc(`+${dur(e.responseStart - e.requestStart)}`) : '',
    ),
    factRow('response end', e.responseEnd, ax, e.responseEnd !== null ? esc(`+${dur(e.responseEnd - e.requestStart)}`) : ''),
    close !== undefined
      ? factRow(`${close.by} ${close.kind}`, close.ts, ax, esc(`+${dur(close.ts - e.requestStart)} (frame ${close.frame})`))
      : '',
    `<tr><th>durations</th><td colspan="3">${esc(durs.join('; ') || '—')}</td></tr>`,
    `<tr><th>bytes</th><td colspan="3">request body ${e.requestBodyBytes}, response body ${e.responseBodyBytes}${e.gapBytes ? `, ${e.gapBytes} not captured` : ''}</td></tr>`,
    headersRows('request headers', e.requestHeaders, ['host', 'user-agent', 'connection', 'content-length', 'transfer-encoding']),
    headersRows('response headers', e.responseHeaders, ['connection', 'keep-alive', 'content-length', 'transfer-encoding', 'server']),
  ];
  const rowsHtml = rows.filter((r) => r !== '').join('');
  const nth = `request ${e.index} of ${c.exchanges.length} on the socket`;
  // The exchange's zoom also takes in closes since the previous response ended: a server FIN that crossed this request (keep-alive race) is part of its story.
  const prevEnd = c.exchanges.find((x) => x.index === e.index - 1)?.responseEnd ?? c.start;
  const lo = Math.min(e.requestStart, ...c.closes.filter((x) => x.ts >= prevEnd && x.ts < e.requestStart).map((x) => x.ts));
  // ... and ends with the response, or where its bars stop when it never finished.
  const zoomTo = `${num(lo - ax.t0)},${num((e.responseEnd ?? stop) - ax.t0)}`;
  return (
    `<template id="t-c${c.id}e${e.index}">` +
    `<div class="d-head">${esc(e.method)} ${esc(e.target)} <span class="mono">${esc(e.version)}</span></div>` +
    `<div class="d-sub">socket ${esc(sockName(c))} (#${c.id}), ${esc(nth)}</div>` +
    `<span class="pill${bad ? ' bad' : ''}">${esc(e.outcome)}</span>` +
    `<table class="facts"><tr><th></th><td class="rel">UTC ${esc(day(e.requestStart))}</td><td class="rel">from capture start</td><td class="rel">from request start</td></tr>${rowsHtml}</table>` +
    `<div class="d-actions"><button type="button" data-zoom="${zoomTo}">Zoom to this exchange</button> <button type="button" data-zoom="${num(c.start - ax.t0)},${num(c.end - ax.t0)}">Zoom to this socket</button></div>` +
    `</template>`
  );
}

function connectionTemplate(c: ConnectionJSON, ax: Axis): string {
  const rows = [
    `<tr><th>state</th><td>${esc(c.state)}</td></tr>`,
    `<tr><th>first packet</th><td>${esc(clock(c.start))} UTC ${esc(day(c.start))} (+${esc(dur(c.start - ax.t0))})</td></tr>`,
    `<tr><th>last packet</th><td>${esc(clock(c.end))} (+${esc(dur(c.end - ax.t0))}), lasted ${esc(dur(c.end - c.start))}</td></tr>`,
    ...c.closes.map(
      (cl) => `<tr><th>${esc(`${cl.by} ${cl.kind}`)}</th><td>${esc(clock(cl.ts))} (+${esc(dur(cl.ts - ax.t0))}), frame ${cl.frame}: ${esc(closeStory(c, cl, 80))}</td></tr>`,
    ),
    `<tr><th>history</th><td>${esc(c.history)}</td></tr>`,
    `<tr><th>protocol</th><td>${esc(c.protocol)}, ${c.exchanges.length} HTTP exchange${c.exchanges.length === 1 ? '' : 's'}; client/server told by ${esc(c.orientation)}</td></tr>`,
    `<tr><th>packets</th><td>client ${c.packets.client}, server ${c.packets.server}</td></tr>`,
    `<tr><th>payload bytes</th><td>client ${c.bytes.client}, server ${c.bytes.server}</td></tr>`,
    c.retransmissions.client + c.retransmissions.server > 0
      ? `<tr><th>retransmissions</th><td>client ${c.retransmissions.client}, server ${c.retransmissions.server}</td></tr>`
      : '',
    c.gapBytes.client + c.gapBytes.server > 0
      ? `<tr><th>bytes not captured</th><td>client ${c.gapBytes.client}, server ${c.gapBytes.server}</td></tr>`
      : '',
  ].join('');
  return (
    `<template id="t-c${c.id}">` +
    `<div class="d-head">socket ${esc(sockName(c))}</div>` +
    `<div class="d-sub">#${c.id} (tshark tcp.stream ${c.id})</div>` +
    `<span class="pill${connectionFailing(c) ? ' bad' : ''}">${esc(c.state)}</span>` +
    `<table class="facts">${rows}</table>` +
    `<div class="d-actions"><button type="button" data-zoom="${num(c.start - ax.t0)},${num(c.end - ax.t0)}">Zoom to this socket</button></div>` +
    `</template>`
  );
}

function closeTemplate(c: ConnectionJSON, cl: CloseJSON, i: number, ax: Axis): string {
  return (
    `<template id="t-c${c.id}k${i}">` +
    `<div class="d-head">${esc(`${cl.by} ${cl.kind}`)}</div>` +
    `<div class="d-sub">socket ${esc(sockName(c))} (#${c.id}), frame ${cl.frame}</div>` +
    `<table class="facts"><tr><th>when</th><td>${esc(clock(cl.ts))} UTC ${esc(day(cl.ts))}</td></tr>` +
    `<tr><th>from capture start</th><td>+${esc(dur(cl.ts - ax.t0))}</td></tr>` +
    `<tr><th>on this socket</th><td>${esc(closeStory(c, cl, 80))}</td></tr></table>` +
    `</template>`
  );
}

function rowHtml(c: ConnectionJSON, ax: Axis, failing: boolean): { row: string; templates: string } {
  const parts: string[] = [];
  const templates: string[] = [connectionTemplate(c, ax)];
  parts.push(span(ax, 'life', c.start, c.end, ''));
  const ex = c.exchanges;
  ex.forEach((e, i) => {
    const tip = ` data-tip="c${c.id}e${e.index}"`;
    // A label runs to the next request; the last one may run on past the socket's end (nothing else is drawn there).
    const next = ex[i + 1]?.requestStart ?? Math.max(ax.t0 + ax.span, e.requestStart);
    const bad = e.outcome !== 'complete';
    const label = `${esc(e.method || '?')} ${esc(shorten(e.target, 80))} ${bad ? `<span class="bad">${esc(outcomeWords(e))}</span>` : esc(outcomeWords(e))}`;
    // data-c: while zoomed, the label sticks to the left edge only as long as its exchange (or, for the last one, the socket) is still in view.
    const own = ex[i + 1]?.requestStart ?? Math.max(c.end, e.requestStart);
    parts.push(span(ax, 'xl', e.requestStart, next, `${tip} data-c="${num(own - ax.t0)}"`, label));
    const reqCut = e.requestEnd === null;
    const reqEnd = e.requestEnd ?? stopAfter(c, e.requestStart);
    parts.push(span(ax, `bar req${reqCut ? ' cut' : ''}`, e.requestStart, reqEnd, tip));
    if (e.responseStart !== null) {
      if (e.requestEnd !== null && e.responseStart > e.requestEnd) parts.push(span(ax, 'bar wait', e.requestEnd, e.responseStart, tip));
      const cut = e.responseEnd === null || e.outcome === 'incomplete-response';
      parts.push(span(ax, `bar resp${cut ? ' cut' : ''}`, e.responseStart, e.responseEnd ?? stopAfter(c, e.responseStart), tip));
    } else if (e.requestEnd !== null) {
      parts.push(span(ax, `bar wait${bad ? ' none' : ''}`, e.requestEnd, stopAfter(c, e.requestEnd), tip));
    }
    templates.push(exchangeTemplate(c, e, ax));
  });
  c.closes.forEach((cl, i) => {
    const rel = cl.ts - ax.t0;
    parts.push(
      `<div class="mk ${cl.by} ${cl.kind.toLowerCase()}" data-side="${esc(cl.by)}" data-kind="${esc(cl.kind)}" data-a="${num(rel)}" style="left:${pct(ax, rel)}" data-tip="c${c.id}k${i}" role="img" aria-label="${esc(`${cl.by} ${cl.kind}`)}">${glyph(cl.by, cl.kind)}</div>`,
    );
    templates.push(closeTemplate(c, cl, i, ax));
  });
  const story = storyLine(c);
  const row =
    `<div class="row${failing ? ' fail' : ''}" id="sock-${c.id}" data-conn="${c.id}" data-state="${esc(c.state)}">` +
    `<div class="lbl" data-tip="c${c.id}" tabindex="0">` +
    `<div class="sock"><b>:${c.client.port}</b> → ${esc(c.server.ip)}:${c.server.port} <span class="id">#${c.id}</span></div>` +
    `<div class="chain">${chainHtml(c)}</div>` +
    `<div class="story ${esc(story.side)}">${esc(story.text)}</div>` +
    `</div><div class="track">${parts.join('')}</div></div>`;
  return { row, templates: templates.join('') };
}

function legendHtml(): string {
  const mk = (side: string, kind: string) =>
    `<span class="lm mk-legend" style="color:var(--${side})">${glyph(side, kind).replace('<svg ', '<svg width="12" height="12" ')}</span>`;
  return (
    `<div class="legend">` +
    `<span class="item"><span class="sw" style="background:var(--req)"></span>request</span>` +
    `<span class="item"><span class="sw" style="background:repeating-linear-gradient(90deg,var(--wait) 0 4px,transparent 4px 7px);height:4px"></span>waiting for first byte</span>` +
    `<span class="item"><span class="sw" style="background:var(--resp)"></span>response</span>` +
    `<span class="item"><span class="sw" style="background:repeating-linear-gradient(135deg,var(--cut) 0 4px,#f7c2a8 4px 7px)"></span>response cut off</span>` +
    `<span class="item"><span class="sw" style="background:repeating-linear-gradient(135deg,#f6c9c9 0 5px,#fdeeee 5px 10px);border:1px dashed var(--none)"></span>no response</span>` +
    `<span class="item"><span class="sw" style="background:#c5cad2;height:2px"></span>socket open, idle</span>` +
    `<span class="item">${mk('client', 'FIN')} client FIN ${mk('client', 'RST')} client RST <small>(above)</small></span>` +
    `<span class="item">${mk('server', 'FIN')} server FIN ${mk('server', 'RST')} server RST <small>(below)</small></span>` +
    `</div>`
  );
}

function verdictHtml(r: ReportJSON, anyFailing: boolean): string {
  const v = r.verdict;
  if (v === null) {
    const text = anyFailing
      ? 'Some exchanges did not complete, but no known failure pattern matched; see the sockets below.'
      : 'No failed HTTP exchanges and no abnormal closes.';
    return `<section class="verdict ${anyFailing ? 'sev-warning' : 'sev-ok'}" id="verdict"><div class="vlabel">Verdict</div><p class="headline">${esc(text)}</p></section>`;
  }
  const lead = r.findings.find((f) => f.code === v.basedOn[0]);
  const sev = lead?.severity === 'error' ? 'sev-error' : 'sev-warning';
  return (
    `<section class="verdict ${sev}" id="verdict">` +
    `<div class="vlabel">Verdict <span class="conf conf-${esc(v.confidence)}">${esc(v.confidence)} confidence</span></div>` +
    `<p class="headline">${esc(v.headline)}</p>` +
    `<p class="advice"><b>Change:</b> ${esc(v.advice)}</p>` +
    `<p class="based">Based on ${v.basedOn.map((c) => `<code>${esc(c)}</code>`).join(', ')}${v.occurrences > 1 ? `; ${v.occurrences} occurrences` : ''}.</p>` +
    `</section>`
  );
}

function findingsHtml(r: ReportJSON, t0: number, max: number, drawn: Set<number>): string {
  const fs = [...r.findings].sort(
    (x, y) => SEVERITY_ORDER[x.severity] - SEVERITY_ORDER[y.severity] || (x.ts ?? 0) - (y.ts ?? 0),
  );
  if (fs.length === 0) return `<section id="findings"><h2>Findings</h2><p class="note">None.</p></section>`;
  const byId = new Map(r.connections.map((c) => [c.id, c]));
  const rows = fs.slice(0, max).map((f) => {
    const c = f.connection !== null ? byId.get(f.connection) : undefined;
    const where = c !== undefined ? `#${c.id} :${c.client.port}${f.exchange !== null ? ` req ${f.exchange}` : ''}` : f.connection !== null ? `#${f.connection}` : 'capture';
    const link = f.connection !== null && drawn.has(f.connection) ? ` data-conn="${f.connection}"${f.exchange !== null ? ` data-ex="${f.exchange}"` : ''}` : '';
    return (
      `<tr class="f sev-${esc(f.severity)}"${link}>` +
      `<td><span class="sev ${esc(f.severity)}">${esc(f.severity)}</span></td>` +
      `<td class="code">${esc(f.code)}</td>` +
      `<td class="where">${esc(where)}${f.ts !== null ? `<br>+${esc(dur(f.ts - t0))}` : ''}</td>` +
      `<td class="summary">${esc(f.summary)}${evidenceHtml(f, t0)}</td>` +
      `</tr>`
    );
  });
  const more = fs.length > max ? `<p class="note">… ${fs.length - max} more findings in the embedded JSON (and <code>--format json</code>).</p>` : '';
  return (
    `<section id="findings"><h2>Findings (${fs.length})</h2>` +
    `<table class="findings"><thead><tr><th>severity</th><th>code</th><th>socket, when</th><th>what happened, and the numbers</th></tr></thead><tbody>${rows.join('')}</tbody></table>${more}</section>`
  );
}

function waterfallHtml(r: ReportJSON, ax: Axis, rows: ConnectionJSON[], failingIds: Set<number>): { html: string; templates: string } {
  const total = r.connections.length;
  if (total === 0) return { html: `<section id="sockets"><h2>Sockets</h2><p class="note">No TCP connections in the capture.</p></section>`, templates: '' };
  const built = rows.map((c) => rowHtml(c, ax, failingIds.has(c.id)));
  const tk = ticks(ax.v0, ax.v1);
  const tickHtml = tk.map((t) => `<div class="tick" style="left:${pct(ax, t.at)}">${esc(t.label)}</div>`).join('');
  const gridHtml = tk.map((t) => `<div class="gl" style="left:${pct(ax, t.at)}"></div>`).join('');
  const nFailing = r.connections.filter((c) => failingIds.has(c.id)).length;
  const hidden = total - rows.length;
  const hiddenFailing = nFailing - rows.filter((c) => failingIds.has(c.id)).length;
  const note =
    hidden > 0
      ? `<p class="note" id="wf-cap">${hidden} more socket${hidden === 1 ? '' : 's'} not drawn (the waterfall keeps ${rows.length} rows, sockets with a failure first${hiddenFailing > 0 ? `; ${hiddenFailing} of the hidden ones failed too` : '; all hidden ones completed every exchange'}). The embedded JSON and <code>--format json</code> list every one.</p>`
      : '';
  const html =
    `<section id="sockets"><h2>Sockets (${total}${nFailing ? `, ${nFailing} with a failure` : ''})</h2>` +
    `<div class="wf-controls">${legendHtml()}</div>` +
    `<div class="wf-controls"><label><input type="checkbox" id="only-failing"${nFailing ? '' : ' disabled'}> only sockets with a failure</label>` +
    `<button type="button" id="zoom-reset" disabled>Whole capture</button>` +
    `<span class="hint">Drag across the timeline to zoom; hover or click a bar, a marker or a socket for its facts.</span></div>` +
    `<div class="wf" data-v0="${num(ax.v0)}" data-v1="${num(ax.v1)}" data-t0="${num(ax.t0)}">` +
    `<div class="wf-axis"><div class="lbl">client port → server<br><span id="wf-view">0 = ${esc(clock(ax.t0))} UTC ${esc(day(ax.t0))}</span></div><div class="ticks">${tickHtml}</div></div>` +
    `<div class="wf-body"><div class="grid">${gridHtml}</div><div class="brush"></div>${built.map((b) => b.row).join('')}</div>` +
    `</div>${note}</section>`;
  return { html, templates: built.map((b) => b.templates).join('') };
}

function headerHtml(r: ReportJSON, ax: Axis | null, showSecrets: boolean): string {
  const s = r.stats;
  const bits = [
    `<b>${esc(r.source.name)}</b>${r.source.format ? ` (${esc(r.source.format)}${r.source.compressed ? ', gzip' : ''})` : ''}`,
    `${s.packets} packets`,
    `${s.connections} TCP connection${s.connections === 1 ? '' : 's'}`,
    `${s.exchanges} HTTP exchange${s.exchanges === 1 ? '' : 's'}`,
  ];
  if (ax !== null && s.firstTs !== null && s.lastTs !== null)
    bits.push(`${esc(dur(s.lastTs - s.firstTs))} of traffic, ${esc(day(s.firstTs))} ${esc(clock(s.firstTs))} – ${esc(clock(s.lastTs))} UTC`);
  if (r.port !== null) bits.push(`server port ${r.port}`);
  const secrets = showSecrets
    ? '<span class="secrets"><b>Secrets shown</b> (made with --show-secrets): handle this file like the capture.</span>'
    : '<span class="secrets">Authorization, cookies, API keys and token-like query values are redacted.</span>';
  return `<header class="top"><h1>hangscope</h1><span class="src">${bits.join(' · ')}</span>${secrets}</header>`;
}

function footerHtml(r: ReportJSON): string {
  const an = Object.entries(r.stats.anomalies);
  return (
    `<footer>` +
    `<p>Anomalies: ${an.length ? an.map(([k, n]) => `${esc(k)} ${esc(n)}`).join(', ') : 'none'}${r.stats.nonTcpPackets ? `; ${r.stats.nonTcpPackets} packets were not TCP` : ''}.</p>` +
    `<p>Times are UTC; "+" times count from the capture's first packet. History letters (Zeek): S syn, H syn-ack, A ack, D data, F fin, R rst, T retransmission, G bytes not captured; upper case client, lower case server.</p>` +
    `<p>The full JSON report (as <code>--format json</code>, schema version ${r.schemaVersion}) is embedded in this file: <code>&lt;script id="hangscope-report" type="application/json"&gt;</code>.</p>` +
    `</footer>`
  );
}

/** The axis: the capture's first packet is 0; the view adds 1.5 % on each side so markers at the edges stay whole. */
function axisFor(r: ReportJSON): Axis | null {
  const starts = r.connections.map((c) => c.start);
  const ends = r.connections.map((c) => c.end);
  if (r.stats.firstTs !== null) starts.push(r.stats.firstTs);
  if (r.stats.lastTs !== null) ends.push(r.stats.lastTs);
  if (starts.length === 0 || ends.length === 0) return null;
  const t0 = Math.min(...starts);
  const t1 = Math.max(...ends);
  const span = Math.max(t1 - t0, 0.001);
  const pad = span * 0.015;
  return { t0, span, v0: -pad, v1: span + pad };
}

/** Rows of the waterfall: every socket up to maxRows; beyond that, failing sockets first; drawn in order of first packet. */
function pickRows(conns: ConnectionJSON[], failingIds: Set<number>, max: number): ConnectionJSON[] {
  if (conns.length <= max) return [...conns].sort((a, b) => a.id - b.id);
  const failing = conns.filter((c) => failingIds.has(c.id));
  const fine = conns.filter((c) => !failingIds.has(c.id));
  return [...failing, ...fine].slice(0, max).sort((a, b) => a.id - b.id);
}

/** The whole page. */
export function renderHtml(r: ReportJSON, o: HtmlOptions = {}): string {
  const ax = axisFor(r);
  // A socket "fails" as in the text report (reset, or an exchange that did not complete), or when an error/warning finding names it.
  const failingIds = new Set(r.connections.filter(connectionFailing).map((c) => c.id));
  for (const f of r.findings) if (f.connection !== null && f.severity !== 'info') failingIds.add(f.connection);
  const rows = pickRows(r.connections, failingIds, Math.max(1, o.maxRows ?? DEFAULT_MAX_ROWS));
  const drawn = new Set(rows.map((c) => c.id));
  const wf = ax !== null ? waterfallHtml(r, ax, rows, failingIds) : { html: '', templates: '' };
  const t0 = ax?.t0 ?? 0;
  const scriptHash = createHash('sha256').update(SCRIPT, 'utf8').digest('base64');
  // No default sources: the page can fetch nothing (not even favicon or fonts); only its own script runs.
  const csp = `default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-${scriptHash}'; base-uri 'none'; form-action 'none'`;
  const title = `hangscope: ${r.source.name}${r.verdict ? ` — ${shorten(r.verdict.headline, 80)}` : ''}`;
  return (
    `<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">` +
    `<meta http-equiv="Content-Security-Policy" content="${csp}">` +
    `<meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<link rel="icon" href="data:,">` +
    `<title>${esc(title)}</title><style>${STYLE}</style></head>\n<body>` +
    headerHtml(r, ax, o.showSecrets === true) +
    verdictHtml(r, failingIds.size > 0) +
    findingsHtml(r, t0, Math.max(1, o.maxFindings ?? DEFAULT_MAX_FINDINGS), drawn) +
    wf.html +
    footerHtml(r) +
    `<div id="tip" role="tooltip"></div>` +
    `<div id="details" role="dialog" aria-label="details"><button type="button" class="close" aria-label="close">×</button><div id="details-body"></div></div>` +
    wf.templates +
    `\n<script id="hangscope-report" type="application/json">${jsonForScript(r)}</script>\n` +
    `<script>${SCRIPT}</script>\n</body></html>\n`
  );
}
