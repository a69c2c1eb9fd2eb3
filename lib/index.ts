/**
 * hangscope's library entry: analyze a capture into the JSON report.
 * The CLI (cli/) and dashboards (dashboards/) are built on these pieces.
 */
import { readCapture } from './capture/index.js';
import type { ConnectionRecord } from './correlate/index.js';
import { buildVerdict, type Finding } from './diagnose/index.js';
import { Engine, type EngineOptions } from './engine.js';
import { connectionToJSON, findingToJSON, secsOrNull, type ReportJSON } from './report/index.js';

export { Engine, type EngineOptions } from './engine.js';
export type { ConnectionRecord } from './correlate/index.js';
export type { Finding } from './diagnose/index.js';
export { UserError } from './types.js';

export interface AnalyzeOptions {
  port?: number | null;
  showSecrets?: boolean;
  slowFirstByte?: number;
  /** Connections held at once; beyond it the idlest are finished early and counted ('connection-evicted'). Default 250,000. */
  maxConnections?: number;
  /** Out-of-order bytes held per direction of a connection; beyond it the hole is declared a gap ('tcp-reassembly-overflow'). Default 4 MiB. */
  maxBufferedBytes?: number;
  /** Keep every finished connection in Analysis.connections (default true). Streaming sinks pass false: memory then stays bounded by open connections. */
  keepConnections?: boolean;
  onProgress?: (bytesRead: number, totalBytes: number | null, engine: Engine) => void;
}

/** Everything one analysis produced, before it is rendered. */
export interface Analysis {
  engine: Engine;
  source: ReportJSON['source'];
  connections: ConnectionRecord[];
  findings: Finding[];
}

/** Read a capture (path, '-' for stdin, or a stream) through the engine, keeping every connection. */
export async function analyzeCapture(
  input: string | NodeJS.ReadableStream,
  opts: AnalyzeOptions & Pick<EngineOptions, 'onConnection' | 'onFinding'> = {},
): Promise<Analysis> {
  const connections: ConnectionRecord[] = [];
  const keep = opts.keepConnections !== false;
  const findings: Finding[] = [];
  const engine = new Engine({
    port: opts.port ?? null,
    showSecrets: opts.showSecrets === true,
    ...(opts.slowFirstByte !== undefined ? { slowFirstByte: opts.slowFirstByte } : {}),
    ...(opts.maxConnections !== undefined ? { maxConnections: opts.maxConnections } : {}),
    ...(opts.maxBufferedBytes !== undefined ? { maxBufferedBytes: opts.maxBufferedBytes } : {}),
    onConnection: (rec) => {
      if (keep) connections.push(rec);
      opts.onConnection?.(rec);
    },
    onFinding: (f) => {
      findings.push(f);
      opts.onFinding?.(f);
    },
  });
  const onProgress = opts.onProgress;
  const info = await readCapture(input, (rec) => engine.packet(rec), {
    anomalies: engine.anomalies,
    ...(onProgress !== undefined ? { onProgress: (b: number, t: number | null) => onProgress(b, t, engine) } : {}),
  });
  engine.finish();
  connections.sort((a, b) => a.id - b.id);
  return {
    engine,
    source: { name: typeof input === 'string' ? input : '-', format: info.format, compressed: info.compressed },
    connections,
    findings,
  };
}

export function toReport(a: Analysis, opts: { port?: number | null; showSecrets?: boolean } = {}): ReportJSON {
  const e = a.engine;
  return {
    tool: 'hangscope',
    schemaVersion: 1,
    source: a.source,
    port: opts.port ?? null,
    stats: {
      packets: e.packets,
      bytes: e.bytes,
      connections: e.connections,
      exchanges: e.exchanges,
      anomalies: e.anomalies.toJSON(),
      nonTcpPackets: e.decoder.nonTcp,
      firstTs: secsOrNull(e.firstTs),
      lastTs: secsOrNull(e.lastTs),
    },
    verdict: buildVerdict(a.findings),
    findings: a.findings.map((f) => findingToJSON(f)),
    connections: a.connections.map((c) => connectionToJSON(c, { showSecrets: opts.showSecrets === true })),
  };
}

/** Analyze a capture into the JSON report (the `--format json` document). */
export async function analyze(input: string | NodeJS.ReadableStream, opts: AnalyzeOptions = {}): Promise<ReportJSON> {
  const a = await analyzeCapture(input, opts);
  return toReport(a, opts);
}
