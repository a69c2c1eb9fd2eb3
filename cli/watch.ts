/**
 * `hangscope watch`: live capture (tcpdump pipe or in-process libpcap) into
 * the same engine as files, shown on the terminal dashboard, or streamed as
 * lines (`--format text|ndjson`, or when standard output is not a terminal).
 * Also `hangscope analyze FILE --tui`: a file replayed into the dashboard.
 */
import { closeSync, openSync } from 'node:fs';
import { closeSender, exchangeLink, renderText, socketFailing } from '../dashboards/text.js';
import { DashboardStore, runDashboard, type DashboardHandle } from '../dashboards/tui/index.js';
import { replayCapture } from '../lib/capture/live-replay.js';
import {
  DEFAULT_BUFFER_KIB,
  FULL_SNAPLEN,
  buildFilter,
  startLiveCapture,
  type CaptureCounters,
  type LiveCapture,
  type LiveSourceChoice,
} from '../lib/capture/live.js';
import { counterText, snaplenNote } from './capture-text.js';
import { LiveSession } from './live-session.js';
import { planAttribution, startAttribution } from './attribution.js';
import { PcapWriteError, PcapWriter } from '../lib/capture/index.js';
import type { ConnectionRecord } from '../lib/correlate/index.js';
import type { Finding } from '../lib/diagnose/index.js';
import { Engine, toReport, type Analysis } from '../lib/index.js';
import { connectionToJSON, findingToJSON, fmtClock } from '../lib/report/index.js';
import { UserError } from '../lib/types.js';
import { Output, makePrivate, parseBounds, parsePort, parseSeconds, parseWholeNumber } from './analyze.js';
import { setEpipeHandler } from './errors.js';

/**
 * Exit status of watch (docs/reliability.md): 0 stopped as asked (--duration,
 * --count, q, SIGINT, SIGTERM, standard output closed, the source ended by
 * itself cleanly); 2 a problem before capturing (options, privilege,
 * interface, output file); 3 the capture failed while running (tcpdump died
 * or was killed, the interface disappeared); 4 writing --write failed (disk
 * full, I/O error): the file holds every packet before; 1 a bug.
 */
export const EXIT_CAPTURE_FAILED = 3;
export const EXIT_WRITE_FAILED = 4;

export interface WatchCliOptions {
  interface?: string;
  port?: string;
  filter?: string;
  source?: string;
  snaplen?: string;
  bufferSize?: string;
  write?: string;
  duration?: string;
  count?: string;
  format?: string;
  output?: string;
  slow?: string;
  showSecrets?: boolean;
  color?: boolean;
  /** Show a running daemon's dashboard (cli/attach.ts) instead of capturing. */
  attach?: string;
  /** Name the process behind each FIN/RST (lib/attribute: eBPF, ss as the fallback). */
  attribute?: boolean;
  ssInterval?: string;
  maxConnections?: string;
  maxBuffer?: string;
}

/** Sockets and findings kept for the final report (the text summary); beyond, only counts. */
const KEEP_FAILING = 2000;
const KEEP_OTHERS = 2000;
const KEEP_FINDINGS = 10_000;

/** Create (or truncate) the --write file with mode 0600 before the writer opens it: captures hold secrets. */
function precreatePrivate(path: string): void {
  try {
    const fd = openSync(path, 'w', 0o600);
    // An existing file keeps its mode on open(); make it private too (regular files only: not /dev/null).
    makePrivate(fd);
    closeSync(fd);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such directory' : err.code === 'EACCES' ? 'permission denied' : err.message;
    throw new UserError(`cannot write ${path}: ${why}.`);
  }
}

/** What the final summary is built from: recent sockets (failing ones kept preferentially) and the findings. */
class Keeper {
  failing: ConnectionRecord[] = [];
  others: ConnectionRecord[] = [];
  findings: Finding[] = [];
  droppedFindings = 0;
  connection(rec: ConnectionRecord): void {
    const list = socketFailing(rec) ? this.failing : this.others;
    list.push(rec);
    const max = list === this.failing ? KEEP_FAILING : KEEP_OTHERS;
    if (list.length > max * 1.25) list.splice(0, list.length - max);
  }
  finding(f: Finding): void {
    if (this.findings.length < KEEP_FINDINGS) this.findings.push(f);
    else this.droppedFindings++;
  }
  connections(): ConnectionRecord[] {
    return [...this.failing, ...this.others].sort((a, b) => a.id - b.id);
  }
}

