/**
 * `hangscope daemon`: live capture for repros that take hours, with nobody
 * watching. The same live source and engine as `watch`, and:
 *
 *  - the packets kept as evidence in rotating pcap files (bounded size and
 *    count, mode 0600, each file a valid capture: lib/capture/rotate.ts);
 *  - findings (and, with --connections, finished sockets) appended as NDJSON
 *    lines to a file, the same lines `watch --format ndjson` prints, between
 *    a `start` line and a `stats` line per run;
 *  - an HTTP listener, 127.0.0.1:9464 by default, serving Prometheus
 *    /metrics (dashboards/metrics.ts) and the dashboard's view model as
 *    /events (server-sent events) and /state (dashboards/attach.ts), which
 *    `hangscope watch --attach URL` renders.
 *
 * SIGINT / SIGTERM stop it cleanly: the live source is stopped (its last
 * packets are delivered), open connections are finished (their findings
 * written), the capture file is closed, the NDJSON file flushed and closed,
 * attached dashboards get the final state, and the listener is closed.
 */
import { closeSync, existsSync, fstatSync, fsyncSync, openSync, unlinkSync, writeSync } from 'node:fs';
import * as http from 'node:http';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { DashboardFeed } from '../dashboards/attach.js';
import { EngineMetrics } from '../dashboards/metrics.js';
import { DashboardStore } from '../dashboards/tui/model.js';
import { DEFAULT_BUFFER_KIB, FULL_SNAPLEN, buildFilter, startLiveCapture, type CaptureCounters, type LiveCapture, type LiveSourceChoice } from '../lib/capture/live.js';
import { counterText } from './capture-text.js';
import { LiveSession } from './live-session.js';
import { RotatingPcapWriter, checkRotateOptions, parseSize } from '../lib/capture/rotate.js';
import { planAttribution, startAttribution } from './attribution.js';
import { Engine, toReport } from '../lib/index.js';
import { connectionToJSON, findingToJSON } from '../lib/report/index.js';
import { UserError } from '../lib/types.js';
import { makePrivate, parseBounds, parsePort, parseSeconds, parseWholeNumber } from './analyze.js';

const require = createRequire(import.meta.url);
const pkg = require('../../package.json') as { version: string };

export interface DaemonCliOptions {
  interface?: string;
  port?: string;
  filter?: string;
  source?: string;
  snaplen?: string;
  bufferSize?: string;
  dir?: string;
  prefix?: string;
  rotateSize?: string;
  rotateCount?: string;
  ndjson?: string;
  connections?: boolean;
  metricsListen?: string;
  duration?: string;
  slow?: string;
  showSecrets?: boolean;
  maxConnections?: string;
  maxBuffer?: string;
  /** Name the process behind each FIN/RST (lib/attribute: eBPF, ss as the fallback). */
  attribute?: boolean;
  ssInterval?: string;
}

export const DEFAULT_LISTEN = '127.0.0.1:9464';
export const DEFAULT_DIR = 'hangscope-captures';
export const DEFAULT_ROTATE_SIZE = '100M';
export const DEFAULT_ROTATE_COUNT = '10';
/** Finished sockets kept for the dashboard's table. */
const DASHBOARD_ROWS = 200;

/** "127.0.0.1:9464", "[::1]:9464", "localhost:9464", ":9464" or "9464" (loopback). */
export function parseListen(v: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]*)):(\d+)$/.exec(v.trim()) ?? /^()()(\d+)$/.exec(v.trim());
  const port = m ? Number(m[3]) : NaN;
  if (m === null || !Number.isInteger(port) || port < 0 || port > 65535)
    throw new UserError(`--metrics-listen wants HOST:PORT such as 127.0.0.1:9464 or [::1]:9464, not "${v}"`);
  const host = m[1] ?? (m[2] !== '' && m[2] !== undefined ? m[2] : '127.0.0.1');
  return { host, port };
}

function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'));
}

/**
 * Appends NDJSON lines: findings are written at once (they are what the run
 * is for), other lines are buffered up to 64 KiB or one second. Each write is
 * one write(2) of whole lines, so a reader never sees half a line from us.
 */
