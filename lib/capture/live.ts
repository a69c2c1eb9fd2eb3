/**
 * Live capture sources: packets from a network interface as PacketRecords,
 * for the same engine that reads files.
 *
 *  - tcpdump through a pipe (the default where tcpdump is installed): tcpdump
 *    writes a pcap stream on its standard output (`-w -`), parsed by the same
 *    CaptureParser as files. `--immediate-mode` hands each packet over as it
 *    arrives (without it libpcap's TPACKET_V3 ring delivers blocks up to
 *    1 s late), `-U` flushes the output after every packet, and
 *    `--time-stamp-precision=nano` asks the kernel for nanosecond stamps.
 *  - libpcap in-process through npm `pcap` (node_pcap), an optional
 *    dependency: raw frames with the pcap header timestamps, decoded by our
 *    decoder (node_pcap's own decoders cannot read LINUX_SLL2), drop counts
 *    from pcap_stats(). npm `cap` hands out packets without timestamps,
 *    useless for timing, so it is not supported.
 *
 * Problems the user can cause (no privilege, no such interface, a filter
 * tcpdump cannot parse, neither tcpdump nor the binding installed) become a
 * UserError with one sentence saying what to do.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { endianness } from 'node:os';
import { Worker } from 'node:worker_threads';
import { delimiter, join } from 'node:path';
import { UserError, type Anomalies, type PacketRecord } from '../types.js';
import { CaptureParser } from './parser.js';

export type LiveSourceKind = 'tcpdump' | 'libpcap';
export type LiveSourceChoice = LiveSourceKind | 'auto';

/** libpcap's MAXIMUM_SNAPLEN: whole frames, so chunked and Content-Length framing survive. */
export const FULL_SNAPLEN = 262144;
/** Kernel capture buffer, KiB (tcpdump -B). 32 MiB rides out bursts on a busy server. */
export const DEFAULT_BUFFER_KIB = 32768;

export const PRIVILEGE_HINT =
  'run as root or with CAP_NET_RAW and CAP_NET_ADMIN (e.g. kubectl debug --profile=netadmin)';
export const INSTALL_HINT =
  'install tcpdump (apt-get install tcpdump), or libpcap-dev and then `npm install pcap` for in-process capture';

export interface LiveCaptureOptions {
  /** Which source; 'auto' (default) is tcpdump when installed, else the libpcap binding. */
  source?: LiveSourceChoice;
  /** Interface name ('any' captures on every interface as Linux cooked frames). */
  iface: string;
  /** BPF filter expression; '' captures everything. */
  filter: string;
  /** Bytes kept per frame (default FULL_SNAPLEN). */
  snaplen?: number;
  /** Kernel buffer in KiB (default DEFAULT_BUFFER_KIB). */
  bufferKiB?: number;
  /** Where damaged records of the tcpdump stream are counted. */
  anomalies: Anomalies;
  /**
   * Each captured frame. As with files, the record object and its data are
   * reused: valid only during the call.
   */
  onPacket: (rec: PacketRecord) => void;
  /** Called once the link type is known (before the first packet), e.g. to open a pcap writer. */
  onLinkType?: (linkType: number) => void;
  /** How long to wait for the source to start capturing (ms, default 15000). */
  startTimeoutMs?: number;
}

/** The capture's own counters (what libpcap's pcap_stats reports). null: not known (yet). */
export interface CaptureCounters {
  /** Packets the filter accepted (tcpdump's "received by filter", pcap_stats ps_recv). */
  received: number | null;
  /** Packets the kernel dropped for lack of buffer space (ps_drop). */
  dropped: number | null;
  /** Packets the interface or driver dropped (ps_ifdrop), when reported. */
  ifDropped: number | null;
}

