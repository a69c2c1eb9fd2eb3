/**
 * The parser of our bpftrace program's output, on output recorded for real
 * (test/fixtures/attribute/, see its README): every line is understood, and
 * the parsed facts agree with the programs' own PIDs and logs and with the
 * capture taken at the same time.
 */
import { describe, expect, it } from 'vitest';
import { parseAddress, parseLine, TCP_FIN_WAIT1, TCP_ESTABLISHED, type TraceEvent } from '../../lib/attribute/events.js';
import { analyzeFixture, loadFixture } from './helpers.js';

const NAMES = ['keepalive-race', 'server-killed', 'close-wait', 'server-close-wait', 'no-socket'];

describe('bpftrace output, recorded', () => {
  for (const name of NAMES) {
    it(`${name}: every line is an event, bpftrace's "Attaching" line, or blank`, () => {
      const fx = loadFixture(name);
      let begins = 0;
      for (const l of fx.lines) {
        const e = parseLine(l);
        if (e === null) expect(l === '' || /^Attaching \d+ probes\.\.\.$/.test(l), `unparsed: ${JSON.stringify(l)}`).toBe(true);
        else if (e.type === 'begin') begins++;
      }
      expect(begins).toBe(1);
      expect(fx.events.length).toBeGreaterThan(5);
      // Only our port: bpftrace sees the whole host, the program filters in the kernel.
      for (const { e } of fx.events) expect([e.local.port, e.remote.port]).toContain(fx.session.port);
      // IPv4-mapped addresses (uvicorn's AF_INET sockets print as ::ffff:a.b.c.d) come out as IPv4.
      for (const { e } of fx.events) expect(`${e.local.ip} ${e.remote.ip}`).not.toMatch(/ffff/);
    });
  }

  it('the processes in the events are the ones the recorder started (PIDs and names)', () => {
    for (const name of ['keepalive-race', 'server-killed', 'close-wait']) {
      const fx = loadFixture(name);
      const s = fx.session.processes;
      // Process-context events: the server's listen() and every connect() by a client.
      const listen = fx.events.find(({ e }) => e.type === 'state' && e.newState === 10);
      expect(listen?.e.pid).toBe(s.server.pid);
      expect(listen?.e.comm).toBe('python3');
      const connects = fx.events.filter(({ e }) => e.type === 'state' && e.oldState === 7 && e.newState === 2).map(({ e }) => e);
      expect(connects.length).toBeGreaterThan(0);
      for (const e of connects) {
        expect(e.comm).toBe('node');
        expect([...s.clients.map((c) => c.pid), s.healthCheck?.pid]).toContain(e.pid);
        // connect() moves to SYN_SENT before the local port is chosen.
        expect(e.local.port).toBe(0);
      }
    }
  });

  it('server-killed: the FIN transition of the killed server ran in the exiting python3 (PF_EXITING)', () => {
    const fx = loadFixture('server-killed');
    const fin = fx.events.map(({ e }) => e).filter((e) => e.type === 'state' && e.local.port === fx.session.port && e.oldState === TCP_ESTABLISHED && e.newState === TCP_FIN_WAIT1);
    expect(fin).toHaveLength(1);
    expect(fin[0]).toMatchObject({ pid: fx.session.processes.server.pid, comm: 'python3', exiting: true });
    // The kill came first (the recorder's clock), then the kernel closed the socket.
    const t = fx.events.find(({ e }) => e === fin[0])!.ts;
    expect(t / 1e6).toBeGreaterThan(fx.session.killedAt!);
    expect(t / 1e6 - fx.session.killedAt!).toBeLessThan(0.1);
  });

  it('passive transitions carry whatever task the CPU ran: the client socket went to CLOSE_WAIT "in" python3 or ksoftirqd', () => {
    // Why store.ts decides from the transition, not from the pid.
    const killed = loadFixture('server-killed');
    const cw = killed.events.map(({ e }) => e).find((e) => e.type === 'state' && e.newState === 8)!;
    expect(cw.local.port).not.toBe(killed.session.port);
    expect(cw.comm).toBe('python3');
    const half = loadFixture('close-wait');
    const softirq = half.events.map(({ e }) => e).filter((e) => e.type === 'state' && e.comm.startsWith('ksoftirqd/'));
    expect(softirq.length).toBeGreaterThan(0);
  });

  it('no-socket: the kernel RSTs for a port nobody listens on, IPv6 (hex sockaddr) and IPv4, match the capture', async () => {
    const fx = loadFixture('no-socket');
    const rsts = fx.events.map(({ e }) => e).filter((e): e is Extract<TraceEvent, { type: 'send-reset' }> => e.type === 'send-reset');
    expect(rsts).toHaveLength(2);
    for (const r of rsts) {
      expect(r.sk).toBe('0');
      expect(r.state).toBe(0);
      expect(r.reason).toBe(1); // NO_SOCKET in this kernel's format file
      expect(r.local.port).toBe(fx.session.port);
    }
    expect(rsts.map((r) => r.local.ip)).toEqual(['::1', '127.0.0.1']);
    // The capture has the same two connections, reset by the "server" port.
    const a = await analyzeFixture(fx, { ebpf: false });
    const reset = a.connections.filter((c) => c.closes[0]?.kind === 'RST');
    expect(reset.map((c) => `${c.client.ip} ${c.client.port}`)).toEqual(rsts.map((r) => `${r.remote.ip} ${r.remote.port}`));
  });

  it('keepalive-race: the RSTs are answers to segments on sockets that exist (TIME-WAIT, data after close)', () => {
    const fx = loadFixture('keepalive-race');
    const rsts = fx.events.map(({ e }) => e).filter((e): e is Extract<TraceEvent, { type: 'send-reset' }> => e.type === 'send-reset');
    expect(rsts.length).toBeGreaterThanOrEqual(2);
    for (const r of rsts) {
      expect(r.sk).not.toBe('0');
      expect(r.skb).not.toBe('0');
      expect(r.local.port).toBe(fx.session.port);
      // 8 TCP_ABORT_ON_DATA, 9 TCP_TIMEWAIT_SOCKET (this kernel's enum sk_rst_reason).
      expect([8, 9]).toContain(r.reason);
      // Softirq: the pid is the client that wrote the request, not the server.
      expect(r.pid).not.toBe(fx.session.processes.server.pid);
    }
  });
});