export async function runWatch(o: WatchCliOptions): Promise<void> {
  if (o.attach !== undefined) {
    if (o.write !== undefined || o.count !== undefined)
      throw new UserError('--attach shows what a daemon captures: --write and --count are for watch\'s own capture (the daemon keeps the files in its --dir)');
    const { runAttach } = await import('./attach.js');
    return runAttach({ url: o.attach, format: o.format, output: o.output, durationUs: parseSeconds(o.duration, '--duration') });
  }
  const port = parsePort(o.port);
  const slow = parseSeconds(o.slow, '--slow');
  const bounds = parseBounds(o);
  const durationUs = parseSeconds(o.duration, '--duration');
  const count = parseWholeNumber(o.count, '--count', 1, Number.MAX_SAFE_INTEGER);
  const snaplen = parseWholeNumber(o.snaplen, '--snaplen', 64, FULL_SNAPLEN) ?? FULL_SNAPLEN;
  const bufferMiB = parseWholeNumber(o.bufferSize, '--buffer-size', 1, 4096) ?? DEFAULT_BUFFER_KIB / 1024;
  const source = (o.source ?? 'auto') as LiveSourceChoice;
  if (!['auto', 'tcpdump', 'libpcap'].includes(source))
    throw new UserError(`--source is one of auto, tcpdump, libpcap (not "${o.source}")`);
  const tty = process.stdout.isTTY === true && process.stdin.isTTY === true && o.output === undefined;
  const format = o.format ?? (tty ? 'tui' : 'text');
  if (!['tui', 'text', 'ndjson'].includes(format)) throw new UserError(`--format is one of tui, text, ndjson (not "${format}")`);
  if (format === 'tui' && !tty) throw new UserError('--format tui needs a terminal on standard input and output; use --format text or ndjson');
  const iface = o.interface ?? 'any';
  const filter = buildFilter(port, o.filter);
  const showSecrets = o.showSecrets === true;
  // commander makes --no-color default to true: colour only on a terminal, and never with --no-color.
  const color = o.color !== false && o.output === undefined && process.stdout.isTTY === true;

  if (o.write !== undefined) precreatePrivate(o.write);
  const out = new Output(o.output);
  const keeper = new Keeper();
  const startedWall = Date.now();
  const store =
    format === 'tui'
      ? new DashboardStore({
          source: { kind: 'tcpdump', name: iface, filter, snaplen: snaplen < FULL_SNAPLEN ? snaplen : null, port },
          showSecrets,
          clock: () => Date.now() * 1000,
          elapsed: () => (Date.now() - startedWall) * 1000,
          ...(slow !== undefined ? { slow } : {}),
        })
      : null;

  // Before the capture, so the kernel events of its first connections are seen.
  const attributor = await startAttribution(planAttribution(o, port));

  const engine = new Engine({
    port,
    showSecrets,
    ...(slow !== undefined ? { slowFirstByte: slow } : {}),
    ...bounds,
    ...(store !== null ? { onOpen: store.onOpen, onExchange: store.onExchange } : {}),
    onConnection: (rec) => {
      // First: the diagnosis rules run after this callback and read the attribution.
      attributor?.annotate(rec);
      keeper.connection(rec);
      store?.onConnection(rec);
      if (format === 'ndjson') out.write(`${JSON.stringify({ type: 'connection', ...connectionToJSON(rec, { showSecrets }) })}\n`);
      else if (format === 'text') out.write(`${connectionLine(rec, showSecrets)}\n`);
    },
    onFinding: (f) => {
      keeper.finding(f);
      store?.onFinding(f);
      if (format === 'ndjson') out.write(`${JSON.stringify({ type: 'finding', ...findingToJSON(f) })}\n`);
      else if (format === 'text') out.write(`${findingLine(f)}\n`);
    },
  });
  store?.attach(engine);

  let writer: PcapWriter | null = null;
  let writeError: PcapWriteError | null = null;
  const openWriter = (linkType: number): void => {
    if (writer !== null || o.write === undefined || writeError !== null) return;
    try {
      writer = new PcapWriter(o.write, linkType, { snaplen });
    } catch (e) {
      // Even the file header did not fit (a full disk): stop, as for any later write.
      writeError = new PcapWriteError((e as Error).message.replace(/\.$/, ''), undefined, 0);
      requestStop(writeError.message);
    }
  };

  const session = new LiveSession({ engine, durationUs, exitOnSecond: 'SIGINT' });
  const requestStop = session.requestStop;

  let fed = 0;
  // The reader of standard output went away (`| head`): stop like on SIGTERM, writing nothing more there.
  let stdoutClosed = false;
  setEpipeHandler(() => {
    stdoutClosed = true;
    requestStop('standard output closed');
  });
  let capture: LiveCapture;
  try {
    capture = await startLiveCapture({
      source,
      iface,
      filter,
      snaplen,
      bufferKiB: bufferMiB * 1024,
      anomalies: engine.anomalies,
      onLinkType: openWriter,
      onPacket: (rec) => {
        if (count !== undefined && fed >= count) return;
        fed++;
        if (writer === null) openWriter(rec.linkType);
        if (writeError === null && writer !== null) {
          try {
            (writer as PcapWriter).write(rec);
          } catch (e) {
            // A full disk: stop (the evidence cannot be kept); this packet is still analysed.
            writeError = e instanceof PcapWriteError ? e : new PcapWriteError(`cannot write ${o.write}: ${(e as Error).message}`, undefined, 0);
            requestStop(writeError.message);
          }
        }
        engine.packet(rec);
        if (count !== undefined && fed >= count) requestStop(`${count} packets captured`);
      },
    });
  } catch (e) {
    out.close();
    await attributor?.stop();
    throw e;
  }
  if (store !== null) {
    store.source.kind = capture.kind;
    store.setStatus('capturing');
  }

  const note = snaplenNote(snaplen);
  if (format !== 'tui') {
    process.stderr.write(
      `hangscope: listening on ${iface} with ${capture.kind}, filter "${filter}"${o.write ? `, writing ${o.write}` : ''}${attributor !== null ? `, attribution: ${attributor.description}` : ''}; Ctrl-C stops.\n`,
    );
    if (note !== null) process.stderr.write(`hangscope: ${note}\n`);
  }

  session.run(
    capture,
    (c) => {
      store?.setCounters(c);
      // The capture-wide findings as they stand (the final ones come when the capture stops).
      store?.setCaptureWide(engine.diagnoser.finish());
    },
    (e) => e.message.replace(/\.$/, ''),
  );
  session.listenForSignals();

  let dashboard: DashboardHandle | null = null;
  if (store !== null) dashboard = runDashboard(store, { onQuit: () => requestStop('quit') });
  void dashboard?.done.then(() => requestStop('quit'));

  const counters = await session.finish(capture);
  const stopReason = session.stopReason;
  await attributor?.stop();
  (writer as PcapWriter | null)?.close();
  if (writer === null && o.write !== undefined && capture.linkType !== null) {
    // No packet at all: still leave a valid (empty) pcap.
    openWriter(capture.linkType);
    (writer as PcapWriter | null)?.close();
  }
  store?.setCounters(counters);

  if (store !== null && dashboard !== null) {
    if (stopReason !== 'quit' && stopReason !== 'SIGTERM' && stopReason !== 'SIGINT') {
      // Duration or count reached, or the source ended: stay on the final state until q.
      store.setFinal(`stopped: ${stopReason}; q quits`);
      await dashboard.done;
    } else dashboard.close();
  }
  session.removeSignals();

  const capLine = `${counterText(capture.kind, counters, bufferMiB)}${writer !== null ? `; ${(writer as PcapWriter).packets} packets written to ${o.write}` : ''}`;
  const analysis: Analysis = {
    engine,
    source: { name: `${iface} (live, ${capture.kind}, filter "${filter}")`, format: 'live', compressed: false },
    connections: format === 'ndjson' ? [] : keeper.connections(),
    findings: keeper.findings,
  };
  try {
    if (stdoutClosed && o.output === undefined) {
      // Nobody reads standard output any more: no summary there.
    } else if (format === 'ndjson') {
      const stats = toReport(analysis, { port, showSecrets }).stats;
      out.write(
        `${JSON.stringify({
          type: 'stats',
          ...stats,
          drops: counters.dropped,
          capture: {
            source: capture.kind,
            interface: iface,
            filter,
            snaplen,
            received: counters.received,
            dropped: counters.dropped,
            ifDropped: counters.ifDropped,
            written: writer !== null ? (writer as PcapWriter).packets : null,
            stoppedBy: stopReason,
          },
        })}\n`,
      );
    } else {
      if (format === 'text') out.write('\n');
      out.write(renderText(analysis, { showSecrets, color }));
      if (note !== null) out.write(`${note}\n`);
    }
  } finally {
    out.close();
  }
  // One line says why it stopped and what the capture file holds; the status says whether that was asked for.
  process.stderr.write(`hangscope: stopped (${stopReason}); ${capLine}.\n`);
  if (writeError !== null) process.exitCode = EXIT_WRITE_FAILED;
  else if (session.endError !== null) process.exitCode = EXIT_CAPTURE_FAILED;
  if (capture.holdsEventLoop) {
    // Everything is written (stdout and stderr are synchronous for files and pipes on Linux; the
    // callback covers the rest); the libpcap binding would keep the process alive until a packet.
    process.stdout.write('', () => process.exit(0));
  }
}

