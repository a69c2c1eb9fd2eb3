/**
 * Helpers for the live fault and soak tests: prerequisites, child processes
 * with bounded lifetimes (killed by PID, never by name), a process's children
 * from /proc, and checking that a --write file is a valid capture.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readCapture } from '../../lib/capture/index.js';
import { Anomalies } from '../../lib/types.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '../..');
export const MAIN = path.join(REPO, 'dist/cli/main.js');
export const TRAFFIC = path.join(here, 'traffic.mjs');
export const IN_CI = process.env.CI === 'true';
export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
export const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

export function need(ok: boolean, why: string, suite: string): boolean {
  if (ok) return true;
  if (IN_CI) throw new Error(`${suite}: ${why}, and CI=true requires it`);
  console.log(`[skip] ${suite}: ${why}`);
  return false;
}

export interface Running {
  child: ChildProcess;
  pid: number;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children = new Set<ChildProcess>();

/** Start a process (stdout and stderr collected); killed with SIGKILL after `timeoutMs`, and by killAll(). */
export function start(cmd: string, args: string[], timeoutMs: number, stdio: 'pipe' | 'ignore-stdout' = 'pipe'): Running {
  const child = spawn(cmd, args, { cwd: REPO, stdio: ['ignore', stdio === 'pipe' ? 'pipe' : 'ignore', 'pipe'] });
  children.add(child);
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code, signal });
    }),
  );
  return { child, pid: child.pid!, stdout: () => out, stderr: () => err, exited };
}

/** Kill (SIGKILL, by PID) every process started here that is still running, and their children. */
export function killAll(): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) {
      for (const pid of childPids(c.pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      c.kill('SIGKILL');
    }
  }
  children.clear();
}

/** PIDs whose parent is `pid` (any of its threads), from /proc. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        for (const t of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/)) if (t) out.push(Number(t));
      } catch {
        /* thread gone */
      }
    }
  } catch {
    /* process gone */
  }
  return out;
}

export function alive(pid: number): boolean {
  // A zombie still has /proc/pid: read its state.
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/** The tcpdump that `watchPid` started (its child whose command is tcpdump). */
export function tcpdumpOf(watchPid: number): number | null {
  for (const p of childPids(watchPid)) {
    try {
      if (readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'tcpdump') return p;
    } catch {
      /* gone */
    }
  }
  return null;
}

export async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface CaptureCheck {
  /** Records our reader delivered. */
  packets: number;
  /** Anomalies our reader counted (a cut last record is 'truncated-record'). */
  anomalies: Record<string, number>;
  /** tshark read it without complaint (null: tshark not installed). */
  tsharkOk: boolean | null;
  tsharkPackets: number | null;
  tsharkStderr: string;
}

/** Read a capture with our reader and with tshark (when installed). */
export async function checkCapture(file: string): Promise<CaptureCheck> {
  const anomalies = new Anomalies();
  const info = await readCapture(file, () => {}, { anomalies });
  let tsharkOk: boolean | null = null;
  let tsharkPackets: number | null = null;
  let tsharkStderr = '';
  if (has('tshark')) {
    const r = spawnSync('tshark', ['-n', '-r', file, '-T', 'fields', '-e', 'frame.number'], { encoding: 'utf8', maxBuffer: 256 << 20 });
    tsharkStderr = r.stderr.trim();
    tsharkOk = r.status === 0 && !/cut short|appears to be damaged|corrupt/i.test(r.stderr);
    tsharkPackets = r.stdout.split('\n').filter((l) => l !== '').length;
  }
  return { packets: info.packets, anomalies: anomalies.toJSON(), tsharkOk, tsharkPackets, tsharkStderr };
}

/** The lines hangscope wrote on stderr after "listening on". */
export function afterListening(stderr: string): string[] {
  const lines = stderr.split('\n').filter((l) => l !== '');
  const i = lines.findIndex((l) => l.includes('listening on'));
  return lines.slice(i + 1);
}

export { existsSync };
