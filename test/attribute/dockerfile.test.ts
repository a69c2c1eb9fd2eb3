/**
 * The container image (Dockerfile) installs its Debian packages through the
 * script the tests run (scripts/install-system-deps.sh, from test/run.sh),
 * in its --runtime mode, whose list is part of the test mode's list.
 *
 * No container engine runs on the machine these tests were written on (the
 * docker client is there, no daemon), so the image is not built here.
 * Instead: the Dockerfile is read and its instructions checked, the script's
 * modes are run (listing, and --runtime twice: idempotent), and the build
 * stage's RUN steps are replayed in a scratch folder (npm ci without scripts,
 * build, prune to production dependencies, then the runtime stage's
 * `hangscope --version` and an analysis with only production dependencies).
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { IN_CI, REPO } from './helpers.js';

const SCRIPT = 'scripts/install-system-deps.sh';

interface Instruction {
  op: string;
  args: string;
  stage: number;
}

/** Dockerfile instructions (continuation lines joined, comments dropped), with their stage index. */
function instructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  let cur = '';
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (cur === '' && (line.trim() === '' || line.trim().startsWith('#'))) continue;
    if (line.endsWith('\\')) {
      cur += `${line.slice(0, -1)} `;
      continue;
    }
    cur += line;
    const m = /^\s*(\w+)\s+(.*)$/.exec(cur);
    cur = '';
    if (m === null) continue;
    const op = m[1]!.toUpperCase();
    if (op === 'FROM') stage++;
    out.push({ op, args: m[2]!.trim(), stage });
  }
  return out;
}

