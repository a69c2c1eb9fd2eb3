/**
 * The JSON report: hangscope's stable output contract (`--format json`, and
 * one ConnectionJSON per line with `--format ndjson`). docs/schema.md
 * documents every field; keep the two in step. Field names are part of the
 * contract: add fields, never rename them.
 *
 * Times are seconds since the Unix epoch with 6 decimals (microseconds);
 * durations are seconds with 6 decimals.
 */

import type { AppProtocol, CloseKind, ExchangeOutcome, Side } from '../types.js';

export interface EndpointJSON {
  ip: string;
  port: number;
}

export interface CloseJSON {
  /** Which side sent the segment. */
  by: Side;
  /** FIN or RST. */
  kind: CloseKind;
  /** When the segment was captured (s). */
  ts: number;
  /** Frame number in the capture (1-based), like tshark's frame.number. */
  frame: number;
  /**
   * Who sent it, only when the kernel was watched too (`watch --attribute`): `process` (pid and comm
   * closed or reset the socket), `owner` (the kernel did, for the socket pid/comm held), `kernel`
   * (nobody: no socket, a socket already closed, a process that died; pid/comm then name the
   * socket's last owner when known). Absent when not known.
   */
  attributed?: 'process' | 'kernel' | 'owner';
  /** Process id (thread group id) and process name (the kernel's comm, at most 15 characters). */
  pid?: number;
  comm?: string;
  /** Why the kernel sent it: no-socket, process-exited, abort-on-data, timewait-socket, … */
  attributedReason?: string;
}

export interface ExchangeJSON {
  /** 1-based position on its connection (Zeek's trans_depth, tshark's http.request_number). */
  index: number;
  method: string;
  target: string;
  version: string;
  /** Final response status, null when no final response was seen. */
  status: number | null;
  reason: string | null;
  /** Capture time of the packet carrying the request's first byte. */
  requestStart: number;
  /** ... and its last byte (null when the request never finished). */
  requestEnd: number | null;
  /** First response byte (a 1xx interim response counts), null when none. */
  responseStart: number | null;
  /** Last byte of the final response, null when not seen. */
  responseEnd: number | null;
  requestBodyBytes: number;
  responseBodyBytes: number;
  /** complete | no-response | incomplete-response | aborted (see docs/schema.md). */
  outcome: ExchangeOutcome;
  /** Interim 1xx responses, in order. */
  interim: { status: number; ts: number }[];
  /** Bytes of this exchange lost in capture gaps. */
  gapBytes: number;
  /** Headers as seen (lower-case names); secret values are redacted unless --show-secrets. */
  requestHeaders: Record<string, string>;
  responseHeaders: Record<string, string>;
}

export interface ConnectionJSON {
  /** 0-based, in order of each connection's first packet (matches tshark's tcp.stream). */
  id: number;
  client: EndpointJSON;
  server: EndpointJSON;
  /** How client and server were told apart: syn | port | http | guess. */
  orientation: 'syn' | 'port' | 'http' | 'guess';
  /** First and last packet of the connection (s). */
  start: number;
  end: number;
  /** closed (both sides FIN), reset (an RST), half-closed (one FIN), open (no FIN/RST by the end of the capture or still live). */
  state: 'closed' | 'reset' | 'half-closed' | 'open';
  /** First FIN and first RST of each side, in wire order. */
  closes: CloseJSON[];
  /** closes[0], or null. */
  firstClose: CloseJSON | null;
  /** Zeek-style history letters: upper case client, lower case server (S h A D F R, T retransmission, G gap). */
  history: string;
  protocol: AppProtocol;
  packets: { client: number; server: number };
  /** TCP payload bytes on the wire, each way. */
  bytes: { client: number; server: number };
  retransmissions: { client: number; server: number };
  /** Bytes missing from the capture (seen acknowledged but never captured), each way. */
  gapBytes: { client: number; server: number };
  exchanges: ExchangeJSON[];
}

export interface FindingJSON {
  /** Stable code, e.g. client-abort-before-response. */
  code: string;
  severity: 'error' | 'warning' | 'info';
  /** Connection id, or null for capture-wide findings. */
  connection: number | null;
  /** Exchange index on that connection, or null. */
  exchange: number | null;
  /** When it happened (s). */
  ts: number | null;
  /** One plain sentence. */
  summary: string;
  /** The numbers behind the sentence. */
  evidence: Record<string, unknown>;
}

export interface StatsJSON {
  packets: number;
  /** Captured bytes of all packets read. */
  bytes: number;
  connections: number;
  exchanges: number;
  /** Counts by kind of everything odd that was skipped or tolerated. */
  anomalies: Record<string, number>;
  /** Packets that were not TCP (not an anomaly). */
  nonTcpPackets: number;
  firstTs: number | null;
  lastTs: number | null;
}

export interface ReportJSON {
  tool: 'hangscope';
  schemaVersion: 1;
  source: { name: string; format: 'pcap' | 'pcapng' | 'live' | null; compressed: boolean };
  /** Filter in effect: server port, or null for every TCP connection. */
  port: number | null;
  stats: StatsJSON;
  /** What happened, how sure, what to change; null when no failure pattern was found. */
  verdict: VerdictJSON | null;
  findings: FindingJSON[];
  connections: ConnectionJSON[];
}

export interface VerdictJSON {
  headline: string;
  confidence: 'high' | 'medium' | 'low';
  advice: string;
  /** Finding codes the verdict rests on. */
  basedOn: string[];
  occurrences: number;
}
