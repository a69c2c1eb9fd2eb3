/**
 * The dashboard's views (ink-testing-library) on real engine output: the lab's
 * incident capture (axios GET /files then node-fetch POST /exec on one pooled
 * socket, cut by the client's 5 s idle timer) and Zeek's workshop_2011_browse
 * corpus capture (six keep-alive sockets of a browser).
 *
 * Expected values come from tshark on the same capture, the corpus' tshark
 * truth files, and the lab's truth.json (the programs' own logs), not from
 * hangscope.
 */
import { readFileSync } from 'node:fs';
import { render } from 'ink-testing-library';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { App } from '../../dashboards/tui/App.js';
import { DashboardStore } from '../../dashboards/tui/model.js';
import { readCapture } from '../../lib/capture/index.js';
import { Engine } from '../../lib/engine.js';
import { analyzeCapture } from '../../lib/index.js';
import type { PacketRecord } from '../../lib/types.js';
import { KEY, corpusFile, feed, labCapture, labTruth, need, sleep, tshark, tsharkPresent } from './helpers.js';

const REFRESH = 20;
/** Long enough for a refresh tick and ink's render after it. */
const SETTLE = 120;

const instances: { unmount: () => void }[] = [];
afterEach(() => {
  for (const i of instances.splice(0)) i.unmount();
});

function show(store: DashboardStore, width = 160, height = 40) {
  const r = render(<App store={store} width={width} height={height} refreshMs={REFRESH} />);
  instances.push(r);
  return r;
}

const us = (epoch: string): number => Math.round(Number(epoch) * 1e6);

// ---------------------------------------------------------------- the incident

const INCIDENT = labCapture('a-incident');
const haveIncident = need(INCIDENT !== null, 'test/fixtures/lab/a-incident/capture.pcap is missing (npm run lab makes it)', 'tui: incident views') &&
  need(tsharkPresent, 'tshark is not installed (apt-get install tshark)', 'tui: incident views');

interface IncidentFacts {
  clientPort: number;
  getTarget: string;
  getStatus: number;
  postTs: number;
  clientFinTs: number;
  clientFinFrame: number;
}

/** What tshark reads in the incident capture. */
function incidentFacts(pcap: string): IncidentFacts {
  const reqs = tshark(pcap, 'http.request', ['frame.time_epoch', 'http.request.method', 'http.request.uri', 'tcp.srcport']);
  const get = reqs.find((r) => r[1] === 'GET')!;
  const post = reqs.find((r) => r[1] === 'POST')!;
  const clientPort = Number(get[3]);
  const status = tshark(pcap, 'http.response', ['http.response.code'])[0]!;
  const fin = tshark(pcap, `tcp.flags.fin==1 && tcp.srcport==${clientPort}`, ['frame.time_epoch', 'frame.number'])[0]!;
  return {
    clientPort,
    getTarget: get[2]!,
    getStatus: Number(status[0]),
    postTs: us(post[0]!),
    clientFinTs: us(fin[0]!),
    clientFinFrame: Number(fin[1]),
  };
}

