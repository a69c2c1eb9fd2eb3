/**
 * `hangscope analyze` as a user runs it: a child process of the built CLI.
 * Facts checked against tshark's truth files in the corpus (print-flags.pcap:
 * one GET / answered 200, client FIN first at 1120622257.229575 per
 * print-flags.tshark-tcp.tsv).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeCapture, toReport } from '../../lib/index.js';
import { REPO, corpusFile, need } from '../capture/helpers.js';

const BIN = path.join(REPO, 'bin/hangscope.js');
const haveCorpus = need('corpus', 'cli analyze');
const tmp = mkdtempSync(path.join(tmpdir(), 'hangscope-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

beforeAll(() => {
  if (!existsSync(path.join(REPO, 'dist/cli/main.js'))) throw new Error('dist/ is missing: run `npm run build` first (test/run.sh does)');
});

function run(args: string[], input?: Buffer) {
  const r = spawnSync(process.execPath, [BIN, ...args], { input, encoding: 'buffer', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

/** One line on stderr, starting "hangscope: ", no stack trace, exit 2. */
function expectUserError(r: ReturnType<typeof run>, pattern: RegExp) {
  expect(r.code).toBe(2);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^hangscope: /);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

describe.runIf(haveCorpus)('hangscope analyze', () => {
  const pcap = haveCorpus ? corpusFile('tcpdump/print-flags.pcap') : '';

  it('json: the GET, its 200, and the client FIN first at the time tshark gives', () => {
    const r = run(['analyze', pcap, '--format', 'json']);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const doc = JSON.parse(r.stdout);
    expect(doc.stats.packets).toBe(10);
    expect(doc.connections).toHaveLength(1);
    const c = doc.connections[0];
    expect(c.exchanges.map((e: any) => [e.index, e.method, e.target, e.status, e.outcome])).toEqual([[1, 'GET', '/', 200, 'complete']]);
    // print-flags.tshark-tcp.tsv: the first FIN row is frame 8 from 127.0.0.1:55920 at 1120622257.229575000.
    expect(c.firstClose).toEqual({ by: 'client', kind: 'FIN', ts: 1120622257.229575, frame: 8 });
    expect(c.client).toEqual({ ip: '127.0.0.1', port: 55920 });
  });

  it('reads standard input with "-", gzip-compressed too, with the same result', () => {
    const file = run(['analyze', pcap, '--format', 'json']);
    const stdin = run(['analyze', '-', '--format', 'json'], readFileSync(pcap));
    const gz = run(['analyze', '-', '--format', 'json'], gzipSync(readFileSync(pcap)));
    expect(stdin.code).toBe(0);
    expect(gz.code).toBe(0);
    const strip = (s: string) => {
      const d = JSON.parse(s);
      delete d.source;
      return d;
    };
    expect(strip(stdin.stdout)).toEqual(strip(file.stdout));
    expect(strip(gz.stdout)).toEqual(strip(file.stdout));
    expect(JSON.parse(gz.stdout).source.compressed).toBe(true);
  });

  it('json is the report as one JSON.stringify would write it, connections in id order though they finish in another', async () => {
    // The CLI writes the document connection by connection (cli/analyze.ts writeJsonReport), not as one
    // string. ipv6.pcap and the lab's keepalive-race capture are the two captures of the corpus, the
    // fixtures and the sample whose connections finish out of id order.
    const files = [
      corpusFile('zeek/ftp/ipv6.pcap'),
      path.join(REPO, 'test/fixtures/attribute/keepalive-race/capture.pcap'),
      corpusFile('zeek/workshop_2011_browse.pcap'),
      corpusFile('tcpdump/empty.pcapng'),
    ];
    let reordered = 0;
    for (const f of files) {
      const finished: number[] = [];
      const a = await analyzeCapture(f, { onConnection: (rec) => finished.push(rec.id) });
      if (finished.some((id, i) => i > 0 && id < finished[i - 1]!)) reordered++;
      const want = `${JSON.stringify(toReport(a, { port: null, showSecrets: false }), null, 2)}\n`;
      const r = run(['analyze', f, '--format', 'json']);
      expect(r.code, f).toBe(0);
      // A boolean, not toBe(want): vitest's diff of two large documents takes minutes.
      expect(r.stdout === want, `${f}: the documents differ`).toBe(true);
      const ids = (JSON.parse(r.stdout) as { connections: { id: number }[] }).connections.map((c) => c.id);
      expect(ids, f).toEqual([...finished].sort((x, y) => x - y));
    }
    expect(reordered).toBe(2);
  });

  it('ndjson: one line per connection, then findings, then stats', () => {
    const r = run(['analyze', corpusFile('zeek/workshop_2011_browse.pcap'), '--format', 'ndjson']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
    const conns = lines.filter((l) => l.type === 'connection');
    // workshop_2011_browse.tshark-conv.txt lists 6 TCP conversations with 17 requests among them.
    expect(conns).toHaveLength(6);
    expect(conns.reduce((n, c) => n + c.exchanges.length, 0)).toBe(17);
    expect(lines.at(-1).type).toBe('stats');
    expect(lines.at(-1).exchanges).toBe(17);
  });

  it('text: a socket line with the request chain and who closed first', () => {
    const r = run(['analyze', pcap, '--no-color']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('socket 127.0.0.1:55920 -> 127.0.0.1:80');
    expect(r.stdout).toMatch(/GET \/ 200 /);
    expect(r.stdout).toContain('client FIN first at');
    // Piped output (not a terminal) carries no colour escape codes, even without --no-color.
    expect(run(['analyze', pcap]).stdout).not.toContain('\x1b[');
  });

  it('--port keeps only connections to that server port', () => {
    const r = run(['analyze', corpusFile('zeek/workshop_2011_browse.pcap'), '--format', 'json', '--port', '81']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).connections).toHaveLength(0);
  });

  it('--output writes the report with mode 0600', () => {
    const out = path.join(tmp, 'report.json');
    const r = run(['analyze', pcap, '--format', 'json', '--output', out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(statSync(out).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(out, 'utf8')).stats.packets).toBe(10);
  });

  it('a missing file: exit 2, one line', () => {
    expectUserError(run(['analyze', path.join(tmp, 'nope.pcap')]), /nope\.pcap/);
  });

  it('a file that is not a capture: exit 2, one line', () => {
    expectUserError(run(['analyze', path.join(REPO, 'README.md')]), /not a pcap or pcapng/);
  });

  it('a capture cut inside its file header: exit 2, one line', () => {
    const cut = path.join(tmp, 'cut.pcap');
    writeFileSync(cut, readFileSync(pcap).subarray(0, 13));
    expectUserError(run(['analyze', cut]), /header/);
  });

  it('a bad option value: exit 2, one line', () => {
    expectUserError(run(['analyze', pcap, '--port', 'http']), /--port/);
  });
});
