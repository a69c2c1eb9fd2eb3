/**
 * The dashboard's view model: what the engine reported, kept bounded, and
 * turned into rows on demand.
 *
 * The engine's callbacks only record facts and bump `version` (cheap, no
 * rendering); the view asks for a snapshot at most ~10 times a second. Rows
 * come from two places: connections still held by the TCP tracker (live
 * Connection objects and their HTTP parser's exchanges so far) and the last
 * `maxRows` finished ConnectionRecords.
 */
import { Correlator, type ConnectionRecord } from '../../lib/correlate/index.js';
import { buildVerdict, type Finding, type Verdict } from '../../lib/diagnose/index.js';
import type { Engine } from '../../lib/engine.js';
import type { Connection } from '../../lib/tcp/index.js';
import type { CloseEvent, Endpoint, Exchange, Micros } from '../../lib/types.js';

export interface SourceInfo {
  /** tcpdump | libpcap for live capture, file for a replay. */
  kind: 'tcpdump' | 'libpcap' | 'file';
  /** Interface, or file path. */
  name: string;
  /** BPF filter in effect (live), or null. */
  filter: string | null;
  /** Set when the snaplen was lowered below full frames: bodies may lose their framing. */
  snaplen: number | null;
  /** Server port filter of the engine, or null. */
  port: number | null;
}

/** An exchange as shown: a copy, plus whether the parser has finished it. */
export interface ExchangeView extends Exchange {
  done: boolean;
}

/** Exchanges kept per row: the first HEAD and the last TAIL (a keep-alive socket can carry thousands). */
export const ROW_HEAD = 3;
export const ROW_TAIL = 40;

export interface SocketRow {
  id: number;
  client: Endpoint;
  server: Endpoint;
  start: Micros;
  /** Last packet. */
  end: Micros;
  /** Still held by the tracker (not finished yet). */
  live: boolean;
  /** syn-sent | open | half-closed | closed | reset (and, finished, the record's state). */
  state: string;
  history: string;
  /** The first ROW_HEAD and the last ROW_TAIL exchanges of the socket, in order. */
  exchanges: ExchangeView[];
  /** Exchanges the socket carried in all (the last one's index). */
  exchangeCount: number;
  /** How many were left out between exchanges[ROW_HEAD - 1] and exchanges[ROW_HEAD]. */
  omitted: number;
  closes: CloseEvent[];
  findings: Finding[];
  worst: Finding | null;
  failing: boolean;
  packets: [number, number];
  bytes: [number, number];
  protocol: string;
}

export interface Snapshot {
  source: SourceInfo;
  status: string;
  packets: number;
  bytes: number;
  drops: number | null;
  ifDrops: number | null;
  open: number;
  connections: number;
  exchanges: number;
  /** µs since the capture started (live: wall clock; replay: capture time). */
  elapsed: Micros;
  /** "Now" for ages and in-progress exchanges (µs since the epoch). */
  clock: Micros;
  /** Newest first, at most maxRows. */
  rows: SocketRow[];
  findingCounts: { code: string; count: number; severity: Finding['severity'] }[];
  verdict: Verdict | null;
  anomalies: Record<string, number>;
  /** Rows dropped from the table to keep it bounded. */
  rowsDropped: number;
  showSecrets: boolean;
  /** No more events will come. */
  final: boolean;
  /** Threshold for a slow first byte (µs): in-progress exchanges waiting longer are highlighted. */
  slow: Micros;
}

export interface StoreOptions {
  source: SourceInfo;
  showSecrets?: boolean;
  /** Finished sockets kept for the table (default 500). */
  maxRows?: number;
  /** "Now" (default: the latest packet's time, right for replays). */
  clock?: () => Micros;
  /** Time since the start (default: capture time span). */
  elapsed?: () => Micros;
  slow?: Micros;
}

const SEVERITY_RANK = { error: 0, warning: 1, info: 2 } as const;
/** Findings kept for the verdict; the counts by code stay exact beyond it. */
const MAX_FINDINGS = 10_000;

/** The first ROW_HEAD and last ROW_TAIL items, and how many were left out between them. */
export function headAndTail<T>(list: T[]): { items: T[]; omitted: number } {
  if (list.length <= ROW_HEAD + ROW_TAIL) return { items: list, omitted: 0 };
  return { items: [...list.slice(0, ROW_HEAD), ...list.slice(-ROW_TAIL)], omitted: list.length - ROW_HEAD - ROW_TAIL };
}

export function worstFinding(list: Finding[]): Finding | null {
  let w: Finding | null = null;
  for (const f of list) if (w === null || SEVERITY_RANK[f.severity] < SEVERITY_RANK[w.severity]) w = f;
  return w;
}

