import {
  Anomalies,
  TCP_ACK,
  TCP_FIN,
  TCP_RST,
  TCP_SYN,
  type Dir,
  type Micros,
  type TcpSegment,
} from '../types.js';
import { Connection, HalfStream, type CloseReason, type PendingSegment } from './connection.js';
import { seqAdd, seqAfter, seqDiff } from './seq.js';

/** What the first payload bytes of one direction look like (supplied by a later stage, e.g. the HTTP sniffer). */
export type PayloadKind = 'request' | 'response' | 'other';

export interface TrackerOptions {
  anomalies: Anomalies;
  /** Only connections with this server port (null: all). Also orients connections whose SYN was not captured. */
  port?: number | null;
  /** Called when a connection is created; set conn.handler there. */
  onOpen?: (conn: Connection) => void;
  /** Called exactly once per connection, when it is finished, evicted, reused or the capture ends. */
  onClose?: (conn: Connection, reason: CloseReason) => void;
  /**
   * Classifies the first payload of a direction, so that a connection whose
   * handshake was not captured can still be told client from server (the side
   * sending requests is the client).
   */
  classify?: (payload: Buffer) => PayloadKind;
  /**
   * A connection that is closed (FIN both ways, or RST) and quiet for this long
   * is finished (Zeek's tcp_close_delay / tcp_reset_delay are 5 s). Later
   * packets on the 4-tuple then start a new connection.
   */
  closeLinger?: Micros;
  /** A connection attempt that never got established (no SYN-ACK, no data) and is quiet this long is finished. */
  attemptTimeout?: Micros;
  /**
   * At most this many connections are held; beyond it the one idle longest is
   * finished with reason 'evicted' and counted (anomaly 'connection-evicted').
   */
  maxConnections?: number;
  /**
   * Out-of-order bytes buffered per direction while waiting for a hole to
   * fill. Beyond it the hole is declared a gap (anomaly 'tcp-reassembly-overflow')
   * and the buffered bytes are delivered.
   */
  maxBufferedBytes?: number;
}

const DEFAULTS = {
  closeLinger: 5_000_000,
  attemptTimeout: 60_000_000,
  maxConnections: 250_000,
  maxBufferedBytes: 4 * 1024 * 1024,
};

/** A hole filled within this long of the highest segment is out-of-order, later a retransmission (Wireshark). */
const OUT_OF_ORDER_WINDOW: Micros = 3_000;

/** Sweep finished connections every this much capture time. */
const SWEEP_EVERY: Micros = 1_000_000;
/** ... or after this many packets stamped earlier than the last sweep. */
const SWEEP_BACKWARDS = 65_536;

/** Slots of the connection cache in front of the 4-tuple map (a power of 2). */
const RECENT_SLOTS = 4096;

/** The map key of a segment's 4-tuple: both endpoints, the lower port first (the same both ways). */
function tupleKey(seg: TcpSegment): string {
  return seg.srcPort < seg.dstPort || (seg.srcPort === seg.dstPort && seg.src < seg.dst)
    ? seg.src + ' ' + seg.srcPort + ' ' + seg.dst + ' ' + seg.dstPort
    : seg.dst + ' ' + seg.dstPort + ' ' + seg.src + ' ' + seg.srcPort;
}

/** A few bits of an address string: its length and last three characters (where addresses of one subnet differ). */
function addrBits(ip: string): number {
  const n = ip.length;
  return (n << 24) ^ (ip.charCodeAt(n - 1) << 16) ^ (ip.charCodeAt(n - 2) << 8) ^ ip.charCodeAt(n - 3);
}

/** Cache slot of a 4-tuple, the same both ways: the ports, mixed with bits of both addresses. */
function recentSlot(ipA: string, a: number, ipB: string, b: number): number {
  const addr = (addrBits(ipA) + addrBits(ipB)) | 0;
  let h = Math.imul(a < b ? a : b, 0x85ebca6b) ^ Math.imul(a < b ? b : a, 0xc2b2ae35) ^ Math.imul(addr, 0x27d4eb2f);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 12;
  return h & (RECENT_SLOTS - 1);
}

