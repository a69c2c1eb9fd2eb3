/**
 * Helpers for the live fault and soak tests: prerequisites, child processes
 * with bounded lifetimes (killed by PID, never by name), a process's children
 * from /proc, and checking that a --write file is a valid capture.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { childPids, hasCommand as has, track } from '../live/helpers.js';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readCapture } from '../../lib/capture/index.js';
import { Anomalies } from '../../lib/types.js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '../..');
export const MAIN = path.join(REPO, 'dist/cli/main.js');
export const TRAFFIC = path.join(here, 'traffic.mjs');
export { IN_CI, childPids, isRoot, killAll, need, until, hasCommand as has } from '../live/helpers.js';

export interface Running {
  child: ChildProcess;
  pid: number;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Start a process (stdout and stderr collected); killed with SIGKILL after `timeoutMs`, and by killAll()
 * (test/live/helpers.ts: the processes it tracks, and their children, by PID).
 */
export function start(cmd: string, args: string[], timeoutMs: number, stdio: 'pipe' | 'ignore-stdout' = 'pipe'): Running {
  const child = track(spawn(cmd, args, { cwd: REPO, stdio: ['ignore', stdio === 'pipe' ? 'pipe' : 'ignore', 'pipe'] }));
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    }),
  );
  return { child, pid: child.pid!, stdout: () => out, stderr: () => err, exited };
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