class NdjsonAppender {
  private fd: number | null;
  private buf: string[] = [];
  private size = 0;
  private readonly timer: NodeJS.Timeout;
  lines = 0;
  errors = 0;
  private readonly created: boolean;

  constructor(readonly path: string) {
    this.created = !existsSync(path);
    try {
      this.fd = openSync(path, 'a', 0o600);
      makePrivate(this.fd); // regular files only: not /dev/null or a pipe
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const why = err.code === 'ENOENT' ? 'no such directory' : err.code === 'EACCES' ? 'permission denied' : err.message;
      throw new UserError(`cannot write ${path}: ${why}.`);
    }
    this.timer = setInterval(() => this.flush(), 1000);
    this.timer.unref();
  }

  line(obj: unknown, now = false): void {
    if (this.fd === null) return;
    const s = `${JSON.stringify(obj)}\n`;
    this.buf.push(s);
    this.size += s.length;
    this.lines++;
    if (now || this.size >= 64 * 1024) this.flush();
  }

  flush(): void {
    if (this.fd === null || this.buf.length === 0) return;
    const text = this.buf.join('');
    this.buf = [];
    this.size = 0;
    try {
      writeSync(this.fd, text);
    } catch (e) {
      // A full disk must not stop the capture; the count shows in the summary.
      this.errors++;
      if (this.errors === 1) process.stderr.write(`hangscope: cannot write ${this.path}: ${(e as Error).message}\n`);
    }
  }

  /** The daemon did not start: remove the file if this run created it and wrote nothing to it. */
  discard(): void {
    clearInterval(this.timer);
    if (this.fd === null) return;
    const st = fstatSync(this.fd);
    closeSync(this.fd);
    this.fd = null;
    if (this.created && st.isFile() && st.size === 0) {
      try {
        unlinkSync(this.path);
      } catch {
        /* gone already */
      }
    }
  }

  close(): void {
    clearInterval(this.timer);
    this.flush();
    if (this.fd !== null) {
      try {
        fsyncSync(this.fd);
      } catch {
        /* not every file system syncs */
      }
      closeSync(this.fd);
    }
    this.fd = null;
  }
}


function listen(server: http.Server, host: string, port: number): Promise<number> {
  return new Promise((res, rej) => {
    const onError = (e: NodeJS.ErrnoException): void => {
      const why =
        e.code === 'EADDRINUSE'
          ? 'the port is in use (another daemon?)'
          : e.code === 'EADDRNOTAVAIL'
            ? 'no such local address'
            : e.code === 'EACCES'
              ? 'permission denied'
              : e.message;
      rej(new UserError(`cannot listen on ${host}:${port} for /metrics: ${why}; choose another with --metrics-listen.`));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const a = server.address();
      res(typeof a === 'object' && a !== null ? a.port : port);
    });
  });
}