/**
 * Tracks TCP connections per 4-tuple and turns segments into in-order bytes
 * per direction (StreamHandler), FIN/RST close events, and per-direction
 * retransmission, out-of-order and gap counts.
 *
 * Definitions follow Wireshark's tcp.analysis flags where they apply
 * (Wireshark User's Guide, section 7.5 "TCP Analysis"):
 * - retransmission: a segment carrying data (or SYN/FIN) that does not advance
 *   the highest sequence number seen in its direction, and is not a keep-alive;
 * - keep-alive: at most one byte at next-expected minus one;
 * - out-of-order: a segment that fills a hole below the highest sequence seen.
 * A hole the receiver acknowledges was lost by the capture, not the network:
 * it is delivered as a gap (Zeek's "ack above hole" content gap).
 */
export class TcpTracker {
  private readonly conns = new Map<string, Connection>();
  /**
   * Direct-mapped cache in front of `conns`, so that most packets find their
   * connection without building the key string. It only saves the lookup: a
   * hit must match the segment's endpoints (either way) and be unfinished,
   * and an unfinished connection is exactly the one `conns` holds for its
   * 4-tuple (a connection leaves the map when finished, and a new one is only
   * created for a 4-tuple after the previous one was finished).
   */
  private readonly recent: (Connection | undefined)[] = new Array<Connection | undefined>(RECENT_SLOTS).fill(undefined);
  private nextId = 0;
  private lastSweep: Micros = 0;
  /** Packets stamped before lastSweep since the last sweep. */
  private backwards = 0;
  private readonly o: Required<Omit<TrackerOptions, 'onOpen' | 'onClose' | 'classify' | 'port'>> &
    TrackerOptions;
  /** Connections created so far. */
  get created(): number {
    return this.nextId;
  }
  get open(): number {
    return this.conns.size;
  }

  /** The connections held now (open, or closed and lingering), oldest first. For live views; do not mutate. */
  connections(): IterableIterator<Connection> {
    return this.conns.values();
  }

  constructor(opts: TrackerOptions) {
    this.o = { ...DEFAULTS, ...opts };
  }

  segment(seg: TcpSegment): void {
    const port = this.o.port;
    if (port != null && seg.srcPort !== port && seg.dstPort !== port) return;

    const slot = recentSlot(seg.src, seg.srcPort, seg.dst, seg.dstPort);
    let conn = this.recent[slot];
    if (conn !== undefined && (conn.finished || !sameTuple(conn, seg))) conn = undefined;
    if (conn === undefined) {
      conn = this.conns.get(tupleKey(seg));
      if (conn !== undefined) this.recent[slot] = conn;
    }

    const flags = seg.flags;
    const isSyn = (flags & TCP_SYN) !== 0;
    if (conn !== undefined && isSyn && (flags & TCP_ACK) === 0 && this.isNewAttempt(conn, seg)) {
      // Port reuse: a fresh SYN on a 4-tuple whose connection is over (or a SYN
      // with another initial sequence number) starts a new connection, as
      // tshark starts a new tcp.stream.
      this.finish(conn, conn.closes.length > 0 ? (conn.resetSeen ? 'reset' : 'closed') : 'reused');
      conn = undefined;
    }
    if (conn === undefined) {
      conn = this.create(tupleKey(seg), seg);
      this.recent[slot] = conn;
    }

    const dir: Dir = seg.srcPort === conn.sides[0].endpoint.port && seg.src === conn.sides[0].endpoint.ip ? 0 : 1;
    this.track(conn, dir, seg);

    const sinceSweep = seg.ts - this.lastSweep;
    // Timestamps going backwards (a clock stepped back, one bogus far-future
    // stamp) would stop the time-based sweep until capture time caught up
    // again, and closed connections would pile up meanwhile: sweep anyway
    // after SWEEP_BACKWARDS such packets.
    if (sinceSweep >= SWEEP_EVERY || (sinceSweep < 0 && ++this.backwards >= SWEEP_BACKWARDS)) this.sweep(seg.ts);
  }

  /** End of input: every connection still held is finished with reason 'capture-end' (or closed/reset if it was). */
  flush(): void {
    for (const conn of [...this.conns.values()]) {
      this.finish(conn, this.settledReason(conn) ?? 'capture-end');
    }
  }

