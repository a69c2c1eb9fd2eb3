/**
 * Files hangscope writes: reports (analyze --output), captures and stream
 * output (watch --write / --output), the daemon's folder. They hold secrets
 * (captures always do; reports with --show-secrets), so:
 *  - each is created with mode 0600 whatever the umask (run under umask 000),
 *    and an existing file the user names is made 0600 too;
 *  - a device node the user names (`-o /dev/null`) is written to, never
 *    chmod-ed (checked on a null device made here with mknod, not the real one);
 *  - nothing is written, created, renamed or deleted anywhere but the paths
 *    the user named: every file system call of the process and its children
 *    (tcpdump) traced with strace, and the working, home and temp folders
 *    (fresh, empty ones) compared before and after.
 * watch and daemon need root and tcpdump; without them (or without strace
 * for the trace) those parts skip with a printed reason, unless CI=true.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { hasCommand as has, isRoot, need } from '../need.js';
import { afterAll, describe, expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(here, '../..');
const MAIN = path.join(REPO, 'dist/cli/main.js');
const FIXTURE = path.join(here, 'fixtures/secrets.pcap');

const tmp = mkdtempSync(path.join(tmpdir(), 'hangscope-files-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const mode = (p: string): number => statSync(p).mode & 0o777;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** hangscope under `umask 000` (so a missing explicit mode would show as 0666), in `cwd` with HOME and TMPDIR set. */
function hangscope(args: string[], o: { cwd?: string; env?: NodeJS.ProcessEnv; strace?: string; timeoutMs?: number } = {}): Run {
  const cmd = [process.execPath, MAIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const traced = o.strace
    ? `strace -f -qq -e trace=open,openat,openat2,creat,mkdir,mkdirat,rename,renameat,renameat2,unlink,unlinkat,rmdir,link,linkat,symlink,symlinkat,truncate,chmod,fchmodat,chown,fchownat,mknod,mknodat -o '${o.strace}' ${cmd}`
    : cmd;
  const r = spawnSync('sh', ['-c', `umask 000; exec ${traced}`], {
    cwd: o.cwd ?? tmp,
    env: { ...process.env, ...(o.env ?? {}) },
    encoding: 'utf8',
    timeout: o.timeoutMs ?? 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Paths the traced processes created, wrote, renamed, deleted or changed the
 * mode or owner of (from strace's output; failed calls left out).
 */
function touched(trace: string): string[] {
  const out = new Set<string>();
  for (const line of readFileSync(trace, 'utf8').split('\n')) {
    // A call interrupted by another thread's ("<unfinished ...>") has its result on a later line:
    // counted as if it succeeded (stricter).
    const m = /^\d+\s+(\w+)\((.*?)(?:\)\s+=\s+(-?\d+).*| <unfinished \.\.\.>)$/.exec(line);
    if (m === null || (m[3] !== undefined && Number(m[3]) < 0)) continue;
    const [, call, argsText] = m;
    const paths = [...argsText!.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((x) => x[1]!);
    if (/^open/.test(call!) || call === 'creat') {
      if (call === 'creat' || /O_WRONLY|O_RDWR|O_CREAT|O_TRUNC/.test(argsText!)) out.add(paths[0]!);
    } else out.add(paths.join(' -> '));
  }
  return [...out].sort();
}

function snapshot(dirs: string[]): string {
  const list: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      list.push(p);
      if (e.isDirectory()) walk(p);
    }
  };
  for (const d of dirs) walk(d);
  return list.sort().join('\n');
}

// ---------------------------------------------------------------- analyze

describe('analyze --output', () => {
  it('creates the report with mode 0600 under umask 000', () => {
    const f = path.join(tmp, 'new-report.json');
    const r = hangscope(['analyze', FIXTURE, '--format', 'json', '--output', f]);
    expect(r.status, r.stderr).toBe(0);
    expect(mode(f).toString(8)).toBe('600');
  });

  it('makes an existing report file 0600 (it was 0644)', () => {
    const f = path.join(tmp, 'old-report.html');
    writeFileSync(f, 'old');
    chmodSync(f, 0o644);
    const r = hangscope(['analyze', FIXTURE, '--format', 'html', '--output', f]);
    expect(r.status, r.stderr).toBe(0);
    expect(mode(f).toString(8)).toBe('600');
    expect(readFileSync(f, 'utf8')).toContain('<!DOCTYPE html>');
  });

  it.runIf(isRoot)('a device node given as --output is written to, not chmod-ed', () => {
    const dev = path.join(tmp, 'null-device');
    expect(spawnSync('mknod', ['-m', '666', dev, 'c', '1', '3']).status).toBe(0);
    const r = hangscope(['analyze', FIXTURE, '--output', dev]);
    expect(r.status, r.stderr).toBe(0);
    expect(mode(dev).toString(8)).toBe('666');
    rmSync(dev);
  });

  it.runIf(need(has('strace'), 'strace is not installed (apt-get install strace)', 'files: analyze traced'))(
    'writes nothing but the named report (strace of every file call; cwd, HOME and TMPDIR unchanged)',
    () => {
      const cwd = mkdtempSync(path.join(tmp, 'cwd-'));
      const home = mkdtempSync(path.join(tmp, 'home-'));
      const t = mkdtempSync(path.join(tmp, 'tmpdir-'));
      const out = path.join(tmp, 'named', 'report.txt');
      mkdirSync(path.dirname(out));
      const trace = path.join(tmp, 'analyze.strace');
      const before = snapshot([cwd, home, t]);
      for (const format of ['text', 'json', 'ndjson', 'html']) {
        const r = hangscope(['analyze', FIXTURE, '--format', format, '--output', out, '--progress'], { cwd, env: { HOME: home, TMPDIR: t }, strace: trace });
        expect(r.status, r.stderr).toBe(0);
        expect(touched(trace), format).toEqual([out]);
      }
      // Standard output too: nothing but the pipe.
      const r = hangscope(['analyze', FIXTURE], { cwd, env: { HOME: home, TMPDIR: t }, strace: trace });
      expect(r.status).toBe(0);
      expect(touched(trace)).toEqual([]);
      expect(snapshot([cwd, home, t])).toBe(before);
    },
  );
});

// ---------------------------------------------------------------- watch and daemon

const LIVE = 'files: watch and daemon';
const live = need(isRoot, 'not root (live capture needs it)', LIVE) && need(has('tcpdump'), 'tcpdump is not installed', LIVE);
const traced = live && need(has('strace'), 'strace is not installed (apt-get install strace)', `${LIVE} traced`);

describe.runIf(live)('watch --write / --output', () => {
  it('creates the capture and the output with mode 0600 under umask 000; an existing 0644 capture becomes 0600', () => {
    const w = path.join(tmp, 'live.pcap');
    const o = path.join(tmp, 'live.txt');
    const r = hangscope(['watch', '-i', 'lo', '--port', '9', '--duration', '1', '--write', w, '--output', o, '--format', 'text']);
    expect(r.status, r.stderr).toBe(0);
    expect(mode(w).toString(8)).toBe('600');
    expect(mode(o).toString(8)).toBe('600');
    // A valid (empty) pcap: the 24-byte file header.
    expect(statSync(w).size).toBe(24);
    chmodSync(w, 0o644);
    const r2 = hangscope(['watch', '-i', 'lo', '--port', '9', '--duration', '1', '--write', w, '--format', 'ndjson']);
    expect(r2.status, r2.stderr).toBe(0);
    expect(mode(w).toString(8)).toBe('600');
  });

  it('a device node given as --write is written to, not chmod-ed', () => {
    const dev = path.join(tmp, 'null-device-2');
    expect(spawnSync('mknod', ['-m', '666', dev, 'c', '1', '3']).status).toBe(0);
    const r = hangscope(['watch', '-i', 'lo', '--port', '9', '--duration', '1', '--write', dev, '--format', 'ndjson']);
    expect(r.status, r.stderr).toBe(0);
    expect(mode(dev).toString(8)).toBe('666');
    rmSync(dev);
  });

  it.runIf(traced)('watch writes nothing but --write and --output (hangscope and tcpdump traced)', () => {
    const cwd = mkdtempSync(path.join(tmp, 'wcwd-'));
    const home = mkdtempSync(path.join(tmp, 'whome-'));
    const t = mkdtempSync(path.join(tmp, 'wtmp-'));
    const w = path.join(tmp, 'traced.pcap');
    const o = path.join(tmp, 'traced.out');
    const trace = path.join(tmp, 'watch.strace');
    const before = snapshot([cwd, home, t]);
    const r = hangscope(['watch', '-i', 'lo', '--port', '9', '--duration', '2', '--write', w, '--output', o, '--format', 'text'], {
      cwd,
      env: { HOME: home, TMPDIR: t },
      strace: trace,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(touched(trace)).toEqual([o, w].sort());
    expect(snapshot([cwd, home, t])).toBe(before);
  });

  it.runIf(traced)('daemon writes only inside its --dir', () => {
    const cwd = mkdtempSync(path.join(tmp, 'dcwd-'));
    const home = mkdtempSync(path.join(tmp, 'dhome-'));
    const t = mkdtempSync(path.join(tmp, 'dtmp-'));
    const dir = path.join(tmp, 'daemon-dir');
    const trace = path.join(tmp, 'daemon.strace');
    const before = snapshot([cwd, home, t]);
    const r = hangscope(['daemon', '-i', 'lo', '--port', '9', '--duration', '2', '--dir', dir, '--metrics-listen', '127.0.0.1:0'], {
      cwd,
      env: { HOME: home, TMPDIR: t },
      strace: trace,
    });
    expect(r.status, r.stderr).toBe(0);
    const outside = touched(trace).filter((p) => p !== dir && !p.startsWith(`${dir}/`));
    expect(outside).toEqual([]);
    expect(snapshot([cwd, home, t])).toBe(before);
    expect(mode(dir).toString(8)).toBe('700');
    for (const f of readdirSync(dir)) expect(mode(path.join(dir, f)).toString(8), f).toBe('600');
    expect(existsSync(dir)).toBe(true);
  });
});
