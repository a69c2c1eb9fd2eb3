/**
 * `hangscope daemon --max-connections` bounds the engine as it does for
 * analyze and watch: with five keep-alive sockets open at once on loopback
 * and room for two, connections are finished early and counted as
 * `connection-evicted` in the NDJSON stats line; the same traffic with the
 * default bound evicts nothing and finds the five sockets and their requests.
 *
 * Needs root and tcpdump (skips with the reason otherwise, unless CI=true).
 * Loopback only; every process is started here and stopped by PID.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, built, isRoot, killAll, need, start, tcpdumpPath, until } from '../live/helpers.js';

const SUITE = 'daemon --max-connections';
const ready =
  need(built, 'dist/ is missing (npm run build)', SUITE) &&
  need(isRoot, 'not root: live capture needs root (or CAP_NET_RAW and CAP_NET_ADMIN)', SUITE) &&
  need(tcpdumpPath !== null, 'tcpdump is not installed (apt-get install tcpdump)', SUITE);

const tmp = mkdtempSync(path.join(tmpdir(), 'hangscope-daemon-bounds-'));
afterAll(() => {
  killAll();
  rmSync(tmp, { recursive: true, force: true });
});

/** Five keep-alive GETs at once to a local server, held open a moment, then closed. */
async function fiveSockets(port: number): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
  const ports = await Promise.all(
    [...Array(5)].map(
      () =>
        new Promise<number>((resolve, reject) => {
          const req = http.get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
            res.resume();
            res.on('end', () => resolve(req.socket!.localPort!));
          });
          req.on('error', reject);
        }),
    ),
  );
  await new Promise((r) => setTimeout(r, 500));
  agent.destroy();
  return new Set(ports).size;
}

async function run(extra: string[], name: string): Promise<{ stats: Record<string, any>; sockets: number }> {
  const server = http.createServer((_q, s) => s.end('ok'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const dir = path.join(tmp, name);
  const d = start(process.execPath, [BIN, 'daemon', '-i', 'lo', '-p', String(port), '--dir', dir, '--metrics-listen', '127.0.0.1:0', ...extra], { timeoutMs: 30_000 });
  try {
    await until(() => /daemon listening on/.test(d.stderr()), 15_000, 'the daemon to listen');
    const sockets = await fiveSockets(port);
    await new Promise((r) => setTimeout(r, 300));
    d.child.kill('SIGTERM');
    const ex = await d.exited;
    expect(ex.code, d.stderr()).toBe(0);
    const lines = readFileSync(path.join(dir, 'hangscope.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
    return { stats: lines.find((l) => l.type === 'stats')!, sockets };
  } finally {
    server.close();
  }
}

describe.skipIf(!ready)(SUITE, () => {
  it('room for 2 of 5 open sockets: connections evicted and counted; the default bound evicts none', async () => {
    const bounded = await run(['--max-connections', '2'], 'bounded');
    expect(bounded.sockets).toBe(5);
    expect(bounded.stats.anomalies['connection-evicted']).toBeGreaterThanOrEqual(3);
    const free = await run([], 'free');
    expect(free.sockets).toBe(5);
    expect(free.stats.anomalies['connection-evicted']).toBeUndefined();
    expect(free.stats.connections).toBe(5);
    expect(free.stats.exchanges).toBe(5);
  }, 60_000);
});