/** State of a connection the tracker still holds. */
export function liveState(conn: Connection): string {
  if (conn.resetSeen) return 'reset';
  const finC = conn.sides[0].finSeq !== null;
  const finS = conn.sides[1].finSeq !== null;
  if (finC && finS) return 'closed';
  if (finC || finS) return 'half-closed';
  if (conn.synSeen && !conn.synAckSeen && conn.sides[0].bytes + conn.sides[1].bytes === 0) return 'syn-sent';
  return 'open';
}

export class DashboardStore {
  readonly source: SourceInfo;
  readonly showSecrets: boolean;
  readonly maxRows: number;
  readonly slow: Micros;
  engine: Engine | null = null;
  /** Bumped on every change the view may want to show. */
  version = 0;
  status = '';
  /** No more events will come (end of the replay, capture stopped). */
  final = false;
  drops: number | null = null;
  ifDrops: number | null = null;
  private readonly finished = new Map<number, SocketRow>();
  private rowsDropped = 0;
  private readonly doneExchanges = new WeakSet<Exchange>();
  private readonly doneViews = new WeakMap<Exchange, ExchangeView>();
  private readonly findings: Finding[] = [];
  /**
   * Capture-wide findings as they stand now (the timeout signature, the reuse pattern per route, Connection:
   * close honoured), while the capture runs: recomputed about once a second (setCaptureWide), replaced by
   * the final ones the engine reports when it stops.
   */
  private provisional: Finding[] = [];
  private provisionalKey = '';
  private readonly counts = new Map<string, { count: number; severity: Finding['severity'] }>();
  private verdictCache: { at: number; v: Verdict | null } = { at: -1, v: null };
  private findingsVersion = 0;
  private readonly clock: () => Micros;
  private readonly elapsed: () => Micros;

  constructor(o: StoreOptions) {
    this.source = o.source;
    this.showSecrets = o.showSecrets === true;
    this.maxRows = o.maxRows ?? 500;
    this.slow = o.slow ?? 5_000_000;
    this.clock = o.clock ?? (() => this.engine?.lastTs ?? 0);
    this.elapsed =
      o.elapsed ??
      (() => (this.engine && this.engine.firstTs !== null && this.engine.lastTs !== null ? this.engine.lastTs - this.engine.firstTs : 0));
  }

  attach(engine: Engine): void {
    this.engine = engine;
    this.version++;
  }

  // ------------------------------------------------ engine callbacks (cheap)

  onOpen = (_conn: Connection): void => {
    this.version++;
  };

  onExchange = (_conn: Connection, ex: Exchange): void => {
    this.doneExchanges.add(ex);
    this.version++;
  };

  onConnection = (rec: ConnectionRecord): void => {
    const kept = headAndTail(rec.exchanges);
    const row: SocketRow = {
      id: rec.id,
      client: rec.client,
      server: rec.server,
      start: rec.start,
      end: rec.end,
      live: false,
      state: rec.state,
      history: rec.history,
      exchanges: kept.items.map((e) => ({ ...e, done: true })),
      exchangeCount: rec.exchanges[rec.exchanges.length - 1]?.index ?? 0,
      omitted: kept.omitted,
      closes: rec.closes,
      findings: [],
      worst: null,
      failing: rec.state === 'reset' || rec.exchanges.some((e) => e.outcome !== 'complete'),
      packets: rec.packets,
      bytes: rec.bytes,
      protocol: rec.protocol,
    };
    this.finished.set(rec.id, row);
    if (this.finished.size > this.maxRows) {
      const oldest = this.finished.keys().next().value as number;
      this.finished.delete(oldest);
      this.rowsDropped++;
    }
    this.version++;
  };

  onFinding = (f: Finding): void => {
    // The final capture-wide findings (connection null) replace the provisional ones.
    if (f.connection === null && this.provisional.length > 0) {
      this.provisional = [];
      this.provisionalKey = '';
    }
    const c = this.counts.get(f.code);
    if (c === undefined) this.counts.set(f.code, { count: 1, severity: f.severity });
    else c.count++;
    if (this.findings.length < MAX_FINDINGS) this.findings.push(f);
    if (f.connection !== null) {
      const row = this.finished.get(f.connection);
      if (row !== undefined) {
        row.findings.push(f);
        row.worst = worstFinding(row.findings);
        if (f.severity !== 'info') row.failing = true;
      }
    }
    this.findingsVersion++;
    this.version++;
  };

