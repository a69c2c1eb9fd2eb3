// Checks that every committed lab fixture's truth.json (written from the
// programs' own logs) agrees with its capture as tshark reads it. The
// diagnosis tests trust truth.json; this keeps it honest.
//
// Needs tshark; skips with a printed reason when it is missing, unless CI=true.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'lab');

function hasTshark(): boolean {
  try {
    execFileSync('tshark', ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

interface TruthRequest {
  client: string;
  method: string;
  target: string;
  localPort: number | null;
  start: number | null;
  firstByte: number | null;
  end: number | null;
  status: number | null;
  error: string | null;
  errorCode: string | null;
}
interface Truth {
  scenario: string;
  server: { ip: string; port: number; impl: string };
  capture: { file: string; snaplen: number; bytes: number };
  requests: TruthRequest[];
  socketEvents: { localPort: number | null; ts: number; event: string }[];
  serverEvents: { ts: number; event: string }[];
  raceAttempts?: { attempt: number; outcome: string; firstLocalPort: number }[];
  ss?: { sockets: { state: string; local: string; peer: string }[] };
  expect: { findings: string[]; notFindings: string[]; notes: string };
}

/** tshark fields, one row per frame matching `filter`, no TCP reassembly. */
function tshark(pcap: string, filter: string, fields: string[]): string[][] {
  const out = execFileSync('tshark', ['-r', pcap, '-n', '-o', 'tcp.desegment_tcp_streams:FALSE', '-Y', filter, '-T', 'fields',
    '-E', 'separator=\t', ...fields.flatMap((f) => ['-e', f])], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 64 << 20 });
  return out.split('\n').filter(Boolean).map((l) => l.split('\t'));
}

const TOLERANCE_S = 0.005;
const tsharkOk = hasTshark();
const fixtures = existsSync(FIXTURES) ? readdirSync(FIXTURES).filter((d) => existsSync(path.join(FIXTURES, d, 'truth.json'))).sort() : [];

if (!tsharkOk && process.env.CI !== 'true') {
  console.log('test/lab/truth.test.ts: skipped: tshark not found (apt-get install tshark)');
}

describe.skipIf(!tsharkOk && process.env.CI !== 'true')('lab fixtures: truth.json agrees with capture.pcap (tshark)', () => {
  it('has tshark and fixtures', () => {
    expect(tsharkOk).toBe(true);
    expect(fixtures.length).toBeGreaterThanOrEqual(10);
  });

  for (const name of fixtures) {
    describe(name, () => {
      const dir = path.join(FIXTURES, name);
      const truth = JSON.parse(readFileSync(path.join(dir, 'truth.json'), 'utf8')) as Truth;
      const pcap = path.join(dir, 'capture.pcap');

      it('names itself, has its files, and a small capture', () => {
        expect(truth.scenario).toBe(name);
        for (const f of ['capture.pcap', 'client.log', 'server.log']) expect(existsSync(path.join(dir, f))).toBe(true);
        expect(statSync(pcap).size).toBe(truth.capture.bytes);
        expect(truth.capture.bytes).toBeLessThan(300 * 1024);
        expect(truth.requests.length).toBeGreaterThan(0);
        expect(truth.expect.findings.filter((f) => truth.expect.notFindings.includes(f))).toEqual([]);
      });

      // Frame rows: number, epoch time, stream, src port, dst port.
      const frames = tshark(pcap, `tcp.port == ${truth.server.port}`, ['frame.number', 'frame.time_epoch', 'tcp.stream', 'tcp.srcport', 'tcp.dstport']);
      const clientPorts = new Set(frames.map((r) => (Number(r[3]) === truth.server.port ? Number(r[4]) : Number(r[3]))));

      it("every request's localPort is a TCP connection in the capture", () => {
        for (const r of truth.requests) {
          expect(r.localPort, `${r.method} ${r.target}`).not.toBeNull();
          expect(clientPorts.has(r.localPort!), `port ${r.localPort} of ${r.method} ${r.target}`).toBe(true);
        }
      });

      const reqFrames = tshark(pcap, 'http.request', ['frame.number', 'frame.time_epoch', 'tcp.srcport', 'http.request.method', 'http.request.uri'])
        .map((v) => ({ frame: Number(v[0]), ts: Number(v[1]), port: Number(v[2]), method: v[3]!, target: v[4]!, used: false }));
      const respFrames = tshark(pcap, 'http.response', ['frame.number', 'frame.time_epoch', 'tcp.dstport', 'http.response.code'])
        .map((v) => ({ frame: Number(v[0]), ts: Number(v[1]), port: Number(v[2]), status: Number(v[3]) }));

      // Each truth request's request frame: the first not yet taken with its port, method and target.
      const matched = new Map<TruthRequest, (typeof reqFrames)[number]>();
      for (const r of truth.requests) {
        const f = reqFrames.find((x) => !x.used && x.port === r.localPort && x.method === r.method && x.target === r.target);
        if (f) { f.used = true; matched.set(r, f); }
      }

      it('each request start is within 5 ms of its first request frame on that port', () => {
        for (const r of truth.requests) {
          const f = matched.get(r);
          expect(f, `request frame for ${r.method} ${r.target} from port ${r.localPort}`).toBeDefined();
          expect(Math.abs(f!.ts - r.start!), `${r.method} ${r.target}: start ${r.start} vs frame ${f!.frame} at ${f!.ts}`).toBeLessThan(TOLERANCE_S);
        }
      });

      it('each response the client saw has its status line in the capture, before firstByte', () => {
        // firstByte is when the client parsed the head; a loaded machine can
        // delay that by a few ms, so: the first status line on that connection
        // after the request frame, at most 1 ms after firstByte and at most
        // 50 ms before it.
        for (const r of truth.requests.filter((x) => x.status != null)) {
          const q = matched.get(r);
          expect(q, `request frame for ${r.method} ${r.target}`).toBeDefined();
          const f = respFrames.find((x) => x.port === r.localPort && x.frame > q!.frame);
          expect(f, `response frame for ${r.method} ${r.target} to port ${r.localPort} after frame ${q!.frame}`).toBeDefined();
          expect(f!.status).toBe(r.status);
          expect(f!.ts - r.firstByte!, `${r.method} ${r.target}: frame ${f!.frame}`).toBeLessThan(0.001);
          expect(r.firstByte! - f!.ts, `${r.method} ${r.target}: frame ${f!.frame}`).toBeLessThan(0.05);
        }
      });

      it('requests that got no response have no status line after them on their connection before they ended', () => {
        for (const r of truth.requests.filter((x) => x.status == null)) {
          const f = respFrames.find((x) => x.port === r.localPort && x.ts > r.start! && x.ts <= r.end!);
          expect(f, `${r.method} ${r.target}`).toBeUndefined();
        }
      });

      if (truth.raceAttempts) {
        it('every raced attempt ends with a server RST on its connection', () => {
          const raced = truth.raceAttempts!.filter((a) => a.outcome === 'raced');
          expect(raced.length).toBeGreaterThan(0);
          for (const a of raced) {
            const rst = tshark(pcap, `tcp.srcport == ${truth.server.port} && tcp.dstport == ${a.firstLocalPort} && tcp.flags.reset == 1`, ['frame.number']);
            expect(rst.length, `RST to ${a.firstLocalPort}`).toBeGreaterThan(0);
          }
        });
      }

      if (truth.ss) {
        it('ss shows the client socket in CLOSE-WAIT, and the capture has no client FIN', () => {
          const port = truth.requests[0]!.localPort;
          expect(truth.ss!.sockets.some((s) => s.state === 'CLOSE-WAIT' && s.local.endsWith(`:${port}`))).toBe(true);
          const fin = tshark(pcap, `tcp.srcport == ${port} && tcp.flags.fin == 1`, ['frame.number']);
          expect(fin).toEqual([]);
        });
      }

      it("the client's first FIN or RST follows its first local close (end(), destroy() or process exit)", () => {
        const firstClose = new Map<number, number>();
        for (const e of truth.socketEvents) {
          const local = e.event === 'shutdown' || e.event === 'destroy' || e.event === 'process-exit';
          if (local && e.localPort != null && !firstClose.has(e.localPort)) firstClose.set(e.localPort, e.ts);
        }
        let checked = 0;
        for (const [port, ts] of firstClose) {
          const serverRst = tshark(pcap, `tcp.srcport == ${truth.server.port} && tcp.dstport == ${port} && tcp.flags.reset == 1`, ['frame.time_epoch']);
          if (serverRst.length && Number(serverRst[0]![0]) < ts) continue; // already reset by the server: nothing left to send
          const out = tshark(pcap, `tcp.srcport == ${port} && (tcp.flags.fin == 1 || tcp.flags.reset == 1)`, ['frame.time_epoch']);
          if (!out.length && truth.scenario.startsWith('h-')) continue; // h: the FIN waits behind unacknowledged data
          expect(out.length, `FIN/RST from ${port}`).toBeGreaterThan(0);
          const dt = Number(out[0]![0]) - ts;
          expect(dt, `first FIN/RST from ${port} vs close at ${ts}`).toBeGreaterThan(-TOLERANCE_S);
          expect(dt, `first FIN/RST from ${port} vs close at ${ts}`).toBeLessThan(0.1);
          checked++;
        }
        if (!truth.scenario.startsWith('h-') && !truth.scenario.startsWith('g-')) expect(checked).toBeGreaterThan(0);
      });
    });
  }
});
