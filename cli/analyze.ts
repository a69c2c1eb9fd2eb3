/** `hangscope analyze <file|->`: a capture file (pcap, pcapng, gzip) through the engine into a report. */
import { closeSync, fchmodSync, fstatSync, openSync, writeSync } from 'node:fs';
import { renderHtml } from '../dashboards/html.js';
import { renderText, socketFailing } from '../dashboards/text.js';
import { parseSize } from '../lib/capture/rotate.js';
import { analyzeCapture, toReport, type Analysis, type ConnectionRecord, type Engine } from '../lib/index.js';
import { connectionToJSON, findingToJSON } from '../lib/report/index.js';
import { UserError } from '../lib/types.js';

export interface AnalyzeCliOptions {
  port?: string;
  format: string;
  output?: string;
  showSecrets?: boolean;
  slow?: string;
  progress?: boolean;
  color?: boolean;
  /** Replay into the terminal dashboard (cli/watch.ts) instead of writing a report. */
  tui?: boolean;
  /** With --tui: multiple of the recorded speed (default: as fast as possible). */
  speed?: string;
  maxConnections?: string;
  maxBuffer?: string;
}

/** The engine's resource bounds from --max-connections and --max-buffer (docs/reliability.md). */
export function parseBounds(o: { maxConnections?: string | undefined; maxBuffer?: string | undefined }): {
  maxConnections?: number;
  maxBufferedBytes?: number;
} {
  const out: { maxConnections?: number; maxBufferedBytes?: number } = {};
  if (o.maxConnections !== undefined) {
    const n = Number(o.maxConnections);
    if (!Number.isInteger(n) || n < 1 || n > 100_000_000)
      throw new UserError(`--max-connections wants a whole number of connections from 1 to 100000000, not "${o.maxConnections}"`);
    out.maxConnections = n;
  }
  if (o.maxBuffer !== undefined) out.maxBufferedBytes = parseSize(o.maxBuffer, '--max-buffer');
  return out;
}

export function parsePort(v: string | undefined): number | null {
  if (v === undefined) return null;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new UserError(`--port wants a TCP port number from 1 to 65535, not "${v}"`);
  return n;
}

/** A whole-number option from `min` to `max` (undefined when not given); UserError otherwise. */
export function parseWholeNumber(v: string, flag: string, min: number, max: number): number;
export function parseWholeNumber(v: string | undefined, flag: string, min: number, max: number): number | undefined;
export function parseWholeNumber(v: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new UserError(`${flag} wants a whole number from ${min} to ${max}, not "${v}"`);
  return n;
}

export function parseSeconds(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new UserError(`${flag} wants a number of seconds, not "${v}"`);
  return Math.round(n * 1e6);
}

/**
 * Make a file the user named private (0600): open()'s mode only applies when
 * it creates the file, so an existing report keeps its old mode otherwise.
 * Only regular files: `-o /dev/null` as root must not chmod /dev/null.
 */
export function makePrivate(fd: number): void {
  if (fstatSync(fd).isFile()) fchmodSync(fd, 0o600);
}