export interface LiveCapture {
  readonly kind: LiveSourceKind;
  readonly iface: string;
  readonly filter: string;
  readonly snaplen: number;
  /** LINKTYPE_* of the frames, once known. */
  readonly linkType: number | null;
  /** Frames handed to onPacket so far. */
  readonly packets: number;
  /** Latest counters known (tcpdump reports them when asked with SIGUSR1, and at exit). */
  counters(): CaptureCounters;
  /** Stop capturing, deliver what is still in flight, and resolve with the final counters. Idempotent. */
  stop(): Promise<CaptureCounters>;
  /**
   * After stop(): the source still holds Node's event loop, so the process
   * will not exit by itself (node_pcap only finishes closing when the next
   * packet arrives). A command that is done should then exit explicitly.
   */
  readonly holdsEventLoop: boolean;
  /**
   * Settles when the source ends, whether by stop() or by itself (tcpdump
   * exiting, e.g. the interface went away). Rejects with a UserError when it
   * ended abnormally.
   */
  readonly ended: Promise<CaptureCounters>;
}

/** Start capturing; resolves once the source is capturing, rejects with UserError if it cannot. */
export async function startLiveCapture(o: LiveCaptureOptions): Promise<LiveCapture> {
  const choice = o.source ?? 'auto';
  if (choice === 'tcpdump') {
    const path = findTcpdump();
    if (path === null)
      throw new UserError(`tcpdump is not installed (or not on PATH): apt-get install tcpdump, or use --source libpcap.`);
    return TcpdumpCapture.start(path, o);
  }
  if (choice === 'libpcap') {
    const pcap = loadPcapBinding();
    if (pcap === null)
      throw new UserError(
        'the libpcap binding (npm pcap) is not installed: install libpcap-dev, then `npm install pcap` in the hangscope folder, or use --source tcpdump.',
      );
    return LibpcapCapture.start(pcap, o);
  }
  const path = findTcpdump();
  if (path !== null) return TcpdumpCapture.start(path, o);
  const pcap = loadPcapBinding();
  if (pcap !== null) return LibpcapCapture.start(pcap, o);
  throw new UserError(`neither tcpdump nor the libpcap binding is available: ${INSTALL_HINT}.`);
}

/** The BPF filter for a server port and/or a user filter. */
export function buildFilter(port: number | null, userFilter: string | undefined): string {
  const f = userFilter?.trim() ?? '';
  if (port !== null && f !== '') return `tcp port ${port} and (${f})`;
  if (port !== null) return `tcp port ${port}`;
  if (f !== '') return f;
  return 'tcp';
}

// ---------------------------------------------------------------- discovery