/** One finished socket as one line (the text stream). */
export function connectionLine(rec: ConnectionRecord, showSecrets: boolean): string {
  const chain =
    rec.exchanges.length > 0
      ? rec.exchanges.map((e) => exchangeLink(e, rec, showSecrets)).join(' -> ')
      : rec.protocol !== 'none' && rec.protocol !== 'http'
        ? `${rec.protocol} payload, not HTTP/1.x`
        : rec.bytes[0] + rec.bytes[1] === 0
          ? 'no payload'
          : '';
  const first = rec.closes[0];
  const closed = first ? `; ${first.by} ${first.kind} first${closeSender(first)}` : '';
  return `${fmtClock(rec.end)} socket ${rec.client.ip}:${rec.client.port} -> ${rec.server.ip}:${rec.server.port} #${rec.id} ${rec.state}: ${chain}${closed}`;
}

export function findingLine(f: Finding): string {
  const when = f.ts !== null ? `${fmtClock(f.ts)} ` : '';
  return `${when}${f.severity} ${f.code}${f.connection !== null ? ` (#${f.connection})` : ''}: ${f.summary}`;
}

export interface ReplayTuiOptions {
  port: number | null;
  showSecrets: boolean;
  slow?: number | undefined;
  /** Multiple of the recorded speed, 0: as fast as possible. */
  speed: number;
}

/** `hangscope analyze FILE --tui`: the file through the engine into the dashboard; stays on the final state until q. */
export async function runReplayTui(file: string, o: ReplayTuiOptions): Promise<void> {
  if (process.stdout.isTTY !== true || process.stdin.isTTY !== true)
    throw new UserError('--tui needs a terminal on standard input and output; use --format text, json or ndjson');
  if (file === '-') throw new UserError('--tui reads a file, not standard input (the keyboard is on standard input)');
  const store = new DashboardStore({
    source: { kind: 'file', name: file, filter: null, snaplen: null, port: o.port },
    showSecrets: o.showSecrets,
    ...(o.slow !== undefined ? { slow: o.slow } : {}),
  });
  const engine = new Engine({
    port: o.port,
    showSecrets: o.showSecrets,
    ...(o.slow !== undefined ? { slowFirstByte: o.slow } : {}),
    onOpen: store.onOpen,
    onExchange: store.onExchange,
    onConnection: store.onConnection,
    onFinding: store.onFinding,
  });
  store.attach(engine);
  store.setStatus(o.speed > 0 ? `replaying at ${o.speed}x` : 'reading');
  const abort = new AbortController();
  const dashboard = runDashboard(store, { onQuit: () => abort.abort() });
  void dashboard.done.then(() => abort.abort());
  const onTerm = (): void => {
    abort.abort();
    dashboard.close();
  };
  process.on('SIGTERM', onTerm);
  try {
    await replayCapture(file, (rec) => engine.packet(rec), {
      anomalies: engine.anomalies,
      speed: o.speed,
      signal: abort.signal,
      onClock: (now) => {
        engine.tick(now);
        store.setCaptureWide(engine.diagnoser.finish());
      },
    });
  } catch (e) {
    dashboard.close();
    process.off('SIGTERM', onTerm);
    throw e;
  }
  engine.finish();
  store.setFinal(abort.signal.aborted ? 'stopped' : 'end of capture; q quits');
  await dashboard.done;
  process.off('SIGTERM', onTerm);
}