/** Output goes to --output (created 0600: captures and reports can hold secrets) or stdout. */
export class Output {
  private fd: number | null = null;
  constructor(path: string | undefined) {
    if (path !== undefined && path !== '-') {
      try {
        this.fd = openSync(path, 'w', 0o600);
        makePrivate(this.fd);
      } catch (e) {
        throw new UserError(`cannot write ${path}: ${(e as Error).message.replace(/^[A-Z]+: /, '')}`);
      }
    }
  }
  write(s: string): void {
    if (this.fd !== null) writeSync(this.fd, s);
    else process.stdout.write(s);
  }
  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** A progress line on stderr: percent of the file, packets/s, open connections. */
function progressReporter(enabled: boolean): {
  update: (bytesRead: number, total: number | null, engine: Engine) => void;
  done: () => void;
} {
  if (!enabled) return { update: () => {}, done: () => {} };
  const t0 = Date.now();
  let last = 0;
  let shown = false;
  return {
    update(bytesRead, total, engine) {
      const now = Date.now();
      if (now - last < 250) return;
      last = now;
      const secs = (now - t0) / 1000;
      const pct = total ? `${((100 * bytesRead) / total).toFixed(1)}% of ${(total / 1e6).toFixed(0)} MB` : `${(bytesRead / 1e6).toFixed(0)} MB`;
      const rate = secs > 0 ? Math.round(engine.packets / secs) : 0;
      process.stderr.write(`\r\x1b[2Khangscope: ${pct}, ${rate.toLocaleString('en-US')} packets/s, ${engine.openConnections} open connections`);
      shown = true;
    },
    done() {
      if (shown) process.stderr.write('\r\x1b[2K');
    },
  };
}

/**
 * The --format json document, written connection by connection: the same
 * bytes as JSON.stringify(toReport(a), null, 2), without the whole document
 * and its object tree in memory at once (at 1 GB of capture that was 1.2 GB
 * of RSS instead of the records alone). A JSON string never holds a raw
 * newline, so indenting a nested value is a replace of "\n".
 */
function writeJsonReport(out: Output, a: Analysis, o: { port: number | null; showSecrets: boolean }): void {
  const head = JSON.stringify(toReport({ ...a, connections: [] }, o), null, 2);
  const empty = '[]\n}';
  if (!head.endsWith(`"connections": ${empty}`)) throw new Error('internal error: the report does not end with its connections');
  const n = a.connections.length;
  if (n === 0) {
    out.write(`${head}\n`);
    return;
  }
  out.write(`${head.slice(0, head.length - empty.length)}[\n`);
  for (let i = 0; i < n; i++) {
    const json = JSON.stringify(connectionToJSON(a.connections[i]!, { showSecrets: o.showSecrets }), null, 2);
    out.write(`    ${json.replace(/\n/g, '\n    ')}${i < n - 1 ? ',' : ''}\n`);
  }
  out.write('  ]\n}\n');
}

/** Sockets the text report shows at most (failing ones first, then the lowest ids). */
const TEXT_SOCKETS = 50;

/**
 * Text mode keeps every connection record (the report counts them), but the
 * exchanges only of those it can show: the TEXT_SOCKETS lowest ids among the
 * failing sockets and among the others (it shows failing ones first, then
 * the lowest ids). A failing socket it cannot show keeps only its failed
 * exchanges, so it still counts as failing. Connections finish out of id
 * order, so the kept sets are maintained as they come; a record is trimmed
 * only once the diagnoser has seen it (it runs after onConnection). Memory
 * then stays flat with the size of the capture instead of holding every
 * exchange.
 */
function textKeeper(): { onConnection: (rec: ConnectionRecord) => void } {
  // The lowest ids seen so far, ascending: failing sockets, and the others.
  const failing: ConnectionRecord[] = [];
  const fine: ConnectionRecord[] = [];
  let previous: ConnectionRecord | null = null;
  const settle = (rec: ConnectionRecord): void => {
    const isFailing = socketFailing(rec);
    const kept = isFailing ? failing : fine;
    let i = kept.length;
    while (i > 0 && kept[i - 1]!.id > rec.id) i--;
    kept.splice(i, 0, rec);
    if (kept.length <= TEXT_SOCKETS) return;
    const out = kept.pop()!;
    out.exchanges = isFailing ? out.exchanges.filter((e) => e.outcome !== 'complete') : [];
  };
  return {
    onConnection(rec) {
      if (previous !== null) settle(previous);
      previous = rec;
    },
  };
}

export async function runAnalyze(file: string, o: AnalyzeCliOptions): Promise<void> {
  const port = parsePort(o.port);
  const slow = parseSeconds(o.slow, '--slow');
  const bounds = parseBounds(o);
  if (o.tui === true) {
    const speed = o.speed === undefined ? 0 : Number(o.speed);
    if (!Number.isFinite(speed) || speed < 0) throw new UserError(`--speed wants a multiple of the recorded speed (1 = as recorded), not "${o.speed}"`);
    // Loaded on demand: plain reports do not need ink and React (production build, as for watch).
    process.env.NODE_ENV ??= 'production';
    const { runReplayTui } = await import('./watch.js');
    await runReplayTui(file, { port, showSecrets: o.showSecrets === true, slow, speed });
    return;
  }
  const format = o.format;
  if (!['text', 'json', 'ndjson', 'html'].includes(format)) throw new UserError(`--format is one of text, json, ndjson, html (not "${format}")`);
  // A page of HTML (with the JSON report inside) is no use in a terminal; a pipe or redirect is fine.
  if (format === 'html' && (o.output === undefined || o.output === '-') && process.stdout.isTTY === true)
    throw new UserError('--format html writes a web page: add --output report.html (or redirect standard output)');
  const showSecrets = o.showSecrets === true;
  const out = new Output(o.output);
  const progress = progressReporter(o.progress ?? (process.stderr.isTTY === true && file !== '-'));
  try {
    const streaming = format === 'ndjson';
    const keeper = format === 'text' ? textKeeper() : null;
    const analysis = await analyzeCapture(file, {
      port,
      showSecrets,
      ...(slow !== undefined ? { slowFirstByte: slow } : {}),
      ...bounds,
      onProgress: progress.update,
      keepConnections: !streaming,
      ...(streaming
        ? {
            onConnection: (rec) => out.write(`${JSON.stringify({ type: 'connection', ...connectionToJSON(rec, { showSecrets }) })}\n`),
            onFinding: (f) => out.write(`${JSON.stringify({ type: 'finding', ...findingToJSON(f) })}\n`),
          }
        : {}),
      ...(keeper !== null ? { onConnection: keeper.onConnection } : {}),
    });
    progress.done();
    if (format === 'json') writeJsonReport(out, analysis, { port, showSecrets });
    else if (format === 'ndjson') out.write(`${JSON.stringify({ type: 'stats', ...toReport(analysis, { port, showSecrets }).stats })}\n`);
    else if (format === 'html') out.write(renderHtml(toReport(analysis, { port, showSecrets }), { showSecrets }));
    else
      out.write(
        renderText(analysis, {
          showSecrets,
          maxSockets: TEXT_SOCKETS,
          // commander turns --no-color into a `color` flag that defaults to true: colour only on a terminal.
          color: o.color !== false && o.output === undefined && process.stdout.isTTY === true,
        }),
      );
  } finally {
    progress.done();
    out.close();
  }
}
