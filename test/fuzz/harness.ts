/**
 * The fuzz harness: seeds (real captures), the seeded input generator, a
 * worker with a watchdog (hang -> killed and reported, memory over the
 * worker's V8 limit -> reported), and regression fixtures
 * (test/fixtures/fuzz/<id>.json + the input beside it).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { gunzipSync, gzipSync } from 'node:zlib';
import { type Capture, cloneCapture, layers, parseCapture, serialize } from './model.js';
import { byteLevel, int, maybeGzip, pick, rng, structural } from './mutators.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '../..');
export const CORPUS = path.resolve(REPO, '../shared/corpus');
export const FUZZ_FIXTURES = path.join(REPO, 'test/fixtures/fuzz');
export const IN_CI = process.env.CI === 'true';

// ---------------------------------------------------------------- seeds

export interface Seed {
  name: string;
  buf: Buffer;
  cap: Capture | null;
}

function walk(dir: string, out: string[]): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (/\.(pcap|pcapng|cap)(\.gz)?$/.test(e.name)) out.push(p);
  }
}

/** Corpus captures (when present), lab fixtures and the decode fixtures. */
export function loadSeeds(): { seeds: Seed[]; corpus: boolean } {
  const files: string[] = [];
  const corpus = existsSync(path.join(CORPUS, 'MANIFEST.tsv'));
  if (corpus) walk(CORPUS, files);
  const lab = path.join(REPO, 'test/fixtures/lab');
  if (existsSync(lab)) for (const d of readdirSync(lab)) if (existsSync(path.join(lab, d, 'capture.pcap'))) files.push(path.join(lab, d, 'capture.pcap'));
  const dec = path.join(REPO, 'test/fixtures/decode');
  if (existsSync(dec)) walk(dec, files);
  const seeds = files.sort().map((f) => {
    let buf = readFileSync(f);
    if (buf[0] === 0x1f && buf[1] === 0x8b) buf = gunzipSync(buf);
    return { name: path.relative(path.resolve(REPO, '..'), f), buf, cap: parseCapture(buf) };
  });
  return { seeds, corpus };
}

// ---------------------------------------------------------------- inputs

export interface FuzzCase {
  buf: Buffer;
  /** Bytes per chunk fed to the reader (0: one chunk). */
  chunk: number;
  port: number | null;
  showSecrets: boolean;
}

export interface Generated extends FuzzCase {
  seed: number;
  index: number;
  base: string;
  mutations: string[];
}

/** The random source of input `index` of a campaign seeded with `seed` (independent of other inputs). */
function inputRng(seed: number, index: number): () => number {
  const h = createHash('sha256').update(`${seed}:${index}`).digest();
  return rng(h.readUInt32LE(0));
}

const STRUCT_NAMES = Object.keys(structural);
const BYTE_NAMES = Object.keys(byteLevel);

/** Input number `index` of the campaign `seed`: deterministic, so a failure can be regenerated. */
export function generate(seeds: Seed[], seed: number, index: number): Generated {
  const r = inputRng(seed, index);
  const base = pick(r, seeds);
  const mutations: string[] = [];
  let buf: Buffer;
  if (base.cap !== null) {
    const c = cloneCapture(base.cap);
    const nStruct = r() < 0.25 ? 0 : 1 + int(r, 3);
    for (let i = 0; i < nStruct; i++) {
      for (let tries = 0; tries < 6; tries++) {
        const name = pick(r, STRUCT_NAMES);
        const what = structural[name]!(c, r);
        if (what !== null) {
          mutations.push(`${name}: ${what}`);
          break;
        }
      }
    }
    const s = serialize(c);
    buf = s.buf;
    if (mutations.length === 0 || r() < 0.5) {
      for (let tries = 0; tries < 6; tries++) {
        const name = pick(r, BYTE_NAMES);
        const out = byteLevel[name]!(s, r);
        if (out !== null) {
          mutations.push(`${name}: ${out.what}`);
          buf = out.buf;
          break;
        }
      }
    }
  } else {
    // Not modelled (modified pcap, damaged file): byte-level only.
    const s = { buf: base.buf, placed: [], headerLen: Math.min(24, base.buf.length) };
    const name = pick(r, ['bit-flips', 'interesting-bytes', 'truncate-layer', 'pcap-file-header', 'append-garbage']);
    const out = byteLevel[name]!(s, r) ?? { buf: base.buf, what: 'unchanged' };
    mutations.push(`${name}: ${out.what}`);
    buf = out.buf;
  }
  const z = maybeGzip(buf, r);
  if (z.what !== null) mutations.push(z.what);
  buf = z.buf;
  const chunk = buf.length < 20_000 && r() < 0.1 ? 1 : pick(r, [0, 0, 0, 7, 100, 1500, 4096, 65536]);
  let port: number | null = null;
  if (r() < 0.15 && base.cap !== null) {
    const first = base.cap.units.find((u) => u.kind === 'pkt' && layers(u.pkt) !== null);
    if (first !== undefined && first.kind === 'pkt') port = first.pkt.data.readUInt16BE(layers(first.pkt)!.tcpOff + 2) || 80;
  }
  return { buf, chunk, port, showSecrets: r() < 0.2, seed, index, base: base.name, mutations };
}

