/**
 * Prometheus metrics of a running engine (the daemon's /metrics), made with
 * prom-client. Names follow https://prometheus.io/docs/practices/naming/:
 * `hangscope_` prefix, base units (seconds, bytes), `_total` for counters.
 *
 *   hangscope_connections_opened_total                 TCP connections first seen
 *   hangscope_connections_total{state}                 connections finished, by final state
 *                                                      (closed, reset, half-closed, open)
 *   hangscope_exchanges_total{outcome}                 HTTP exchanges finished, by outcome
 *                                                      (complete, no-response, incomplete-response, aborted)
 *   hangscope_closes_total{by,kind}                    first FIN / first RST of each side (by=client|server,
 *                                                      kind=FIN|RST), counted when seen on a connection
 *                                                      (at each scrape for connections still open)
 *   hangscope_findings_total{code,severity}            findings (the capture-wide ones when the capture stops)
 *   hangscope_capture_wide_findings{code}              capture-wide findings as they stand now (timeout signature,
 *                                                      reuse pattern per route, Connection: close honoured)
 *   hangscope_client_timeout_signature_seconds{clock}  the client aborts' timeout signature delay as it stands now,
 *                                                      by the clock it fits (absent while there is none)
 *   hangscope_time_to_first_byte_seconds               request's first byte to the response's first byte
 *                                                      (a 1xx counts), for exchanges that got one
 *   hangscope_packets_total, hangscope_bytes_total     frames and bytes captured (as the engine saw them)
 *   hangscope_open_connections                         connections the engine holds now
 *   hangscope_capture_received_packets{source}         the live source's "received by filter" (pcap_stats ps_recv)
 *   hangscope_capture_dropped_packets{source,where}    drops reported by the live source (source=tcpdump|libpcap):
 *                                                      where=kernel (ps_drop: buffer full) or interface (ps_ifdrop);
 *                                                      both left out while the source has not reported them
 *   hangscope_anomalies_total{kind}                    damaged or odd packets, by anomaly name
 *   hangscope_capture_files_opened_total,              the rotating capture files (daemon): files started,
 *   hangscope_capture_files_deleted_total,             rotated away, bytes written, packets not written
 *   hangscope_capture_file_bytes_total,                because writing failed, write errors
 *   hangscope_capture_file_lost_packets_total,
 *   hangscope_capture_file_errors_total
 *
 * The engine's callbacks only bump numbers; everything read from the engine
 * is read at scrape time (collect), so no timer runs for the metrics.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CaptureCounters } from '../lib/capture/live.js';
import type { ConnectionRecord } from '../lib/correlate/index.js';
import type { Finding } from '../lib/diagnose/index.js';
import type { Engine } from '../lib/engine.js';
import type { CloseEvent, Exchange } from '../lib/types.js';

/** Time-to-first-byte buckets (seconds): loopback and LAN answers up to the minute-long waits the failures are about. */
export const TTFB_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60];

/** What the metrics read from a rotating capture writer (lib/capture/rotate.ts). */
export interface FileCounters {
  filesOpened: number;
  filesDeleted: number;
  bytes: number;
  lost: number;
  errors: number;
}

/** A live source's counters and its kind (tcpdump, libpcap). */
export interface LiveCounters {
  source: string;
  counters: CaptureCounters;
}

export interface MetricsOptions {
  /** Also export Node's process metrics (memory, CPU, event loop lag) as hangscope_process_* / hangscope_nodejs_*. Default true. */
  processMetrics?: boolean;
}

export class EngineMetrics {
  readonly registry = new Registry();
  private engine: Engine | null = null;
  private capture: (() => LiveCounters | null) | null = null;
  private files: (() => FileCounters) | null = null;
  /** Closes already counted, by the connection's `closes` array (the same array from Connection to ConnectionRecord). */
  private readonly counted = new WeakMap<CloseEvent[], number>();
  private readonly opened: Counter<string>;
  private readonly connections: Counter<'state'>;
  private readonly exchanges: Counter<'outcome'>;
  private readonly closes: Counter<'by' | 'kind'>;
  private readonly findings: Counter<'code' | 'severity'>;
  private readonly ttfb: Histogram<string>;
  private readonly packetsSeen = { packets: 0, bytes: 0 };
  private readonly anomaliesSeen = new Map<string, number>();

