/**
 * End to end: `hangscope watch` as a child process capturing loopback while a
 * real client runs the incident against a real server started here:
 * axios 1.8.4 GET /files/abc?detail=summary (timeout 5000), then node-fetch 2
 * POST /exec on the same pooled socket of Node's default agent; the server
 * takes 7 s, the client's socket idle timer (5 s, left by axios' timeout)
 * destroys the socket first: "socket hang up".
 *
 * What hangscope prints is checked against the client's own log (its local
 * port, when it wrote each request, when its socket closed, when it reported
 * the error), within a few milliseconds.
 *
 * Needs root and tcpdump (the libpcap source also runs when npm pcap is
 * installed); skips with a printed reason otherwise, unless CI=true.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BIN,
  built,
  childPids,
  isRoot,
  killAll,
  libpcapBinding,
  need,
  runClient,
  start,
  startServer,
  tcpdumpPath,
  until,
  type ClientEvent,
  type Running,
} from './helpers.js';

const SUITE = 'live: watch end to end';
const ready =
  need(built, 'dist/ is missing (npm run build)', SUITE) &&
  need(isRoot, 'not root: live capture needs root (or CAP_NET_RAW and CAP_NET_ADMIN)', SUITE) &&
  need(tcpdumpPath !== null, 'tcpdump is not installed (apt-get install tcpdump)', SUITE);

/** Packet times against the client's own clock: both read CLOCK_REALTIME; loopback adds well under this. */
const TOLERANCE_S = 0.01;

const tmp = mkdtempSync(path.join(tmpdir(), 'hangscope-watch-'));
afterAll(() => {
  killAll();
  rmSync(tmp, { recursive: true, force: true });
});

function ndjson(text: string): any[] {
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));
}

function watch(args: string[], timeoutMs = 40_000): Running {
  return start(process.execPath, [BIN, 'watch', ...args], { timeoutMs });
}

const listening = (r: Running) => () => r.stderr().includes('listening on');

