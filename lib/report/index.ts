/** The JSON model of a report: turns engine records into the stable schema (schema.ts). */
import type { ConnectionRecord } from '../correlate/index.js';
import type { Finding } from '../diagnose/finding.js';
import type { CloseEvent, Exchange } from '../types.js';
import { redactHeaders, redactTarget } from './redact.js';
import type { CloseJSON, ConnectionJSON, ExchangeJSON, FindingJSON } from './schema.js';
import { secs, secsOrNull } from './time.js';

export * from './schema.js';
export { redactHeaders, redactTarget, isSecretHeader, REDACTED } from './redact.js';
export { secs, secsOrNull, fmtDuration, fmtClock } from './time.js';

export interface ReportOptions {
  /** Keep credential header values and query parameters as captured. */
  showSecrets?: boolean;
}

export function exchangeToJSON(ex: Exchange, o: ReportOptions = {}): ExchangeJSON {
  const show = o.showSecrets === true;
  return {
    index: ex.index,
    method: ex.method,
    target: redactTarget(ex.target, show),
    version: ex.version,
    status: ex.status,
    reason: ex.reason,
    requestStart: secs(ex.requestStart),
    requestEnd: secsOrNull(ex.requestEnd),
    responseStart: secsOrNull(ex.responseStart),
    responseEnd: secsOrNull(ex.responseEnd),
    requestBodyBytes: ex.requestBodyBytes,
    responseBodyBytes: ex.responseBodyBytes,
    outcome: ex.outcome,
    interim: ex.interim.map((i) => ({ status: i.status, ts: secs(i.ts) })),
    gapBytes: ex.gapBytes,
    requestHeaders: redactHeaders(ex.requestHeaders, show),
    responseHeaders: redactHeaders(ex.responseHeaders, show),
  };
}

/** A close; the attribution fields only when known (lib/attribute). */
export function closeToJSON(c: CloseEvent): CloseJSON {
  const out: CloseJSON = { by: c.by, kind: c.kind, ts: secs(c.ts), frame: c.frame };
  if (c.attributed !== undefined) out.attributed = c.attributed;
  if (c.pid !== undefined) out.pid = c.pid;
  if (c.comm !== undefined) out.comm = c.comm;
  if (c.attributedReason !== undefined) out.attributedReason = c.attributedReason;
  return out;
}

export function connectionToJSON(rec: ConnectionRecord, o: ReportOptions = {}): ConnectionJSON {
  const closes = rec.closes.map(closeToJSON);
  return {
    id: rec.id,
    client: { ip: rec.client.ip, port: rec.client.port },
    server: { ip: rec.server.ip, port: rec.server.port },
    orientation: rec.orientation,
    start: secs(rec.start),
    end: secs(rec.end),
    state: rec.state,
    closes,
    firstClose: closes[0] ?? null,
    history: rec.history,
    protocol: rec.protocol,
    packets: { client: rec.packets[0], server: rec.packets[1] },
    bytes: { client: rec.bytes[0], server: rec.bytes[1] },
    retransmissions: { client: rec.retransmissions[0], server: rec.retransmissions[1] },
    gapBytes: { client: rec.gapBytes[0], server: rec.gapBytes[1] },
    exchanges: rec.exchanges.map((e) => exchangeToJSON(e, o)),
  };
}

/** Findings are written with secrets already redacted (the diagnoser formats targets through redactTarget). */
export function findingToJSON(f: Finding): FindingJSON {
  return {
    code: f.code,
    severity: f.severity,
    connection: f.connection,
    exchange: f.exchange,
    ts: secsOrNull(f.ts),
    summary: f.summary,
    evidence: f.evidence,
  };
}