  /** Finish connections that are closed and quiet, or failed attempts that timed out (capture time `now`). */
  sweep(now: Micros): void {
    this.lastSweep = now;
    this.backwards = 0;
    for (const conn of this.conns.values()) {
      const quiet = now - conn.end;
      const settled = this.settledReason(conn);
      if (settled !== null && quiet >= this.o.closeLinger) this.finish(conn, settled);
      else if (!conn.synAckSeen && conn.sides[0].bytes + conn.sides[1].bytes === 0 && quiet >= this.o.attemptTimeout)
        this.finish(conn, this.settledReason(conn) ?? 'capture-end');
    }
  }

  private settledReason(conn: Connection): CloseReason | null {
    if (conn.resetSeen) return 'reset';
    if (conn.sides[0].finSeq !== null && conn.sides[1].finSeq !== null) return 'closed';
    return null;
  }

  private isNewAttempt(conn: Connection, seg: TcpSegment): boolean {
    if (conn.closes.length > 0) return true;
    const isn = conn.sides[0].isn;
    // A retransmitted SYN repeats the ISN; a different ISN on an idle tuple is a new attempt.
    return isn !== null && isn !== seg.seq && conn.sides[0].endpoint.port === seg.srcPort && conn.sides[0].endpoint.ip === seg.src;
  }

  private create(key: string, seg: TcpSegment): Connection {
    if (this.conns.size >= this.o.maxConnections) this.evict();
    const src = { ip: seg.src, port: seg.srcPort };
    const dst = { ip: seg.dst, port: seg.dstPort };
    const flags = seg.flags;
    let conn: Connection;
    if ((flags & TCP_SYN) !== 0 && (flags & TCP_ACK) === 0) {
      conn = new Connection(this.nextId++, key, src, dst, 'syn', seg.ts);
    } else if ((flags & TCP_SYN) !== 0) {
      conn = new Connection(this.nextId++, key, dst, src, 'syn', seg.ts);
    } else if (this.o.port != null && seg.srcPort !== seg.dstPort) {
      conn =
        seg.dstPort === this.o.port
          ? new Connection(this.nextId++, key, src, dst, 'port', seg.ts)
          : new Connection(this.nextId++, key, dst, src, 'port', seg.ts);
    } else {
      // No handshake: guess the lower port is the server; the first payload may correct it.
      conn =
        seg.dstPort <= seg.srcPort
          ? new Connection(this.nextId++, key, src, dst, 'guess', seg.ts)
          : new Connection(this.nextId++, key, dst, src, 'guess', seg.ts);
    }
    this.conns.set(key, conn);
    this.o.onOpen?.(conn);
    return conn;
  }

  /**
   * Make room: finish the connections idle longest (oldest last packet), each
   * counted as 'connection-evicted'. Finding the idlest is a scan of every
   * connection held; one scan per new connection would make a SYN flood or a
   * port scan quadratic (250,000 held x every new SYN), so with a large table
   * the idlest 1/64 go at once: one scan and selection per maxConnections/64 new
   * connections.
   */
  private evict(): void {
    const batch = Math.floor(this.o.maxConnections / 64);
    if (batch <= 1) {
      let oldest: Connection | null = null;
      for (const c of this.conns.values()) if (oldest === null || c.end < oldest.end) oldest = c;
      if (oldest !== null) {
        this.o.anomalies.add('connection-evicted');
        this.finish(oldest, 'evicted');
      }
      return;
    }
    const ends = new Float64Array(this.conns.size);
    let i = 0;
    for (const c of this.conns.values()) ends[i++] = c.end;
    const cut = kthSmallest(ends, Math.min(batch, ends.length) - 1);
    let left = batch;
    // Deleting the entry being visited is safe while iterating a Map.
    for (const c of this.conns.values()) {
      if (left === 0) break;
      if (c.end > cut) continue;
      left--;
      this.o.anomalies.add('connection-evicted');
      this.finish(c, 'evicted');
    }
  }