describe.runIf(ready)(SUITE, () => {
  let server: Awaited<ReturnType<typeof startServer>>;
  let log: ClientEvent[];
  const runs: { name: string; run: Running; write?: string }[] = [];

  beforeAll(async () => {
    server = await startServer(7000);
    const port = String(server.port);
    const write = path.join(tmp, 'tcpdump.pcap');
    runs.push({ name: 'tcpdump on lo', run: watch(['--interface', 'lo', '--port', port, '--format', 'ndjson', '--duration', '9', '--source', 'tcpdump', '--write', write]), write });
    // "any" gives Linux cooked frames (tcpdump: LINUX_SLL2).
    runs.push({ name: 'tcpdump on any', run: watch(['--interface', 'any', '--port', port, '--format', 'ndjson', '--duration', '9', '--source', 'tcpdump']) });
    if (libpcapBinding) runs.push({ name: 'libpcap on any', run: watch(['--interface', 'any', '--port', port, '--format', 'ndjson', '--duration', '9', '--source', 'libpcap']) });
    else console.log('[note] live: npm pcap is not installed: only the tcpdump source runs');
    for (const r of runs) await until(listening(r.run), 15_000, `${r.name} to start capturing (stderr: ${r.run.stderr()})`);
    log = await runClient(server.port);
    for (const r of runs) await r.run.exited;
    server.run.child.kill('SIGTERM');
  }, 60_000);

  it('the client log shows the incident: one socket, POST /exec reused it, socket hang up about 5 s after it was written', () => {
    const sockets = log.filter((e) => e.event === 'request-socket');
    expect(sockets).toHaveLength(2);
    expect(sockets[0]!.localPort).toBe(sockets[1]!.localPort);
    expect(sockets[1]!.reused).toBe(true);
    const err = log.find((e) => e.event === 'request-error')!;
    expect(err.client).toBe('node-fetch');
    expect(String(err.error)).toContain('socket hang up');
    const postSent = log.filter((e) => e.event === 'request-finish')[1]!;
    expect(err.ts - postSent.ts).toBeGreaterThan(4.9);
    expect(err.ts - postSent.ts).toBeLessThan(5.2);
  });

  for (const which of ['tcpdump on lo', 'tcpdump on any', 'libpcap on any']) {
    it(`${which}: the socket's chain and the abort, at the times of the client's own log`, async (ctx) => {
      const r = runs.find((x) => x.name === which);
      if (r === undefined) return ctx.skip();
      const { code } = await r.run.exited;
      expect(code, r.run.stderr()).toBe(0);
      const lines = ndjson(r.run.stdout());
      const localPort = log.find((e) => e.event === 'request-socket')!.localPort as number;
      const conns = lines.filter((l) => l.type === 'connection' && l.client.port === localPort);
      expect(conns).toHaveLength(1);
      const c = conns[0];
      expect(c.server).toEqual({ ip: '127.0.0.1', port: server.port });
      expect(c.exchanges.map((e: any) => `${e.method} ${e.target} ${e.status} ${e.outcome}`)).toEqual([
        'GET /files/abc?detail=summary 200 complete',
        'POST /exec null no-response',
      ]);
      expect(c.firstClose.by).toBe('client');
      expect(c.firstClose.kind).toBe('FIN');

      // Times against the client's clock.
      const [getSent, postSent] = log.filter((e) => e.event === 'request-finish');
      const closed = log.find((e) => e.event === 'socket-close')!;
      const err = log.find((e) => e.event === 'request-error')!;
      expect(Math.abs(c.exchanges[0].requestStart - getSent!.ts)).toBeLessThanOrEqual(TOLERANCE_S);
      expect(Math.abs(c.exchanges[1].requestStart - postSent!.ts)).toBeLessThanOrEqual(TOLERANCE_S);
      expect(Math.abs(c.firstClose.ts - closed.ts)).toBeLessThanOrEqual(TOLERANCE_S);
      const abortOnWire = c.firstClose.ts - c.exchanges[1].requestStart;
      expect(Math.abs(abortOnWire - (err.ts - postSent!.ts))).toBeLessThanOrEqual(TOLERANCE_S);

      const abort = lines.find((l) => l.type === 'finding' && l.code === 'client-abort-before-response' && l.connection === c.id);
      expect(abort, JSON.stringify(lines.filter((l) => l.type === 'finding'))).toBeDefined();
      expect(Math.abs(abort.evidence.sinceRequestStart - abortOnWire)).toBeLessThanOrEqual(0.000002);

      const stats = lines[lines.length - 1];
      expect(stats.type).toBe('stats');
      expect(stats.capture.source).toBe(which.startsWith('tcpdump') ? 'tcpdump' : 'libpcap');
      expect(stats.capture.filter).toBe(`tcp port ${server.port}`);
      expect(typeof stats.drops).toBe('number');
      expect(stats.capture.dropped).toBe(stats.drops);
      expect(stats.packets).toBeGreaterThanOrEqual(c.packets.client + c.packets.server);
      expect(r.run.stderr()).toMatch(/stopped \(9 s elapsed\); (tcpdump|libpcap): \d+ packets received by the filter, \d+ dropped by the kernel/);
    });
  }

  it('--write kept every packet as a private pcap that reads back to the same socket', async () => {
    const r = runs[0]!;
    await r.run.exited;
    const st = statSync(r.write!);
    expect(st.mode & 0o777).toBe(0o600);
    const stats = ndjson(r.run.stdout()).pop();
    expect(stats.capture.written).toBe(stats.packets);
    const again = spawnSync(process.execPath, [BIN, 'analyze', r.write!, '--format', 'ndjson'], { encoding: 'utf8', timeout: 30_000 });
    expect(again.status, again.stderr).toBe(0);
    const live = ndjson(r.run.stdout()).filter((l) => l.type === 'connection');
    const file = ndjson(again.stdout).filter((l) => l.type === 'connection');
    expect(file.map((c) => [c.client.port, c.exchanges.map((e: any) => e.target), c.firstClose])).toEqual(
      live.map((c) => [c.client.port, c.exchanges.map((e: any) => e.target), c.firstClose]),
    );
    const tsharkOk = spawnSync('tshark', ['-v'], { stdio: 'ignore' }).status === 0;
    if (tsharkOk) {
      const n = spawnSync('tshark', ['-r', r.write!, '-T', 'fields', '-e', 'frame.number'], { encoding: 'utf8' });
      expect(n.stdout.split('\n').filter((l) => l !== '')).toHaveLength(stats.packets);
    }
  });
});

