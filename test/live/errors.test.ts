/**
 * `hangscope watch` when it cannot capture: one line on standard error
 * saying what to do, exit status 2, nothing on standard output. Each case is
 * made for real: an interface that does not exist, a PATH without tcpdump
 * (and npm pcap hidden from the module loader), an unprivileged user
 * (setpriv or runuser to nobody).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, built, hasCommand, isRoot, libpcapBinding, need, tcpdumpPath } from './helpers.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'hangscope-errors-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function run(args: string[], o: { env?: NodeJS.ProcessEnv; prefix?: string[] } = {}) {
  const cmd = o.prefix ? o.prefix[0]! : process.execPath;
  const argv = o.prefix ? [...o.prefix.slice(1), process.execPath, BIN, 'watch', ...args] : [BIN, 'watch', ...args];
  const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 30_000, env: o.env ?? process.env, cwd: '/' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** One line on stderr, "hangscope: ...", no stack, exit 2, empty stdout. */
function expectUserError(r: ReturnType<typeof run>, pattern: RegExp): void {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^hangscope: /);
  expect(lines[0]).toMatch(pattern);
}

/** A PATH holding node but no tcpdump. */
function pathWithoutTcpdump(): string {
  const dir = path.join(tmp, 'bin');
  if (!existsSync(dir)) {
    spawnSync('mkdir', ['-p', dir]);
    spawnSync('ln', ['-s', process.execPath, path.join(dir, 'node')]);
  }
  return dir;
}

/** Preload that makes require('pcap') fail, as on a machine where the optional binding is not installed. */
function hidePcap(): string {
  const f = path.join(tmp, 'hide-pcap.cjs');
  writeFileSync(
    f,
    `const M = require('module'); const orig = M._resolveFilename;
M._resolveFilename = function (req, ...rest) { if (req === 'pcap') { const e = new Error("Cannot find module 'pcap'"); e.code = 'MODULE_NOT_FOUND'; throw e; } return orig.call(this, req, ...rest); };\n`,
  );
  return f;
}

const SUITE = 'live: error paths';
const ready = need(built, 'dist/ is missing (npm run build)', SUITE);

