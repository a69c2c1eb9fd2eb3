/**
 * A port scan (every attempt a new connection, like a SYN flood) leaves
 * memory flat when the connection table is bounded, and the evictions are
 * counted where people look (stats.anomalies, the text report's Anomalies).
 *
 * Real traffic: flood.mjs connect()s to thousands of ports of 127.0.0.1
 * while tcpdump captures loopback. The committed capture
 * (fixtures/scan-4000.pcap.gz: `node test/bounds/flood.mjs scan-4000.pcap 4000 30000 100`)
 * runs everywhere; with root and tcpdump, three fresh scans of growing size
 * (5,000, 20,000 and 40,000 attempts) are made and measured: the heap after
 * garbage collection, sampled every 500 finished connections (measure.mjs,
 * the built engine with finished sockets streamed as --format ndjson does),
 * must not grow with the scan under --max-connections 256, while without the
 * bound it grows with it. Connection counts are checked against tshark's
 * count of SYNs (each attempt sends one; none is retransmitted on loopback).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { hasCommand as has, isRoot, need } from '../need.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(here, '../..');
const MAIN = path.join(REPO, 'dist/cli/main.js');
const FIXTURE = path.join(here, 'fixtures/scan-4000.pcap.gz');
const MiB = 1024 * 1024;

const tmp = mkdtempSync(path.join(tmpdir(), 'hangscope-flood-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Measured {
  packets: number;
  connections: number;
  anomalies: Record<string, number>;
  heap0: number;
  maxHeap: number;
  maxRss: number;
  seconds: number;
}

function measure(file: string, o: { maxConnections?: number; keep?: boolean }): Measured {
  const r = spawnSync(process.execPath, ['--expose-gc', path.join(here, 'measure.mjs'), file, JSON.stringify(o)], { encoding: 'utf8', timeout: 300_000 });
  if (r.status !== 0) throw new Error(`measure.mjs failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Measured;
}

/** SYNs without ACK in the capture, by tshark (gzip is read by tshark too). */
function tsharkSyns(file: string): number {
  const r = spawnSync('tshark', ['-n', '-r', file, '-Y', 'tcp.flags.syn==1 && tcp.flags.ack==0', '-T', 'fields', '-e', 'frame.number'], { encoding: 'utf8', maxBuffer: 64 * MiB });
  if (r.status !== 0) throw new Error(`tshark: ${r.stderr}`);
  return r.stdout.split('\n').filter((l) => l !== '').length;
}

function cli(args: string[]): { status: number | null; stdout: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', maxBuffer: 256 * MiB, timeout: 300_000 });
  return { status: r.status, stdout: r.stdout };
}

const haveTshark = has('tshark');

describe('the committed scan of 4,000 ports', () => {
  it('--max-connections 64: every attempt is a connection, all but 64 evicted and counted (text, ndjson)', () => {
    // The scan lasted 0.44 s: no connection was quiet for the 5 s linger, so the table only empties by eviction.
    const nd = cli(['analyze', FIXTURE, '--format', 'ndjson', '--max-connections', '64']);
    expect(nd.status).toBe(0);
    const lines = nd.stdout.trim().split('\n').map((l) => JSON.parse(l));
    const stats = lines.at(-1);
    expect(lines.filter((l) => l.type === 'connection').length).toBe(stats.connections);
    if (need(haveTshark, 'tshark is not installed', 'bounds: scan fixture vs tshark')) expect(stats.connections).toBe(tsharkSyns(FIXTURE));
    expect(stats.anomalies['connection-evicted']).toBe(stats.connections - 64);
    const text = cli(['analyze', FIXTURE, '--max-connections', '64', '--no-color']);
    expect(text.stdout).toContain(`Anomalies: connection-evicted ${stats.connections - 64}`);
    // Unbounded: nothing evicted, the same connections.
    const free = JSON.parse(cli(['analyze', FIXTURE, '--format', 'ndjson']).stdout.trim().split('\n').at(-1)!);
    expect(free.connections).toBe(stats.connections);
    expect(free.anomalies['connection-evicted']).toBeUndefined();
  });

  it('the bound keeps the heap below the unbounded run', () => {
    const bounded = measure(FIXTURE, { maxConnections: 64 });
    const free = measure(FIXTURE, {});
    console.log(`[bounds] scan-4000: heap after GC, highest: bounded ${(bounded.maxHeap / MiB).toFixed(1)} MiB, unbounded ${(free.maxHeap / MiB).toFixed(1)} MiB`);
    expect(free.maxHeap - bounded.maxHeap).toBeGreaterThan(2 * MiB);
  });
});