// ---------------------------------------------------------------- runner

export type OutcomeKind = 'ok' | 'user-error' | 'error' | 'hang' | 'oom' | 'crash';

export interface Outcome {
  kind: OutcomeKind;
  ms: number;
  message?: string;
  stack?: string | null;
  heapUsed?: number;
  packets?: number;
  connections?: number;
  anomalies?: Record<string, number>;
}

interface WorkerReply {
  id: number;
  ok: boolean;
  userError: boolean;
  error?: string;
  stack?: string | null;
  ms: number;
  heapUsed?: number;
  packets?: number;
  connections?: number;
  anomalies?: Record<string, number>;
}

export interface RunnerOptions {
  /** An input running longer than this is a hang: the worker is killed (ms). */
  hangMs: number;
  /** V8 old-generation limit of the worker (MiB); an input needing more is reported 'oom'. */
  maxOldGenerationMb: number;
}

/** One worker at a time, replaced after a hang, an out-of-memory or a crash. */
export class FuzzRunner {
  private worker: Worker | null = null;
  private ready: Promise<void> | null = null;
  private nextId = 1;
  /** Workers started (1 + replacements). */
  started = 0;

  constructor(private readonly o: RunnerOptions) {
    const w = path.join(REPO, 'dist/lib/index.js');
    if (!existsSync(w)) throw new Error(`${w} is missing: run \`npm run build\` before the fuzz tests (the worker runs the build)`);
  }

  private spawn(): Promise<void> {
    const w = new Worker(new URL('./worker.mjs', import.meta.url), {
      resourceLimits: { maxOldGenerationSizeMb: this.o.maxOldGenerationMb, maxYoungGenerationSizeMb: 32 },
      stdout: true,
      stderr: true,
    });
    this.started++;
    this.worker = w;
    // Renderers never print; whatever a worker prints is dropped rather than flooding the test log.
    w.stdout.resume();
    w.stderr.resume();
    this.ready = new Promise((resolve, reject) => {
      const onMsg = (m: { ready?: boolean }): void => {
        if (m.ready) {
          w.off('message', onMsg);
          w.off('error', onErr);
          resolve();
        }
      };
      const onErr = (e: Error): void => reject(e);
      w.on('message', onMsg);
      w.once('error', onErr);
    });
    return this.ready;
  }

