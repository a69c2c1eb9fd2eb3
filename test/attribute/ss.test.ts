/**
 * The ss fallback: `ss -tanpi` output recorded while the sessions ran
 * (test/fixtures/attribute/{close-wait,server-close-wait}/ss.txt, iproute2
 * 6.1, one sample every 250 ms, each after a "# ts=<epoch µs>" line).
 */
import { describe, expect, it } from 'vitest';
import { LINGERING_STATES, SsTracker, parseSs, parseSsAddress, parseSsUsers, ssArgs } from '../../lib/attribute/ss.js';
import { loadFixture } from './helpers.js';

describe('parseSs on recorded output', () => {
  const fx = loadFixture('server-close-wait');
  const server = fx.session.processes.server.pid;

  it('reads every socket line of every sample (the -i lines belong to the socket above)', () => {
    for (const s of fx.ssSamples) {
      const lines = s.text.split('\n').filter((l) => /^[A-Z]/.test(l) && !l.startsWith('State'));
      expect(parseSs(s.text)).toHaveLength(lines.length);
    }
  });

  it("the forgetful server's sockets: CLOSE-WAIT, owned by python3 with its PID, IPv4-mapped and IPv6", () => {
    const mid = parseSs(fx.ssSamples[8]!.text);
    const cw = mid.filter((s) => s.state === 'CLOSE-WAIT');
    expect(cw.map((s) => `${s.local.ip}:${s.local.port} ${s.peer.ip}`).sort()).toEqual(['127.0.0.1:18608 127.0.0.1', '::1:18608 ::1']);
    for (const s of cw) {
      expect(s.users).toEqual([{ name: 'python3', pid: server, fd: s.users[0]!.fd }]);
      // One byte unread: the FIN counts in Recv-Q.
      expect(s.recvQ).toBe(1);
      expect(s.lastrcv).not.toBeNull();
    }
    // The client ends are orphans after Node closed them: FIN-WAIT-2, nobody holds them.
    const fw = mid.filter((s) => s.state === 'FIN-WAIT-2');
    expect(fw.length).toBe(2);
    for (const s of fw) expect(s.users).toEqual([]);
    const listen = mid.find((s) => s.state === 'LISTEN')!;
    expect(listen.local.port).toBe(18608);
    expect(listen.peer.port).toBe(0);
  });

  it('tracks each lingering socket across samples; ignores ESTAB, LISTEN, TIME-WAIT', () => {
    const t = new SsTracker();
    for (const s of fx.ssSamples) t.add(parseSs(s.text), s.ts);
    const conn = fx.session.requests![0]!;
    const seen = t.find({ ip: '127.0.0.1', port: 18608 }, { ip: '127.0.0.1', port: conn.localPort! }, 'CLOSE-WAIT', 0, Number.MAX_SAFE_INTEGER)!;
    expect(seen.users[0]).toMatchObject({ name: 'python3', pid: server });
    expect(seen.samples).toBeGreaterThan(10);
    expect(seen.lastSeen - seen.firstSeen).toBeGreaterThan(3_000_000);
    expect(t.find({ ip: '127.0.0.1', port: 18608 }, { ip: '127.0.0.1', port: conn.localPort! }, 'TIME-WAIT', 0, Number.MAX_SAFE_INTEGER)).toBeNull();
    // Client and server end of three connections (CLOSE-WAIT and FIN-WAIT-2).
    expect(t.size).toBe(6);
  });

  it('client side in CLOSE-WAIT (half-open.mjs): owned by node', () => {
    const half = loadFixture('close-wait');
    const pid = half.session.processes.clients[0]!.pid;
    const socks = half.ssSamples.flatMap((s) => parseSs(s.text)).filter((s) => s.state === 'CLOSE-WAIT');
    expect(socks.length).toBeGreaterThan(5);
    for (const s of socks) expect(s.users).toEqual([{ name: 'node', pid, fd: s.users[0]!.fd }]);
  });
});

describe('ss pieces', () => {
  it('addresses as ss prints them', () => {
    expect(parseSsAddress('[::ffff:127.0.0.1]:18608')).toEqual({ ip: '127.0.0.1', port: 18608 });
    expect(parseSsAddress('[::1]:38444')).toEqual({ ip: '::1', port: 38444 });
    expect(parseSsAddress('127.0.0.1:52598')).toEqual({ ip: '127.0.0.1', port: 52598 });
    expect(parseSsAddress('*:18608')).toEqual({ ip: '0.0.0.0', port: 18608 });
    expect(parseSsAddress('0.0.0.0:*')).toEqual({ ip: '0.0.0.0', port: 0 });
    expect(parseSsAddress('127.0.0.53%lo:53')).toEqual({ ip: '127.0.0.53', port: 53 });
    expect(parseSsAddress('[fe80::1%eth0]:22')).toEqual({ ip: 'fe80::1', port: 22 });
    expect(parseSsAddress('garbage')).toBeNull();
  });

  it('several processes sharing a socket (fork after accept)', () => {
    expect(parseSsUsers('users:(("nginx",pid=10,fd=6),("nginx",pid=11,fd=6))')).toEqual([
      { name: 'nginx', pid: 10, fd: 6 },
      { name: 'nginx', pid: 11, fd: 6 },
    ]);
  });

  it('the command filters by port, both ends', () => {
    expect(ssArgs([8000])).toEqual(['-tanpi', '( sport = :8000 or dport = :8000 )']);
    expect([...LINGERING_STATES].sort()).toEqual(['CLOSE-WAIT', 'CLOSING', 'FIN-WAIT-1', 'FIN-WAIT-2', 'LAST-ACK']);
  });

  it('bounded: at most maxSockets lingering sockets are kept', () => {
    const fx = loadFixture('server-close-wait');
    const t = new SsTracker(3);
    for (const s of fx.ssSamples) t.add(parseSs(s.text), s.ts);
    expect(t.size).toBeLessThanOrEqual(3);
  });
});
