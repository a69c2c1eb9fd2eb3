/**
 * Captures the HTML report tests render, and their JSON reports (the facts the
 * page is checked against). The lab's incident capture when it is there (a
 * real axios/node-fetch client against uvicorn, made by `npm run lab`), and
 * two corpus captures: workshop_2011_browse.pcap (6 sockets, 17 exchanges,
 * all complete) and vnd.ms-cab-compressed-multi-conn.pcap (5 sockets, each
 * ending with a server FIN then a client RST: tshark's tcp.flags.reset and
 * tcp.flags.fin rows in the corpus truth files).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { analyze } from '../../lib/index.js';
import type { ReportJSON } from '../../lib/report/index.js';
import { CORPUS, REPO, corpusPresent } from '../capture/helpers.js';

export interface Case {
  name: string;
  file: string;
}

export const INCIDENT = path.join(REPO, 'test/fixtures/lab/a-incident/capture.pcap');
export const BROWSE = path.join(CORPUS, 'zeek/workshop_2011_browse.pcap');
export const CAB = path.join(CORPUS, 'zeek/http/vnd.ms-cab-compressed-multi-conn.pcap');

/** Bytes read once, when the suite starts: `npm run lab` may be rewriting test/fixtures/lab while the tests run. */
const snapshots = new Map<string, Buffer>();

function snapshot(file: string): boolean {
  try {
    snapshots.set(file, readFileSync(file));
    return true;
  } catch {
    return false;
  }
}

export function cases(): Case[] {
  const out: Case[] = [];
  if (existsSync(INCIDENT) && snapshot(INCIDENT)) out.push({ name: 'lab-a-incident', file: INCIDENT });
  if (corpusPresent) {
    out.push({ name: 'corpus-cab-multi-conn', file: CAB });
    out.push({ name: 'corpus-workshop-browse', file: BROWSE });
  }
  return out;
}

const reports = new Map<string, Promise<ReportJSON>>();

/** The JSON report of a capture, analyzed once per test file (each test gets its own deep copy). */
export async function reportOf(file: string): Promise<ReportJSON> {
  let p = reports.get(file);
  if (p === undefined) {
    const bytes = snapshots.get(file);
    p =
      bytes !== undefined
        ? analyze(Readable.from([bytes])).then((r) => ({ ...r, source: { ...r.source, name: file } }))
        : analyze(file);
    reports.set(file, p);
  }
  return JSON.parse(JSON.stringify(await p)) as ReportJSON;
}

/** A deep copy of a real report with wire strings replaced by hostile ones (what a crafted request line could carry). */
export const HOSTILE_TARGET = '/x</script><script>window.__pwned=1</script><!--<img src=x onerror="window.__pwned=2">&amp;\u2028\'"';
export const HOSTILE_HEADER = '</template><script>window.__pwned=3</script>';

export function hostile(r: ReportJSON): ReportJSON {
  const copy = JSON.parse(JSON.stringify(r)) as ReportJSON;
  for (const c of copy.connections)
    for (const e of c.exchanges) {
      e.target = HOSTILE_TARGET;
      e.reason = '<b>bold</b>';
      e.requestHeaders['user-agent'] = HOSTILE_HEADER;
    }
  for (const f of copy.findings) f.summary = `${f.summary} ${HOSTILE_TARGET}`;
  if (copy.verdict) copy.verdict.headline = `${copy.verdict.headline} ${HOSTILE_TARGET}`;
  copy.source.name = `<script>window.__pwned=4</script>.pcap`;
  return copy;
}
