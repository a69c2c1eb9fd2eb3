import type { CloseEvent, Dir, Endpoint, Micros } from '../types.js';

/**
 * What a connection's consumer receives, in call order (gopacket's
 * reassembly contract, written down here so no one has to read the tracker):
 *   data() and gap() zero or more times per direction, interleaved in the
 *   order the bytes became contiguous; fin() at most once per direction,
 *   after every byte before the FIN was delivered or declared a gap.
 *   TrackerOptions.onClose is then called exactly once per connection.
 * `buf` is a view into the capture buffer: copy what you keep.
 */
export interface StreamHandler {
  data(dir: Dir, buf: Buffer, ts: Micros): void;
  /** `len` bytes of this direction were never captured (snaplen cut, capture loss). */
  gap(dir: Dir, len: number, ts: Micros): void;
  fin(dir: Dir, ts: Micros): void;
}

/** A segment held back because bytes before it are missing (copied out of the capture buffer). */
export interface PendingSegment {
  seq: number;
  data: Buffer;
  /** Bytes the segment carried on the wire beyond `data` (snaplen cut). */
  missing: number;
  fin: boolean;
  ts: Micros;
}

/** One direction of a connection: what one endpoint sent. */
export class HalfStream {
  constructor(public endpoint: Endpoint) {}
  /** Initial sequence number, from the SYN; null when the SYN was not captured. */
  isn: number | null = null;
  /** Sequence number up to which bytes were delivered (or declared gaps); null before the first segment. */
  delivered: number | null = null;
  /** Highest sequence number seen (end of the furthest segment, FIN included). */
  highest: number | null = null;
  /** When the segment reaching `highest` was seen. */
  highestTs: Micros = 0;
  /** Sequence number of the FIN, once a FIN was seen. */
  finSeq: number | null = null;
  finDelivered = false;
  packets = 0;
  /** Payload bytes on the wire. */
  bytes = 0;
  retransmissions = 0;
  outOfOrder = 0;
  gapBytes = 0;
  pending: PendingSegment[] = [];
  pendingBytes = 0;
  /** Time of the last segment carrying payload, or null. */
  lastDataTs: Micros | null = null;
  firstDataTs: Micros | null = null;
  /** Time of the last segment of any kind from this side. */
  lastPacketTs: Micros | null = null;
  /** Time of the last segment from this side that was not an RST (an ACK, data, FIN: signs the host still knew the connection). */
  lastLiveTs: Micros | null = null;
  /** Time of the last retransmission from this side. */
  lastRetransTs: Micros | null = null;
}

const UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ'.split('');
const LOWER = 'abcdefghijklmnopqrstuvwxyz'.split('');

export type Orientation = 'syn' | 'port' | 'http' | 'guess';
export type CloseReason = 'closed' | 'reset' | 'capture-end' | 'evicted' | 'reused';

/** A TCP connection (one 4-tuple, from SYN or first packet until it is finished). */
export class Connection {
  /** sides[0] is the client (CLIENT = 0), sides[1] the server. */
  sides: [HalfStream, HalfStream];
  orientation: Orientation;
  /** Times of the first and the last packet. */
  start: Micros;
  end: Micros;
  /** First FIN and first RST of each side, in wire order. */
  closes: CloseEvent[] = [];
  /** Zeek-style history: upper case client, lower case server; each letter at its first occurrence. */
  history = '';
  handler: StreamHandler | null = null;
  /** Consumer's per-connection state (the correlator keeps its HTTP parser here). */
  state: unknown = null;
  finished = false;
  closeReason: CloseReason | null = null;
  /** The handshake was seen (SYN from the client). */
  synSeen = false;
  synAckSeen = false;

  constructor(
    readonly id: number,
    readonly key: string,
    client: Endpoint,
    server: Endpoint,
    orientation: Orientation,
    ts: Micros,
  ) {
    this.sides = [new HalfStream(client), new HalfStream(server)];
    this.orientation = orientation;
    this.start = ts;
    this.end = ts;
  }

  get client(): Endpoint {
    return this.sides[0].endpoint;
  }
  get server(): Endpoint {
    return this.sides[1].endpoint;
  }

  /** Swap client and server (the first guess was wrong). Only the tracker calls this, before any byte was delivered. */
  flip(): void {
    this.sides = [this.sides[1], this.sides[0]];
    for (const c of this.closes) c.by = c.by === 'client' ? 'server' : 'client';
    let h = '';
    for (const ch of this.history) h += ch === ch.toUpperCase() ? ch.toLowerCase() : ch.toUpperCase();
    this.history = h;
    this.histSeen = [this.histSeen[1], this.histSeen[0]];
  }

  /** Letters (A..Z as bits 0..25) already in `history`, per direction: a per-packet check without string work. */
  private histSeen: [number, number] = [0, 0];

  addHistory(dir: Dir, letter: string): void {
    const code = letter.charCodeAt(0) | 0x20; // lower case
    const bit = code >= 0x61 && code <= 0x7a && letter.length === 1 ? 1 << (code - 0x61) : 0;
    if (bit === 0) {
      const ch = dir === 0 ? letter.toUpperCase() : letter.toLowerCase();
      if (!this.history.includes(ch)) this.history += ch;
      return;
    }
    if ((this.histSeen[dir] & bit) !== 0) return;
    this.histSeen[dir] |= bit;
    this.history += dir === 0 ? UPPER[code - 0x61] : LOWER[code - 0x61];
  }

  firstClose(): CloseEvent | null {
    return this.closes[0] ?? null;
  }

  hasFin(dir: Dir): boolean {
    return this.sides[dir].finSeq !== null;
  }

  /** First close event of a kind by a side, if any. */
  close(by: 'client' | 'server', kind: 'FIN' | 'RST'): CloseEvent | null {
    for (const c of this.closes) if (c.by === by && c.kind === kind) return c;
    return null;
  }

  get resetSeen(): boolean {
    return this.closes.some((c) => c.kind === 'RST');
  }
}
