/**
 * Helpers shared by test/capture and test/decode: where the corpus is,
 * whether tshark is here, and what tshark says about a capture.
 *
 * Tests that need the corpus or tshark skip with a printed reason when they
 * are missing, except under CI=true, where a missing one is a failure.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CaptureParser } from '../../lib/capture/index.js';
import { Anomalies, type PacketRecord } from '../../lib/types.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '../..');
/** `shared/corpus` beside the repository checkout. */
export const CORPUS = path.resolve(REPO, '../shared/corpus');
export const FIXTURES = path.resolve(REPO, 'test/fixtures/decode');
export const IN_CI = process.env.CI === 'true';

export const corpusPresent = existsSync(path.join(CORPUS, 'MANIFEST.tsv'));
export const tsharkPresent = spawnSync('tshark', ['-v'], { stdio: 'ignore' }).status === 0;

/** Returns true when the prerequisite is there; otherwise prints why the tests skip (throws in CI). */
export function need(what: 'corpus' | 'tshark', suite: string): boolean {
  const ok = what === 'corpus' ? corpusPresent : tsharkPresent;
  if (ok) return true;
  const why =
    what === 'corpus' ? `corpus not found at ${CORPUS}` : 'tshark is not installed (apt-get install tshark)';
  if (IN_CI) throw new Error(`${suite}: ${why}, and CI=true requires it`);
  console.log(`[skip] ${suite}: ${why}`);
  return false;
}

export function corpusFile(rel: string): string {
  return path.join(CORPUS, rel);
}

export interface ManifestRow {
  file: string;
  linktype: string;
  header: string;
  packets: number;
}

/** MANIFEST.tsv rows (file, capinfos link type name, header description, packet count). */
export function manifest(): ManifestRow[] {
  const lines = readFileSync(path.join(CORPUS, 'MANIFEST.tsv'), 'utf8').split('\n').filter((l) => l !== '');
  const head = lines[0]!.split('\t');
  const col = (n: string): number => head.indexOf(n);
  return lines.slice(1).map((l) => {
    const c = l.split('\t');
    return {
      file: c[col('file')]!,
      linktype: c[col('linktype')]!,
      header: c[col('header')]!,
      packets: Number(c[col('packets')]),
    };
  });
}

/** Runs tshark -n -r file -T fields with the given fields; rows of cells. */
export function tsharkFields(file: string, fields: string[], filter?: string): string[][] {
  const args = ['-n', '-r', file];
  if (filter) args.push('-Y', filter);
  args.push('-T', 'fields', '-E', 'separator=/t', '-E', 'occurrence=a', '-E', 'aggregator=,');
  for (const f of fields) args.push('-e', f);
  const r = spawnSync('tshark', args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`tshark failed on ${file}: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split('\t'));
}

/** tshark's frame.time_epoch ("1418145369.924505123") as integer µs, truncated like our reader. */
export function epochToMicros(s: string): number {
  const [sec, frac = ''] = s.split('.');
  return Number(sec) * 1_000_000 + Number((frac + '000000').slice(0, 6));
}

/** A copy of what the parser handed out for one record (records are reused, so copy). */
export interface Rec {
  frame: number;
  ts: number;
  linkType: number;
  interfaceId: number;
  origLen: number;
  hex: string;
}

export function copyRec(r: PacketRecord): Rec {
  return {
    frame: r.frame,
    ts: r.ts,
    linkType: r.linkType,
    interfaceId: r.interfaceId,
    origLen: r.origLen,
    hex: r.data.toString('hex'),
  };
}

/** Parses a whole buffer with CaptureParser, pushing `chunk`-byte pieces (0 = all at once). */
export function parseBuffer(buf: Buffer, chunk = 0, anomalies = new Anomalies()): { recs: Rec[]; parser: CaptureParser } {
  const recs: Rec[] = [];
  const parser = new CaptureParser((r) => recs.push(copyRec(r)), anomalies, 'test input');
  if (chunk <= 0) parser.push(buf);
  else for (let i = 0; i < buf.length; i += chunk) parser.push(buf.subarray(i, i + chunk));
  parser.end();
  return { recs, parser };
}
