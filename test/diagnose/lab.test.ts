/**
 * Diagnosis on the repro lab's fixtures (test/fixtures/lab/<scenario>/): real
 * clients and servers captured with tcpdump; truth.json holds what the
 * programs themselves logged. Every expectation here comes from that truth,
 * never from hangscope's own earlier output:
 * - each logged request is found on the socket the client logged (localPort),
 *   with the logged method, target and status, its start within 2 ms (the lab
 *   logs the start just before the write), and its first response byte before
 *   the client logged reading it;
 * - the scenario's expected finding codes appear, and its wrong ones do not;
 * - times in the evidence match the logged times within 2 ms.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyze } from '../../lib/index.js';
import type { ConnectionJSON, FindingJSON, ReportJSON } from '../../lib/report/index.js';

const LAB = path.resolve(import.meta.dirname, '../fixtures/lab');
const TOLERANCE = 0.002;
/** How much later a client may log reading a first byte than the packet's capture time. */
const CLIENT_READ_LAG = 0.015;

interface TruthRequest {
  client: string;
  method: string;
  target: string;
  localPort: number;
  start: number;
  firstByte: number | null;
  end: number | null;
  status: number | null;
  error: string | null;
  errorCode?: string | null;
}

interface Truth {
  scenario: string;
  server: { ip: string; port: number };
  requests: TruthRequest[];
  socketEvents?: { localPort: number; ts: number; event: string; cause?: string }[];
  ss?: { sockets: { state: string; local: string; peer: string }[] };
  serverEvents?: { ts: number; event: string; clientPort?: number; id?: string; detail?: string }[];
  expect: { findings: string[]; notFindings: string[] };
}

const scenarios = existsSync(LAB)
  ? readdirSync(LAB).filter((d) => existsSync(path.join(LAB, d, 'truth.json')) && existsSync(path.join(LAB, d, 'capture.pcap')))
  : [];

function socketOf(report: ReportJSON, port: number, start: number): ConnectionJSON | undefined {
  // A client port can be reused over a long run: take the connection alive at the request's start.
  return report.connections.find((c) => c.client.port === port && c.start <= start + TOLERANCE && c.end >= start - TOLERANCE);
}

function codes(fs: FindingJSON[]): Set<string> {
  return new Set(fs.map((f) => f.code));
}

describe('lab fixtures', () => {
  it('has the scenarios the diagnosis issue asks for', () => {
    for (const s of ['a-incident', 'b-connection-close', 'c-heartbeat', 'd-control', 'e-keepalive-race', 'f-server-killed', 'g-close-wait'])
      expect(scenarios).toContain(s);
  });

  for (const name of scenarios) {
    describe(name, () => {
      const truth = JSON.parse(readFileSync(path.join(LAB, name, 'truth.json'), 'utf8')) as Truth;
      const reportP = analyze(path.join(LAB, name, 'capture.pcap'), { port: truth.server.port });

      it('every logged request is on the logged socket, with its method, target, status and start time', async () => {
        const report = await reportP;
        for (const r of truth.requests) {
          const conn = socketOf(report, r.localPort, r.start);
          expect(conn, `socket ${r.localPort} for ${r.method} ${r.target}`).toBeDefined();
          const ex = conn!.exchanges.find((e) => e.method === r.method && e.target === r.target);
          expect(ex, `${r.method} ${r.target} on ${r.localPort}`).toBeDefined();
          // The client logs just before it writes; the packet follows within the tolerance on loopback.
          expect(Math.abs(ex!.requestStart - r.start)).toBeLessThanOrEqual(TOLERANCE);
          if (r.status !== null) expect(ex!.status).toBe(r.status);
          else expect(ex!.status).toBeNull();
          if (r.firstByte !== null && ex!.responseStart !== null) {
            // The client logs the first byte when its parser hands it over, after the packet arrived and after
            // the event loop got round to it (2-5 ms on the loaded 2-core lab machine): the packet comes first,
            // and not much earlier.
            const lag = r.firstByte - ex!.responseStart;
            expect(lag).toBeGreaterThanOrEqual(0);
            expect(lag).toBeLessThanOrEqual(CLIENT_READ_LAG);
          }
          if (r.error === null) expect(ex!.outcome).toBe('complete');
          else expect(ex!.outcome).not.toBe('complete');
        }
      });

      it(`finds ${truth.expect.findings.join(', ') || 'nothing'} and none of the wrong codes`, async () => {
        const found = codes((await reportP).findings);
        for (const c of truth.expect.findings) expect(found, `expected ${c}`).toContain(c);
        for (const c of truth.expect.notFindings) expect(found, `unexpected ${c}`).not.toContain(c);
      });

      it('evidence times match the programs\' own logs within 2 ms', async () => {
        const report = await reportP;
        let checked = 0;
        for (const f of report.findings) {
          const ev = f.evidence as Record<string, any>;
          if (f.code === 'client-abort-before-response') {
            // The client's socket was destroyed when its FIN went out: same moment, two clocks.
            const destroy = truth.socketEvents?.find((e) => e.localPort === ev.clientPort && e.event === 'destroy');
            const req = truth.requests.find((r) => r.localPort === ev.clientPort && r.method === ev.request.method && r.target === ev.request.target);
            expect(destroy, 'the client logged the destroy').toBeDefined();
            expect(Math.abs(ev.closeTs - destroy!.ts)).toBeLessThanOrEqual(TOLERANCE);
            expect(Math.abs(ev.sinceRequestStart - (destroy!.ts - req!.start))).toBeLessThanOrEqual(TOLERANCE);
            checked++;
          }
          if (f.code === 'keepalive-race' || f.code === 'slow-first-byte' || f.code === 'heartbeat-bytes') {
            const req = truth.requests.find((r) => r.method === ev.request.method && r.target === ev.request.target);
            expect(req).toBeDefined();
            if (f.code === 'keepalive-race') {
              expect(Math.abs(ev.requestStart - req!.start)).toBeLessThanOrEqual(TOLERANCE);
              if (ev.serverCloseKind === 'RST') {
                // The RST shape (scenario m): uvicorn logged the connection lost as it closed the socket with
                // the request unread, and its app never saw that request.
                const lost = truth.serverEvents?.find((e) => e.event === 'connection-lost' && e.clientPort === ev.clientPort);
                expect(lost, 'uvicorn logged the connection lost').toBeDefined();
                expect(Math.abs(ev.serverCloseTs - lost!.ts)).toBeLessThanOrEqual(TOLERANCE);
                expect(truth.serverEvents!.some((e) => e.event === 'files' && e.clientPort === ev.clientPort && `/files/${e.id}?detail=${e.detail}` === ev.request.target)).toBe(false);
                expect(req!.errorCode).toBe('ECONNRESET');
              }
            } else expect(Math.abs(ev.timeToFirstByte - (req!.firstByte! - req!.start))).toBeLessThanOrEqual(TOLERANCE);
            checked++;
          }
          if (f.code === 'half-close-stuck' && truth.ss) {
            // ss, run by the lab, names the socket in CLOSE-WAIT.
            const cw = truth.ss.sockets.find((s) => s.state === 'CLOSE-WAIT');
            expect(cw).toBeDefined();
            expect(`${ev.closeWaitEndpoint.ip}:${ev.closeWaitEndpoint.port}`).toBe(cw!.local);
            checked++;
          }
        }
        if (truth.expect.findings.some((c) => ['client-abort-before-response', 'keepalive-race', 'slow-first-byte', 'half-close-stuck'].includes(c)))
          expect(checked).toBeGreaterThan(0);
      });
    });
  }
});
