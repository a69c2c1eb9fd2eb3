/**
 * Running bpftrace (Debian's `bpftrace` package) with our program (script.ts)
 * and turning its output into events (events.ts).
 *
 * tracefs: bpftrace finds tracepoints through tracefs (/sys/kernel/tracing).
 * Many containers and some hosts do not mount it; then every tracepoint is
 * "not found". When it is missing and we may mount (root), bpftrace runs in
 * a private mount namespace with tracefs mounted there:
 *   unshare -m sh -c 'mount -t tracefs nodev /sys/kernel/tracing && exec bpftrace ...'
 * (util-linux unshare makes the new namespace's mounts private, so nothing
 * leaks to the host). unshare without --fork execs, and so do sh and its
 * `exec`: the PID we spawn is bpftrace's own, and stop() signals it.
 *
 * Nothing here throws at the caller for a missing tool or privilege: start
 * resolves to null with one notice line saying what is missing or what to do.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { delimiter, join } from 'node:path';
import { ClockMap, monoNowUs, sampleClock } from './clock.js';
import { parseLine, type TraceEvent } from './events.js';
import { TRACEPOINTS, buildScript, parseFormats, type TracepointFormats } from './script.js';

export const TRACEFS = '/sys/kernel/tracing';
const DEBUGFS_TRACING = '/sys/kernel/debug/tracing';
export const MOUNT_HINT = `mount -t tracefs nodev ${TRACEFS}`;
export const PRIVILEGE_HINT_EBPF = 'run as root (in Kubernetes: kubectl debug --profile=sysadmin)';

export interface BpftraceOptions {
  /** Ports to trace (connections with either end on one of them). */
  ports: number[];
  /** Each parsed event, as it arrives. Its monoUs is on CLOCK_MONOTONIC: convert with `clock`. */
  onEvent: (e: TraceEvent) => void;
  /** Every raw output line (to record a session). */
  onLine?: (line: string) => void;
  /** bpftrace executable (default: found on PATH). */
  bpftrace?: string;
  /** How long compiling and attaching may take (ms, default 60000: LLVM is slow on small machines). */
  startTimeoutMs?: number;
}

export interface BpftraceSession {
  readonly pid: number;
  /** CLOCK_MONOTONIC -> epoch µs for this session's events. */
  readonly clock: ClockMap;
  /** How bpftrace was run: 'direct' (tracefs already mounted) or 'unshare' (mounted in a private namespace). */
  readonly tracefs: 'direct' | 'unshare';
  readonly used: string[];
  readonly missing: string[];
  /** Things the user should know (clock quality). */
  readonly notes: string[];
  /** Lines that were not events (bpftrace messages, damaged lines). */
  unparsed: number;
  events: number;
  /** Resolves when bpftrace exits (after stop(), or by itself: then with its last stderr line). */
  readonly ended: Promise<string | null>;
  /** SIGINT by PID, then SIGKILL after 3 s; resolves once it has exited. */
  stop(): Promise<void>;
}

function onPath(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
    const p = join(dir, cmd);
    if (dir && existsSync(p)) return p;
  }
  return null;
}

/** Where the tracepoint formats are readable now, or null (tracefs not mounted). */
export function tracefsPath(): string | null {
  for (const base of [TRACEFS, DEBUGFS_TRACING]) {
    if (existsSync(join(base, 'events', TRACEPOINTS.setState, 'format'))) return base;
  }
  return null;
}

const FORMAT_DUMP = (base: string): string =>
  `cd ${base}/events && for f in ${Object.values(TRACEPOINTS).join(' ')}; do echo "== $f"; cat "$f/format" 2>/dev/null; done`;

/** The sh -c prefix that mounts tracefs (private namespace), or '' when it is mounted already. */
function mountPrefix(mode: 'direct' | 'unshare'): string {
  return mode === 'unshare' ? `mount -t tracefs nodev ${TRACEFS} && ` : '';
}

function wrap(mode: 'direct' | 'unshare', shell: string, argv: string[]): { cmd: string; args: string[] } {
  if (mode === 'direct') return { cmd: 'sh', args: ['-c', shell, 'sh', ...argv] };
  return { cmd: 'unshare', args: ['-m', 'sh', '-c', shell, 'sh', ...argv] };
}

export type ProbeResult =
  | { ok: true; mode: 'direct' | 'unshare'; formats: TracepointFormats; dump: string; bpftrace: string; btf: boolean }
  | { ok: false; notice: string };

/**
 * Finds bpftrace, checks the privilege, reads the tracepoint formats (mounting
 * tracefs in a private mount namespace when it is not mounted).
 */
export function probe(o: { bpftrace?: string } = {}): ProbeResult {
  const bpftrace = o.bpftrace ?? onPath('bpftrace');
  if (bpftrace === null || !existsSync(bpftrace)) return { ok: false, notice: 'bpftrace is not installed (apt-get install bpftrace)' };
  if (typeof process.getuid === 'function' && process.getuid() !== 0)
    return { ok: false, notice: `eBPF needs root: ${PRIVILEGE_HINT_EBPF}` };
  const btf = existsSync('/sys/kernel/btf/vmlinux');
  const mounted = tracefsPath();
  if (mounted !== null) {
    const r = spawnSync('sh', ['-c', FORMAT_DUMP(mounted)], { encoding: 'utf8', timeout: 10_000 });
    return { ok: true, mode: 'direct', formats: parseFormats(r.stdout ?? ''), dump: r.stdout ?? '', bpftrace, btf };
  }
  if (onPath('unshare') === null)
    return { ok: false, notice: `tracefs is not mounted and unshare (util-linux) is missing: run \`${MOUNT_HINT}\` as root, then retry` };
  const r = spawnSync('unshare', ['-m', 'sh', '-c', `${mountPrefix('unshare')}${FORMAT_DUMP(TRACEFS)}`], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0 || !(r.stdout ?? '').includes('field:')) {
    const why = firstLine(r.stderr ?? '') || (r.error?.message ?? `exit ${r.status}`);
    return {
      ok: false,
      notice: `tracefs is not mounted at ${TRACEFS} and mounting it in a private mount namespace failed (${why}): run \`${MOUNT_HINT}\` as root (or give the container CAP_SYS_ADMIN, kubectl debug --profile=sysadmin), then retry`,
    };
  }
  return { ok: true, mode: 'unshare', formats: parseFormats(r.stdout), dump: r.stdout, bpftrace, btf };
}