/** tcpdump on PATH, else in /usr/sbin or /sbin (where it lives on some systems, outside a user's PATH). */
export function findTcpdump(): string | null {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter((d) => d !== '');
  for (const d of [...dirs, '/usr/sbin', '/sbin']) {
    const p = join(d, 'tcpdump');
    try {
      accessSync(p, fsConstants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return null;
}

/** The subset of node_pcap (npm pcap 3.x) used here. */
interface PcapSessionLike {
  link_type: string;
  buf: Buffer;
  header: Buffer;
  /** The native session: dispatch() reads what is pending (node_pcap's own read callback calls it). */
  session: { dispatch(buf: Buffer, header: Buffer): number };
  on(ev: 'packet', fn: (p: { buf: Buffer; header: Buffer; link_type: string }) => void): void;
  stats(): { ps_recv: number; ps_drop: number; ps_ifdrop: number };
  close(): void;
}
interface PcapModuleLike {
  createSession(
    iface: string,
    o: { filter: string; buffer_size: number; snap_length: number; buffer_timeout: number; promiscuous?: boolean },
  ): PcapSessionLike;
  findalldevs(): { name: string; description?: string; flags?: string }[];
  warningHandler: (msg: string) => void;
}

let pcapCache: PcapModuleLike | null | undefined;

/** npm pcap when installed and its native part built; null otherwise. */
export function loadPcapBinding(): PcapModuleLike | null {
  if (pcapCache !== undefined) return pcapCache;
  try {
    const require = createRequire(import.meta.url);
    pcapCache = require('pcap') as PcapModuleLike;
  } catch {
    pcapCache = null;
  }
  return pcapCache;
}

export interface InterfaceInfo {
  name: string;
  description: string;
  flags: string[];
}

/** Capture interfaces: from `tcpdump -D`, else libpcap's pcap_findalldevs, else /sys/class/net. */
export function listInterfaces(): { from: string; interfaces: InterfaceInfo[] } {
  const tcpdump = findTcpdump();
  if (tcpdump !== null) {
    const r = spawnSync(tcpdump, ['-D'], { encoding: 'utf8', timeout: 10_000 });
    if (r.status === 0 && typeof r.stdout === 'string') {
      const out: InterfaceInfo[] = [];
      // "3.lo [Up, Running, Loopback]", "2.any (Pseudo-device that captures on all interfaces) [Up, Running]"
      for (const line of r.stdout.split('\n')) {
        const m = /^\d+\.(\S+)(?: \((.*?)\))?(?: \[(.*)\])?\s*$/.exec(line.trim());
        if (m) out.push({ name: m[1]!, description: m[2] ?? '', flags: m[3] ? m[3].split(/,\s*/) : [] });
      }
      if (out.length > 0) return { from: 'tcpdump -D', interfaces: out };
    }
  }
  const pcap = loadPcapBinding();
  if (pcap !== null) {
    try {
      const devs = pcap.findalldevs();
      if (devs.length > 0)
        return {
          from: 'libpcap',
          interfaces: devs.map((d) => ({
            name: d.name,
            description: d.description ?? '',
            flags: d.flags ? d.flags.split(/\s*,\s*/).map((f) => f.replace(/^PCAP_IF_/, '').toLowerCase()) : [],
          })),
        };
    } catch {
      /* fall through */
    }
  }
  const out: InterfaceInfo[] = [{ name: 'any', description: 'every interface (Linux cooked capture)', flags: [] }];
  try {
    for (const name of readdirSync('/sys/class/net').sort()) {
      let state = '';
      try {
        state = readFileSync(`/sys/class/net/${name}/operstate`, 'utf8').trim();
      } catch {
        /* no state */
      }
      out.push({ name, description: '', flags: state ? [state] : [] });
    }
  } catch {
    /* not Linux */
  }
  return { from: '/sys/class/net', interfaces: out };
}

// ---------------------------------------------------------------- errors

/**
 * The capture stopped by itself after it had started (tcpdump died or was
 * killed, the interface disappeared): not a mistake in the command line.
 * watch says so in one line and exits 3 (docs/reliability.md).
 */
export class CaptureFailedError extends UserError {
  constructor(message: string) {
    super(message);
    this.name = 'CaptureFailedError';
  }
}

/** Turn a capture error text (tcpdump's stderr, pcap_geterr) into the user's one sentence. */
export function classifyCaptureError(text: string, iface: string, filter: string, who: string): UserError {
  const t = text.trim();
  // Before "No such device": tcpdump says "pcap_loop: The interface disappeared" when a capturing interface is deleted.
  if (/interface disappeared|ENODEV|ENXIO/i.test(t))
    return new UserError(`${iface} disappeared while ${who} was capturing on it (the interface was deleted, or its namespace or container went away).`);
  if (/permission|not permitted|EPERM|EACCES|Operation not permitted/i.test(t))
    return new UserError(`no permission to capture on ${iface}: ${PRIVILEGE_HINT}.`);
  if (/No such device|doesn't exist|does not exist|no such interface|SIOCGIFHWADDR|not found/i.test(t))
    return new UserError(`no such interface "${iface}": \`hangscope interfaces\` lists them.`);
  if (/filter expression|syntax error|parse filter|illegal|unknown (host|port|proto)/i.test(t))
    return new UserError(`${who} cannot use the filter "${filter}": ${firstLine(t)}.`);
  if (/interface went down|went down/i.test(t)) return new UserError(`${iface} went down: ${firstLine(t)}.`);
  return new UserError(`${who} failed on ${iface}: ${firstLine(t) || 'no message'}.`);
}

/** tcpdump's counters (at exit, and on SIGUSR1): not the reason it stopped. */
const STATS_LINE = /^(tcpdump: )?\d+ packets? (captured|received by filter|dropped by (kernel|interface))/;

function firstLine(t: string): string {
  const line =
    t
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l !== '' && !/^tcpdump: listening on/.test(l) && !STATS_LINE.test(l)) ?? '';
  return line.replace(/^tcpdump: /, '').replace(/\.$/, '');
}

/**
 * tcpdump's statistics, printed at exit ("N packets received by filter",
 * "N packets dropped by kernel", "N packets dropped by interface") and, on
 * SIGUSR1, as one line ("tcpdump: N packets captured, N packets received by
 * filter, N packets dropped by kernel"). The last report wins.
 */
export function parseTcpdumpStats(text: string, into: CaptureCounters): boolean {
  let found = false;
  const re = /(\d+) packets? (received by filter|dropped by kernel|dropped by interface)/g;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const n = Number(m[1]);
    if (m[2] === 'received by filter') into.received = n;
    else if (m[2] === 'dropped by kernel') into.dropped = n;
    else into.ifDropped = n;
    found = true;
  }
  return found;
}

// ---------------------------------------------------------------- tcpdump

/** Ask tcpdump for its counters this often (SIGUSR1 is tcpdump's SIGNAL_REQ_INFO on Linux). */
const STATS_EVERY_MS = 2000;
/** After SIGTERM, give tcpdump this long to flush and exit before SIGKILL. */
const STOP_GRACE_MS = 5000;
/**
 * Bytes read from tcpdump but not yet consumed by the engine, at most. Beyond
 * it the reader stops reading, tcpdump blocks, and the kernel drops (and
 * counts) packets: memory stays bounded when the engine falls behind.
 */
const MAX_INFLIGHT_BYTES = 256 * 1024 * 1024;
const ACK_EVERY_BYTES = 4 * 1024 * 1024;

/** A child process's output, read on this thread or on a worker thread. */
interface PipeEvents {
  /** The child's process id, once it is running. */
  pid?(pid: number): void;
  stdout(buf: Buffer): void;
  stderr(text: string): void;
  error(code: string | undefined, message: string): void;
  close(code: number | null, signal: NodeJS.Signals | null): void;
}
interface Pipe {
  kill(signal: NodeJS.Signals): void;
  /** The consumer finished with `bytes` of stdout (flow control for the worker reader). */
  consumed(bytes: number): void;
  /** Release the reader once the child closed. */
  dispose(): void;
}

/**
 * The worker thread's side: spawn the child, read its stdout as fast as it
 * comes, and post it on in batches (what arrived in one turn of the event
 * loop), transferred, not copied. Plain JavaScript run with `eval`, so it
 * works from the TypeScript sources (tests) and from dist/ alike.
 */
const PIPE_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { spawn } = require('node:child_process');
const { path, args, maxInflight } = workerData;
let inflight = 0, paused = false, parts = [], size = 0, scheduled = false;
const child = spawn(path, args, { stdio: ['ignore', 'pipe', 'pipe'] });
if (child.pid !== undefined) parentPort.postMessage({ type: 'pid', pid: child.pid });
function flush() {
  scheduled = false;
  if (size === 0) return;
  const u = new Uint8Array(size);
  let o = 0;
  for (const p of parts) { u.set(p, o); o += p.length; }
  parts = []; size = 0;
  inflight += u.length;
  parentPort.postMessage({ type: 'data', buf: u }, [u.buffer]);
  if (inflight > maxInflight && !paused) { paused = true; child.stdout.pause(); }
}
child.stdout.on('data', (c) => {
  parts.push(c); size += c.length;
  if (size >= 1 << 20) flush();
  else if (!scheduled) { scheduled = true; setImmediate(flush); }
});
child.stderr.setEncoding('utf8');
child.stderr.on('data', (text) => parentPort.postMessage({ type: 'stderr', text }));
child.on('error', (e) => parentPort.postMessage({ type: 'error', code: e.code, message: e.message }));
child.on('close', (code, signal) => { flush(); parentPort.postMessage({ type: 'close', code, signal }); });
parentPort.on('message', (m) => {
  if (m.type === 'ack') {
    inflight -= m.bytes;
    if (paused && inflight < maxInflight / 2) { paused = false; child.stdout.resume(); }
  } else if (m.type === 'kill') {
    try { child.kill(m.signal); } catch {}
  }
});
`;

/**
 * Read the child on a worker thread: the dashboard's rendering or a GC pause
 * on the main thread then never stops tcpdump's output from being read. This
 * matters: in immediate mode libpcap uses a TPACKET_V2 ring whose frames are
 * sized by the snaplen (Ethernet devices: the MTU, or 64 KiB with offloads;
 * libpcap's pcap-linux.c, create_ring()), so with full frames the
 * 32 MiB ring holds only about 128 packets on `any` and 500 on `lo`: a
 * reader that stalls for a few milliseconds under load loses packets.
 */
function workerPipe(path: string, args: string[], ev: PipeEvents): Pipe {
  const w = new Worker(PIPE_WORKER, { eval: true, workerData: { path, args, maxInflight: MAX_INFLIGHT_BYTES } });
  let closed = false;
  w.on('message', (m: { type: string; buf?: Uint8Array; text?: string; code?: unknown; message?: string; signal?: NodeJS.Signals | null; pid?: number }) => {
    if (m.type === 'pid') ev.pid?.(m.pid!);
    else if (m.type === 'data') {
      const u = m.buf!;
      ev.stdout(Buffer.from(u.buffer, u.byteOffset, u.byteLength));
    } else if (m.type === 'stderr') ev.stderr(m.text!);
    else if (m.type === 'error') ev.error(m.code as string | undefined, m.message!);
    else if (m.type === 'close') {
      closed = true;
      ev.close(m.code as number | null, m.signal ?? null);
    }
  });
  w.on('error', (e) => {
    if (!closed) {
      closed = true;
      ev.error(undefined, e.message);
      ev.close(null, null);
    }
  });
  return {
    kill: (signal) => w.postMessage({ type: 'kill', signal }),
    consumed: (bytes) => w.postMessage({ type: 'ack', bytes }),
    dispose: () => void w.terminate(),
  };
}

/** Read the child on this thread (when worker threads are not available). */
function inlinePipe(path: string, args: string[], ev: PipeEvents): Pipe {
  const child: ChildProcess = spawn(path, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid !== undefined) ev.pid?.(child.pid);
  child.on('error', (e: NodeJS.ErrnoException) => ev.error(e.code, e.message));
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (s: string) => ev.stderr(s));
  child.stdout!.on('data', (b: Buffer) => ev.stdout(b));
  // 'close': the process exited and its output was read to the end (every packet delivered).
  child.on('close', (code, signal) => ev.close(code, signal));
  return {
    kill: (signal) => {
      try {
        child.kill(signal);
      } catch {
        /* gone */
      }
    },
    consumed: () => {},
    dispose: () => {},
  };
}

class TcpdumpCapture implements LiveCapture {
  readonly kind = 'tcpdump' as const;
  readonly holdsEventLoop = false;
  private readonly parser: CaptureParser;
  private pipe!: Pipe;
  private unacked = 0;
  private stderr = '';
  private started = false;
  private stopping = false;
  private exited = false;
  private readonly c: CaptureCounters = { received: null, dropped: null, ifDropped: null };
  private statsTimer: NodeJS.Timeout | null = null;
  private linkTypeSent = false;
  readonly ended: Promise<CaptureCounters>;
  private resolveEnded!: (c: CaptureCounters) => void;
  private rejectEnded!: (e: Error) => void;
  private exitStatus: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  /** tcpdump's process id, once known. */
  pid: number | null = null;

  private constructor(
    private readonly o: LiveCaptureOptions,
    readonly snaplen: number,
  ) {
    this.parser = new CaptureParser((rec) => this.onRecord(rec), o.anomalies, 'tcpdump output');
    this.ended = new Promise((res, rej) => {
      this.resolveEnded = res;
      this.rejectEnded = rej;
    });
    // Whoever awaits `ended` gets the rejection; never an unhandled one.
    this.ended.catch(() => {});
  }

  get iface(): string {
    return this.o.iface;
  }
  get filter(): string {
    return this.o.filter;
  }
  get linkType(): number | null {
    return this.parser.linkTypes[0] ?? null;
  }
  get packets(): number {
    return this.parser.packets;
  }
  counters(): CaptureCounters {
    return { ...this.c };
  }

  static start(path: string, o: LiveCaptureOptions): Promise<LiveCapture> {
    const snaplen = o.snaplen ?? FULL_SNAPLEN;
    const args = [
      '-i',
      o.iface,
      '--immediate-mode',
      '-B',
      String(o.bufferKiB ?? DEFAULT_BUFFER_KIB),
      '--time-stamp-precision=nano',
      '-s',
      String(snaplen),
      '-U',
      '-n',
      '-w',
      '-',
    ];
    if (o.filter !== '') args.push(o.filter);
    return new Promise((resolve, reject) => {
      const cap = new TcpdumpCapture(o, snaplen);
      let settled = false;
      const startMs = o.startTimeoutMs ?? 15000;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        void cap.stop();
        reject(new UserError(`tcpdump did not start capturing on ${o.iface} within ${startMs / 1000} s.`));
      }, startMs);
      const ok = (): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        cap.started = true;
        cap.statsTimer = setInterval(() => cap.requestStats(), STATS_EVERY_MS);
        cap.statsTimer.unref();
        // A first report soon, so the drop count is known early (tcpdump installs its handler before "listening on").
        setTimeout(() => cap.requestStats(), 250).unref();
        resolve(cap);
      };
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(err);
      };
      const events: PipeEvents = {
        pid: (pid) => {
          cap.pid = pid;
        },
        stdout: (chunk) => {
          cap.push(chunk);
          // Acknowledge in large steps: one message back per few MiB, not per chunk.
          cap.unacked += chunk.length;
          if (cap.unacked >= ACK_EVERY_BYTES) {
            cap.pipe.consumed(cap.unacked);
            cap.unacked = 0;
          }
        },
        stderr: (s) => {
          cap.stderr += s;
          if (cap.stderr.length > 64 * 1024) cap.stderr = cap.stderr.slice(-32 * 1024);
          parseTcpdumpStats(cap.stderr, cap.c);
          // tcpdump prints "listening on IFACE, link-type ..." once the capture is active.
          if (/listening on /.test(cap.stderr)) ok();
        },
        error: (code, message) => {
          if (code === 'ENOENT') fail(new UserError(`tcpdump is not installed (or not on PATH): ${INSTALL_HINT}.`));
          else if (code === 'EACCES') fail(new UserError(`cannot run ${path}: permission denied; ${PRIVILEGE_HINT}.`));
          else fail(new UserError(`cannot run ${path}: ${message}.`));
        },
        close: (code, signal) => {
          cap.exited = true;
          cap.exitStatus = { code, signal };
          if (cap.statsTimer !== null) clearInterval(cap.statsTimer);
          if (!settled) {
            fail(
              code === 0 && cap.stderr.trim() === ''
                ? new UserError(`tcpdump exited before capturing on ${o.iface}.`)
                : classifyCaptureError(cap.stderr, o.iface, o.filter, 'tcpdump'),
            );
          }
          cap.pipe.dispose();
          cap.maybeEnded();
        },
      };
      try {
        cap.pipe = workerPipe(path, args, events);
      } catch {
        cap.pipe = inlinePipe(path, args, events);
      }
    });
  }

  private push(chunk: Buffer): void {
    try {
      this.parser.push(chunk);
    } catch (e) {
      // tcpdump writes valid pcap; anything else is a bug worth surfacing, not a crash.
      this.o.anomalies.add('live-stream-unreadable');
      if (!(e instanceof UserError)) throw e;
    }
    if (!this.linkTypeSent && this.parser.linkTypes.length > 0) {
      this.linkTypeSent = true;
      this.o.onLinkType?.(this.parser.linkTypes[0]!);
    }
  }

  private onRecord(rec: PacketRecord): void {
    this.o.onPacket(rec);
  }

  private requestStats(): void {
    if (this.exited || this.stopping || process.platform !== 'linux') return;
    this.pipe.kill('SIGUSR1');
  }

  private maybeEnded(): void {
    if (this.statsTimer !== null) clearInterval(this.statsTimer);
    try {
      this.parser.end();
    } catch {
      /* a header cut short: nothing was captured */
    }
    const st = this.exitStatus!;
    const byUs = this.stopping;
    // tcpdump exits 0 after SIGINT/SIGTERM (its cleanup handler); a signal death we did not send is abnormal.
    if (!this.started || byUs || (st.code === 0 && st.signal === null)) this.resolveEnded(this.counters());
    else if (st.signal !== null)
      // Killed by someone else (kill -9, the OOM killer): its stderr has only counters, if anything.
      this.rejectEnded(new CaptureFailedError(`tcpdump${this.pid !== null ? ` (pid ${this.pid})` : ''} was killed by ${st.signal}`));
    else
      this.rejectEnded(
        new CaptureFailedError(
          classifyCaptureError(this.stderr || `exit status ${st.code}`, this.o.iface, this.o.filter, 'tcpdump').message.replace(/\.$/, ''),
        ),
      );
  }

  async stop(): Promise<CaptureCounters> {
    if (!this.stopping) {
      this.stopping = true;
      if (this.statsTimer !== null) clearInterval(this.statsTimer);
      if (!this.exited) {
        // SIGTERM: tcpdump's cleanup flushes the last packets and prints its counters.
        this.pipe.kill('SIGTERM');
        const t = setTimeout(() => {
          if (!this.exited) this.pipe.kill('SIGKILL');
        }, STOP_GRACE_MS);
        t.unref();
      }
    }
    try {
      return await this.ended;
    } catch {
      return this.counters();
    }
  }
}

// ---------------------------------------------------------------- libpcap

/** node_pcap reports the link type as a name for a few DLTs and "Unknown linktype N" for the rest. */
export function linkTypeFromPcapName(name: string): number | null {
  switch (name) {
    case 'LINKTYPE_NULL':
      return 0;
    case 'LINKTYPE_ETHERNET':
      return 1;
    case 'LINKTYPE_RAW':
      // DLT_RAW is 12 or 14 depending on the OS; the file format's LINKTYPE_RAW is 101.
      return 101;
    case 'LINKTYPE_IEEE802_11_RADIO':
      return 127;
    case 'LINKTYPE_LINUX_SLL':
      return 113;
  }
  const m = /(\d+)\s*$/.exec(name);
  return m ? Number(m[1]) : null;
}

const HOST_LE = endianness() === 'LE';

class LibpcapCapture implements LiveCapture {
  readonly kind = 'libpcap' as const;
  holdsEventLoop = false;
  readonly linkType: number;
  packets = 0;
  private stopped = false;
  private final: CaptureCounters | null = null;
  readonly ended: Promise<CaptureCounters>;
  private resolveEnded!: (c: CaptureCounters) => void;
  private readonly rec: PacketRecord = { ts: 0, linkType: 0, data: Buffer.alloc(0), origLen: 0, interfaceId: 0, frame: 0 };

  private constructor(
    private readonly session: PcapSessionLike,
    private readonly o: LiveCaptureOptions,
    readonly snaplen: number,
  ) {
    this.linkType = linkTypeFromPcapName(session.link_type) ?? -1;
    this.rec.linkType = this.linkType;
    this.ended = new Promise((res) => (this.resolveEnded = res));
  }

  get iface(): string {
    return this.o.iface;
  }
  get filter(): string {
    return this.o.filter;
  }

  static start(pcap: PcapModuleLike, o: LiveCaptureOptions): Promise<LiveCapture> {
    const snaplen = o.snaplen ?? FULL_SNAPLEN;
    const warnings: string[] = [];
    pcap.warningHandler = (msg: string) => {
      warnings.push(msg);
    };
    let session: PcapSessionLike;
    try {
      session = pcap.createSession(o.iface, {
        filter: o.filter,
        buffer_size: (o.bufferKiB ?? DEFAULT_BUFFER_KIB) * 1024,
        snap_length: snaplen,
        // 0: pcap_set_immediate_mode, each packet as it arrives.
        buffer_timeout: 0,
      });
    } catch (e) {
      return Promise.reject(classifyCaptureError(`${(e as Error).message}\n${warnings.join('\n')}`, o.iface, o.filter, 'libpcap'));
    }
    const cap = new LibpcapCapture(session, o, snaplen);
    if (cap.linkType >= 0) o.onLinkType?.(cap.linkType);
    session.on('packet', (p) => cap.onPacket(p.buf, p.header));
    return Promise.resolve(cap);
  }

  private onPacket(buf: Buffer, header: Buffer): void {
    if (this.stopped) return;
    // node_pcap copies struct pcap_pkthdr's fields in host order: tv_sec (low 32 bits), tv_usec, caplen, len.
    const sec = HOST_LE ? header.readUInt32LE(0) : header.readUInt32BE(0);
    const usec = HOST_LE ? header.readUInt32LE(4) : header.readUInt32BE(4);
    const caplen = HOST_LE ? header.readUInt32LE(8) : header.readUInt32BE(8);
    const len = HOST_LE ? header.readUInt32LE(12) : header.readUInt32BE(12);
    const rec = this.rec;
    rec.ts = sec * 1_000_000 + usec;
    rec.data = buf.subarray(0, Math.min(caplen, buf.length));
    rec.origLen = len;
    rec.frame = ++this.packets;
    this.o.onPacket(rec);
  }

  counters(): CaptureCounters {
    if (this.final !== null) return { ...this.final };
    try {
      const s = this.session.stats();
      return { received: s.ps_recv, dropped: s.ps_drop, ifDropped: s.ps_ifdrop };
    } catch {
      return { received: null, dropped: null, ifDropped: null };
    }
  }

  stop(): Promise<CaptureCounters> {
    if (!this.stopped) {
      this.final = this.counters();
      this.stopped = true;
      try {
        // close() only calls pcap_breakloop(); node_pcap releases the handle
        // and its uv_poll watcher in the next dispatch that sees the break
        // (pcap_dispatch returning -2), which needs a pending packet. Try
        // once now; if nothing was pending, the poll watcher keeps the event
        // loop alive until the next packet.
        this.session.close();
        this.holdsEventLoop = this.session.session.dispatch(this.session.buf, this.session.header) !== -2;
      } catch {
        /* already closed */
      }
      this.resolveEnded(this.final);
    }
    return this.ended;
  }
}
