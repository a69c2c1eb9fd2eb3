/**
 * dashboards/metrics.ts on the repro lab's captures (real programs, captured
 * by tcpdump), scraped in the Prometheus text format and checked against what
 * the programs logged (truth.json `requests`: statuses, errors, first bytes)
 * and against tshark (truth.json `captureFacts`: each stream's first FIN and
 * RST per side; request and response frames for the time to first byte).
 */
import { describe, expect, it } from 'vitest';
import { EngineMetrics, TTFB_BUCKETS } from '../../dashboards/metrics.js';
import { Engine } from '../../lib/engine.js';
import { labCapture, labTruth, metric, need, parseMetrics, records, tshark, tsharkPresent, type Sample } from './helpers.js';

const SUITE = 'daemon: metrics on lab captures';
const SCENARIOS = ['a-incident', 'b-connection-close', 'e-keepalive-race', 'f-server-killed', 'j-concurrent'];
const have = need(SCENARIOS.every((s) => labCapture(s) !== null), 'lab captures are missing (npm run lab makes them)', SUITE);

async function scrapeAfter(file: string, o: { upTo?: number; finish?: boolean } = {}): Promise<{ samples: Sample[]; m: EngineMetrics; engine: Engine; rest: () => Promise<Sample[]> }> {
  const m = new EngineMetrics({ processMetrics: false });
  const engine = new Engine({ onOpen: m.onOpen, onExchange: m.onExchange, onConnection: m.onConnection, onFinding: m.onFinding });
  m.attach(engine, () => ({ source: 'tcpdump', counters: { received: 123, dropped: 0, ifDropped: null } }));
  const recs = await records(file);
  const cut = o.upTo ?? recs.length;
  for (const r of recs.slice(0, cut)) engine.packet(r);
  if (o.finish !== false && cut === recs.length) engine.finish();
  const samples = parseMetrics(await m.metrics());
  return {
    samples,
    m,
    engine,
    rest: async () => {
      for (const r of recs.slice(cut)) engine.packet(r);
      engine.finish();
      return parseMetrics(await m.metrics());
    },
  };
}

