/**
 * Where the time goes, stage by stage: runs the pipeline on a capture up to
 * each stage in turn, each run in a new process, and prints the wall time of each run
 * (best of --runs rounds, the stages taken in turn within each round) and
 * the difference to the stage before it.
 *
 *   node bench/stages.js FILE [--runs 5]        (after npm run build)
 *
 *   read      pcap/pcapng records (lib/capture), nothing done with them
 *   decode    + link, IP and TCP headers (lib/decode)
 *   tcp       + connection tracking, retransmissions, gaps (lib/tcp), bytes delivered to no-op handlers
 *   http      + HTTP/1.x exchanges and connection records (lib/http, lib/correlate)
 *   diagnose  + the rules and capture-wide findings (lib/diagnose): the whole engine, no output
 *
 * Output (the report, JSON) is not included: compare with `hangscope analyze FILE -o /dev/null`.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => path.join(REPO, 'dist', p);
if (!existsSync(dist('lib/index.js'))) {
  console.error('bench/stages.js: dist/ is missing: run `npm run build` first');
  process.exit(2);
}
const argv = process.argv.slice(2);
const file = argv.find((a, i) => !a.startsWith('--') && argv[i - 1] !== '--runs' && argv[i - 1] !== '--stage');
const runsAt = argv.indexOf('--runs');
const runs = runsAt >= 0 ? Math.max(1, Number(argv[runsAt + 1])) : 5;
if (!file) {
  console.error('usage: node bench/stages.js FILE [--runs 5]');
  process.exit(2);
}

const { readCapture } = await import(dist('lib/capture/index.js'));
const { Decoder } = await import(dist('lib/decode/index.js'));
const { TcpTracker } = await import(dist('lib/tcp/index.js'));
const { Correlator } = await import(dist('lib/correlate/index.js'));
const { Engine } = await import(dist('lib/engine.js'));
const { Anomalies } = await import(dist('lib/types.js'));

const NOOP = { data() {}, gap() {}, fin() {}, end() {} };

/** A packet callback running the pipeline up to `stage`, and what to call at the end. */
function pipeline(stage) {
  const anomalies = new Anomalies();
  let n = 0;
  if (stage === 'read') return { anomalies, onPacket: () => void n++, end: () => n };
  if (stage === 'decode') {
    const d = new Decoder(anomalies);
    return { anomalies, onPacket: (r) => void (d.decode(r) !== null && n++), end: () => n };
  }
  if (stage === 'tcp') {
    const d = new Decoder(anomalies);
    const t = new TcpTracker({ anomalies, port: null, classify: () => 'other', onOpen: (c) => void (c.handler = NOOP), onClose: () => void n++ });
    return { anomalies, onPacket: (r) => { const s = d.decode(r); if (s !== null) t.segment(s); }, end: () => (t.flush(), n) };
  }
  if (stage === 'http') {
    const d = new Decoder(anomalies);
    const c = new Correlator({ anomalies, onConnection: () => void n++ });
    return { anomalies, onPacket: (r) => { const s = d.decode(r); if (s !== null) c.segment(s); }, end: () => (c.flush(), n) };
  }
  const e = new Engine({ onFinding: () => void n++ });
  return { anomalies: e.anomalies, onPacket: (r) => e.packet(r), end: () => (e.finish(), n) };
}

const STAGES = ['read', 'decode', 'tcp', 'http', 'diagnose'];
const COUNTED = { read: 'records', decode: 'TCP segments', tcp: 'connections', http: 'connections', diagnose: 'findings' };
const only = argv.indexOf('--stage');
if (only >= 0) {
  // One stage in this process (a fresh one per measurement: stages sharing a process would share the JIT's
  // type feedback, and slow each other down).
  const stage = argv[only + 1];
  const p = pipeline(stage);
  const t0 = performance.now();
  await readCapture(file, p.onPacket, { anomalies: p.anomalies });
  const count = p.end();
  console.log(JSON.stringify({ stage, ms: performance.now() - t0, count }));
  process.exit(0);
}

// Round-robin over the stages, one process each, so that a slow moment of a shared machine hits every stage
// alike; best of the rounds.
const { execFileSync } = await import('node:child_process');
const self = fileURLToPath(import.meta.url);
const best = Object.fromEntries(STAGES.map((s) => [s, Infinity]));
const counts = {};
for (let i = 0; i < runs; i++) {
  for (const stage of STAGES) {
    const r = JSON.parse(execFileSync(process.execPath, [self, file, '--stage', stage], { encoding: 'utf8' }));
    counts[stage] = r.count;
    best[stage] = Math.min(best[stage], r.ms);
  }
}
console.log(`${path.basename(file)}, best of ${runs} rounds, one process per stage and round (ms: cumulative, and added by the stage):`);
let before = 0;
for (const stage of STAGES) {
  const t = best[stage];
  console.log(`  ${stage.padEnd(9)} ${t.toFixed(0).padStart(7)} ms  ${`${t - before >= 0 ? '+' : ''}${(t - before).toFixed(0)}`.padStart(7)} ms  (${counts[stage]} ${COUNTED[stage]})`);
  before = t;
}
