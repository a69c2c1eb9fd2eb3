/**
 * `hangscope watch` under live faults, with real traffic flowing
 * (traffic.mjs: a Node http server and client) and --write on:
 *   - tcpdump killed (SIGKILL, by its PID)                        exit 3
 *   - the interface disappears (a veth in a namespace made here,
 *     deleted mid-capture)                                        exit 3
 *   - the disk fills (a 256 KiB tmpfs mounted here)               exit 4
 *   - SIGTERM, SIGINT                                             exit 0
 *   - standard output's reader goes away (EPIPE, what a shell
 *     pipeline's SIGPIPE is for us: Node ignores the signal)      exit 0
 * In every case: hangscope says what happened in one line on standard
 * error ("hangscope: stopped (REASON); counters; N packets written to F."),
 * tcpdump is not left running, and the --write file is a valid capture of
 * exactly the N packets the line names: our reader finds no cut record, and
 * tshark reads N frames without complaint.
 *
 * Needs root and tcpdump (the namespace case also `ip`, the disk case
 * `mount`); skips with a printed reason otherwise, unless CI=true.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  MAIN,
  TRAFFIC,
  afterListening,
  alive,
  checkCapture,
  existsSync,
  has,
  isRoot,
  killAll,
  need,
  start,
  tcpdumpOf,
  until,
  type Running,
} from './helpers.js';

const SUITE = 'faults: watch under live faults';
const ready =
  need(existsSync(MAIN), 'dist/ is missing (npm run build)', SUITE) &&
  need(isRoot, 'not root (live capture, namespaces and mounts need it)', SUITE) &&
  need(has('tcpdump'), 'tcpdump is not installed', SUITE);

const tmp = mkdtempSync(path.join(tmpdir(), 'hangscope-faults-'));
afterAll(() => {
  killAll();
  rmSync(tmp, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

interface Ended {
  code: number | null;
  lines: string[];
  written: number;
  stdout: string;
}

/** Wait for the end of a watch, and read its one line. */
async function ended(w: Running, tcpdump: number): Promise<Ended> {
  const { code } = await w.exited;
  const lines = afterListening(w.stderr());
  const m = /; (\d+) packets written to /.exec(lines.join('\n'));
  // tcpdump is gone too (not left capturing behind us).
  await until(() => !alive(tcpdump), 5000, `tcpdump ${tcpdump} to be gone`);
  return { code, lines, written: m ? Number(m[1]) : -1, stdout: w.stdout() };
}

/** The --write file holds exactly the packets the line names, and reads cleanly. */
async function validCapture(file: string, written: number): Promise<void> {
  expect(written).toBeGreaterThan(0);
  const c = await checkCapture(file);
  expect(c.anomalies, 'our reader: no cut record').toEqual({});
  expect(c.packets).toBe(written);
  if (c.tsharkOk !== null) {
    expect(c.tsharkOk, `tshark: ${c.tsharkStderr}`).toBe(true);
    expect(c.tsharkPackets).toBe(written);
  }
}

function statsLine(stdout: string): any {
  const last = stdout.trim().split('\n').at(-1)!;
  const s = JSON.parse(last);
  expect(s.type).toBe('stats');
  return s;
}

/** watch on lo with --write while traffic flows; resolves once packets are being written. */
async function watching(port: number, file: string, extra: string[] = [], trafficArgs: string[] = ['20', '5', '1']): Promise<{ w: Running; t: Running; tcpdump: number }> {
  const w = start(process.execPath, [MAIN, 'watch', '-i', 'lo', '--port', String(port), '--format', 'ndjson', '--duration', '40', '--write', file, ...extra], 60_000);
  await until(() => w.stderr().includes('listening on'), 15_000, `watch to start (${w.stderr()})`);
  const tcpdump = tcpdumpOf(w.pid);
  expect(tcpdump, 'the tcpdump watch started').not.toBeNull();
  const t = start(process.execPath, [TRAFFIC, 'both', String(port), ...trafficArgs], 60_000);
  await until(() => existsSync(file) && statSync(file).size > 4000, 15_000, 'packets in the --write file');
  return { w, t, tcpdump: tcpdump! };
}

