/**
 * Soak: `hangscope watch` on loopback for minutes under steady load from
 * real clients against a real server (test/faults/traffic.mjs): one process
 * with keep-alive sockets making requests back to back, one making a new
 * connection per request (connections keep opening and finishing). Checked:
 *  - memory flat: watch's resident set (VmRSS of the whole process, the
 *    tcpdump reader thread included) sampled every 5 s; the mean of the last
 *    fifth of the run may not exceed the mean of the second fifth (after
 *    warm-up) by more than 15% + 16 MiB;
 *  - no drops: tcpdump's kernel drop count is 0 at the end;
 *  - nothing missed: the exchanges hangscope counted equal the responses
 *    the clients counted.
 * Not part of the default run (minutes long): HANGSCOPE_SOAK=1 turns it on,
 * HANGSCOPE_SOAK_SECONDS sets the length (default 300), HANGSCOPE_SOAK_SOCKETS
 * the keep-alive sockets (default 4) and HANGSCOPE_SOAK_INTERVAL_MS their
 * pause between requests (default 2: the packet rate; with no pause, loopback
 * outruns tcpdump and the kernel drops), HANGSCOPE_SOAK_REPORT a file for the
 * figures as JSON. Needs root and tcpdump.
 *   HANGSCOPE_SOAK=1 npx vitest run test/soak
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAIN, TRAFFIC, existsSync, has, isRoot, killAll, need, start, tcpdumpOf, until } from '../faults/helpers.js';

const ON = process.env.HANGSCOPE_SOAK === '1';
const SECONDS = Number(process.env.HANGSCOPE_SOAK_SECONDS ?? 300);
const SOCKETS = Number(process.env.HANGSCOPE_SOAK_SOCKETS ?? 4);
/** Pause of each keep-alive loop between requests (ms): sets the packet rate. */
const INTERVAL_MS = Number(process.env.HANGSCOPE_SOAK_INTERVAL_MS ?? 2);
const SAMPLE_MS = 5000;
const MiB = 1024 * 1024;

if (!ON) console.log('[skip] soak: set HANGSCOPE_SOAK=1 to run it (minutes long)');
const ready =
  ON && need(existsSync(MAIN), 'dist/ is missing (npm run build)', 'soak') && need(isRoot, 'not root', 'soak') && need(has('tcpdump'), 'tcpdump is not installed', 'soak');

function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

function cpuSecondsOf(pid: number): number {
  // utime + stime, fields 14 and 15 of /proc/pid/stat, in clock ticks (100 per second on Linux).
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

describe.runIf(ready)(`soak: watch for ${SECONDS} s of loopback load`, () => {
  it(
    'memory flat, no drops, every exchange counted',
    async () => {
      try {
        const port = await freePort();
        const tmp = mkdtempSync(path.join(tmpdir(), 'hangscope-soak-'));
        const out = path.join(tmp, 'watch.ndjson');
        const w = start(
          process.execPath,
          [MAIN, 'watch', '-i', 'lo', '--port', String(port), '--format', 'ndjson', '--duration', String(SECONDS + 12), '--output', out],
          (SECONDS + 120) * 1000,
        );
        await until(() => w.stderr().includes('listening on'), 15_000, 'watch to start');
        const tcpdump = tcpdumpOf(w.pid);
        const keep = start(process.execPath, [TRAFFIC, 'both', String(port), String(SECONDS), String(INTERVAL_MS), String(SOCKETS)], (SECONDS + 60) * 1000);
        // A second client on the same server: a new connection for every request.
        const fresh = start(process.execPath, [TRAFFIC, 'client', '127.0.0.1', String(port), String(SECONDS), '5', '0'], (SECONDS + 60) * 1000);
        const rss: number[] = [];
        const t0 = Date.now();
        const cpu0 = cpuSecondsOf(w.pid);
        const timer = setInterval(() => rss.push(rssOf(w.pid)), SAMPLE_MS);
        const [k, f] = await Promise.all([keep.exited, fresh.exited]);
        clearInterval(timer);
        const loadSeconds = (Date.now() - t0) / 1000;
        const cpu = cpuSecondsOf(w.pid) - cpu0;
        expect(k.code, keep.stderr()).toBe(0);
        expect(f.code, fresh.stderr()).toBe(0);
        const clients = [JSON.parse(keep.stdout().trim()), JSON.parse(fresh.stdout().trim())];
        const { code } = await w.exited;
        expect(code, w.stderr()).toBe(0);
        const line = w.stderr().split('\n').find((l) => l.includes('stopped ('))!;
        const m = /tcpdump: (\d+) packets received by the filter, (\d+) dropped by the kernel/.exec(line);
        expect(m, line).not.toBeNull();
        const dropped = Number(m![2]);
        const nd = readFileSync(out, 'utf8').trim().split('\n');
        const stats = JSON.parse(nd.at(-1)!);
        rmSync(tmp, { recursive: true, force: true });
        const fifth = Math.max(1, Math.floor(rss.length / 5));
        const early = mean(rss.slice(fifth, 2 * fifth));
        const late = mean(rss.slice(-fifth));
        const responses = clients.reduce((s, c) => s + c.responses, 0);
        const figures = {
          seconds: SECONDS,
          loadSeconds,
          keepAliveSockets: SOCKETS,
          intervalMs: INTERVAL_MS,
          clients,
          responses,
          requestsPerSecond: responses / loadSeconds,
          exchanges: stats.exchanges,
          connections: stats.connections,
          packets: stats.packets,
          packetsPerSecond: stats.packets / loadSeconds,
          anomalies: stats.anomalies,
          tcpdumpReceivedByFilter: Number(m![1]),
          dropped,
          watchCpuSeconds: cpu,
          rssMiB: { first: rss[0]! / MiB, early: early / MiB, late: late / MiB, min: Math.min(...rss) / MiB, max: Math.max(...rss) / MiB, samples: rss.map((r) => Math.round(r / MiB)) },
          tcpdumpPid: tcpdump,
          line,
        };
        console.log(`[soak] ${JSON.stringify(figures)}`);
        if (process.env.HANGSCOPE_SOAK_REPORT) writeFileSync(process.env.HANGSCOPE_SOAK_REPORT, `${JSON.stringify(figures, null, 2)}\n`);
        expect(dropped).toBe(0);
        expect(stats.capture.dropped).toBe(0);
        expect(stats.exchanges).toBe(responses);
        expect(late).toBeLessThan(early * 1.15 + 16 * MiB);
      } finally {
        killAll();
      }
    },
    (SECONDS + 180) * 1000,
  );
});
