/**
 * Helpers for the live-capture tests: prerequisites (root, tcpdump, the
 * libpcap binding), child processes with bounded lifetimes (killed by PID in
 * afterAll), and the incident's server and client from this folder.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '../..');
export const BIN = path.join(REPO, 'bin/hangscope.js');
export { IN_CI, hasCommand, isRoot, need } from '../need.js';
export const tcpdumpPath = ((): string | null => {
  for (const d of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    const p = path.join(d, 'tcpdump');
    if (d !== '' && existsSync(p)) return p;
  }
  return null;
})();
export const libpcapBinding = ((): boolean => {
  try {
    createRequire(path.join(REPO, 'package.json'))('pcap');
    return true;
  } catch {
    return false;
  }
})();
export const built = existsSync(path.join(REPO, 'dist/cli/main.js'));

/** Every child a test starts; afterAll kills the ones still running, by PID. */
const children = new Set<ChildProcess>();
export function track(c: ChildProcess): ChildProcess {
  children.add(c);
  c.on('exit', () => children.delete(c));
  return c;
}
export function killAll(): void {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null && c.pid !== undefined) {
      // Its own children first (tcpdump under hangscope), found by parent PID.
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

/** PIDs whose parent is `pid`, whichever of its threads started them (Linux /proc). */
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

export interface Running {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit code (or the signal) when the process ends. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function start(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs: number }): Running {
  const child = track(spawn(cmd, args, { cwd: REPO, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] }));
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    }),
  );
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Wait until `cond()` holds, polling; throws after `ms`. */
export async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The incident's server (incident-server.mjs) on a free loopback port. */
export async function startServer(execDelayMs: number): Promise<{ run: Running; port: number }> {
  const run = start(process.execPath, [path.join(here, 'incident-server.mjs')], {
    env: { ...process.env, EXEC_DELAY_MS: String(execDelayMs) },
    timeoutMs: 120_000,
  });
  await until(() => run.stdout().includes('\n'), 10_000, 'the test server to listen');
  return { run, port: JSON.parse(run.stdout().split('\n')[0]!).port as number };
}

export interface ClientEvent {
  ts: number;
  event: string;
  [k: string]: unknown;
}

/** Runs the incident's client (incident-client.mjs) to the end; its own log, one event per line. */
export async function runClient(port: number): Promise<ClientEvent[]> {
  const run = start(process.execPath, [path.join(here, 'incident-client.mjs'), `http://127.0.0.1:${port}`], { timeoutMs: 30_000 });
  const { code } = await run.exited;
  if (code !== 0) throw new Error(`client failed (${code}): ${run.stderr()}`);
  return run
    .stdout()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as ClientEvent);
}

