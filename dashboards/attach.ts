/**
 * The dashboard over HTTP: a running daemon serves the view model the
 * terminal dashboard renders, and `hangscope watch --attach URL` renders it
 * elsewhere (another terminal, another user on the same host).
 *
 * Server side (DashboardFeed, in the daemon next to /metrics):
 *   GET /events  server-sent events (https://html.spec.whatwg.org/multipage/server-sent-events.html):
 *                  hello       {tool, version, pid, startedAt, source, showSecrets}, first
 *                  connection  a finished socket (the JSON report's connections[] item), with an id
 *                  finding     a finding (the report's findings[] item), with an id
 *                  snapshot    the dashboard's Snapshot (dashboards/tui/model.ts), at most every 500 ms,
 *                              only when something changed
 *                  end         {reason}: the daemon is stopping; the last snapshot came before it
 *                On connect, the last BACKLOG connection/finding events are sent again (all of them, or
 *                those after the Last-Event-ID the client sends when it reconnects).
 *   GET /state   the latest Snapshot as one JSON document (for curl and scripts).
 * Both are read-only. Request targets are redacted and only a few harmless
 * headers are sent (the dashboard shows the user agent) unless the daemon
 * runs with --show-secrets; finding summaries are redacted by the diagnoser.
 *
 * Client side: followEvents() reads the stream (and reconnects), and
 * RemoteStore is a DashboardStore whose snapshots come from the daemon, so
 * the ink App renders it unchanged.
 */
import * as http from 'node:http';
import type { ConnectionRecord } from '../lib/correlate/index.js';
import type { Finding } from '../lib/diagnose/index.js';
import { connectionToJSON, findingToJSON, redactTarget } from '../lib/report/index.js';
import type { MessageHeaders } from '../lib/types.js';
import { DashboardStore, type Snapshot } from './tui/model.js';

/** Connection and finding events kept for clients that connect later. */
export const BACKLOG = 500;
/** Snapshots are sent at most this often (the dashboard draws at most 10 frames/s, ages are extrapolated). */
const SNAPSHOT_EVERY_MS = 500;
/** A comment line this often keeps proxies and idle-connection timers from closing the stream. */
const HEARTBEAT_MS = 15_000;
/** A client that reads slower than the daemon writes is dropped once this much is queued for it. */
const MAX_QUEUED = 8 * 1024 * 1024;
/** Headers sent to dashboards without --show-secrets: what the dashboard shows or explains a close, nothing else. */
const SAFE_HEADERS = new Set(['user-agent', 'server', 'connection', 'keep-alive', 'content-type', 'content-length', 'transfer-encoding']);

function safeHeaders(h: MessageHeaders): MessageHeaders {
  const out: MessageHeaders = {};
  for (const k of Object.keys(h)) if (SAFE_HEADERS.has(k)) out[k] = h[k]!;
  return out;
}

/** The snapshot as sent: plain JSON, request targets redacted and headers cut to SAFE_HEADERS unless showSecrets. */
export function wireSnapshot(s: Snapshot, showSecrets: boolean): Snapshot {
  if (showSecrets) return s;
  return {
    ...s,
    rows: s.rows.map((r) => ({
      ...r,
      exchanges: r.exchanges.map((e) => ({
        ...e,
        target: redactTarget(e.target, false),
        requestHeaders: safeHeaders(e.requestHeaders),
        responseHeaders: safeHeaders(e.responseHeaders),
      })),
    })),
  };
}

export interface FeedOptions {
  showSecrets: boolean;
  /** Sent first to every client. */
  hello: Record<string, unknown>;
}

interface Client {
  res: http.ServerResponse;
}

/** The daemon's side: turns engine events and store snapshots into the /events stream and /state. */
export class DashboardFeed {
  private readonly clients = new Set<Client>();
  private readonly backlog: { id: number; text: string }[] = [];
  private nextId = 1;
  private lastKey = '';
  private lastSent = 0;
  private lastBeat = Date.now();
  private snapText: string | null = null;
  private readonly timer: NodeJS.Timeout;
  private ended = false;

  constructor(
    private readonly store: DashboardStore,
    private readonly o: FeedOptions,
  ) {
    this.timer = setInterval(() => this.tick(), 100);
    this.timer.unref();
  }

  get clientCount(): number {
    return this.clients.size;
  }

  connection(rec: ConnectionRecord): void {
    this.event('connection', { type: 'connection', ...connectionToJSON(rec, { showSecrets: this.o.showSecrets }) });
  }

  finding(f: Finding): void {
    this.event('finding', { type: 'finding', ...findingToJSON(f) });
  }