describe.runIf(ready)('live: stopping', () => {
  it('SIGINT stops cleanly: tcpdump is stopped, the last socket is reported, then the text summary', async () => {
    const server = await startServer(100);
    try {
      const r = watch(['--interface', 'lo', '--port', String(server.port), '--format', 'text']);
      await until(listening(r), 15_000, 'watch to start');
      const got = spawnSync(process.execPath, ['-e', `require('http').get('http://127.0.0.1:${server.port}/files/one', {agent: false}, (res) => { res.resume(); res.on('end', () => process.exit(res.statusCode === 200 ? 0 : 1)); })`], { timeout: 10_000 });
      expect(got.status).toBe(0);
      await new Promise((res) => setTimeout(res, 300));
      const tcpdumps = childPids(r.child.pid!);
      expect(tcpdumps.length).toBe(1);
      r.child.kill('SIGINT');
      const { code } = await r.exited;
      expect(code, r.stderr()).toBe(0);
      const out = r.stdout();
      expect(out).toMatch(new RegExp(`socket 127\\.0\\.0\\.1:\\d+ -> 127\\.0\\.0\\.1:${server.port} #0 closed: GET /files/one 200 `));
      expect(out).toContain('Verdict: no failed HTTP exchanges and no abnormal closes.');
      expect(r.stderr()).toMatch(/stopped \(SIGINT\); tcpdump: \d+ packets received by the filter, 0 dropped by the kernel\./);
      // tcpdump (started by watch) is gone too.
      for (const pid of tcpdumps) expect(() => process.kill(pid, 0)).toThrow();
    } finally {
      server.run.child.kill('SIGTERM');
    }
  });

  it('SIGTERM stops cleanly too: the finished socket, then the stats line', async () => {
    const server = await startServer(100);
    try {
      const r = watch(['--interface', 'lo', '--port', String(server.port), '--format', 'ndjson']);
      await until(listening(r), 15_000, 'watch to start');
      spawnSync(process.execPath, ['-e', `require('http').get('http://127.0.0.1:${server.port}/files/term', {agent: false}, (res) => { res.resume(); res.on('end', () => process.exit(0)); })`], { timeout: 10_000 });
      await new Promise((res) => setTimeout(res, 300));
      r.child.kill('SIGTERM');
      const { code } = await r.exited;
      expect(code, r.stderr()).toBe(0);
      const lines = ndjson(r.stdout());
      expect(lines.filter((l) => l.type === 'connection').map((c) => c.exchanges.map((e: any) => `${e.method} ${e.target} ${e.status}`))).toEqual([['GET /files/term 200']]);
      const stats = lines.pop();
      expect(stats.type).toBe('stats');
      expect(stats.capture.stoppedBy).toBe('SIGTERM');
    } finally {
      server.run.child.kill('SIGTERM');
    }
  });

  it('--count stops after that many packets; a killed watch leaves a valid --write file', async () => {
    const server = await startServer(100);
    try {
      const write = path.join(tmp, 'killed.pcap');
      const r = watch(['--interface', 'lo', '--port', String(server.port), '--format', 'ndjson', '--write', write]);
      await until(listening(r), 15_000, 'watch to start');
      spawnSync(process.execPath, ['-e', `require('http').get('http://127.0.0.1:${server.port}/files/two', {agent: false}, (res) => { res.resume(); res.on('end', () => process.exit(0)); })`], { timeout: 10_000 });
      // One GET on a fresh socket is at least 8 frames (handshake, request, response, closes).
      await until(() => statSync(write).size > 24 + 8 * 16, 10_000, 'packets in the --write file');
      for (const pid of childPids(r.child.pid!)) process.kill(pid, 'SIGKILL');
      r.child.kill('SIGKILL');
      await r.exited;
      const again = spawnSync(process.execPath, [BIN, 'analyze', write, '--format', 'ndjson'], { encoding: 'utf8', timeout: 30_000 });
      expect(again.status, again.stderr).toBe(0);
      const conns = ndjson(again.stdout).filter((l) => l.type === 'connection');
      expect(conns.map((c) => c.exchanges.map((e: any) => `${e.method} ${e.target} ${e.status}`))).toEqual([['GET /files/two 200']]);
      // Every record whole: nothing cut by the kill.
      expect(ndjson(again.stdout).pop().anomalies).toEqual({});

      const counted = watch(['--interface', 'lo', '--port', String(server.port), '--format', 'ndjson', '--count', '3']);
      await until(listening(counted), 15_000, 'watch --count to start');
      spawnSync(process.execPath, ['-e', `require('http').get('http://127.0.0.1:${server.port}/files/three', {agent: false}, (res) => { res.resume(); res.on('end', () => process.exit(0)); })`], { timeout: 10_000 });
      const { code } = await counted.exited;
      expect(code).toBe(0);
      const stats = ndjson(counted.stdout()).pop();
      expect(stats.packets).toBe(3);
      expect(stats.capture.stoppedBy).toBe('3 packets captured');
    } finally {
      server.run.child.kill('SIGTERM');
    }
  });
});