  setCounters(c: { dropped: number | null; ifDropped: number | null }): void {
    if (c.dropped !== this.drops || c.ifDropped !== this.ifDrops) {
      this.drops = c.dropped;
      this.ifDrops = c.ifDropped;
      this.version++;
    }
  }

  setFinal(status: string): void {
    this.final = true;
    this.status = status;
    this.version++;
  }

  setStatus(s: string): void {
    if (s !== this.status) {
      this.status = s;
      this.version++;
    }
  }

  /**
   * The capture-wide findings as of now (Engine.diagnoser.finish(), which changes nothing), while the
   * capture runs. Ignored once the capture is final.
   */
  setCaptureWide(fs: Finding[]): void {
    if (this.final) return;
    const key = fs.map((f) => `${f.code} ${f.summary}`).join('\n');
    if (key === this.provisionalKey) return;
    this.provisional = fs;
    this.provisionalKey = key;
    this.findingsVersion++;
    this.version++;
  }

  /** Every finding seen (bounded, see MAX_FINDINGS), and the capture-wide ones as they stand. */
  allFindings(): Finding[] {
    return this.provisional.length === 0 ? this.findings : [...this.findings, ...this.provisional];
  }

  verdict(): Verdict | null {
    if (this.verdictCache.at !== this.findingsVersion) {
      this.verdictCache = { at: this.findingsVersion, v: buildVerdict(this.allFindings()) };
    }
    return this.verdictCache.v;
  }

  // ------------------------------------------------ the view's side

  private liveRow(conn: Connection): SocketRow {
    const parser = Correlator.parserOf(conn);
    const [c, s] = conn.sides;
    const kept = parser ? headAndTail(parser.exchanges) : { items: [], omitted: 0 };
    // Finished exchanges no longer change: their view is made once; only ones in progress are copied again.
    const exchanges: ExchangeView[] = kept.items.map((e) => {
      const done = this.doneExchanges.has(e);
      if (!done) return { ...e, done };
      let v = this.doneViews.get(e);
      if (v === undefined) {
        v = { ...e, done };
        this.doneViews.set(e, v);
      }
      return v;
    });
    return {
      id: conn.id,
      client: conn.client,
      server: conn.server,
      start: conn.start,
      end: conn.end,
      live: true,
      state: liveState(conn),
      history: conn.history,
      exchanges,
      exchangeCount: exchanges.length > 0 ? exchanges[exchanges.length - 1]!.index : 0,
      omitted: kept.omitted,
      closes: [...conn.closes],
      findings: [],
      worst: null,
      failing: conn.resetSeen || exchanges.some((e) => e.done && e.outcome !== 'complete'),
      packets: [c.packets, s.packets],
      bytes: [c.bytes, s.bytes],
      protocol: parser?.protocol ?? 'none',
    };
  }

  snapshot(): Snapshot {
    const e = this.engine;
    const rows: SocketRow[] = [];
    if (e !== null) {
      // Newest live connections (the tracker's map is in creation order).
      const live: Connection[] = [];
      for (const conn of e.correlator.tracker.connections()) {
        live.push(conn);
        if (live.length > this.maxRows * 2) live.splice(0, this.maxRows);
      }
      for (const conn of live.slice(-this.maxRows)) rows.push(this.liveRow(conn));
    }
    for (const r of this.finished.values()) rows.push(r);
    rows.sort((a, b) => b.id - a.id);
    const extra = Math.max(0, rows.length - this.maxRows);
    if (extra > 0) rows.length = this.maxRows;
    const counts = new Map(this.counts);
    for (const f of this.provisional) {
      const c = counts.get(f.code);
      counts.set(f.code, { count: (c?.count ?? 0) + 1, severity: c?.severity ?? f.severity });
    }
    const findingCounts = [...counts.entries()]
      .map(([code, v]) => ({ code, count: v.count, severity: v.severity }))
      .sort((a, b) => SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity] || b.count - a.count || a.code.localeCompare(b.code));
    return {
      source: this.source,
      status: this.status,
      packets: e?.packets ?? 0,
      bytes: e?.bytes ?? 0,
      drops: this.drops,
      ifDrops: this.ifDrops,
      open: e?.openConnections ?? 0,
      connections: e?.connections ?? 0,
      exchanges: e?.exchanges ?? 0,
      elapsed: this.elapsed(),
      clock: this.clock(),
      rows,
      findingCounts,
      verdict: this.verdict(),
      anomalies: e?.anomalies.toJSON() ?? {},
      rowsDropped: this.rowsDropped + extra,
      showSecrets: this.showSecrets,
      final: this.final,
      slow: this.slow,
    };
  }
}
