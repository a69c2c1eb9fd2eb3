/**
 * `hangscope daemon` and `watch --attach` refusing to start: one line on
 * standard error, exit status 2, and nothing left behind (no capture folder
 * when the port is taken, no empty NDJSON file when the capture cannot
 * start). The built CLI runs as a child process.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, built, need } from '../live/helpers.js';

const SUITE = 'daemon: refusing to start';
const tmp = mkdtempSync(path.join(tmpdir(), 'hangscope-daemon-errors-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function cli(args: string[]): { code: number | null; stderr: string; stdout: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stderr: r.stderr, stdout: r.stdout };
}

describe.runIf(need(built, 'dist/ is missing (npm run build)', SUITE))(SUITE, () => {
  it('the metrics port in use: one line, exit 2, no capture folder made', async () => {
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as net.AddressInfo).port;
    try {
      const dir = path.join(tmp, 'in-use');
      const r = cli(['daemon', '-i', 'lo', '--dir', dir, '--metrics-listen', `127.0.0.1:${port}`]);
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(`hangscope: cannot listen on 127.0.0.1:${port} for /metrics: the port is in use (another daemon?); choose another with --metrics-listen.\n`);
      expect(existsSync(dir)).toBe(false);
    } finally {
      holder.close();
    }
  });

  it('bad options: one line each, exit 2, checked before the metrics port is bound (a busy port is not what they hear about)', async () => {
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const busy = (holder.address() as net.AddressInfo).port;
    const dir = path.join(tmp, 'opts');
    for (const [args, msg] of [
      [['--rotate-size', '10'], 'hangscope: the rotation size must be at least 1024 bytes, not 10.'],
      [['--rotate-size', 'lots'], 'hangscope: --rotate-size wants a size such as 100M, 512k or 4096 (bytes), not "lots"'],
      [['--rotate-count', '0'], 'hangscope: --rotate-count wants a whole number from 1 to 1000000, not "0"'],
      [['--metrics-listen', 'nonsense'], 'hangscope: --metrics-listen wants HOST:PORT such as 127.0.0.1:9464 or [::1]:9464, not "nonsense"'],
      [['--prefix', '../up'], 'hangscope: the file prefix "../up" may only hold letters, digits, ".", "_" and "-" (at most 64).'],
      // The engine's bounds, as for analyze and watch.
      [['--max-connections', '0'], 'hangscope: --max-connections wants a whole number of connections from 1 to 100000000, not "0"'],
      [['--max-buffer', 'lots'], 'hangscope: --max-buffer wants a size such as 100M, 512k or 4096 (bytes), not "lots"'],
      [['--attribute'], 'hangscope: --attribute and --ss-interval need --port: the kernel events and ss samples are filtered by the server port'],
      [['-p', '8000', '--ss-interval', 'often'], 'hangscope: --ss-interval wants a whole number from 0 to 3600000, not "often"'],
    ] as const) {
      // Checked before anything starts: the default metrics port is not even bound.
      // (A later --metrics-listen in args wins: commander keeps an option's last value.)
      const r = cli(['daemon', '--dir', dir, '--metrics-listen', `127.0.0.1:${busy}`, ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toBe(`${msg}\n`);
    }
    holder.close();
    expect(existsSync(dir)).toBe(false);
  });

  it('a capture that cannot start (no such interface, or no privilege): exit 2, no empty NDJSON file left', () => {
    const dir = path.join(tmp, 'no-iface');
    const r = cli(['daemon', '-i', 'nosuch0', '--dir', dir, '--metrics-listen', '127.0.0.1:0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^hangscope: (no such interface "nosuch0"|no permission to capture on nosuch0|tcpdump is not installed|neither tcpdump nor)/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(existsSync(dir) ? readdirSync(dir) : []).toEqual([]);
  });

  it('watch --attach: nothing listening, a URL it cannot use, or capture options: one line, exit 2', async () => {
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as net.AddressInfo).port;
    await new Promise<void>((r) => holder.close(() => r()));
    let r = cli(['watch', '--attach', `http://127.0.0.1:${port}`, '--format', 'ndjson']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`hangscope: cannot attach to http://127.0.0.1:${port}: nothing listens on 127.0.0.1:${port}.\n`);
    r = cli(['watch', '--attach', 'https://127.0.0.1:9464', '--format', 'ndjson']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^hangscope: --attach: only http:\/\/ URLs are supported/);
    r = cli(['watch', '--attach', `http://127.0.0.1:${port}`, '--write', path.join(tmp, 'x.pcap')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^hangscope: --attach shows what a daemon captures/);
    expect(existsSync(path.join(tmp, 'x.pcap'))).toBe(false);
  });
});