describe.runIf(haveIncident)('dashboard on the incident capture', () => {
  const pcap = INCIDENT!;
  let facts: IncidentFacts;
  let truth: any;
  let abortAfter: string;
  beforeAll(() => {
    facts = incidentFacts(pcap);
    truth = labTruth('a-incident');
    abortAfter = `${((facts.clientFinTs - facts.postTs) / 1e6).toFixed(2)}s`;
  });

  it('the client log and the capture agree on the socket (the fixture is consistent)', () => {
    const ports = new Set(truth.requests.map((r: { localPort: number }) => r.localPort));
    expect([...ports]).toEqual([facts.clientPort]);
    expect(truth.requests[1].error).toBe('socket hang up');
  });

  it('table: one row with /files and /exec on the same socket, the abort, who closed first, the worst finding', async () => {
    const { store } = await feed(pcap);
    const r = show(store);
    await sleep(SETTLE);
    const frame = r.lastFrame()!;
    const row = frame.split('\n').find((l) => l.includes(`${facts.clientPort} `))!;
    expect(row).toBeDefined();
    expect(row).toContain(`GET /files/abc ${facts.getStatus} -> POST /exec x client FIN ${abortAfter}`);
    expect(row).toContain('client FIN');
    expect(row).toContain('client-abort-before-response');
    expect(row).toMatch(/closed|reset/);
    // Header: packets as tshark counts them.
    const packets = tshark(pcap, 'frame', ['frame.number']).length;
    expect(frame).toContain(`packets ${packets}`);
    expect(frame).toContain('open 0');
    expect(frame).toContain('done 1');
  });

  it('findings panel: counts by code and the verdict sentence', async () => {
    const { store } = await feed(pcap);
    const r = show(store, 220);
    await sleep(SETTLE);
    const frame = r.lastFrame()!;
    const line = frame.split('\n').find((l) => l.startsWith('findings: '))!;
    for (const code of truth.expect.findings as string[]) expect(line).toMatch(new RegExp(`${code} \\d+`));
    const verdict = store.verdict()!;
    expect(verdict.headline).toContain('POST /exec');
    // The idle timer the client log shows firing (idleMs 5000).
    const idle = truth.socketEvents.find((e: { event: string }) => e.event === 'idle-timeout');
    expect(verdict.headline).toContain(`${(idle.idleMs / 1000).toFixed(2)} s`);
    expect(frame).toContain(`verdict: ${verdict.headline.slice(0, 80)}`);
  });

  it('detail view (enter): timeline with the abort where the client FIN is, the idle gap, the exchange facts; esc goes back', async () => {
    const { store } = await feed(pcap);
    const r = show(store, 160, 50);
    await sleep(SETTLE);
    r.stdin.write(KEY.enter);
    await sleep(SETTLE);
    const frame = r.lastFrame()!;
    const lines = frame.split('\n');
    expect(lines.some((l) => l.startsWith(`socket 127.0.0.1:${facts.clientPort} -> 127.0.0.1:8000`))).toBe(true);
    const get = lines.find((l) => l.startsWith(`#1 GET /files/abc ${facts.getStatus}`))!;
    const post = lines.find((l) => l.startsWith('#2 POST /exec'))!;
    const client = lines.find((l) => l.startsWith(`client 127.0.0.1:${facts.clientPort}`))!;
    const server = lines.find((l) => l.startsWith('server 127.0.0.1:8000'))!;
    expect(get).toContain('█');
    // The POST waits (dots) until the x, drawn in the column of the client's FIN.
    expect(post).toMatch(/▒·+x\s*$/);
    expect(post.lastIndexOf('x')).toBe(client.indexOf('F'));
    // The handshake at +0, the left end of the axis.
    const axis = lines.find((l) => l.startsWith('from '))!;
    expect(client.indexOf('S')).toBe(axis.indexOf('+0'));
    expect(server).toContain('F');
    // No payload either way from the POST to the client's FIN.
    const idle = lines.find((l) => l.startsWith('idle '))!;
    const gap = (facts.clientFinTs - facts.postTs) / 1e6;
    expect(idle).toMatch(/until the client's FIN/);
    expect(Math.abs(Number(/^idle (\d+\.\d+)s/.exec(idle)![1]) - gap)).toBeLessThanOrEqual(0.001);
    expect(frame).toContain(`#1 GET ${facts.getTarget} HTTP/1.1 -> ${facts.getStatus}`);
    expect(frame).toContain('#2 POST /exec HTTP/1.1 -> no response  [no-response]');
    expect(frame).toMatch(/client FIN \d\.\d{3}s after the request started/);
    expect(frame).toContain('Findings on this socket');
    expect(frame).toContain('esc/backspace back');
    r.stdin.write(KEY.escape);
    await sleep(SETTLE);
    expect(r.lastFrame()).toContain('REQUESTS ON THE SOCKET');
  });

  it('live: before the client FIN the POST is still waiting; the same row turns into the abort when the FIN arrives', async () => {
    const { store } = await feed(pcap, { upToFrame: facts.clientFinFrame - 1 });
    const r = show(store);
    await sleep(SETTLE);
    const frame = r.lastFrame()!;
    const row = frame.split('\n').find((l) => l.includes(`${facts.clientPort} `))!;
    expect(row).toMatch(/ open /);
    expect(row).toMatch(/GET \/files\/abc 200 -> POST \/exec … \d/);
    expect(frame).toContain('open 1');
    expect(frame).toContain('findings: none yet');
    r.stdin.write(KEY.enter);
    await sleep(SETTLE);
    expect(r.lastFrame()).toContain('[waiting for the first byte]');
    expect(r.lastFrame()).toContain('live, open');
  });

  it('p pauses the screen while the engine goes on; p again shows what happened meanwhile', async () => {
    const recs: PacketRecord[] = [];
    await readCapture(pcap, (rec) => recs.push({ ...rec, data: Buffer.from(rec.data) }), { anomalies: new Engine().anomalies });
    const store = new DashboardStore({ source: { kind: 'file', name: 'a-incident', filter: null, snaplen: null, port: null } });
    const engine = new Engine({ onOpen: store.onOpen, onExchange: store.onExchange, onConnection: store.onConnection, onFinding: store.onFinding });
    store.attach(engine);
    const split = facts.clientFinFrame - 1;
    for (const rec of recs.slice(0, split)) engine.packet(rec);
    const r = show(store);
    await sleep(SETTLE);
    expect(r.lastFrame()).toMatch(/POST \/exec … /);
    r.stdin.write('p');
    await sleep(SETTLE);
    expect(r.lastFrame()).toContain('PAUSED');
    for (const rec of recs.slice(split)) engine.packet(rec);
    engine.finish();
    await sleep(SETTLE * 2);
    expect(r.lastFrame()).toMatch(/POST \/exec … /);
    expect(r.lastFrame()).not.toContain('x client FIN');
    r.stdin.write('p');
    await sleep(SETTLE);
    expect(r.lastFrame()).not.toContain('PAUSED');
    expect(r.lastFrame()).toContain(`POST /exec x client FIN ${abortAfter}`);
  });
});

// ---------------------------------------------------------------- a browser's sockets

const WORKSHOP = corpusFile('zeek/workshop_2011_browse.pcap');
const haveWorkshop = need(WORKSHOP !== null, 'corpus capture zeek/workshop_2011_browse.pcap not found', 'tui: workshop views');

interface HttpRow {
  stream: number;
  port: number;
  method: string;
  uri: string;
  code: string;
}

/** The corpus' tshark truth (workshop_2011_browse.tshark-http.tsv). */
function workshopTruth(): { requests: HttpRow[]; responses: HttpRow[]; resets: number } {
  const tsv = readFileSync(WORKSHOP!.replace(/\.pcap$/, '.tshark-http.tsv'), 'utf8').split('\n').filter((l) => l !== '');
  const head = tsv[0]!.split('\t');
  const col = (n: string): number => head.indexOf(n);
  const rows = tsv.slice(1).map((l) => l.split('\t'));
  const toRow = (c: string[]): HttpRow => ({
    stream: Number(c[col('tcp.stream')]),
    port: Number(c[col('tcp.srcport')]),
    method: c[col('http.request.method')]!,
    uri: c[col('http.request.uri')]!,
    code: c[col('http.response.code')]!,
  });
  const tcp = readFileSync(WORKSHOP!.replace(/\.pcap$/, '.tshark-tcp.tsv'), 'utf8').split('\n').filter((l) => l !== '');
  const th = tcp[0]!.split('\t');
  const resets = tcp.slice(1).filter((l) => l.split('\t')[th.indexOf('tcp.flags.reset')] === '1').length;
  return {
    requests: rows.filter((c) => c[col('http.request.method')] !== '').map(toRow),
    responses: rows.filter((c) => c[col('http.response.code')] !== '').map(toRow),
    resets,
  };
}

function tableRows(frame: string): string[] {
  const lines = frame.split('\n');
  const i = lines.findIndex((l) => l.includes('REQUESTS ON THE SOCKET'));
  return lines.slice(i + 1).filter((l) => /^[▸ ] \d+ /.test(l));
}

describe.runIf(haveWorkshop)('dashboard on a browser capture (workshop_2011_browse)', () => {
  const pcap = WORKSHOP!;
  let t: ReturnType<typeof workshopTruth>;
  let streams: [number, number][];
  beforeAll(() => {
    t = workshopTruth();
    streams = [...new Map(t.requests.map((r) => [r.stream, r.port])).entries()].sort((a, b) => b[0] - a[0]);
  });

  it('one row per socket, newest first (tcp.stream order), each with its requests in order', async () => {
    const { store } = await feed(pcap);
    const r = show(store, 200);
    await sleep(SETTLE);
    const rows = tableRows(r.lastFrame()!);
    expect(rows.map((l) => Number(l.slice(2).trim().split(' ')[0]))).toEqual(streams.map(([, port]) => port));
    for (const [stream, port] of streams) {
      const row = rows.find((l) => l.slice(2).startsWith(String(port)))!;
      const first = t.requests.find((q) => q.stream === stream)!;
      expect(row).toContain(`${first.method} ${first.uri.split('?')[0]!.slice(0, 31)}`);
    }
    expect(rows[0]!.startsWith('▸')).toBe(true);
  });

  it('the table is bounded: only the newest maxRows sockets', async () => {
    const { store } = await feed(pcap, { maxRows: 4 });
    const r = show(store, 200);
    await sleep(SETTLE);
    const rows = tableRows(r.lastFrame()!);
    expect(rows.map((l) => Number(l.slice(2).trim().split(' ')[0]))).toEqual(streams.slice(0, 4).map(([, port]) => port));
    expect(store.snapshot().rowsDropped).toBe(streams.length - 4);
  });

  it('/ filters by path; f shows failing sockets only (none here: every request answered, no RST)', async () => {
    const { store } = await feed(pcap);
    const r = show(store, 200);
    await sleep(SETTLE);
    r.stdin.write('/');
    await sleep(SETTLE);
    expect(r.lastFrame()).toContain('filter by path:');
    for (const ch of '/css') r.stdin.write(ch);
    await sleep(SETTLE);
    r.stdin.write(KEY.enter);
    await sleep(SETTLE);
    const cssPorts = [...new Set(t.requests.filter((q) => q.uri.includes('/css')).map((q) => q.port))].sort();
    const rows = tableRows(r.lastFrame()!);
    expect(rows.map((l) => Number(l.slice(2).trim().split(' ')[0])).sort()).toEqual(cssPorts);
    expect(r.lastFrame()).toContain('path contains "/css"');

    // Clear the filter, then failing only.
    r.stdin.write('/');
    await sleep(SETTLE);
    for (let i = 0; i < 4; i++) r.stdin.write(KEY.backspace);
    await sleep(SETTLE);
    r.stdin.write(KEY.enter);
    await sleep(SETTLE);
    expect(tableRows(r.lastFrame()!)).toHaveLength(streams.length);
    expect(t.responses.length).toBe(t.requests.length);
    expect(t.resets).toBe(0);
    r.stdin.write('f');
    await sleep(SETTLE);
    expect(tableRows(r.lastFrame()!)).toHaveLength(0);
    expect(r.lastFrame()).toContain('no socket matches the filter');
    expect(r.lastFrame()).toContain('failing sockets only');
  });

  it('arrows move the selection; enter opens the selected socket', async () => {
    const { store } = await feed(pcap);
    const r = show(store, 200, 60);
    await sleep(SETTLE);
    r.stdin.write(KEY.down);
    await sleep(SETTLE);
    r.stdin.write(KEY.down);
    await sleep(SETTLE);
    const rows = tableRows(r.lastFrame()!);
    expect(rows[2]!.startsWith('▸')).toBe(true);
    r.stdin.write(KEY.up);
    await sleep(SETTLE);
    expect(tableRows(r.lastFrame()!)[1]!.startsWith('▸')).toBe(true);
    r.stdin.write(KEY.enter);
    await sleep(SETTLE);
    const [stream, port] = streams[1]!;
    const frame = r.lastFrame()!;
    expect(frame).toContain(`socket 10.0.2.15:${port} -> 192.150.187.43:80`);
    const reqs = t.requests.filter((q) => q.stream === stream);
    for (const q of reqs) expect(frame).toContain(`${q.method} ${q.uri} HTTP/1.1 -> `);
  });
});

// ---------------------------------------------------------------- the panel follows the engine

const LAB_SCENARIOS = ['a-incident', 'e-keepalive-race', 'f-server-killed', 'g-close-wait', 'h-stale-connection'];

describe('findings panel shows what the engine found, per lab scenario', () => {
  for (const name of LAB_SCENARIOS) {
    const pcap = labCapture(name);
    it.runIf(need(pcap !== null, `lab fixture ${name} is missing`, `tui: panel ${name}`))(name, async () => {
      const a = await analyzeCapture(pcap!);
      const { store } = await feed(pcap!);
      const r = show(store, 400, 40);
      await sleep(SETTLE);
      const line = r.lastFrame()!.split('\n').find((l) => l.startsWith('findings: '))!;
      const counts = new Map<string, number>();
      for (const f of a.findings) counts.set(f.code, (counts.get(f.code) ?? 0) + 1);
      if (counts.size === 0) expect(line).toBe('findings: none');
      for (const [code, n] of counts) expect(line).toContain(`${code} ${n}`);
      const v = store.verdict();
      if (v !== null) expect(r.lastFrame()).toContain(`verdict: ${v.headline.slice(0, 60)}`);
    });
  }
});

// ---------------------------------------------------------------- capture-wide findings while the capture runs

describe('capture-wide findings while the capture runs', () => {
  const pcap = labCapture('a-incident');
  it.skipIf(pcap === null)('the timeout signature shows as soon as it can be computed, then once: replaced by the final one at the stop', async () => {
    const truth = labTruth('a-incident') as { expect: { findings: string[] } };
    expect(truth.expect.findings).toContain('client-timeout-signature');
    // The whole capture, not finished: as a live capture that has seen the abort.
    const { store, engine } = await feed(pcap!, { upToFrame: Number.MAX_SAFE_INTEGER });
    engine.tick(engine.lastTs! + 10_000_000); // the closed socket is finished (quiet for 5 s)
    const count = (code: string): number => store.snapshot().findingCounts.find((c) => c.code === code)?.count ?? 0;
    expect(count('client-abort-before-response')).toBe(1);
    expect(count('client-timeout-signature')).toBe(0);
    expect(store.snapshot().verdict!.basedOn).not.toContain('client-timeout-signature');

    store.setCaptureWide(engine.diagnoser.finish()); // what watch's one-second tick does
    expect(count('client-timeout-signature')).toBe(1);
    expect(store.snapshot().verdict!.basedOn).toContain('client-timeout-signature');
    const version = store.version;
    store.setCaptureWide(engine.diagnoser.finish()); // nothing new: no redraw
    expect(store.version).toBe(version);

    engine.finish(); // the stop: the final capture-wide findings replace the provisional ones
    store.setFinal('stopped');
    expect(count('client-timeout-signature')).toBe(1);
    store.setCaptureWide(engine.diagnoser.finish()); // too late: ignored
    expect(count('client-timeout-signature')).toBe(1);
    expect(store.allFindings().filter((f) => f.code === 'client-timeout-signature')).toHaveLength(1);
  });
});
