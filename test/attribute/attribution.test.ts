/**
 * Attribution of FINs and RSTs on recorded sessions: the recorded kernel
 * events joined to the connections of the capture taken at the same time.
 * Expected processes are the ones the recorder started (session.json: PIDs
 * from spawn) and what the clients logged (their local ports); expected
 * kernel behaviour is what the recorded tracepoints say (see events.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { Attributor } from '../../lib/attribute/index.js';
import { ClockMap } from '../../lib/attribute/clock.js';
import { renderSocket } from '../../dashboards/text.js';
import { analyzeCapture } from '../../lib/index.js';
import { connectionToJSON } from '../../lib/report/index.js';
import path from 'node:path';
import { analyzeFixture, byClientPort, loadFixture, storeOf, type Fixture } from './helpers.js';

describe('keep-alive race (uvicorn, Node clients)', async () => {
  const fx = loadFixture('keepalive-race');
  const a = await analyzeFixture(fx);
  const server = fx.session.processes.server.pid;
  const late = fx.clientLog.find((l) => l.event === 'connect' && typeof l.pid === 'number') as { pid: number; localPort: number };
  const raced = fx.clientLog
    .filter((l) => l.event === 'race-attempt' && l.outcome === 'raced')
    .map((l) => l.firstLocalPort as number);
  const racePids = fx.session.raceRounds!.map((r) => r.pid);

  it('the recording has what the test needs: the late request and at least one real race', () => {
    expect(late.localPort).toBeGreaterThan(0);
    expect(raced.length).toBeGreaterThan(0);
    expect(a.connections.length).toBeGreaterThan(10);
  });

  it("every FIN uvicorn sent is attributed to the uvicorn process (python3, the recorder's PID)", () => {
    let n = 0;
    for (const rec of a.connections) {
      for (const c of rec.closes.filter((c) => c.by === 'server' && c.kind === 'FIN')) {
        expect(c, `#${rec.id}`).toMatchObject({ attributed: 'process', pid: server, comm: 'python3' });
        n++;
      }
    }
    expect(n).toBe(a.connections.filter((r) => r.closes.some((c) => c.by === 'server' && c.kind === 'FIN')).length);
  });

  it('every client FIN is attributed to the node process that owned that local port', () => {
    for (const rec of a.connections) {
      for (const c of rec.closes.filter((c) => c.by === 'client' && c.kind === 'FIN')) {
        expect(c, `#${rec.id} port ${rec.client.port}`).toMatchObject({ attributed: 'process', comm: 'node' });
        if (rec.client.port === late.localPort) expect(c.pid).toBe(late.pid);
        else expect(racePids).toContain(c.pid);
      }
    }
  });

  it('the RST answering the request written after the FIN: the kernel (socket in TIME-WAIT), owner uvicorn', () => {
    const rec = byClientPort(a, late.localPort);
    const rst = rec.closes.find((c) => c.kind === 'RST')!;
    expect(rst).toMatchObject({ by: 'server', attributed: 'kernel', attributedReason: 'timewait-socket', pid: server, comm: 'python3' });
  });

  it('the RST of each real race: the kernel, for a socket uvicorn had closed', () => {
    for (const port of raced) {
      const rst = byClientPort(a, port).closes.find((c) => c.kind === 'RST')!;
      expect(rst.by).toBe('server');
      expect(rst.attributed).toBe('kernel');
      expect(['abort-on-data', 'timewait-socket']).toContain(rst.attributedReason);
      expect(rst.pid).toBe(server);
    }
  });

  it('JSON closes carry attributed, pid, comm, attributedReason; without attribution, none of them', async () => {
    const rec = byClientPort(a, late.localPort);
    const j = connectionToJSON(rec);
    expect(j.closes[0]).toEqual({ by: 'server', kind: 'FIN', ts: rec.closes[0]!.ts / 1e6, frame: rec.closes[0]!.frame, attributed: 'process', pid: server, comm: 'python3' });
    expect(j.closes[1]).toMatchObject({ kind: 'RST', attributed: 'kernel', pid: server, comm: 'python3', attributedReason: 'timewait-socket' });
    const plain = await analyzeFixture(fx, { ebpf: false });
    const pj = connectionToJSON(byClientPort(plain, late.localPort));
    expect(Object.keys(pj.closes[0]!)).toEqual(['by', 'kind', 'ts', 'frame']);
  });

  it('the text report says who sent each close', () => {
    const text = renderSocket(byClientPort(a, late.localPort));
    expect(text).toMatch(new RegExp(`server FIN first at \\S+ sent by pid ${server} python3 \\(then server RST \\+\\S+ sent by the kernel: socket already closed, in TIME-WAIT \\(owner was pid ${server} python3\\)\\)`));
  });

  it('events are joined by time: a clock 100 ms off (events later than their packets) attributes no FIN', async () => {
    const shifted: Fixture = { ...fx, clock: new ClockMap({ ...fx.session.clock.samples[0]!, realUs: fx.session.clock.samples[0]!.realUs + 100_000 }) };
    const b = await analyzeFixture(shifted);
    expect(b.connections.flatMap((r) => r.closes).filter((c) => c.kind === 'FIN' && c.attributed !== undefined)).toHaveLength(0);
  });

  it('memory is bounded: 4-tuples and events per 4-tuple', () => {
    const s = storeOf(fx, { maxTuples: 5, maxEventsPerTuple: 3 });
    expect(s.size.tuples).toBeLessThanOrEqual(5);
    expect(s.dropped).toBeGreaterThan(0);
    // Every socket of the session reached CLOSE: none is still held.
    expect(storeOf(fx).size.sockets).toBeLessThanOrEqual(1);
  });

  it('memory follows the open connections: a finished connection\'s events are dropped once it is annotated', async () => {
    const att = Attributor.offline(storeOf(fx));
    expect(att.store.size.tuples).toBeGreaterThan(20);
    await analyzeCapture(path.join(fx.dir, 'capture.pcap'), { port: fx.session.port, onConnection: (rec) => att.annotate(rec) });
    expect(att.store.size.tuples).toBe(0);
  });
});

describe('server killed (SIGKILL) mid-response', async () => {
  const fx = loadFixture('server-killed');
  const a = await analyzeFixture(fx);
  const rec = a.connections[0]!;

  it("the server's FIN came from the kernel closing the files of the killed python3", () => {
    const fin = rec.closes.find((c) => c.by === 'server')!;
    expect(fin).toMatchObject({ kind: 'FIN', attributed: 'kernel', attributedReason: 'process-exited', pid: fx.session.processes.server.pid, comm: 'python3' });
    expect(fin.ts / 1e6).toBeGreaterThan(fx.session.killedAt!);
  });

  it("the client's FIN came from the node client itself", () => {
    expect(rec.closes.find((c) => c.by === 'client')).toMatchObject({ kind: 'FIN', attributed: 'process', pid: fx.session.processes.clients[0]!.pid, comm: 'node' });
  });

  it('text: "sent by the kernel as pid N python3 exited"', () => {
    expect(renderSocket(rec)).toContain(`server FIN first at`);
    expect(renderSocket(rec)).toContain(`sent by the kernel as pid ${fx.session.processes.server.pid} python3 exited`);
  });
});

describe('RST for a port nobody listens on', async () => {
  const fx = loadFixture('no-socket');
  const a = await analyzeFixture(fx);

  it('attributed to the kernel, no socket, no process (IPv6 and IPv4)', () => {
    const rsts = a.connections.filter((r) => r.closes[0]?.kind === 'RST');
    expect(rsts.map((r) => r.client.ip)).toEqual(['::1', '127.0.0.1']);
    for (const r of rsts) {
      const c = r.closes[0]!;
      expect(c).toMatchObject({ by: 'server', attributed: 'kernel', attributedReason: 'no-socket' });
      expect(c.pid).toBeUndefined();
      expect(renderSocket(r)).toContain('server RST first at');
      expect(renderSocket(r)).toContain('sent by the kernel: no socket, lasted');
    }
  });

  it('the lab Node server on [::1] before it stopped: its FIN by its own process', () => {
    const first = a.connections[0]!;
    expect(first.closes.find((c) => c.by === 'server')).toMatchObject({ kind: 'FIN', attributed: 'process', pid: fx.session.processes.server.pid, comm: 'node' });
  });
});

describe('half-close-stuck names the process in CLOSE-WAIT', () => {
  it('client stuck (half-open.mjs against uvicorn): eBPF owner and ss both name node', async () => {
    const fx = loadFixture('close-wait');
    const pid = fx.session.processes.clients[0]!.pid;
    const a = await analyzeFixture(fx, { ss: true });
    const f = a.findings.filter((x) => x.code === 'half-close-stuck');
    expect(f).toHaveLength(1);
    expect(f[0]!.summary).toContain(`the client (port ${a.connections[0]!.client.port}, pid ${pid} node) sat in CLOSE-WAIT`);
    expect(f[0]!.evidence.closeWaitProcess).toEqual({ pid, comm: 'node' });
    const ss = f[0]!.evidence.ss as { state: string; process: string; pid: number; seenFor: number };
    expect(ss).toMatchObject({ state: 'CLOSE-WAIT', process: 'node', pid });
    // ss saw it from the first sample after the FIN to the last one (every 250 ms).
    expect(ss.seenFor).toBeGreaterThan(2.5);
  });

  it('server stuck (a python3 server that never closes): named from eBPF alone, and from ss alone', async () => {
    const fx = loadFixture('server-close-wait');
    const pid = fx.session.processes.server.pid;
    for (const o of [{ ebpf: true, ss: false }, { ebpf: false, ss: true }]) {
      const a = await analyzeFixture(fx, o);
      const f = a.findings.filter((x) => x.code === 'half-close-stuck');
      // The two connections the capture outlived by more than 2 s (over 127.0.0.1 and ::1).
      expect(f.map((x) => a.connections[x.connection!]!.client.ip)).toEqual(['127.0.0.1', '::1']);
      for (const x of f) {
        expect(x.summary, JSON.stringify(o)).toContain(`the server (port ${fx.session.port}, pid ${pid} python3) sat in CLOSE-WAIT`);
        expect(x.evidence.closeWaitProcess).toEqual({ pid, comm: 'python3' });
        if (o.ss) expect(x.evidence.ss).toMatchObject({ state: 'CLOSE-WAIT', process: 'python3', pid });
        else expect(x.evidence.ss).toBeNull();
      }
    }
  });

  it('without attribution the finding is as before (no process, no new evidence keys)', async () => {
    const fx = loadFixture('server-close-wait');
    const a = await analyzeFixture(fx, { ebpf: false, ss: false });
    const f = a.findings.find((x) => x.code === 'half-close-stuck')!;
    expect(f.summary).toMatch(/the server \(port 18608\) sat in CLOSE-WAIT\.$/);
    expect(Object.keys(f.evidence)).not.toContain('closeWaitProcess');
    expect(Object.keys(f.evidence)).not.toContain('ss');
  });
});

describe('Attributor.start without eBPF', () => {
  it('no bpftrace: one notice line, ss sampling instead, capture goes on', async () => {
    const notices: string[] = [];
    const att = await Attributor.start({ ports: [1], ebpf: true, bpftrace: '/nonexistent/bpftrace', onNotice: (l) => notices.push(l) });
    await att.stop();
    expect(notices).toEqual(['no eBPF process attribution: bpftrace is not installed (apt-get install bpftrace); sampling ss every 500 ms for CLOSE-WAIT sockets instead']);
    expect(att.description).toBe('ss every 500 ms');
    expect(att.session).toBeNull();
  });

  it('--ss-interval 0 turns the fallback off too', async () => {
    const notices: string[] = [];
    const att = await Attributor.start({ ports: [1], ebpf: true, ssIntervalMs: 0, bpftrace: '/nonexistent/bpftrace', onNotice: (l) => notices.push(l) });
    await att.stop();
    expect(notices).toEqual(['no eBPF process attribution: bpftrace is not installed (apt-get install bpftrace)']);
    expect(att.description).toBe('off');
  });
});