const SUITE = 'bounds: fresh port scans of 5,000 / 20,000 / 40,000 attempts';
const live = need(isRoot, 'not root (tcpdump needs it)', SUITE) && need(has('tcpdump'), 'tcpdump is not installed', SUITE);

describe.runIf(live)(SUITE, () => {
  const sizes = [5000, 20_000, 40_000];
  const files: Record<number, string> = {};
  const gen: Record<number, any> = {};

  beforeAll(() => {
    for (const n of sizes) {
      files[n] = path.join(tmp, `scan-${n}.pcap`);
      const r = spawnSync(process.execPath, [path.join(here, 'flood.mjs'), files[n]!, String(n), '20000', '200'], { encoding: 'utf8', timeout: 120_000 });
      if (r.status !== 0) throw new Error(`flood.mjs ${n}: ${r.stderr}`);
      gen[n] = JSON.parse(r.stdout);
    }
  }, 300_000);

  it('--max-connections 256: heap flat across scan sizes; without it, it grows with the scan', () => {
    const rows: string[] = [];
    const bounded: Record<number, Measured> = {};
    for (const n of sizes) {
      const m = measure(files[n]!, { maxConnections: 256 });
      bounded[n] = m;
      rows.push(
        `${n} attempts (${gen[n].seconds}s): ${m.packets} packets, ${m.connections} connections, evicted ${m.anomalies['connection-evicted'] ?? 0}, ` +
          `heap ${(m.maxHeap / MiB).toFixed(1)} MiB, rss ${(m.maxRss / MiB).toFixed(0)} MiB, ${m.seconds.toFixed(2)} s`,
      );
      if (haveTshark) {
        // Each SYN is one connection; with 200 attempts in flight and a table of 256, an attempt can be
        // evicted between its SYN and the RST, and the RST then starts a connection of its own.
        const syns = tsharkSyns(files[n]!);
        expect(m.connections, `${n}: connections vs tshark SYNs`).toBeGreaterThanOrEqual(syns);
        expect(m.connections - syns, `${n}: connections split by eviction`).toBeLessThan(syns / 100);
      }
      // Evictions: at least every connection beyond the table; connections of the scan's first
      // seconds may also end by the 5 s linger instead (the table is swept every second of capture time).
      expect(m.anomalies['connection-evicted']).toBeGreaterThan(0);
      expect(m.anomalies['connection-evicted']).toBeLessThanOrEqual(m.connections);
      // A scan shorter than the linger empties the table only by eviction: all but the last 256
      // (the batch of 256/64 = 4 may take up to 3 more).
      if (gen[n].seconds < 4) expect(m.anomalies['connection-evicted']! - (m.connections - 256)).toBeGreaterThanOrEqual(0);
      if (gen[n].seconds < 4) expect(m.anomalies['connection-evicted']! - (m.connections - 256)).toBeLessThan(4);
    }
    const free = measure(files[40_000]!, {});
    if (haveTshark) expect(free.connections, 'unbounded: connections = tshark SYNs').toBe(tsharkSyns(files[40_000]!));
    rows.push(`40000 unbounded: heap ${(free.maxHeap / MiB).toFixed(1)} MiB, rss ${(free.maxRss / MiB).toFixed(0)} MiB, ${free.seconds.toFixed(2)} s`);
    console.log(`[bounds] port scans:\n  ${rows.join('\n  ')}`);
    // Flat: eight times the connections, the same heap within 1.5 MiB.
    expect(Math.abs(bounded[40_000]!.maxHeap - bounded[20_000]!.maxHeap) / MiB).toBeLessThan(1.5);
    expect(Math.abs(bounded[40_000]!.maxHeap - bounded[5000]!.maxHeap) / MiB).toBeLessThan(1.5);
    // The bound is what keeps it flat: unbounded holds tens of thousands of connections at once.
    expect((free.maxHeap - bounded[40_000]!.maxHeap) / MiB).toBeGreaterThan(15);
    expect(free.anomalies['connection-evicted']).toBeUndefined();
  });

  it('the CLI says so: ndjson stats and the text report count the evictions', () => {
    const nd = cli(['analyze', files[20_000]!, '--format', 'ndjson', '--max-connections', '256']);
    const stats = JSON.parse(nd.stdout.trim().split('\n').at(-1)!);
    expect(stats.anomalies['connection-evicted']).toBeGreaterThan(0);
    const text = cli(['analyze', files[20_000]!, '--max-connections', '256', '--no-color']);
    expect(text.stdout).toContain(`connection-evicted ${stats.anomalies['connection-evicted']}`);
  });
});