function firstLine(s: string): string {
  return s.split('\n').map((l) => l.trim()).find((l) => l.length > 0) ?? '';
}

/** bpftrace's stderr lines that are not a failure. */
function benign(line: string): boolean {
  // This machine's bpftrace prints the RLIMIT_MEMLOCK line and then works (the kernel accounts BPF memory by cgroup since 5.11).
  return /^Attaching \d+ probes?/.test(line) || /RLIMIT_MEMLOCK/.test(line) || /^\s*$/.test(line);
}

/**
 * Starts bpftrace and resolves once its probes are attached (its BEGIN line),
 * or to `{notice}` when it cannot run. Never rejects for a missing tool or privilege.
 */
export async function startBpftrace(o: BpftraceOptions): Promise<BpftraceSession | { notice: string }> {
  const p = probe(o.bpftrace !== undefined ? { bpftrace: o.bpftrace } : {});
  if (!p.ok) return { notice: p.notice };
  let built;
  try {
    built = buildScript({ ports: o.ports, formats: p.formats, btf: p.btf });
  } catch (e) {
    return { notice: (e as Error).message };
  }
  const { cmd, args } = wrap(p.mode, `${mountPrefix(p.mode)}exec "$@"`, [p.bpftrace, '-B', 'none', '-e', built.text]);
  const clock = new ClockMap();
  const before = sampleClock();
  const spawnedMono = monoNowUs();
  let child: ChildProcess;
  try {
    child = spawn(cmd, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, BPFTRACE_MAP_KEYS_MAX: '65536' },
    });
  } catch (e) {
    return { notice: `cannot run bpftrace: ${(e as Error).message}` };
  }
  const pid = child.pid;
  if (pid === undefined) return { notice: 'cannot run bpftrace' };
  let stderrTail = '';
  let failure: string | null = null;
  const errLines = createInterface({ input: child.stderr! });
  errLines.on('line', (l) => {
    if (!benign(l)) {
      failure ??= l.trim();
      stderrTail = l.trim();
    }
  });
  let exited = false;
  const ended = new Promise<string | null>((resolve) => {
    child.on('close', () => {
      exited = true;
      resolve(stderrTail || null);
    });
    child.on('error', (e) => {
      exited = true;
      failure ??= e.message;
      resolve(e.message);
    });
  });
  const session: BpftraceSession = {
    pid,
    clock,
    tracefs: p.mode,
    used: built.used,
    missing: built.missing,
    notes: [],
    unparsed: 0,
    events: 0,
    ended,
    async stop() {
      if (exited) return;
      try {
        process.kill(pid, 'SIGINT');
      } catch {
        /* already gone */
      }
      const t = setTimeout(() => {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }, 3000);
      await ended;
      clearTimeout(t);
    },
  };
  let begin: ((mono: number) => void) | null = null;
  const begun = new Promise<number>((r) => (begin = r));
  const out = createInterface({ input: child.stdout! });
  out.on('line', (line) => {
    o.onLine?.(line);
    const e = parseLine(line);
    if (e === null) {
      session.unparsed++;
      return;
    }
    if (e.type === 'begin') {
      begin?.(e.monoUs);
      begin = null;
      return;
    }
    session.events++;
    o.onEvent(e);
  });
  const timeoutMs = o.startTimeoutMs ?? 60_000;
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    begun.then((mono) => ({ kind: 'begun' as const, mono })),
    ended.then(() => ({ kind: 'ended' as const, mono: 0 })),
    new Promise<{ kind: 'timeout'; mono: number }>((r) => {
      timer = setTimeout(() => r({ kind: 'timeout', mono: 0 }), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (outcome.kind !== 'begun') {
    await session.stop();
    const why = outcome.kind === 'timeout' ? `did not attach within ${timeoutMs / 1000} s` : failure ?? 'exited';
    return { notice: `bpftrace could not start: ${why}` };
  }
  const after = sampleClock();
  // bpftrace's BEGIN ran between our spawn and now: on the same clock (both CLOCK_MONOTONIC) it lies in that window.
  const sameClock = outcome.mono >= spawnedMono - 1000 && outcome.mono <= monoNowUs() + 1000;
  if (sameClock) clock.add(before.uncertaintyUs <= after.uncertaintyUs ? before : after);
  else {
    // Another clock between us and the kernel (a time namespace): BEGIN was about when its line was read.
    const nowReal = after.realUs + (monoNowUs() - after.monoUs);
    clock.add({ monoUs: outcome.mono, realUs: nowReal, uncertaintyUs: 50_000 });
    session.notes.push('bpftrace\'s clock is not this process\'s CLOCK_MONOTONIC (time namespace?): event times are known to about 50 ms');
  }
  return session;
}
