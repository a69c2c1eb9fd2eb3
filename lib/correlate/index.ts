/**
 * The correlator: joins each TCP connection with the HTTP exchanges it
 * carried and its close events, and hands a finished ConnectionRecord to the
 * diagnosis rules and the sinks. It is also where a connection whose
 * handshake was not captured is oriented by its payload (the side sending
 * requests is the client).
 */
import { HttpConnectionParser, sniffPayload } from '../http/index.js';
import { TcpTracker, type CloseReason, type Connection, type Orientation, type PayloadKind, type StreamHandler } from '../tcp/index.js';
import type { Anomalies, AppProtocol, CloseEvent, Dir, Endpoint, Exchange, Micros, TcpSegment } from '../types.js';

export type ConnectionState = 'closed' | 'reset' | 'half-closed' | 'open';

/** Everything known about one finished (or, at capture end, still open) connection. */
export interface ConnectionRecord {
  id: number;
  client: Endpoint;
  server: Endpoint;
  orientation: Orientation;
  start: Micros;
  end: Micros;
  state: ConnectionState;
  closeReason: CloseReason;
  closes: CloseEvent[];
  history: string;
  protocol: AppProtocol;
  /** Per side, index 0 client, 1 server. */
  packets: [number, number];
  bytes: [number, number];
  retransmissions: [number, number];
  gapBytes: [number, number];
  firstDataTs: [Micros | null, Micros | null];
  lastDataTs: [Micros | null, Micros | null];
  lastPacketTs: [Micros | null, Micros | null];
  lastLiveTs: [Micros | null, Micros | null];
  lastRetransTs: [Micros | null, Micros | null];
  /** The handshake (client SYN) was captured: the connection was new in this capture. */
  synSeen: boolean;
  exchanges: Exchange[];
}

export interface CorrelatorOptions {
  anomalies: Anomalies;
  port?: number | null;
  /** Called for each connection when it is finished, in order of finishing. */
  onConnection: (rec: ConnectionRecord) => void;
  /** Called when a connection is first seen (live views). */
  onOpen?: (conn: Connection) => void;
  /** Called for each exchange when it is finished (live views). */
  onExchange?: (conn: Connection, ex: Exchange) => void;
  /** Limits passed to the TCP tracker. */
  maxConnections?: number;
  maxBufferedBytes?: number;
}

function classify(payload: Buffer): PayloadKind {
  const k = sniffPayload(payload);
  return k === 'request' || k === 'response' ? k : 'other';
}

export class Correlator {
  readonly tracker: TcpTracker;
  private readonly o: CorrelatorOptions;
  exchanges = 0;

  constructor(opts: CorrelatorOptions) {
    this.o = opts;
    this.tracker = new TcpTracker({
      anomalies: opts.anomalies,
      port: opts.port ?? null,
      classify,
      ...(opts.maxConnections !== undefined ? { maxConnections: opts.maxConnections } : {}),
      ...(opts.maxBufferedBytes !== undefined ? { maxBufferedBytes: opts.maxBufferedBytes } : {}),
      onOpen: (conn) => this.open(conn),
      onClose: (conn, reason) => this.close(conn, reason),
    });
  }

  segment(seg: TcpSegment): void {
    this.tracker.segment(seg);
  }

  /** Finish everything still open (end of the capture). */
  flush(): void {
    this.tracker.flush();
  }

  /** The HTTP parser of a live connection (for views of connections still open). */
  static parserOf(conn: Connection): HttpConnectionParser | null {
    return (conn.state as HttpConnectionParser | null) ?? null;
  }

  /**
   * The HTTP parser is made when the connection's first byte, gap or FIN is
   * delivered (by LazyParser), not when it opens: most connections of a SYN
   * flood or a port scan never carry one, and the parser is most of the
   * memory a held connection takes.
   */
  private open(conn: Connection): void {
    conn.handler = new LazyParser(this, conn);
    this.o.onOpen?.(conn);
  }

  /** @internal The connection's parser, made on first use (LazyParser). */
  parserFor(conn: Connection): HttpConnectionParser {
    const onExchange = this.o.onExchange;
    const parser = new HttpConnectionParser({
      anomalies: this.o.anomalies,
      onExchange: (ex) => {
        this.exchanges++;
        if (onExchange !== undefined) onExchange(conn, ex);
      },
    });
    conn.state = parser;
    conn.handler = parser;
    return parser;
  }

  private close(conn: Connection, reason: CloseReason): void {
    const parser = conn.state as HttpConnectionParser | null;
    parser?.end(conn.end, reason === 'reset' ? 'reset' : reason === 'closed' ? 'closed' : reason === 'evicted' ? 'evicted' : 'capture-end');
    const [c, s] = conn.sides;
    const finC = c.finSeq !== null;
    const finS = s.finSeq !== null;
    const state: ConnectionState = conn.resetSeen ? 'reset' : finC && finS ? 'closed' : finC || finS ? 'half-closed' : 'open';
    const rec: ConnectionRecord = {
      id: conn.id,
      client: conn.client,
      server: conn.server,
      orientation: conn.orientation,
      start: conn.start,
      end: conn.end,
      state,
      closeReason: reason,
      closes: conn.closes,
      history: conn.history,
      protocol: parser !== null ? parser.protocol : 'none',
      packets: [c.packets, s.packets],
      bytes: [c.bytes, s.bytes],
      retransmissions: [c.retransmissions, s.retransmissions],
      gapBytes: [c.gapBytes, s.gapBytes],
      firstDataTs: [c.firstDataTs, s.firstDataTs],
      lastDataTs: [c.lastDataTs, s.lastDataTs],
      lastPacketTs: [c.lastPacketTs, s.lastPacketTs],
      lastLiveTs: [c.lastLiveTs, s.lastLiveTs],
      lastRetransTs: [c.lastRetransTs, s.lastRetransTs],
      synSeen: conn.synSeen,
      exchanges: parser !== null ? parser.exchanges : [],
    };
    conn.state = null;
    conn.handler = null;
    this.o.onConnection(rec);
  }
}

/** A connection's handler until its first byte: makes the HTTP parser then and hands over to it. */
class LazyParser implements StreamHandler {
  constructor(
    private readonly owner: Correlator,
    private readonly conn: Connection,
  ) {}
  data(dir: Dir, buf: Buffer, ts: Micros): void {
    this.owner.parserFor(this.conn).data(dir, buf, ts);
  }
  gap(dir: Dir, len: number, ts: Micros): void {
    this.owner.parserFor(this.conn).gap(dir, len, ts);
  }
  fin(dir: Dir, ts: Micros): void {
    this.owner.parserFor(this.conn).fin(dir, ts);
  }
}