describe.runIf(have)(SUITE, () => {
  for (const name of SCENARIOS) {
    it(`${name}: connections, exchanges by outcome, closes by side and kind, findings, time to first byte`, async () => {
      const t = labTruth(name);
      const { samples: s } = await scrapeAfter(labCapture(name)!);
      const reqs = t.requests as { status: number | null; error: string | null; firstByte: number | null }[];
      const facts = t.captureFacts as Record<string, unknown>[];

      // Sockets: one per TCP stream tshark saw; all of them opened and finished.
      expect(metric(s, 'hangscope_connections_opened_total')).toBe(facts.length);
      expect(metric(s, 'hangscope_connections_total')).toBe(facts.length);
      expect(metric(s, 'hangscope_open_connections')).toBe(0);

      // Exchanges, from the clients' own logs.
      const ok = reqs.filter((r) => r.status !== null && r.error === null).length;
      const noResponse = reqs.filter((r) => r.firstByte === null && r.error !== null).length;
      const cutShort = reqs.filter((r) => r.firstByte !== null && r.error !== null).length;
      expect(metric(s, 'hangscope_exchanges_total', { outcome: 'complete' }) ?? 0).toBe(ok);
      expect(metric(s, 'hangscope_exchanges_total', { outcome: 'no-response' }) ?? 0).toBe(noResponse);
      expect(metric(s, 'hangscope_exchanges_total', { outcome: 'incomplete-response' }) ?? 0).toBe(cutShort);

      // Closes, from tshark's facts per stream.
      for (const [by, kind, key] of [
        ['client', 'FIN', 'clientFin'],
        ['server', 'FIN', 'serverFin'],
        ['client', 'RST', 'clientRst'],
        ['server', 'RST', 'serverRst'],
      ] as const) {
        expect(metric(s, 'hangscope_closes_total', { by, kind }) ?? 0, `${by} ${kind}`).toBe(facts.filter((f) => f[key] != null).length);
      }

      // Findings the truth implies are counted; ones it rules out are not.
      for (const code of t.expect.findings as string[]) expect(metric(s, 'hangscope_findings_total', { code }), code).toBeGreaterThanOrEqual(1);
      for (const code of t.expect.notFindings as string[]) expect(metric(s, 'hangscope_findings_total', { code }), code).toBeUndefined();
      if (name === 'a-incident' || name === 'j-concurrent')
        expect(metric(s, 'hangscope_findings_total', { code: 'client-abort-before-response', severity: 'error' })).toBe(noResponse);
      if (name === 'e-keepalive-race') expect(metric(s, 'hangscope_findings_total', { code: 'keepalive-race' })).toBe((t.racedAttempts as number[]).length);

      // Time to first byte: one observation per response the clients saw begin.
      const seen = reqs.filter((r) => r.firstByte !== null).length;
      expect(metric(s, 'hangscope_time_to_first_byte_seconds_count')).toBe(seen);
      expect(metric(s, 'hangscope_time_to_first_byte_seconds_bucket', { le: '+Inf' })).toBe(seen);
      expect(s.filter((x) => x.name === 'hangscope_time_to_first_byte_seconds_bucket').map((x) => x.labels.le)).toEqual([...TTFB_BUCKETS.map(String), '+Inf']);
      if (tsharkPresent) {
        // Request frame to status-line frame, per stream in order (tshark without reassembly: the frames carrying each first byte).
        const rq = tshark(labCapture(name)!, 'http.request', ['tcp.stream', 'frame.time_epoch']);
        const rs = tshark(labCapture(name)!, 'http.response', ['tcp.stream', 'frame.time_epoch']);
        const ttfbs: number[] = [];
        for (const stream of new Set(rs.map((r) => r[0]))) {
          const q = rq.filter((r) => r[0] === stream);
          rs.filter((r) => r[0] === stream).forEach((r, i) => ttfbs.push(Number(r[1]) - Number(q[i]![1])));
        }
        expect(ttfbs).toHaveLength(seen);
        expect(metric(s, 'hangscope_time_to_first_byte_seconds_sum')!).toBeCloseTo(ttfbs.reduce((a, b) => a + b, 0), 5);
        for (const le of TTFB_BUCKETS)
          expect(metric(s, 'hangscope_time_to_first_byte_seconds_bucket', { le: String(le) }), `le=${le}`).toBe(ttfbs.filter((x) => x <= le + 1e-9).length);
      }

      // Packets and bytes as captured (truth.capture from tcpdump's file), drops from the source.
      expect(metric(s, 'hangscope_packets_total')).toBe(t.capture.packets);
      expect(metric(s, 'hangscope_capture_dropped_packets', { source: 'tcpdump', where: 'kernel' })).toBe(0);
      expect(metric(s, 'hangscope_capture_dropped_packets', { where: 'interface' })).toBeUndefined();
      expect(metric(s, 'hangscope_capture_received_packets', { source: 'tcpdump' })).toBe(123);
    });
  }

  it("a-incident: the client's FIN is counted when it is seen, not when the socket is finished, and only once", async () => {
    const t = labTruth('a-incident');
    const fin = t.captureFacts[0].clientFin.frame as number;
    // Up to and including the client's FIN frame (frame numbers are 1-based).
    const run = await scrapeAfter(labCapture('a-incident')!, { upTo: fin, finish: false });
    expect(metric(run.samples, 'hangscope_closes_total', { by: 'client', kind: 'FIN' })).toBe(1);
    expect(metric(run.samples, 'hangscope_closes_total', { by: 'server', kind: 'FIN' })).toBeUndefined();
    expect(metric(run.samples, 'hangscope_open_connections')).toBe(1);
    expect(metric(run.samples, 'hangscope_connections_total')).toBeUndefined();
    const again = parseMetrics(await run.m.metrics());
    expect(metric(again, 'hangscope_closes_total', { by: 'client', kind: 'FIN' })).toBe(1);
    const after = await run.rest();
    expect(metric(after, 'hangscope_closes_total', { by: 'client', kind: 'FIN' })).toBe(1);
    expect(metric(after, 'hangscope_closes_total', { by: 'server', kind: 'FIN' })).toBe(1);
    expect(metric(after, 'hangscope_connections_total', { state: 'closed' })).toBe(1);
  });

  it('a-incident: the timeout signature is on /metrics while the capture runs, at the delay the client logged; counted in findings_total at the stop', async () => {
    const t = labTruth('a-incident');
    const exec = (t.requests as { method: string; localPort: number; start: number }[]).find((r) => r.method === 'POST')!;
    const destroy = (t.socketEvents as { localPort: number; event: string; ts: number }[]).find((e) => e.localPort === exec.localPort && e.event === 'destroy')!;
    const run = await scrapeAfter(labCapture('a-incident')!, { finish: false });
    run.engine.tick(run.engine.lastTs! + 10_000_000); // the closed socket is finished (quiet for 5 s), the capture goes on
    const live = parseMetrics(await run.m.metrics());
    expect(metric(live, 'hangscope_capture_wide_findings', { code: 'client-timeout-signature' })).toBe(1);
    const delay = metric(live, 'hangscope_client_timeout_signature_seconds', { clock: 'request-start+last-activity' })!;
    expect(Math.abs(delay - (destroy.ts - exec.start))).toBeLessThanOrEqual(0.002);
    expect(metric(live, 'hangscope_findings_total', { code: 'client-timeout-signature' })).toBeUndefined();
    const after = await run.rest();
    expect(metric(after, 'hangscope_findings_total', { code: 'client-timeout-signature' })).toBe(1);
    expect(metric(after, 'hangscope_capture_wide_findings', { code: 'client-timeout-signature' })).toBe(1);
    // No abort, no signature: absent, not 0.
    const control = await scrapeAfter(labCapture('d-control')!);
    expect(metric(control.samples, 'hangscope_client_timeout_signature_seconds')).toBeUndefined();
    expect(metric(control.samples, 'hangscope_capture_wide_findings')).toBeUndefined();
  });

  it('unknown drop counts are left out, not reported as 0', async () => {
    const m = new EngineMetrics({ processMetrics: false });
    m.attach(new Engine(), () => ({ source: 'libpcap', counters: { received: null, dropped: null, ifDropped: null } }));
    const s = parseMetrics(await m.metrics());
    expect(metric(s, 'hangscope_capture_dropped_packets')).toBeUndefined();
    expect(metric(s, 'hangscope_capture_received_packets')).toBeUndefined();
    expect(metric(s, 'hangscope_packets_total')).toBe(0);
  });
});