  private finish(conn: Connection, reason: CloseReason): void {
    if (conn.finished) return;
    // Nothing more will come: what is still held back is delivered, holes as gaps.
    for (const dir of [0, 1] as const) {
      const half = conn.sides[dir];
      if (half.pending.length > 0) this.drainWithGaps(conn, dir, half, conn.end);
    }
    conn.finished = true;
    conn.closeReason = reason;
    if (this.conns.get(conn.key) === conn) this.conns.delete(conn.key);
    // Don't let the cache keep a finished connection alive.
    const slot = recentSlot(conn.client.ip, conn.client.port, conn.server.ip, conn.server.port);
    if (this.recent[slot] === conn) this.recent[slot] = undefined;
    this.o.onClose?.(conn, reason);
  }

  private track(conn: Connection, dir: Dir, seg: TcpSegment): void {
    const half = conn.sides[dir];
    const flags = seg.flags;
    const ts = seg.ts;
    conn.end = ts;
    half.lastPacketTs = ts;
    if ((flags & TCP_RST) === 0) half.lastLiveTs = ts;
    half.packets++;
    half.bytes += seg.payloadLen;

    if ((flags & TCP_SYN) !== 0) {
      if ((flags & TCP_ACK) === 0) {
        conn.synSeen = true;
        conn.addHistory(dir, 'S');
      } else {
        conn.synAckSeen = true;
        conn.addHistory(dir, 'H');
      }
      if (half.isn === null || half.delivered === null) {
        half.isn = seg.seq;
        half.delivered = seqAdd(seg.seq, 1);
        half.highest = half.delivered;
      } else if (seg.seq === half.isn) {
        half.retransmissions++;
        half.lastRetransTs = ts;
        conn.addHistory(dir, 'T');
      }
    }
    if ((flags & TCP_RST) !== 0) {
      conn.addHistory(dir, 'R');
      if (conn.close(dir === 0 ? 'client' : 'server', 'RST') === null)
        conn.closes.push({ by: dir === 0 ? 'client' : 'server', kind: 'RST', ts, frame: seg.frame, lastData: lastDataTs(conn) });
    }
    if ((flags & TCP_FIN) !== 0) {
      conn.addHistory(dir, 'F');
      if (conn.close(dir === 0 ? 'client' : 'server', 'FIN') === null)
        conn.closes.push({ by: dir === 0 ? 'client' : 'server', kind: 'FIN', ts, frame: seg.frame, lastData: lastDataTs(conn) });
    }
    if ((flags & TCP_ACK) !== 0 && (flags & (TCP_SYN | TCP_FIN | TCP_RST)) === 0 && seg.payloadLen === 0)
      conn.addHistory(dir, 'A');

    // The peer acknowledging bytes we never saw: the capture missed them.
    if ((flags & TCP_ACK) !== 0 && (flags & TCP_RST) === 0) this.ackAboveHole(conn, dir === 0 ? 1 : 0, seg.ack, ts);

    const hasFin = (flags & TCP_FIN) !== 0;
    if (seg.payloadLen === 0 && !hasFin) return;
    if ((flags & TCP_RST) !== 0 && seg.payloadLen > 0) {
      // Data on an RST is diagnostic text (RFC 9293 section 3.5.3), not stream bytes.
      return;
    }
    if (seg.payloadLen > 0) {
      conn.addHistory(dir, 'D');
      if (half.firstDataTs === null) half.firstDataTs = ts;
      half.lastDataTs = ts;
    }

    if (half.delivered === null) {
      // First segment of a direction whose SYN was not captured: the stream starts here.
      half.delivered = seg.seq;
      half.highest = seg.seq;
    }

    // TCP Fast Open: data in a SYN starts after the SYN's own sequence number (RFC 7413).
    const seq = (flags & TCP_SYN) !== 0 ? seqAdd(seg.seq, 1) : seg.seq;
    if (
      seg.payloadLen > 0 &&
      conn.orientation === 'guess' &&
      this.o.classify !== undefined &&
      conn.sides[0].bytes + conn.sides[1].bytes === seg.payloadLen
    ) {
      // The connection's very first payload: the side sending a request is the client.
      const kind = this.o.classify(seg.payload);
      if ((kind === 'request' && dir === 1) || (kind === 'response' && dir === 0)) {
        conn.flip();
        conn.orientation = 'http';
        this.track2(conn, dir === 0 ? 1 : 0, seg, seq);
        return;
      }
      if (kind !== 'other') conn.orientation = 'http';
    }
    this.track2(conn, dir, seg, seq);
  }