describe.runIf(ready)(SUITE, () => {
  it('tcpdump killed by its PID: one line naming the signal, exit 3, the file valid up to the last packet', async () => {
    const port = await freePort();
    const file = path.join(tmp, 'killed.pcap');
    const { w, t, tcpdump } = await watching(port, file);
    process.kill(tcpdump, 'SIGKILL');
    const e = await ended(w, tcpdump);
    t.child.kill('SIGKILL');
    expect(e.code).toBe(3);
    expect(e.lines).toHaveLength(1);
    // The counters are tcpdump's last report (every 2 s); killed before the first one, they are "drops unknown".
    expect(e.lines[0]).toMatch(new RegExp(`^hangscope: stopped \\(tcpdump \\(pid ${tcpdump}\\) was killed by SIGKILL\\); tcpdump: [^;]+; \\d+ packets written to ${file}\\.$`));
    expect(statsLine(e.stdout).capture.written).toBe(e.written);
    await validCapture(file, e.written);
  }, 90_000);

  it('SIGTERM: a clean stop, exit 0, the summary, the file valid', async () => {
    const port = await freePort();
    const file = path.join(tmp, 'sigterm.pcap');
    const { w, t, tcpdump } = await watching(port, file);
    process.kill(w.pid, 'SIGTERM');
    const e = await ended(w, tcpdump);
    t.child.kill('SIGKILL');
    expect(e.code).toBe(0);
    expect(e.lines).toEqual([expect.stringMatching(/^hangscope: stopped \(SIGTERM\); tcpdump: \d+ packets received by the filter, \d+ dropped by the kernel(?: \([^)]*\))?; \d+ packets written to .*\.$/)]);
    const s = statsLine(e.stdout);
    expect(s.capture.stoppedBy).toBe('SIGTERM');
    expect(s.capture.written).toBe(e.written);
    expect(s.packets).toBeGreaterThanOrEqual(e.written);
    await validCapture(file, e.written);
  }, 90_000);

  it('SIGINT: a clean stop, exit 0, the summary, the file valid', async () => {
    const port = await freePort();
    const file = path.join(tmp, 'sigint.pcap');
    const { w, t, tcpdump } = await watching(port, file);
    process.kill(w.pid, 'SIGINT');
    const e = await ended(w, tcpdump);
    t.child.kill('SIGKILL');
    expect(e.code).toBe(0);
    expect(e.lines).toEqual([expect.stringMatching(/^hangscope: stopped \(SIGINT\); .* packets written to .*\.$/)]);
    expect(statsLine(e.stdout).capture.stoppedBy).toBe('SIGINT');
    await validCapture(file, e.written);
  }, 90_000);

  it('standard output closed (EPIPE): tcpdump stopped, not left behind; exit 0; the file valid', async () => {
    const port = await freePort();
    const file = path.join(tmp, 'epipe.pcap');
    // A new connection per request: finished sockets are printed (5 s after their close), and the write meets the closed pipe.
    const { w, t, tcpdump } = await watching(port, file, [], ['20', '5', '0']);
    w.child.stdout!.destroy();
    const e = await ended(w, tcpdump);
    t.child.kill('SIGKILL');
    expect(e.code).toBe(0);
    expect(e.lines).toEqual([expect.stringMatching(/^hangscope: stopped \(standard output closed\); .* packets written to .*\.$/)]);
    await validCapture(file, e.written);
  }, 90_000);

  it.runIf(need(has('mount'), 'mount is not available', `${SUITE}: disk full`))(
    'the disk fills under --write: one line, exit 4, the file a valid capture of every packet that fitted',
    async () => {
      const dir = path.join(tmp, 'small-disk');
      mkdirSync(dir);
      expect(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', dir]).status).toBe(0);
      try {
        const port = await freePort();
        const file = path.join(dir, 'full.pcap');
        const w = start(process.execPath, [MAIN, 'watch', '-i', 'lo', '--port', String(port), '--format', 'ndjson', '--duration', '40', '--write', file], 60_000);
        await until(() => w.stderr().includes('listening on'), 15_000, 'watch to start');
        const tcpdump = tcpdumpOf(w.pid)!;
        // Requests as fast as they go: 256 KiB fills in a second or two.
        const t = start(process.execPath, [TRAFFIC, 'both', String(port), '30', '0', '4'], 60_000);
        const e = await ended(w, tcpdump);
        t.child.kill('SIGKILL');
        expect(e.code).toBe(4);
        expect(e.lines).toEqual([
          expect.stringMatching(new RegExp(`^hangscope: stopped \\(cannot write ${file}: no space left on the device\\); tcpdump: .*; \\d+ packets written to ${file}\\.$`)),
        ]);
        expect(statsLine(e.stdout).capture.written).toBe(e.written);
        await validCapture(file, e.written);
        // Full: the next record would not have fitted.
        expect(statSync(file).size).toBeGreaterThan(200 * 1024);
      } finally {
        spawnSync('umount', [dir]);
      }
    },
    90_000,
  );

  it.runIf(need(has('ip'), 'ip (iproute2) is not installed', `${SUITE}: interface gone`))(
    'the interface disappears (a veth deleted mid-capture): one line naming it, exit 3, the file valid',
    async () => {
      const A = 'hs-fault-a';
      const B = 'hs-fault-b';
      const sh = (c: string): void => {
        const r = spawnSync('sh', ['-c', c], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`${c}: ${r.stderr}`);
      };
      const cleanup = (): void => {
        spawnSync('ip', ['netns', 'del', A], { stdio: 'ignore' });
        spawnSync('ip', ['netns', 'del', B], { stdio: 'ignore' });
      };
      cleanup();
      try {
        sh(`ip netns add ${A} && ip netns add ${B} && ip -n ${A} link set lo up && ip -n ${B} link set lo up`);
        sh(`ip link add hfa0 netns ${A} type veth peer name hfb0 netns ${B}`);
        sh(`ip -n ${A} addr add 10.79.0.1/24 dev hfa0 && ip -n ${A} link set hfa0 up`);
        sh(`ip -n ${B} addr add 10.79.0.2/24 dev hfb0 && ip -n ${B} link set hfb0 up`);
        const server = start('ip', ['netns', 'exec', B, process.execPath, TRAFFIC, 'server', '10.79.0.2', '8080'], 60_000);
        await until(() => server.stdout().includes('listening'), 10_000, 'the server in its namespace');
        const file = path.join(tmp, 'gone.pcap');
        // `ip netns exec` execs node: the watch keeps the PID we started.
        const w = start('ip', ['netns', 'exec', A, process.execPath, MAIN, 'watch', '-i', 'hfa0', '--port', '8080', '--format', 'ndjson', '--duration', '40', '--write', file], 60_000);
        await until(() => w.stderr().includes('listening on'), 15_000, `watch to start (${w.stderr()})`);
        const tcpdump = tcpdumpOf(w.pid)!;
        expect(tcpdump).not.toBeNull();
        const client = start('ip', ['netns', 'exec', A, process.execPath, TRAFFIC, 'client', '10.79.0.2', '8080', '20', '5', '1'], 60_000);
        await until(() => existsSync(file) && statSync(file).size > 4000, 15_000, 'packets in the --write file');
        sh(`ip -n ${A} link del hfa0`);
        const e = await ended(w, tcpdump);
        client.child.kill('SIGKILL');
        server.child.kill('SIGKILL');
        expect(e.code).toBe(3);
        expect(e.lines).toEqual([
          expect.stringMatching(/^hangscope: stopped \(hfa0 disappeared while tcpdump was capturing on it \(the interface was deleted, or its namespace or container went away\)\); tcpdump: .*; \d+ packets written to .*\.$/),
        ]);
        await validCapture(file, e.written);
      } finally {
        cleanup();
      }
    },
    90_000,
  );
});