describe.runIf(ready)(SUITE, () => {
  it('bad options: exit 2 with the option named', () => {
    expectUserError(run(['--snaplen', '10', '-f', 'text']), /--snaplen wants a whole number from 64 to 262144/);
    expectUserError(run(['--duration', 'soon', '-f', 'text']), /--duration wants a number of seconds/);
    expectUserError(run(['--port', '70000', '-f', 'text']), /--port wants a TCP port number/);
    // No terminal here: the dashboard cannot run.
    expectUserError(run(['-f', 'tui']), /--format tui needs a terminal/);
  });

  const canCapture = isRoot && (tcpdumpPath !== null || libpcapBinding);
  it.runIf(need(canCapture, 'needs root and tcpdump or npm pcap', `${SUITE}: unknown interface`))('unknown interface', () => {
    expectUserError(run(['--interface', 'hsnosuch0', '--duration', '2', '-f', 'text']), /^hangscope: no such interface "hsnosuch0": `hangscope interfaces` lists them\.$/);
    if (libpcapBinding)
      expectUserError(
        run(['--interface', 'hsnosuch0', '--duration', '2', '-f', 'text', '--source', 'libpcap']),
        /^hangscope: no such interface "hsnosuch0"/,
      );
  });

  it.runIf(need(canCapture, 'needs root and tcpdump or npm pcap', `${SUITE}: bad filter`))('a filter the capture cannot compile', () => {
    expectUserError(run(['--interface', 'lo', '--filter', 'tcp port', '--duration', '2', '-f', 'text']), /cannot use the filter "tcp port": can't parse filter expression/);
  });

  // On systems where tcpdump lives in /usr/sbin or /sbin, hangscope finds it there even off PATH.
  const tcpdumpOnlyOnPath = tcpdumpPath === null || !['/usr/sbin', '/sbin'].includes(path.dirname(tcpdumpPath));
  it.runIf(need(tcpdumpOnlyOnPath, 'tcpdump is in /usr/sbin or /sbin, which hangscope searches even off PATH', `${SUITE}: no tcpdump`))(
    'no tcpdump: --source tcpdump says what to install; auto falls back to libpcap, or says to install either',
    () => {
      const env = { ...process.env, PATH: pathWithoutTcpdump() };
      expectUserError(run(['--interface', 'lo', '--duration', '1', '-f', 'text', '--source', 'tcpdump'], { env }), /tcpdump is not installed.*apt-get install tcpdump/);
      // Neither source: the binding hidden from the loader as well.
      const hidden = { ...env, NODE_OPTIONS: `--require ${hidePcap()}` };
      expectUserError(
        run(['--interface', 'lo', '--duration', '1', '-f', 'text'], { env: hidden }),
        /neither tcpdump nor the libpcap binding is available: install tcpdump \(apt-get install tcpdump\), or libpcap-dev and then `npm install pcap`/,
      );
      expectUserError(run(['--interface', 'lo', '--duration', '1', '-f', 'text', '--source', 'libpcap'], { env: hidden }), /libpcap binding \(npm pcap\) is not installed: install libpcap-dev/);
      if (libpcapBinding && isRoot) {
        const r = run(['--interface', 'lo', '--duration', '1', '-f', 'ndjson'], { env });
        expect(r.code, r.stderr).toBe(0);
        const stats = JSON.parse(r.stdout.trim().split('\n').pop()!);
        expect(stats.capture.source).toBe('libpcap');
      }
    },
  );

  const dropper = hasCommand('setpriv')
    ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']
    : hasCommand('runuser')
      ? ['runuser', '-u', 'nobody', '--']
      : null;
  // The unprivileged user must be able to reach the checkout: a clone inside a 0700 folder (mktemp -d) is
  // out of its reach, and then the CLI cannot even start as that user. That is the checkout's place, not a
  // missing tool, so it is a skip with its reason even under CI.
  const reachable =
    isRoot && dropper !== null && spawnSync(dropper[0]!, [...dropper.slice(1), 'test', '-r', BIN], { timeout: 10_000 }).status === 0;
  if (isRoot && dropper !== null && !reachable)
    console.log(`[skip] ${SUITE}: no privilege: the unprivileged user cannot read ${BIN} (the checkout sits in a folder closed to it)`);
  it.runIf(
    need(isRoot && dropper !== null, 'needs root and setpriv or runuser to become an unprivileged user', `${SUITE}: no privilege`) && reachable,
  )('no privilege: run as root or with CAP_NET_RAW and CAP_NET_ADMIN', () => {
    const want = /^hangscope: no permission to capture on (lo|any): run as root or with CAP_NET_RAW and CAP_NET_ADMIN \(e\.g\. kubectl debug --profile=netadmin\)\.$/;
    if (tcpdumpPath !== null) expectUserError(run(['--interface', 'lo', '--duration', '2', '-f', 'text', '--source', 'tcpdump'], { prefix: dropper! }), want);
    if (libpcapBinding) expectUserError(run(['--interface', 'any', '--duration', '2', '-f', 'text', '--source', 'libpcap'], { prefix: dropper! }), want);
  });
});

describe.runIf(ready)('hangscope interfaces', () => {
  it('lists lo and any (what /sys/class/net and libpcap know), any as the default', () => {
    const r = spawnSync(process.execPath, [BIN, 'interfaces'], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status).toBe(0);
    const names = r.stdout
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(/\s+/)[0])
      .filter((n) => n);
    expect(names).toContain('lo');
    expect(names).toContain('any');
    expect(r.stdout).toMatch(/^ {2}any\s.*\(default\)$/m);
    if (existsSync('/sys/class/net')) {
      const sys = spawnSync('ls', ['/sys/class/net'], { encoding: 'utf8' }).stdout.split('\n').filter((n) => n);
      for (const n of sys.filter((x) => x === 'lo' || x.startsWith('eth'))) expect(names).toContain(n);
    }
  });
});