function script(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('bash', [SCRIPT, ...args], { cwd: REPO, encoding: 'utf8', timeout: 900_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const dockerfile = readFileSync(path.join(REPO, 'Dockerfile'), 'utf8');
const ins = instructions(dockerfile);
const last = Math.max(...ins.map((i) => i.stage));
const runtime = ins.filter((i) => i.stage === last);

describe('Dockerfile', () => {
  it('two stages on Node 20 / Debian bookworm (slim)', () => {
    const froms = ins.filter((i) => i.op === 'FROM').map((i) => i.args);
    expect(froms).toEqual(['node:20-bookworm-slim AS build', 'node:20-bookworm-slim']);
  });

  it('the image installs through the script test/run.sh runs, in --runtime mode', () => {
    const runSh = readFileSync(path.join(REPO, 'test/run.sh'), 'utf8');
    expect(runSh).toMatch(new RegExp(`^bash ${SCRIPT.replace(/[.]/g, '\\.')}$`, 'm'));
    expect(runtime).toContainEqual({ op: 'COPY', args: `${SCRIPT} ./${SCRIPT}`, stage: last });
    const run = runtime.find((i) => i.op === 'RUN' && i.args.includes(SCRIPT));
    expect(run?.args).toMatch(new RegExp(`^bash ${SCRIPT.replace(/[.]/g, '\\.')} --runtime( |$)`));
    // Nothing else in the image installs Debian packages.
    for (const i of ins.filter((x) => x.op === 'RUN')) expect(i.args).not.toMatch(/apt-get install|apt install|dpkg -i/);
  });

  it('builds with the dev dependencies, ships only production ones; hangscope is the entry point', () => {
    const build = ins.filter((i) => i.stage === 0 && i.op === 'RUN').map((i) => i.args);
    expect(build).toEqual(['npm ci --no-audit --no-fund --ignore-scripts', 'npm run build && npm prune --omit=dev --no-audit --no-fund']);
    expect(runtime.find((i) => i.op === 'ENTRYPOINT')?.args).toBe('["hangscope"]');
    expect(runtime.some((i) => i.op === 'RUN' && i.args.startsWith('ln -s /opt/hangscope/bin/hangscope.js /usr/local/bin/hangscope'))).toBe(true);
    const mode = spawnSync('git', ['ls-files', '-s', 'bin/hangscope.js'], { cwd: REPO, encoding: 'utf8' }).stdout;
    expect(mode.startsWith('100755')).toBe(true);
    expect(readFileSync(path.join(REPO, 'bin/hangscope.js'), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
  });

  it('every file it copies from the context exists and is not excluded by .dockerignore', () => {
    const ignore = readFileSync(path.join(REPO, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    const sources = ins
      .filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    expect(sources.length).toBeGreaterThan(5);
    for (const s of sources) {
      expect(existsSync(path.join(REPO, s)), s).toBe(true);
      for (const pat of ignore) {
        if (pat.startsWith('*')) expect(s.endsWith(pat.slice(1)), `${s} vs ${pat}`).toBe(false);
        else expect(s === pat || s.startsWith(`${pat}/`), `${s} vs ${pat}`).toBe(false);
      }
    }
  });
});

describe('scripts/install-system-deps.sh', () => {
  const full = script('--list').stdout.trim().split('\n');
  const rt = script('--list', '--runtime').stdout.trim().split('\n');

  it("--runtime's list is part of the full list, and holds what the image needs", () => {
    for (const p of rt) expect(full).toContain(p);
    expect(rt).toEqual(['tcpdump', 'libpcap0.8', 'bpftrace', 'iproute2']);
    // Test-only tools stay out of the image.
    for (const p of ['tshark', 'chromium', 'python3-uvicorn', 'tmux']) {
      expect(full).toContain(p);
      expect(rt).not.toContain(p);
    }
  });

  it('every package name is known to apt (Debian bookworm)', () => {
    if (spawnSync('sh', ['-c', 'command -v apt-cache'], { encoding: 'utf8' }).status !== 0) {
      console.log('[skip] package names: no apt-cache');
      return;
    }
    const r = spawnSync('apt-cache', ['policy', ...full], { encoding: 'utf8' });
    for (const p of full) expect(r.stdout, p).toMatch(new RegExp(`^${p.replace(/[.]/g, '\\.')}:\\n\\s+Installed: .*\\n\\s+Candidate: (?!\\(none\\))`, 'm'));
  });

  it('--runtime is idempotent (the image build may run it on a system that has everything)', () => {
    const first = script('--runtime');
    expect(first.status).toBe(0);
    const second = script('--runtime');
    expect(second.status).toBe(0);
    const root = typeof process.getuid === 'function' && process.getuid() === 0;
    if (root) {
      // Root: after the first run everything is installed, so the second has nothing to do or say.
      expect(second.stderr).toBe('');
      for (const p of rt) expect(spawnSync('dpkg-query', ['-W', '-f=${Status}', p], { encoding: 'utf8' }).stdout).toBe('install ok installed');
    } else expect(second.stderr).toBe(first.stderr);
  });

  it('an unknown option is refused', () => {
    const r = script('--nope');
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('unknown option --nope');
  });
});

describe("the build stage's steps, replayed in a scratch folder", () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'hangscope-image-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const sh = (cmd: string, timeout = 600_000) => spawnSync('sh', ['-c', cmd], { cwd: dir, encoding: 'utf8', timeout });

  it('npm ci (no scripts), build, prune to production: hangscope runs and analyzes with production dependencies only', { timeout: 900_000 }, () => {
    for (const f of ['package.json', 'package-lock.json', 'tsconfig.json']) cpSync(path.join(REPO, f), path.join(dir, f));
    const ci = sh('npm ci --no-audit --no-fund --ignore-scripts');
    if (ci.status !== 0) {
      const why = `npm ci failed (registry unreachable?): ${ci.stderr.trim().split('\n').at(-1)}`;
      if (IN_CI) throw new Error(why);
      console.log(`[skip] build stage: ${why}`);
      return;
    }
    for (const d of ['bin', 'lib', 'cli', 'dashboards']) cpSync(path.join(REPO, d), path.join(dir, d), { recursive: true });
    const build = sh('npm run build && npm prune --omit=dev --no-audit --no-fund');
    expect(build.status, build.stderr).toBe(0);
    expect(existsSync(path.join(dir, 'node_modules/typescript'))).toBe(false);
    expect(existsSync(path.join(dir, 'node_modules/vitest'))).toBe(false);
    expect(existsSync(path.join(dir, 'dist/lib/attribute/index.js'))).toBe(true);
    const pkg = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { version: string };
    const version = sh('node bin/hangscope.js --version');
    expect(version.stdout.trim()).toBe(pkg.version);
    const analyze = sh(`node bin/hangscope.js analyze ${JSON.stringify(path.join(REPO, 'samples/incident.pcap'))} --format json`);
    expect(analyze.status, analyze.stderr).toBe(0);
    expect((JSON.parse(analyze.stdout) as { tool: string }).tool).toBe('hangscope');
    const help = sh('node bin/hangscope.js watch --help');
    expect(help.stdout).toContain('--attribute');
  });
});