  /** GET /events */
  events(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.ended) {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' }).end('hangscope: stopping\n');
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
    });
    res.socket?.setNoDelay(true);
    const client: Client = { res };
    this.clients.add(client);
    const drop = (): void => {
      this.clients.delete(client);
    };
    res.on('close', drop);
    req.on('close', drop);
    const last = Number(req.headers['last-event-id'] ?? 0);
    let out = `retry: 1000\nevent: hello\ndata: ${JSON.stringify(this.o.hello)}\n\n`;
    for (const e of this.backlog) if (!(last > 0) || e.id > last) out += e.text;
    out += `event: snapshot\ndata: ${this.snapshotText()}\n\n`;
    this.send(client, out);
  }

  /** GET /state */
  state(_req: http.IncomingMessage, res: http.ServerResponse): void {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
    res.end(`${this.snapshotText()}\n`);
  }

  /** The daemon stops: send the last snapshot and `end`, and close every stream. */
  end(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    clearInterval(this.timer);
    this.snapText = null;
    const text = `event: snapshot\ndata: ${this.snapshotText()}\n\nevent: end\ndata: ${JSON.stringify({ reason })}\n\n`;
    for (const c of [...this.clients]) {
      this.send(c, text);
      c.res.end();
    }
    this.clients.clear();
  }

  private event(name: string, body: unknown): void {
    const id = this.nextId++;
    const text = `id: ${id}\nevent: ${name}\ndata: ${JSON.stringify(body)}\n\n`;
    this.backlog.push({ id, text });
    if (this.backlog.length > BACKLOG) this.backlog.splice(0, this.backlog.length - BACKLOG);
    for (const c of this.clients) this.send(c, text);
  }

  private snapshotText(): string {
    const key = this.changeKey();
    if (this.snapText === null || key !== this.lastKey) {
      this.lastKey = key;
      this.snapText = JSON.stringify(wireSnapshot(this.store.snapshot(), this.o.showSecrets));
    }
    return this.snapText;
  }

  /**
   * What a new snapshot would differ by: the store's version (sockets, exchanges, findings, counters)
   * and the packets seen (a FIN or a byte on a live socket changes its row without an engine event).
   */
  private changeKey(): string {
    return `${this.store.version}:${this.store.engine?.packets ?? 0}`;
  }

  private tick(): void {
    if (this.clients.size === 0) return;
    const now = Date.now();
    if (this.changeKey() !== this.lastKey && now - this.lastSent >= SNAPSHOT_EVERY_MS) {
      this.lastSent = now;
      this.lastBeat = now;
      const text = `event: snapshot\ndata: ${this.snapshotText()}\n\n`;
      for (const c of this.clients) this.send(c, text);
    } else if (now - this.lastBeat >= HEARTBEAT_MS) {
      this.lastBeat = now;
      for (const c of this.clients) this.send(c, ': ping\n\n');
    }
  }

  private send(c: Client, text: string): void {
    if (c.res.writableLength > MAX_QUEUED) {
      // Too slow a reader: drop it rather than hold the daemon's memory hostage.
      this.clients.delete(c);
      c.res.destroy();
      return;
    }
    c.res.write(text);
  }
}

// ---------------------------------------------------------------- client side

export interface SseEvent {
  event: string;
  data: string;
  id: string | null;
}

/** Incremental text/event-stream parser (WHATWG HTML, "Interpreting an event stream"). */
export class SseParser {
  private buf = '';
  private data: string[] = [];
  private name = '';
  private afterCr = false;
  /** The last event ID seen (for Last-Event-ID on reconnect). */
  lastId: string | null = null;

  constructor(private readonly onEvent: (e: SseEvent) => void) {}

  push(chunk: string): void {
    if (chunk === '') return;
    // A CR ending the previous chunk may be the first half of a CRLF.
    if (this.afterCr && chunk.startsWith('\n')) chunk = chunk.slice(1);
    this.afterCr = false;
    this.buf += chunk;
    for (;;) {
      const nl = this.buf.search(/\r\n|\r|\n/);
      if (nl < 0) break;
      const line = this.buf.slice(0, nl);
      const crlf = this.buf.startsWith('\r\n', nl);
      if (!crlf && this.buf[nl] === '\r' && nl === this.buf.length - 1) this.afterCr = true;
      this.buf = this.buf.slice(nl + (crlf ? 2 : 1));
      this.line(line);
    }
    if (this.buf.length > 64 * 1024 * 1024) throw new Error('event stream line longer than 64 MiB');
  }

