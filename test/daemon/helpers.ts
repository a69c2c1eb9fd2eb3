/**
 * Helpers for the daemon tests: real capture records kept in memory, a
 * Prometheus text-format reader, and reading capture files back (with our
 * reader, and with tshark when present).
 */
import { spawnSync } from 'node:child_process';
import { readCapture } from '../../lib/capture/index.js';
import { Anomalies, type PacketRecord } from '../../lib/types.js';

export { need, tshark, tsharkPresent, labCapture, labTruth, corpusFile, REPO, LAB } from '../tui/helpers.js';

/** Every record of a capture, copied (the reader reuses its record and buffer). */
export async function records(file: string): Promise<PacketRecord[]> {
  const out: PacketRecord[] = [];
  await readCapture(file, (r) => out.push({ ...r, data: Buffer.from(r.data) }), { anomalies: new Anomalies() });
  return out;
}

/** A capture file read back with our reader: records, link types, anomalies, format. */
export async function readBack(file: string): Promise<{ recs: PacketRecord[]; anomalies: Record<string, number>; format: string; linkTypes: Set<number> }> {
  const anomalies = new Anomalies();
  const recs: PacketRecord[] = [];
  const info = await readCapture(file, (r) => recs.push({ ...r, data: Buffer.from(r.data) }), { anomalies });
  return { recs, anomalies: anomalies.toJSON(), format: String(info.format), linkTypes: new Set(info.linkTypes) };
}

/** tshark's frame count for a file, or throws with tshark's complaint (a damaged file makes it exit non-zero). */
export function tsharkFrames(file: string): number {
  const r = spawnSync('tshark', ['-r', file, '-n', '-T', 'fields', '-e', 'frame.number'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`tshark cannot read ${file}: ${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l !== '').length;
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Prometheus text exposition format 0.0.4 (https://prometheus.io/docs/instrumenting/exposition_formats/): samples only. */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$/.exec(line);
    if (m === null) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      for (let l = re.exec(m[3]); l !== null; l = re.exec(m[3])) labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    out.push({ name: m[1]!, labels, value: m[4] === '+Inf' ? Infinity : Number(m[4]) });
  }
  return out;
}

/** The value of one series (labels must match exactly the ones given, others ignored); undefined when absent. */
export function metric(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const hits = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (hits.length === 0) return undefined;
  return hits.reduce((a, s) => a + s.value, 0);
}