describe('parseLine', () => {
  const real = loadFixture('keepalive-race').lines.find((l) => l.startsWith('S '))!;

  it('keeps a process name with spaces whole (comm is the rest of the line)', () => {
    const e = parseLine(real.replace(/ \S+$/, ' Web Content'));
    expect(e).toMatchObject({ type: 'state', comm: 'Web Content' });
  });

  it('rejects cut or damaged lines instead of guessing', () => {
    for (let n = 1; n < real.lastIndexOf(' '); n += 7) expect(parseLine(real.slice(0, n))).toBeNull();
    expect(parseLine(real.replace(/^S \d+/, 'S x'))).toBeNull();
    expect(parseLine('ERROR: something')).toBeNull();
    expect(parseLine('')).toBeNull();
  });

  it('nanoseconds beyond 2^53 are cut to microseconds exactly', () => {
    const e = parseLine(real.replace(/^S \d+/, 'S 18446744073709551615'));
    expect(e?.type === 'state' ? e.monoUs : null).toBe(18446744073709551);
  });

  it('addresses: ntop text, IPv4-mapped, raw sockaddr hex', () => {
    expect(parseAddress('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(parseAddress('7f000001')).toBe('127.0.0.1');
    expect(parseAddress('00000000000000000000000000000001')).toBe('::1');
    expect(parseAddress('fe800000000000000000000000000001')).toBe('fe80::1');
    expect(parseAddress('20010db8000000010000000000000000')).toBe('2001:db8:0:1::');
    expect(parseAddress('00000000000000000000ffff0a000001')).toBe('10.0.0.1');
    expect(parseAddress('not-an-address')).toBeNull();
  });
});