  /** Sequence analysis and delivery of one segment's payload and FIN. */
  private track2(conn: Connection, dir: Dir, seg: TcpSegment, seq: number): void {
    const half = conn.sides[dir];
    const ts = seg.ts;
    const len = seg.payloadLen;
    const hasFin = (seg.flags & TCP_FIN) !== 0;
    const end = seqAdd(seq, len);
    const delivered = half.delivered!;
    const highest = half.highest!;

    if (hasFin) {
      if (half.finSeq === null) half.finSeq = end;
      else if (end === half.finSeq && len === 0) {
        half.retransmissions++;
        half.lastRetransTs = ts;
        conn.addHistory(dir, 'T');
        return;
      }
    }
    if (len === 0) {
      this.maybeDeliverFin(conn, dir, half, ts);
      return;
    }

    // Keep-alive: one byte (or none) at next-expected minus one (Wireshark tcp.analysis.keep_alive).
    if (len <= 1 && seq === seqAdd(highest, -1) && !hasFin) return;

    if (!seqAfter(end, highest)) {
      if (!seqAfter(end, delivered)) {
        // Every byte was seen before.
        half.retransmissions++;
        half.lastRetransTs = ts;
        conn.addHistory(dir, 'T');
        return;
      }
      // Fills (part of) a hole below the highest sequence seen. Wireshark calls
      // it out-of-order when it comes soon after the highest segment (within
      // 3 ms, its default when no RTT is known), a retransmission otherwise.
      if (ts - half.highestTs <= OUT_OF_ORDER_WINDOW) half.outOfOrder++;
      else {
        half.retransmissions++;
        half.lastRetransTs = ts;
        conn.addHistory(dir, 'T');
      }
    } else if (seqAfter(highest, seq)) {
      // Overlaps old bytes and brings new ones: a retransmission that adds data.
      half.retransmissions++;
      half.lastRetransTs = ts;
      conn.addHistory(dir, 'T');
    }
    if (seqAfter(end, highest)) {
      half.highest = end;
      half.highestTs = ts;
    }

    if (seqAfter(seq, delivered)) {
      // Bytes before this segment are missing: hold it until the hole fills or is declared a gap.
      this.hold(conn, dir, half, seg, seq);
      return;
    }
    this.deliver(conn, dir, half, seq, seg.payload, len, ts);
    if (half.pending.length > 0) this.drainContiguous(conn, dir, half);
    this.maybeDeliverFin(conn, dir, half, ts);
  }

  /**
   * Deliver bytes [seq, seq+len) of which `captured` holds the first
   * captured.length (snaplen may have cut the rest); bytes before
   * half.delivered are skipped (overlap with what was delivered).
   */
  private deliver(conn: Connection, dir: Dir, half: HalfStream, seq: number, captured: Buffer, len: number, ts: Micros): void {
    const skip = seqDiff(half.delivered!, seq);
    if (skip >= len) return;
    const h = conn.handler;
    const capLen = Math.min(captured.length, len);
    if (skip < capLen) {
      const data = skip > 0 ? captured.subarray(skip, capLen) : capLen < captured.length ? captured.subarray(0, capLen) : captured;
      if (h !== null) h.data(dir, data, ts);
    }
    const missing = len - Math.max(skip, capLen);
    if (missing > 0) {
      half.gapBytes += missing;
      conn.addHistory(dir, 'G');
      this.o.anomalies.add('snaplen-cut');
      if (h !== null) h.gap(dir, missing, ts);
    }
    half.delivered = seqAdd(seq, len);
  }

  private hold(conn: Connection, dir: Dir, half: HalfStream, seg: TcpSegment, seq: number): void {
    const capLen = Math.min(seg.payload.length, seg.payloadLen);
    const p: PendingSegment = {
      seq,
      data: Buffer.from(seg.payload.subarray(0, capLen)),
      missing: seg.payloadLen - capLen,
      fin: (seg.flags & TCP_FIN) !== 0,
      ts: seg.ts,
    };
    // Keep pending sorted by sequence number (holes are rare; lists stay short).
    let i = half.pending.length;
    while (i > 0 && seqAfter(half.pending[i - 1]!.seq, p.seq)) i--;
    half.pending.splice(i, 0, p);
    half.pendingBytes += capLen;
    if (half.pendingBytes > this.o.maxBufferedBytes) {
      this.o.anomalies.add('tcp-reassembly-overflow');
      this.drainWithGaps(conn, dir, half, seg.ts);
    }
  }

