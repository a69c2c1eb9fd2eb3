/**
 * The benchmark's capture writer (bench/gen.js) against real tools: on a small
 * capture, capinfos reads every packet, and hangscope and tshark find the
 * requests and responses the writer says it wrote. Speed is measured by
 * `npm run bench`, never here.
 *
 * tshark 4.0 does not report a chunked message whose final LF arrives alone in
 * the message's last segment ("[Malformed Packet: HTTP]"); the writer counts
 * those (chunkedLfAlone) and the tshark check subtracts them.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseSize, writeBenchCapture, type BenchTruth } from '../../bench/gen.js';
import { analyze } from '../../lib/index.js';
import { IN_CI, need } from '../capture/helpers.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'hangscope-bench-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));


const file = path.join(tmp, 'small.pcap');
const truth: BenchTruth = writeBenchCapture(file, { size: parseSize('3M'), seed: 1 });
const haveCapinfos = spawnSync('capinfos', ['-h'], { stdio: 'ignore' }).error === undefined;

describe('bench/gen.js writer', () => {
  it('writes what it says: a mix of paths, closes and retransmissions, about the size asked', () => {
    expect(truth.bytes).toBeGreaterThanOrEqual(parseSize('3M'));
    expect(truth.bytes).toBeLessThan(parseSize('3M') + 256 * 1024);
    expect(truth.lanConnections).toBeGreaterThan(0);
    expect(truth.loConnections).toBeGreaterThan(0);
    expect(truth.resets).toBeGreaterThan(0);
    expect(truth.fins).toBeGreaterThan(0);
    expect(truth.retransmissions).toBeGreaterThan(0);
    expect(truth.requests).toBeGreaterThan(truth.completeResponses);
  });

  it('is deterministic: same seed and size, same bytes', () => {
    const again = path.join(tmp, 'again.pcap');
    writeBenchCapture(again, { size: parseSize('3M'), seed: 1 });
    const h = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');
    expect(h(again)).toBe(h(file));
  });

  it.runIf(haveCapinfos || IN_CI)('capinfos reads every packet', () => {
    const out = spawnSync('capinfos', ['-c', '-M', file], { encoding: 'utf8' }).stdout;
    expect(Number(/Number of packets:\s*(\d+)/.exec(out)?.[1])).toBe(truth.packets);
  });

  it('hangscope finds every packet, connection, request and complete response, with no anomaly', async () => {
    const r = await analyze(file);
    expect(r.stats.packets).toBe(truth.packets);
    expect(r.stats.connections).toBe(truth.connections);
    expect(r.stats.exchanges).toBe(truth.requests);
    expect(r.stats.anomalies).toEqual({});
    const exchanges = r.connections.flatMap((c) => c.exchanges);
    expect(exchanges).toHaveLength(truth.requests);
    expect(exchanges.filter((e) => e.outcome === 'complete')).toHaveLength(truth.completeResponses);
    expect(r.connections.filter((c) => c.state === 'reset')).toHaveLength(truth.resets);
  });

  const haveTshark = need('tshark', 'bench writer vs tshark');
  it.runIf(haveTshark)('tshark finds the same requests and responses', () => {
    const out = spawnSync('tshark', ['-r', file, '-Y', 'http', '-T', 'fields', '-e', 'http.request.method', '-e', 'http.response.code'], {
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    }).stdout;
    let req = 0;
    let resp = 0;
    for (const l of out.split('\n')) {
      const [m, c] = l.split('\t');
      if (m) req++;
      if (c) resp++;
    }
    expect(req).toBe(truth.requests - truth.chunkedLfAlone.requests);
    expect(resp).toBe(truth.completeResponses - truth.chunkedLfAlone.responses);
  });
});