  constructor(o: MetricsOptions = {}) {
    const registers = [this.registry];
    this.opened = new Counter({ name: 'hangscope_connections_opened_total', help: 'TCP connections first seen', registers });
    this.connections = new Counter({
      name: 'hangscope_connections_total',
      help: 'TCP connections finished (closed and quiet, reset, evicted, or at stop), by final state',
      labelNames: ['state'],
      registers,
    });
    this.exchanges = new Counter({
      name: 'hangscope_exchanges_total',
      help: 'HTTP exchanges finished, by outcome',
      labelNames: ['outcome'],
      registers,
    });
    const self = this;
    this.closes = new Counter({
      name: 'hangscope_closes_total',
      help: "Each side's first FIN and first RST on a connection, by side and kind",
      labelNames: ['by', 'kind'],
      registers,
      collect() {
        self.countLiveCloses();
      },
    });
    this.findings = new Counter({
      name: 'hangscope_findings_total',
      help: 'Findings, by code and severity',
      labelNames: ['code', 'severity'],
      registers,
    });
    this.ttfb = new Histogram({
      name: 'hangscope_time_to_first_byte_seconds',
      help: "From the request's first byte to the response's first byte (an interim 1xx counts)",
      buckets: TTFB_BUCKETS,
      registers,
    });
    new Counter({
      name: 'hangscope_packets_total',
      help: 'Frames captured and fed to the engine',
      registers,
      collect() {
        const e = self.engine;
        if (e !== null && e.packets > self.packetsSeen.packets) {
          this.inc(e.packets - self.packetsSeen.packets);
          self.packetsSeen.packets = e.packets;
        }
      },
    });
    new Counter({
      name: 'hangscope_bytes_total',
      help: 'Bytes of the frames captured (as captured, link headers included)',
      registers,
      collect() {
        const e = self.engine;
        if (e !== null && e.bytes > self.packetsSeen.bytes) {
          this.inc(e.bytes - self.packetsSeen.bytes);
          self.packetsSeen.bytes = e.bytes;
        }
      },
    });
    // The capture-wide rules, as they stand now (Diagnoser.finish() changes nothing). Their input changes only
    // when the engine finishes a connection, so they are run again only then, not for every gauge of a scrape.
    // (Keyed on the clock's millisecond before: two scrapes in one millisecond, around a finished connection,
    // showed the first one's findings.)
    let standing: { engine: Engine | null; connections: number; findings: Finding[] } = { engine: null, connections: -1, findings: [] };
    const captureWide = (): Finding[] => {
      const e = self.engine;
      if (e === null) return [];
      if (standing.engine !== e || standing.connections !== e.connections)
        standing = { engine: e, connections: e.connections, findings: e.diagnoser.finish() };
      return standing.findings;
    };
    new Gauge({
      name: 'hangscope_capture_wide_findings',
      help: 'Capture-wide findings as they stand now (client-timeout-signature, socket-reuse per route, connection-close-honored), by code; hangscope_findings_total counts them when the capture stops',
      labelNames: ['code'],
      registers,
      collect() {
        this.reset();
        const n = new Map<string, number>();
        for (const f of captureWide()) n.set(f.code, (n.get(f.code) ?? 0) + 1);
        for (const [code, count] of n) this.set({ code }, count);
      },
    });
    new Gauge({
      name: 'hangscope_client_timeout_signature_seconds',
      help: "The delay at which the client aborts cluster (client-timeout-signature's evidence.delay), as it stands now, and on which clock (request-start, last-activity, or both); absent while there is none",
      labelNames: ['clock'],
      registers,
      collect() {
        this.reset();
        const f = captureWide().find((x) => x.code === 'client-timeout-signature');
        if (f !== undefined && typeof f.evidence.delay === 'number') this.set({ clock: String(f.evidence.clock) }, f.evidence.delay);
      },
    });
    new Gauge({
      name: 'hangscope_open_connections',
      help: 'TCP connections the engine holds now (not finished yet)',
      registers,
      collect() {
        this.set(self.engine?.openConnections ?? 0);
      },
    });
    new Gauge({
      name: 'hangscope_capture_received_packets',
      help: "Packets the capture filter accepted, as the live source reports them (pcap_stats ps_recv); absent when not known",
      labelNames: ['source'],
      registers,
      collect() {
        const c = self.capture?.() ?? null;
        this.reset();
        if (c !== null && c.counters.received !== null) this.set({ source: c.source }, c.counters.received);
      },
    });
    new Gauge({
      name: 'hangscope_capture_dropped_packets',
      help: 'Packets dropped before hangscope saw them, as the live source reports them: where=kernel (buffer full, ps_drop) or interface (ps_ifdrop); absent when not known',
      labelNames: ['source', 'where'],
      registers,
      collect() {
        const c = self.capture?.() ?? null;
        this.reset();
        if (c === null) return;
        if (c.counters.dropped !== null) this.set({ source: c.source, where: 'kernel' }, c.counters.dropped);
        if (c.counters.ifDropped !== null) this.set({ source: c.source, where: 'interface' }, c.counters.ifDropped);
      },
    });
    new Counter({
      name: 'hangscope_anomalies_total',
      help: 'Damaged or odd packets and streams, by anomaly name (skipped, never fatal)',
      labelNames: ['kind'],
      registers,
      collect() {
        const e = self.engine;
        if (e === null) return;
        for (const [kind, n] of Object.entries(e.anomalies.counts)) {
          const seen = self.anomaliesSeen.get(kind) ?? 0;
          if (n > seen) {
            this.inc({ kind }, n - seen);
            self.anomaliesSeen.set(kind, n);
          }
        }
      },
    });
    const fileCounter = (name: string, help: string, field: keyof FileCounters): void => {
      let seen = 0;
      new Counter({
        name,
        help,
        registers,
        collect() {
          const f = self.files?.() ?? null;
          if (f !== null && f[field] > seen) {
            this.inc(f[field] - seen);
            seen = f[field];
          }
        },
      });
    };
    fileCounter('hangscope_capture_files_opened_total', 'Capture files started (rotation)', 'filesOpened');
    fileCounter('hangscope_capture_files_deleted_total', 'Capture files deleted to keep the newest --rotate-count', 'filesDeleted');
    fileCounter('hangscope_capture_file_bytes_total', 'Bytes written to capture files (pcap headers included)', 'bytes');
    fileCounter('hangscope_capture_file_lost_packets_total', 'Packets not written to a capture file because writing failed', 'lost');
    fileCounter('hangscope_capture_file_errors_total', 'Capture file write errors (disk full, folder gone)', 'errors');
    if (o.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'hangscope_' });
  }

  /** The engine read at scrape time, and the live source's counters (null: no source yet). */
  attach(engine: Engine, capture?: () => LiveCounters | null): void {
    this.engine = engine;
    this.capture = capture ?? null;
  }

  /** The rotating capture writer's counters, read at scrape time. */
  attachFiles(files: () => FileCounters): void {
    this.files = files;
  }

  // ------------------------------------------------ engine callbacks

  onOpen = (): void => {
    this.opened.inc();
  };

  /** An exchange the HTTP parser finished: its outcome is final here. */
  onExchange = (_conn: unknown, ex: Exchange): void => {
    this.exchanges.inc({ outcome: ex.outcome });
    if (ex.responseStart !== null && ex.responseStart >= ex.requestStart) this.ttfb.observe((ex.responseStart - ex.requestStart) / 1e6);
  };

  onConnection = (rec: ConnectionRecord): void => {
    this.connections.inc({ state: rec.state });
    this.countCloses(rec.closes);
    this.counted.delete(rec.closes);
  };

  onFinding = (f: Finding): void => {
    this.findings.inc({ code: f.code, severity: f.severity });
  };

  /** The exposition text (Prometheus text format 0.0.4). */
  metrics(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  // ------------------------------------------------ closes as they happen

  private countCloses(closes: CloseEvent[]): void {
    const done = this.counted.get(closes) ?? 0;
    for (let i = done; i < closes.length; i++) this.closes.inc({ by: closes[i]!.by, kind: closes[i]!.kind });
    if (closes.length > done) this.counted.set(closes, closes.length);
  }

  /** At scrape time: closes on connections still held (a FIN never answered would otherwise wait for eviction). */
  private countLiveCloses(): void {
    const e = this.engine;
    if (e === null) return;
    for (const conn of e.correlator.tracker.connections()) if (conn.closes.length > 0) this.countCloses(conn.closes);
  }
}
