/**
 * The out-of-order buffer bound (--max-buffer, default 4 MiB per direction)
 * on real packet loss: loss-traffic.mjs downloads 2 MiB three times through
 * a router namespace that drops 3% of the server's segments before they
 * reach the client's interface, where tcpdump captures. The capture has real
 * holes (tshark: "previous segment not captured"), each filled later by the
 * sender's retransmission.
 *  - default bound: every hole waits for its retransmission: no gap, no
 *    overflow, every body exactly the bytes the client received;
 *  - --max-buffer 32k: a hole with more than 32 KiB held after it is declared
 *    a gap (tcp-reassembly-overflow, tcp-gap, bytes not captured), the
 *    retransmission then counts as one, and the exchanges keep their framing
 *    (the gap counts as body bytes: each body still adds up to 2 MiB), unless
 *    the gap swallowed a response head: that exchange is then incomplete
 *    (http-gap-lost-sync) and the next response is found again.
 * The committed capture (fixtures/loss.pcap.gz, the client's log in
 * loss.json) was made by `node test/bounds/loss-traffic.mjs run loss.pcap 2097152 0.03`;
 * with root, a fresh one is made and checked with a 4 KiB bound (any hole
 * before a fast retransmission holds at least three segments).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { hasCommand as has, isRoot, need } from '../need.js';
import { afterAll, describe, expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(here, '../..');
const MAIN = path.join(REPO, 'dist/cli/main.js');
const FIXTURE = path.join(here, 'fixtures/loss.pcap.gz');
const LOG = JSON.parse(readFileSync(path.join(here, 'fixtures/loss.json'), 'utf8'));

const tmp = mkdtempSync(path.join(tmpdir(), 'hangscope-loss-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function report(file: string, extra: string[] = []): any {
  const r = spawnSync(process.execPath, [MAIN, 'analyze', file, '--format', 'json', ...extra], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
}

function tsharkCount(file: string, filter: string): number {
  const r = spawnSync('tshark', ['-n', '-r', file, '-Y', filter, '-T', 'fields', '-e', 'frame.number'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return r.stdout.split('\n').filter((l) => l !== '').length;
}

function checkDefault(file: string, bytes: number): void {
  const r = report(file);
  expect(r.stats.anomalies['tcp-reassembly-overflow']).toBeUndefined();
  expect(r.stats.anomalies['tcp-gap']).toBeUndefined();
  const c = r.connections[0];
  expect(c.gapBytes.server).toBe(0);
  expect(c.exchanges.map((e: any) => [e.outcome, e.status, e.responseBodyBytes, e.gapBytes])).toEqual(
    [0, 1, 2].map(() => ['complete', 200, bytes, 0]),
  );
}

describe('the committed lossy download', () => {
  it('has real holes, each filled by a retransmission (tshark)', () => {
    if (!need(has('tshark'), 'tshark is not installed', 'bounds: loss capture vs tshark')) return;
    expect(tsharkCount(FIXTURE, 'tcp.analysis.lost_segment')).toBeGreaterThan(0);
    expect(tsharkCount(FIXTURE, 'tcp.analysis.retransmission || tcp.analysis.out_of_order')).toBeGreaterThan(0);
  });

  it('default bound: every hole waits for its retransmission; bodies are the bytes the client got', () => {
    expect(LOG.received).toEqual([LOG.bytes, LOG.bytes, LOG.bytes]);
    checkDefault(FIXTURE, LOG.bytes);
  });

  it('--max-buffer 32k: holes become gaps, counted (json and text); framing holds', () => {
    const r = report(FIXTURE, ['--max-buffer', '32k']);
    const over = r.stats.anomalies['tcp-reassembly-overflow'];
    expect(over).toBeGreaterThan(0);
    expect(r.stats.anomalies['tcp-gap']).toBeGreaterThanOrEqual(over);
    const c = r.connections[0];
    expect(c.gapBytes.server).toBeGreaterThan(0);
    expect(c.exchanges.map((e: any) => [e.outcome, e.status, e.responseBodyBytes])).toEqual([0, 1, 2].map(() => ['complete', 200, LOG.bytes]));
    expect(c.exchanges.reduce((s: number, e: any) => s + e.gapBytes, 0)).toBe(c.gapBytes.server);
    const text = spawnSync(process.execPath, [MAIN, 'analyze', FIXTURE, '--max-buffer', '32k', '--no-color'], { encoding: 'utf8' }).stdout;
    expect(text).toContain(`tcp-reassembly-overflow ${over}`);
    expect(text).toContain(`bytes not captured client 0, server ${c.gapBytes.server}`);
  });
});

const SUITE = 'bounds: a fresh lossy download through a router namespace';
const live = need(isRoot, 'not root (network namespaces, iptables, tcpdump)', SUITE) && need(has('tcpdump'), 'tcpdump is not installed', SUITE) && need(has('iptables'), 'iptables is not installed', SUITE);

describe.runIf(live)(SUITE, () => {
  it('default: no gap; --max-buffer 4k: an overflow for the holes tshark sees', () => {
    const f = path.join(tmp, 'loss.pcap');
    const g = spawnSync(process.execPath, [path.join(here, 'loss-traffic.mjs'), 'run', f, String(2 * 1024 * 1024), '0.03'], { encoding: 'utf8', timeout: 120_000 });
    expect(g.status, g.stderr).toBe(0);
    const log = JSON.parse(g.stdout.trim().split('\n').at(-1)!);
    expect(log.received).toEqual([log.bytes, log.bytes, log.bytes]);
    expect(log.tcpdumpDropped).toBe(0);
    checkDefault(f, log.bytes);
    const holes = has('tshark') ? tsharkCount(f, 'tcp.analysis.lost_segment') : log.routerDropped;
    const r = report(f, ['--max-buffer', '4k']);
    console.log(`[bounds] lossy download: router dropped ${log.routerDropped}, holes ${holes}, overflows at 4k ${r.stats.anomalies['tcp-reassembly-overflow'] ?? 0}`);
    if (holes > 0) expect(r.stats.anomalies['tcp-reassembly-overflow']).toBeGreaterThan(0);
    // A gap that swallows a response head costs that exchange its framing (counted http-gap-lost-sync;
    // the next response is found again); every other body adds up. The bound invents no failure.
    const ex = r.connections[0].exchanges;
    const lost = ex.filter((e: any) => e.outcome !== 'complete');
    expect(ex.filter((e: any) => e.outcome === 'complete').map((e: any) => e.responseBodyBytes)).toEqual(Array(3 - lost.length).fill(log.bytes));
    expect(lost.length).toBeLessThanOrEqual(r.stats.anomalies['http-gap-lost-sync'] ?? 0);
    expect(r.findings.filter((f: any) => f.severity !== 'info')).toEqual([]);
  }, 120_000);
});