export async function runDaemon(o: DaemonCliOptions): Promise<void> {
  const port = parsePort(o.port);
  const slow = parseSeconds(o.slow, '--slow');
  const durationUs = parseSeconds(o.duration, '--duration');
  const snaplen = parseWholeNumber(o.snaplen, '--snaplen', 64, FULL_SNAPLEN) ?? FULL_SNAPLEN;
  const bufferMiB = parseWholeNumber(o.bufferSize, '--buffer-size', 1, 4096) ?? DEFAULT_BUFFER_KIB / 1024;
  const bounds = parseBounds(o);
  const attribution = planAttribution(o, port);
  const source = (o.source ?? 'auto') as LiveSourceChoice;
  if (!['auto', 'tcpdump', 'libpcap'].includes(source)) throw new UserError(`--source is one of auto, tcpdump, libpcap (not "${o.source}")`);
  const rotateSize = parseSize(o.rotateSize ?? DEFAULT_ROTATE_SIZE, '--rotate-size');
  const rotateCount = parseWholeNumber(o.rotateCount ?? DEFAULT_ROTATE_COUNT, '--rotate-count', 1, 1_000_000);
  checkRotateOptions({ ...(o.prefix !== undefined ? { prefix: o.prefix } : {}), maxBytes: rotateSize, maxFiles: rotateCount });
  const { host, port: listenPort } = parseListen(o.metricsListen ?? DEFAULT_LISTEN);
  const iface = o.interface ?? 'any';
  const filter = buildFilter(port, o.filter);
  const showSecrets = o.showSecrets === true;
  const dir = resolve(o.dir ?? DEFAULT_DIR);

  // The listener first (a port in use leaves nothing behind), then the files, then the capture.
  const server = http.createServer();
  server.keepAliveTimeout = 65_000;
  const boundPort = await listen(server, host, listenPort);
  let rotator: RotatingPcapWriter;
  let nd: NdjsonAppender;
  try {
    rotator = new RotatingPcapWriter({
      dir,
      ...(o.prefix !== undefined ? { prefix: o.prefix } : {}),
      maxBytes: rotateSize,
      maxFiles: rotateCount,
      snaplen,
      onError: (e) => process.stderr.write(`hangscope: cannot write the capture file: ${e.message}; still capturing, retrying later\n`),
    });
    nd = new NdjsonAppender(resolve(o.ndjson ?? join(dir, `${rotator.prefix}.ndjson`)));
  } catch (e) {
    server.close();
    throw e;
  }
  const ndjsonPath = nd.path;

  const startedWall = Date.now();
  const store = new DashboardStore({
    source: { kind: 'tcpdump', name: iface, filter, snaplen: snaplen < FULL_SNAPLEN ? snaplen : null, port },
    showSecrets,
    maxRows: DASHBOARD_ROWS,
    clock: () => Date.now() * 1000,
    elapsed: () => (Date.now() - startedWall) * 1000,
    ...(slow !== undefined ? { slow } : {}),
  });
  const metrics = new EngineMetrics();
  const hello = {
    tool: 'hangscope',
    version: pkg.version,
    pid: process.pid,
    startedAt: startedWall / 1000,
    interface: iface,
    filter,
    showSecrets,
  };
  const feed = new DashboardFeed(store, { showSecrets, hello });

  // Before the capture, so the kernel events of its first connections are seen.
  const attributor = await startAttribution(attribution);

  const engine = new Engine({
    port,
    showSecrets,
    ...(slow !== undefined ? { slowFirstByte: slow } : {}),
    ...bounds,
    onOpen: (conn) => {
      store.onOpen(conn);
      metrics.onOpen();
    },
    onExchange: (conn, ex) => {
      store.onExchange(conn, ex);
      metrics.onExchange(conn, ex);
    },
    onConnection: (rec) => {
      // First: the diagnosis rules run after this callback and read the attribution.
      attributor?.annotate(rec);
      store.onConnection(rec);
      metrics.onConnection(rec);
      feed.connection(rec);
      if (o.connections === true) nd.line({ type: 'connection', ...connectionToJSON(rec, { showSecrets }) });
    },
    onFinding: (f) => {
      store.onFinding(f);
      metrics.onFinding(f);
      feed.finding(f);
      nd.line({ type: 'finding', ...findingToJSON(f) }, true);
    },
  });
  store.attach(engine);

  let capture: LiveCapture | null = null;
  metrics.attach(engine, () => (capture !== null ? { source: capture.kind, counters: capture.counters() } : null));
  metrics.attachFiles(() => rotator);

  const loopback = isLoopbackHost(host);
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    // Bound to loopback: answer only requests addressed to loopback, so a web page cannot read the
    // endpoint through DNS rebinding (its Host header then names the attacker's domain).
    const h = (req.headers.host ?? '').replace(/:\d+$/, '');
    if (loopback && !isLoopbackHost(h)) {
      res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8' }).end('hangscope: requests must be addressed to a loopback host\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('hangscope: read-only\n');
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      metrics.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(req.method === 'HEAD' ? undefined : text),
        (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`hangscope: ${(e as Error).message}\n`),
      );
    } else if (path === '/events') feed.events(req, res);
    else if (path === '/state') feed.state(req, res);
    else if (path === '/') {
      res
        .writeHead(200, { 'content-type': 'text/plain; charset=utf-8' })
        .end('hangscope daemon\n/metrics  Prometheus metrics\n/events   dashboard events (server-sent events; `hangscope watch --attach URL`)\n/state    dashboard state (JSON)\n');
    } else res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('hangscope: not found\n');
  });
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${boundPort}`;

  // A second signal while stopping: give up waiting (every capture record is on disk already).
  const session = new LiveSession({ engine, durationUs, exitOnSecond: 'any' });
  session.listenForSignals();

  try {
    capture = await startLiveCapture({
      source,
      iface,
      filter,
      snaplen,
      bufferKiB: bufferMiB * 1024,
      anomalies: engine.anomalies,
      onLinkType: (lt) => rotator.start(lt),
      onPacket: (rec) => {
        rotator.write(rec);
        engine.packet(rec);
      },
    });
  } catch (e) {
    session.removeSignals();
    await attributor?.stop();
    rotator.close();
    nd.discard();
    feed.end('the capture did not start');
    server.closeAllConnections();
    server.close();
    throw e;
  }
  const cap = capture;
  store.source.kind = cap.kind;
  store.setStatus('daemon capturing');
  nd.line(
    {
      type: 'start',
      ts: startedWall / 1000,
      tool: 'hangscope',
      version: pkg.version,
      pid: process.pid,
      capture: { source: cap.kind, interface: iface, filter, snaplen },
      files: { dir, pattern: rotator.pattern.source, rotateSize, rotateCount },
      metrics: `${base}/metrics`,
    },
    true,
  );
  process.stderr.write(
    `hangscope: daemon listening on ${iface} with ${cap.kind}, filter "${filter}"${attributor !== null ? `, attribution: ${attributor.description}` : ''}; ` +
      `captures in ${dir} (${rotator.prefix}-*.pcap, newest ${rotateCount} of at most ${rotateSize} bytes); ` +
      `findings to ${ndjsonPath}; metrics on ${base}/metrics; dashboard: hangscope watch --attach ${base}\n`,
  );
  if (!loopback) process.stderr.write(`hangscope: warning: ${host} is not a loopback address: anyone who can reach it sees the metrics and the dashboard (paths, hosts, timing)\n`);

  session.run(
    cap,
    (c) => {
      store.setCounters(c);
      // For attached dashboards: the capture-wide findings as they stand (the final ones at the stop).
      store.setCaptureWide(engine.diagnoser.finish());
    },
    () => `${cap.kind} failed`,
  );

  const counters = await session.finish(cap);
  const stopReason = session.stopReason;
  await attributor?.stop();
  rotator.close();
  store.setCounters(counters);
  const stats = toReport({ engine, source: { name: iface, format: 'live', compressed: false }, connections: [], findings: [] }, { port, showSecrets }).stats;
  nd.line({
    type: 'stats',
    ...stats,
    drops: counters.dropped,
    capture: {
      source: cap.kind,
      interface: iface,
      filter,
      snaplen,
      received: counters.received,
      dropped: counters.dropped,
      ifDropped: counters.ifDropped,
      written: rotator.packets,
      lost: rotator.lost,
      stoppedBy: stopReason,
    },
    files: { kept: rotator.files(), opened: rotator.filesOpened, deleted: rotator.filesDeleted, errors: rotator.errors },
  });
  nd.close();
  store.setFinal(`daemon stopped (${stopReason})`);
  feed.end(stopReason ?? 'stopped');
  await new Promise<void>((r) => {
    server.close(() => r());
    server.closeAllConnections();
  });
  session.removeSignals();

  const kept = rotator.files();
  process.stderr.write(
    `hangscope: daemon stopped (${stopReason}); ${counterText(cap.kind, counters, bufferMiB)}; ` +
      `${rotator.packets} packets in ${rotator.filesOpened} file${rotator.filesOpened === 1 ? '' : 's'} (${kept.length} kept, ${rotator.filesDeleted} rotated away${rotator.lost ? `, ${rotator.lost} packets not written` : ''}); ` +
      `${nd.lines} lines appended to ${ndjsonPath}.\n`,
  );
  if (session.endError !== null) throw session.endError;
  if (cap.holdsEventLoop) process.stdout.write('', () => process.exit(0));
}