  /** Deliver held segments that now follow on from what was delivered. */
  private drainContiguous(conn: Connection, dir: Dir, half: HalfStream): void {
    while (half.pending.length > 0) {
      const p = half.pending[0]!;
      if (seqAfter(p.seq, half.delivered!)) return;
      half.pending.shift();
      half.pendingBytes -= p.data.length;
      this.deliver(conn, dir, half, p.seq, p.data, p.data.length + p.missing, p.ts);
    }
  }

  /** Declare every hole before held segments a gap and deliver them all (nothing will fill the holes). */
  private drainWithGaps(conn: Connection, dir: Dir, half: HalfStream, ts: Micros): void {
    while (half.pending.length > 0) {
      const p = half.pending[0]!;
      if (seqAfter(p.seq, half.delivered!)) this.gapTo(conn, dir, half, p.seq, ts);
      this.drainContiguous(conn, dir, half);
    }
    this.maybeDeliverFin(conn, dir, half, ts);
  }

  private gapTo(conn: Connection, dir: Dir, half: HalfStream, seq: number, ts: Micros): void {
    const n = seqDiff(seq, half.delivered!);
    if (n <= 0) return;
    half.gapBytes += n;
    conn.addHistory(dir, 'G');
    this.o.anomalies.add('tcp-gap');
    half.delivered = seq;
    conn.handler?.gap(dir, n, ts);
  }

  /**
   * The other side acknowledged up to `ack` in direction `dir`. Bytes below it
   * that were never delivered passed by without being captured.
   */
  private ackAboveHole(conn: Connection, dir: Dir, ack: number, ts: Micros): void {
    const half = conn.sides[dir];
    if (half.delivered === null || !seqAfter(ack, half.delivered)) return;
    // The FIN takes one sequence number; its ACK says nothing about data.
    const limit = half.finSeq !== null && seqAfter(ack, half.finSeq) ? half.finSeq : ack;
    // An ACK implausibly far ahead belongs to something else (another incarnation of the 4-tuple).
    if (seqDiff(limit, half.delivered) > 0x40000000) return;
    while (half.pending.length > 0 && seqAfter(limit, half.pending[0]!.seq)) {
      this.gapTo(conn, dir, half, half.pending[0]!.seq, ts);
      this.drainContiguous(conn, dir, half);
    }
    if (seqAfter(limit, half.delivered)) this.gapTo(conn, dir, half, limit, ts);
    if (seqAfter(half.delivered, half.highest!)) half.highest = half.delivered;
    this.maybeDeliverFin(conn, dir, half, ts);
  }

  private maybeDeliverFin(conn: Connection, dir: Dir, half: HalfStream, ts: Micros): void {
    if (half.finDelivered || half.finSeq === null || half.delivered === null) return;
    if (seqAfter(half.finSeq, half.delivered)) return;
    half.finDelivered = true;
    conn.handler?.fin(dir, ts);
  }
}

/** The k-th smallest value (0-based) of `a`, reordering it (Hoare's quickselect: linear on average, unlike a sort). */
function kthSmallest(a: Float64Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        const t = a[i]!;
        a[i] = a[j]!;
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else break;
  }
  return a[k]!;
}

/** The connection is the segment's 4-tuple, in either direction. */
function sameTuple(conn: Connection, seg: TcpSegment): boolean {
  const c = conn.sides[0].endpoint;
  const s = conn.sides[1].endpoint;
  if (c.port === seg.srcPort && s.port === seg.dstPort && c.ip === seg.src && s.ip === seg.dst) return true;
  return c.port === seg.dstPort && s.port === seg.srcPort && c.ip === seg.dst && s.ip === seg.src;
}

function lastDataTs(conn: Connection): Micros | null {
  const a = conn.sides[0].lastDataTs;
  const b = conn.sides[1].lastDataTs;
  if (a === null) return b;
  if (b === null) return a;
  return a > b ? a : b;
}
