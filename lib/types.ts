/**
 * Data types shared by several pipeline stages.
 *
 * Pipeline (each stage only imports from earlier stages and from this file):
 *   capture/  bytes of a pcap or pcapng stream  -> PacketRecord
 *   decode/   PacketRecord (link, IPv4/IPv6, TCP) -> TcpSegment
 *   tcp/      TcpSegment -> Connection, in-order bytes per direction, FIN/RST
 *   http/     in-order bytes -> Exchange (HTTP/1.x request + response)
 *   diagnose/ Connection + Exchange -> Finding
 *   report    the JSON model (lib/report.ts), rendered by dashboards/
 *
 * Time: every timestamp inside the engine is an integer number of microseconds
 * since the Unix epoch (`Micros`). Doubles hold integers exactly up to 2^53,
 * i.e. up to the year 2255 in microseconds. Only the report turns them into
 * seconds with 6 decimals.
 */

/** Integer microseconds since the Unix epoch (or a duration in microseconds). */
export type Micros = number;

/** One captured frame, as read from a pcap or pcapng file or a live source. */
export interface PacketRecord {
  /** Capture timestamp, integer microseconds since the epoch. */
  ts: Micros;
  /** LINKTYPE_* value of the interface the frame was captured on. */
  linkType: number;
  /**
   * The captured bytes. In the hot path this is a view into the reader's
   * chunk: valid only during the callback that receives it. Copy to keep.
   */
  data: Buffer;
  /** Length of the frame on the wire; larger than data.length when snaplen cut it. */
  origLen: number;
  /** pcapng interface id (0 for pcap). */
  interfaceId: number;
  /** 1-based frame number in the capture, as tshark's frame.number. */
  frame: number;
}

/** TCP flag bits, as in the TCP header's flags byte (RFC 9293 section 3.1). */
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

/**
 * A decoded TCP segment. The decoder fills one reusable object per packet
 * (gopacket's DecodingLayerParser style): consumers must not keep a reference
 * to it, nor to `payload`, past the call that hands it to them.
 */
export interface TcpSegment {
  ts: Micros;
  frame: number;
  ipVersion: 4 | 6;
  /** Source address as text (dotted quad, or RFC 5952 IPv6). */
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  /** Raw 32-bit sequence and acknowledgement numbers (unsigned). */
  seq: number;
  ack: number;
  /** TCP flags byte (TCP_* bits). */
  flags: number;
  /** Raw window field (not scaled). */
  window: number;
  /** Captured TCP payload bytes (may be shorter than payloadLen when snaplen cut the frame). */
  payload: Buffer;
  /** Payload length on the wire, from the IP length fields. */
  payloadLen: number;
  /** Window scale option (SYN only), or -1. */
  wscale: number;
  /** MSS option, or -1. */
  mss: number;
  /** Timestamp option value, or -1 when absent. */
  tsval: number;
  tsecr: number;
  /** SACK blocks present in this segment. */
  sack: boolean;
}

/** Counts of oddities by name, in the spirit of Zeek's weird.log. Never fatal. */
export class Anomalies {
  readonly counts: Record<string, number> = Object.create(null);
  add(kind: string, n = 1): void {
    this.counts[kind] = (this.counts[kind] ?? 0) + n;
  }
  get(kind: string): number {
    return this.counts[kind] ?? 0;
  }
  toJSON(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const k of Object.keys(this.counts).sort()) out[k] = this.counts[k]!;
    return out;
  }
}

/**
 * A problem the user can cause (a file that is not a capture, a missing
 * interface, no privilege). The CLI prints `message` as one line and exits 2.
 */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}

/** Direction of bytes on a connection: 0 = client to server, 1 = server to client. */
export type Dir = 0 | 1;
export const CLIENT: Dir = 0;
export const SERVER: Dir = 1;

export interface Endpoint {
  ip: string;
  port: number;
}

export type Side = 'client' | 'server';
export type CloseKind = 'FIN' | 'RST';

/** The first FIN or the first RST a side sent on a connection. */
export interface CloseEvent {
  by: Side;
  kind: CloseKind;
  ts: Micros;
  /** Frame number of the packet, for cross-checking with tshark. */
  frame: number;
  /** Time of the last payload byte, either direction, before this segment (null: none). */
  lastData: Micros | null;
  /**
   * Who sent it, when hangscope watched the kernel too (`watch --attribute`, lib/attribute/):
   * 'process' (pid/comm closed or reset the socket), 'owner' (the kernel, for the socket pid/comm
   * still held), 'kernel' (nobody: no socket, a socket already closed, a process that died; pid/comm
   * then name the socket's last owner when known). Absent: not known.
   */
  attributed?: CloseAttribution;
  pid?: number;
  comm?: string;
  /** Why the kernel sent it (kebab-case): no-socket, process-exited, abort-on-data, timewait-socket, … */
  attributedReason?: string;
  /** For a FIN: the socket it was sent to, as seen on this host (who sits in CLOSE-WAIT if it never closes). */
  peer?: PeerSocket;
}

export type CloseAttribution = 'process' | 'kernel' | 'owner';

/** The receiving end of a FIN, when it is on the host hangscope runs on (eBPF owner, `ss` sightings). */
export interface PeerSocket {
  /** The process owning that socket, or null when not known. */
  pid: number | null;
  comm: string | null;
  /** What `ss` saw of it after the FIN, or null. */
  ss: { state: string; process: string | null; pid: number | null; seenFor: Micros } | null;
}

export type ExchangeOutcome = 'complete' | 'no-response' | 'incomplete-response' | 'aborted';

/** The headers hangscope keeps from an HTTP message (names lower-cased). */
export interface MessageHeaders {
  /** Selected headers, lower-case name -> value (repeated headers joined with ", "). Secrets redacted later, at output. */
  [name: string]: string;
}

/** One HTTP/1.x request and its response on a connection. */
export interface Exchange {
  /** 1-based index on its connection, like Zeek's trans_depth. */
  index: number;
  method: string;
  target: string;
  /** "HTTP/1.1", "HTTP/1.0", or "HTTP/0.9" for a bare request line. */
  version: string;
  requestHeaders: MessageHeaders;
  /** Time of the packet carrying the request's first / last byte. */
  requestStart: Micros;
  requestEnd: Micros | null;
  requestBodyBytes: number;
  /** Final (non-1xx) response status, or null if none was seen. */
  status: number | null;
  reason: string | null;
  responseVersion: string | null;
  responseHeaders: MessageHeaders;
  /** 1xx interim responses before the final one. */
  interim: { status: number; ts: Micros }[];
  /** Time of the first byte of the response (an interim 1xx counts), of the last byte of the final response. */
  responseStart: Micros | null;
  responseEnd: Micros | null;
  responseBodyBytes: number;
  /** Bytes of this exchange lost in capture gaps (either direction). */
  gapBytes: number;
  outcome: ExchangeOutcome;
}

/** What the payload of a connection turned out to be. */
export type AppProtocol = 'http' | 'tls' | 'http2' | 'unknown' | 'none';
