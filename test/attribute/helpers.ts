/**
 * Recorded attribution sessions (test/fixtures/attribute/<scenario>/, made by
 * test/attribute/record.mjs): bpftrace's output, the clock sample, ss
 * samples, the capture, and the programs' own logs and PIDs.
 */
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Attributor,
  AttributionStore,
  ClockMap,
  SsTracker,
  parseLine,
  parseSs,
  type ClockSample,
  type TraceEvent,
} from '../../lib/attribute/index.js';
import type { ConnectionRecord } from '../../lib/correlate/index.js';
import { analyzeCapture, type Analysis } from '../../lib/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '../..');
export const FIXTURES = path.join(REPO, 'test/fixtures/attribute');
export const IN_CI = process.env.CI === 'true';

export interface Session {
  scenario: string;
  port: number;
  clock: { samples: ClockSample[]; tracefs: string; used: string[]; missing: string[] };
  processes: {
    server: { pid: number; comm: string };
    clients: { script: string; pid: number; comm: string }[];
    healthCheck?: { pid: number; comm: string };
  };
  raceRounds?: { spinMs: number; raced: number[]; pid: number }[];
  killedAt?: number;
  requests?: { host: string; status?: number; localPort?: number | null; refused?: { error: string | null } }[];
}

export interface Fixture {
  name: string;
  dir: string;
  session: Session;
  /** bpftrace's stdout, line by line. */
  lines: string[];
  clock: ClockMap;
  /** The events with their realtime (epoch µs). */
  events: { e: TraceEvent; ts: number }[];
  /** ss samples: time (epoch µs) and raw output. */
  ssSamples: { ts: number; text: string }[];
  clientLog: Record<string, unknown>[];
}

export function loadFixture(name: string): Fixture {
  const dir = path.join(FIXTURES, name);
  const session = JSON.parse(readFileSync(path.join(dir, 'session.json'), 'utf8')) as Session;
  const clock = new ClockMap();
  for (const s of session.clock.samples) clock.add(s);
  const lines = readFileSync(path.join(dir, 'bpftrace.txt'), 'utf8').split('\n');
  const events: Fixture['events'] = [];
  for (const l of lines) {
    const e = parseLine(l);
    if (e !== null && e.type !== 'begin') events.push({ e, ts: clock.toRealtime(e.monoUs) });
  }
  const ssFile = path.join(dir, 'ss.txt');
  const ssSamples: Fixture['ssSamples'] = [];
  if (existsSync(ssFile)) {
    for (const part of readFileSync(ssFile, 'utf8').split(/^# ts=/m).slice(1)) {
      const nl = part.indexOf('\n');
      ssSamples.push({ ts: Number(part.slice(0, nl)), text: part.slice(nl + 1) });
    }
  }
  const logFile = path.join(dir, 'client.log');
  const clientLog = existsSync(logFile)
    ? readFileSync(logFile, 'utf8')
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as Record<string, unknown>)
    : [];
  return { name, dir, session, lines, clock, events, ssSamples, clientLog };
}

export function storeOf(fx: Fixture, opts: ConstructorParameters<typeof AttributionStore>[0] = {}): AttributionStore {
  const store = new AttributionStore(opts);
  for (const { e } of fx.events) store.add(e, fx.clock);
  return store;
}

export function ssOf(fx: Fixture): SsTracker {
  const t = new SsTracker();
  for (const s of fx.ssSamples) t.add(parseSs(s.text), s.ts);
  return t;
}

/** The capture through the engine, each finished connection annotated first (as watch does). */
export async function analyzeFixture(fx: Fixture, o: { ebpf?: boolean; ss?: boolean } = {}): Promise<Analysis> {
  const att = Attributor.offline(o.ebpf === false ? null : storeOf(fx), o.ss === true ? ssOf(fx) : null);
  return analyzeCapture(path.join(fx.dir, 'capture.pcap'), { port: fx.session.port, onConnection: (rec) => att.annotate(rec) });
}

export function byClientPort(a: Analysis, port: number): ConnectionRecord {
  const rec = a.connections.find((c) => c.client.port === port);
  if (rec === undefined) throw new Error(`no connection from client port ${port}`);
  return rec;
}
