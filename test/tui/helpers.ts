/**
 * Helpers for the dashboard tests: real captures (the lab's fixtures, the
 * corpus) through the real engine into a DashboardStore, and what tshark says
 * about the same captures (the expected values).
 *
 * Missing prerequisites skip with a printed reason, except under CI=true,
 * where they are failures.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DashboardStore } from '../../dashboards/tui/model.js';
import { readCapture } from '../../lib/capture/index.js';
import { Engine } from '../../lib/engine.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '../..');
export const CORPUS = path.resolve(REPO, '../shared/corpus');
export const LAB = path.join(REPO, 'test/fixtures/lab');
export { IN_CI, need } from '../need.js';

export const tsharkPresent = spawnSync('tshark', ['-v'], { stdio: 'ignore' }).status === 0;


export function labCapture(name: string): string | null {
  const p = path.join(LAB, name, 'capture.pcap');
  return existsSync(p) ? p : null;
}

export function corpusFile(rel: string): string | null {
  const p = path.join(CORPUS, rel);
  return existsSync(p) ? p : null;
}

/** tshark fields, one row per frame matching `filter` (no TCP reassembly: one row per segment). */
export function tshark(pcap: string, filter: string, fields: string[]): string[][] {
  const r = spawnSync(
    'tshark',
    ['-r', pcap, '-n', '-o', 'tcp.desegment_tcp_streams:FALSE', '-Y', filter, '-T', 'fields', '-E', 'separator=\t', ...fields.flatMap((f) => ['-e', f])],
    { encoding: 'utf8', maxBuffer: 64 << 20 },
  );
  if (r.status !== 0) throw new Error(`tshark failed: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split('\t'));
}

/** A lab scenario's truth.json (written from the client's and server's own logs). */
export function labTruth(name: string): any {
  return JSON.parse(readFileSync(path.join(LAB, name, 'truth.json'), 'utf8'));
}

export interface Fed {
  store: DashboardStore;
  engine: Engine;
}

/**
 * A store fed with a capture through the engine. `upToFrame`: stop after that
 * frame without finishing (connections still open, as in a live capture);
 * otherwise the capture is read to the end and the engine finished.
 */
export async function feed(file: string, o: { upToFrame?: number; maxRows?: number; port?: number | null } = {}): Promise<Fed> {
  const store = new DashboardStore({
    source: { kind: 'file', name: path.basename(file), filter: null, snaplen: null, port: o.port ?? null },
    ...(o.maxRows !== undefined ? { maxRows: o.maxRows } : {}),
  });
  const engine = new Engine({
    port: o.port ?? null,
    onOpen: store.onOpen,
    onExchange: store.onExchange,
    onConnection: store.onConnection,
    onFinding: store.onFinding,
  });
  store.attach(engine);
  const upTo = o.upToFrame ?? Infinity;
  await readCapture(file, (rec) => {
    if (rec.frame <= upTo) engine.packet(rec);
  }, { anomalies: engine.anomalies });
  if (o.upToFrame === undefined) {
    engine.finish();
    store.setFinal('end of capture');
  }
  return { store, engine };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Keys as a terminal sends them. */
export const KEY = {
  up: '\u001B[A',
  down: '\u001B[B',
  enter: '\r',
  escape: '\u001B',
  backspace: '\u007F',
} as const;
