/**
 * Fuzz worker: runs one input at a time through the built engine (dist/):
 * analyzeCapture() from a stream cut into chunks, then every renderer (text,
 * JSON, ndjson lines, HTML), and checks invariants of the JSON report.
 *
 * It runs in a worker thread so that the parent can kill it when an input
 * hangs (a busy loop cannot be interrupted from inside) and so that V8's
 * resourceLimits turn unbounded memory into an error instead of a dead test
 * run. Plain JavaScript: worker threads do not get vitest's TypeScript
 * transform, so it imports the build (`npm run build` first).
 *
 * Message in:  { id, buf: Uint8Array, chunk: number, port: number|null, showSecrets: boolean, gc: boolean }
 * Message out: { id, ok, userError, error, stack, ms, heapUsed, packets, connections, anomalies }
 */
import { Readable } from 'node:stream';
import { parentPort } from 'node:worker_threads';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const dist = new URL('../../dist/', import.meta.url);
const lib = await import(new URL('lib/index.js', dist).href);
const report = await import(new URL('lib/report/index.js', dist).href);
const { renderText } = await import(new URL('dashboards/text.js', dist).href);
const { renderHtml } = await import(new URL('dashboards/html.js', dist).href);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc');

const OUTCOMES = new Set(['complete', 'no-response', 'incomplete-response', 'aborted']);

/** Throws when the report breaks a rule of the schema that any input must keep. */
function checkReport(r) {
  const bad = [];
  const walk = (v, path) => {
    if (bad.length > 5) return;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) bad.push(`${path} is ${v}`);
    } else if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${path}[${i}]`));
    else if (v !== null && typeof v === 'object') for (const k of Object.keys(v)) walk(v[k], `${path}.${k}`);
    else if (typeof v === 'bigint' || typeof v === 'function' || typeof v === 'symbol') bad.push(`${path} is a ${typeof v}`);
  };
  walk(r, 'report');
  if (r.connections.length !== r.stats.connections) bad.push(`${r.connections.length} connections listed, stats says ${r.stats.connections}`);
  for (const c of r.connections) {
    // (c.end < c.start is possible and honest: timestamps that go backwards in the file.)
    for (const e of c.exchanges) {
      if (!Number.isInteger(e.index) || e.index < 1) bad.push(`exchange index ${e.index}`);
      if (!OUTCOMES.has(e.outcome)) bad.push(`exchange outcome ${e.outcome}`);
      if (e.requestBodyBytes < 0 || e.responseBodyBytes < 0 || e.gapBytes < 0) bad.push(`negative byte count on exchange ${c.id}/${e.index}`);
    }
  }
  for (const [k, n] of Object.entries(r.stats.anomalies)) if (!Number.isInteger(n) || n <= 0) bad.push(`anomaly ${k} = ${n}`);
  if (bad.length) throw new Error(`invariant: ${bad.join('; ')}`);
}

function* chunks(buf, size) {
  if (size <= 0 || size >= buf.length) {
    yield buf;
    return;
  }
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

async function runOne(m) {
  const buf = Buffer.from(m.buf.buffer, m.buf.byteOffset, m.buf.byteLength);
  const t0 = performance.now();
  const opts = { port: m.port ?? null, showSecrets: m.showSecrets === true };
  let analysis;
  try {
    analysis = await lib.analyzeCapture(Readable.from(chunks(buf, m.chunk), { objectMode: false }), opts);
  } catch (e) {
    const userError = e instanceof lib.UserError;
    return { ok: userError, userError, error: String(e?.message ?? e), stack: userError ? null : String(e?.stack ?? ''), ms: performance.now() - t0 };
  }
  const r = lib.toReport(analysis, opts);
  const text = renderText(analysis, { showSecrets: opts.showSecrets, color: true });
  const json = JSON.stringify(r, null, 2);
  let ndjson = '';
  for (const c of analysis.connections) ndjson += `${JSON.stringify({ type: 'connection', ...report.connectionToJSON(c, opts) })}\n`;
  for (const f of analysis.findings) ndjson += `${JSON.stringify({ type: 'finding', ...report.findingToJSON(f) })}\n`;
  ndjson += `${JSON.stringify({ type: 'stats', ...r.stats })}\n`;
  const html = renderHtml(r, { showSecrets: opts.showSecrets });
  checkReport(JSON.parse(json));
  if (typeof text !== 'string' || !html.startsWith('<!DOCTYPE html>') || ndjson.length === 0) throw new Error('invariant: a renderer returned nothing');
  return {
    ok: true,
    userError: false,
    ms: performance.now() - t0,
    packets: r.stats.packets,
    connections: r.stats.connections,
    exchanges: r.stats.exchanges,
    anomalies: r.stats.anomalies,
    outBytes: text.length + json.length + ndjson.length + html.length,
  };
}

parentPort.on('message', async (m) => {
  let res;
  try {
    res = await runOne(m);
  } catch (e) {
    res = { ok: false, userError: false, error: String(e?.message ?? e), stack: String(e?.stack ?? ''), ms: 0 };
  }
  if (m.gc) {
    gc();
    gc();
    res.heapUsed = process.memoryUsage().heapUsed;
  }
  parentPort.postMessage({ id: m.id, ...res });
});
parentPort.postMessage({ ready: true });