  async run(c: FuzzCase, gc = false): Promise<Outcome> {
    if (this.worker === null) await this.spawn();
    else await this.ready;
    const w = this.worker!;
    const id = this.nextId++;
    const t0 = performance.now();
    return new Promise<Outcome>((resolve) => {
      let done = false;
      const finish = (o: Outcome, kill: boolean): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        w.off('message', onMsg);
        w.off('error', onErr);
        w.off('exit', onExit);
        if (kill) {
          this.worker = null;
          void w.terminate();
        }
        resolve(o);
      };
      const onMsg = (m: WorkerReply): void => {
        if (m.id !== id) return;
        const kind: OutcomeKind = m.ok ? (m.userError ? 'user-error' : 'ok') : 'error';
        const o: Outcome = { kind, ms: m.ms };
        if (m.error !== undefined) o.message = m.error;
        if (m.stack !== undefined) o.stack = m.stack;
        if (m.heapUsed !== undefined) o.heapUsed = m.heapUsed;
        if (m.packets !== undefined) o.packets = m.packets;
        if (m.connections !== undefined) o.connections = m.connections;
        if (m.anomalies !== undefined) o.anomalies = m.anomalies;
        finish(o, false);
      };
      const onErr = (e: Error & { code?: string }): void => {
        const oom = e.code === 'ERR_WORKER_OUT_OF_MEMORY';
        finish({ kind: oom ? 'oom' : 'crash', ms: performance.now() - t0, message: e.message, stack: e.stack ?? null }, true);
      };
      const onExit = (code: number): void => finish({ kind: 'crash', ms: performance.now() - t0, message: `worker exited with code ${code}` }, true);
      const timer = setTimeout(
        () => finish({ kind: 'hang', ms: performance.now() - t0, message: `no answer after ${this.o.hangMs} ms` }, true),
        this.o.hangMs,
      );
      w.on('message', onMsg);
      w.on('error', onErr);
      w.on('exit', onExit);
      w.postMessage({ id, buf: new Uint8Array(c.buf), chunk: c.chunk, port: c.port, showSecrets: c.showSecrets, gc });
    });
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    if (w !== null) await w.terminate();
  }
}

// ---------------------------------------------------------------- regression fixtures

export interface FixtureMeta {
  /** File name of the input beside this JSON (gzip-compressed with a .gz name when large). */
  input: string;
  stored: 'raw' | 'gzip';
  chunk: number;
  port: number | null;
  showSecrets: boolean;
  /** What went wrong when it was found, and how it was made. */
  found: { kind: OutcomeKind; message: string; top: string; seed: number | null; index: number | null; base: string; mutations: string[] };
  note?: string;
}

/** A stable name for a failure: its kind, its message without numbers, and the first frame of the stack in our code. */
export function signature(o: Outcome): string {
  const msg = (o.message ?? '').split('\n')[0]!.replace(/\d+/g, 'N').slice(0, 200);
  const frame = (o.stack ?? '').split('\n').find((l) => l.includes('/dist/') || l.includes('/lib/')) ?? '';
  return `${o.kind}|${msg}|${frame.replace(/:\d+:\d+\)?$/, '').trim()}`;
}

export function saveFixture(g: Generated, o: Outcome): string | null {
  mkdirSync(FUZZ_FIXTURES, { recursive: true });
  const id = createHash('sha256').update(signature(o)).digest('hex').slice(0, 12);
  const metaPath = path.join(FUZZ_FIXTURES, `${o.kind}-${id}.json`);
  if (existsSync(metaPath)) return null; // the same failure is already a regression fixture
  const big = g.buf.length > 256 * 1024;
  const input = `${o.kind}-${id}.${big ? 'bin.gz' : 'bin'}`;
  writeFileSync(path.join(FUZZ_FIXTURES, input), big ? gzipSync(g.buf, { level: 9 }) : g.buf);
  const meta: FixtureMeta = {
    input,
    stored: big ? 'gzip' : 'raw',
    chunk: g.chunk,
    port: g.port,
    showSecrets: g.showSecrets,
    found: {
      kind: o.kind,
      message: (o.message ?? '').split('\n')[0]!,
      top: signature(o).split('|')[2] ?? '',
      seed: g.seed,
      index: g.index,
      base: g.base,
      mutations: g.mutations,
    },
  };
  writeFileSync(metaPath, `${JSON.stringify(meta, null, 2)}\n`);
  return metaPath;
}

export function loadFixtures(): { name: string; meta: FixtureMeta; c: FuzzCase }[] {
  if (!existsSync(FUZZ_FIXTURES)) return [];
  return readdirSync(FUZZ_FIXTURES)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => {
      const meta = JSON.parse(readFileSync(path.join(FUZZ_FIXTURES, f), 'utf8')) as FixtureMeta;
      let buf = readFileSync(path.join(FUZZ_FIXTURES, meta.input));
      if (meta.stored === 'gzip') buf = gunzipSync(buf);
      return { name: f, meta, c: { buf, chunk: meta.chunk, port: meta.port, showSecrets: meta.showSecrets } };
    });
}