  private line(line: string): void {
    if (line === '') {
      if (this.data.length > 0) this.onEvent({ event: this.name || 'message', data: this.data.join('\n'), id: this.lastId });
      this.data = [];
      this.name = '';
      return;
    }
    if (line.startsWith(':')) return;
    const c = line.indexOf(':');
    const field = c < 0 ? line : line.slice(0, c);
    let value = c < 0 ? '' : line.slice(c + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.name = value;
    else if (field === 'id' && !value.includes('\0')) this.lastId = value;
  }
}

/** "http://127.0.0.1:9464", "127.0.0.1:9464", "http://host:9464/events" -> the /events URL. */
export function eventsUrl(url: string): URL {
  let u: URL;
  try {
    u = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `http://${url}`);
  } catch {
    throw new Error(`not a URL: "${url}"`);
  }
  if (u.protocol !== 'http:') throw new Error(`only http:// URLs are supported, not "${u.protocol}"`);
  if (u.pathname === '/' || u.pathname === '' || u.pathname === '/metrics' || u.pathname === '/state') u.pathname = '/events';
  return u;
}

export interface FollowHandlers {
  onEvent: (e: SseEvent) => void;
  /** 'connected' when a stream is open, 'disconnected' (with why) when it is not. */
  onLink?: (state: 'connected' | 'disconnected', why: string) => void;
}

/**
 * Follow a daemon's /events until `signal` aborts; reconnects every second
 * when the stream breaks (the daemon restarting), resuming after the last
 * event id. With `once`, resolves when the first stream ends instead, and
 * rejects when the first connection fails.
 */
export async function followEvents(url: URL, h: FollowHandlers, signal: AbortSignal, o: { once?: boolean } = {}): Promise<void> {
  let lastId: string | null = null;
  let first = true;
  while (!signal.aborted) {
    const why = await new Promise<string | null>((resolve, reject) => {
      const parser = new SseParser((e) => {
        lastId = parser.lastId;
        h.onEvent(e);
      });
      parser.lastId = lastId;
      const headers: Record<string, string> = { accept: 'text/event-stream' };
      if (lastId !== null) headers['last-event-id'] = lastId;
      const req = http.get(url, { headers, signal }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          const msg = `${url.href} answered ${res.statusCode} ${res.statusMessage ?? ''}`.trim();
          if (first && o.once === true) reject(new Error(msg));
          else resolve(msg);
          return;
        }
        first = false;
        h.onLink?.('connected', '');
        res.setEncoding('utf8');
        res.on('data', (s: string) => parser.push(s));
        res.on('end', () => resolve('the daemon closed the stream'));
        res.on('error', (e) => resolve(e.message));
      });
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (signal.aborted) return resolve(null);
        const msg = e.code === 'ECONNREFUSED' ? `nothing listens on ${url.host}` : e.message;
        if (first && o.once === true) reject(new Error(msg));
        else resolve(msg);
      });
    });
    if (why === null || signal.aborted) return;
    h.onLink?.('disconnected', why);
    if (o.once === true) return;
    await new Promise<void>((r) => {
      const t = setTimeout(r, 1000);
      signal.addEventListener('abort', () => {
        clearTimeout(t);
        r();
      });
    });
  }
}

/**
 * A DashboardStore fed by a daemon: snapshot() answers the latest snapshot
 * received, with "now" and the elapsed time moved on by the local clock
 * since it arrived (the daemon sends snapshots only when something changed).
 */
export class RemoteStore extends DashboardStore {
  private remote: Snapshot | null = null;
  private receivedAt = 0;
  private link: string;

  constructor(readonly url: string) {
    super({ source: { kind: 'tcpdump', name: url, filter: null, snaplen: null, port: null } });
    this.link = `connecting to ${url}`;
  }

  get latest(): Snapshot | null {
    return this.remote;
  }

  apply(s: Snapshot): void {
    this.remote = s;
    this.receivedAt = Date.now();
    this.final = s.final;
    this.version++;
  }

  setLink(text: string): void {
    if (text !== this.link) {
      this.link = text;
      this.version++;
    }
  }

  override snapshot(): Snapshot {
    const r = this.remote;
    if (r === null) {
      const s = super.snapshot();
      return { ...s, status: this.link };
    }
    const moved = r.final ? 0 : Math.max(0, Date.now() - this.receivedAt) * 1000;
    const status = [r.status, this.link].filter((x) => x !== '').join('  ·  ');
    return { ...r, clock: r.clock + moved, elapsed: r.elapsed + moved, status };
  }
}
