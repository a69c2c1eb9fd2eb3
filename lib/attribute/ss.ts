/**
 * The fallback that needs no eBPF: `ss -tanpi` (iproute2) sampled every N ms
 * for the server port. It catches sockets lingering after a FIN (CLOSE-WAIT:
 * the FIN arrived and the owner has not closed; FIN-WAIT-1/2, LAST-ACK,
 * CLOSING) and their owning processes (`users:(("python3",pid=41,fd=7))`,
 * which needs root to see other users' sockets). A socket that is in and out
 * of CLOSE-WAIT between two samples is missed: this is for the stuck ones.
 *
 * Output shape (iproute2 6.x; one socket per line, `-i` adds an indented
 * line of tcp_info after each):
 *   State      Recv-Q Send-Q  Local Address:Port  Peer Address:Port Process
 *   CLOSE-WAIT 1      0       [::ffff:127.0.0.1]:18560 [::ffff:127.0.0.1]:60972 users:(("python3",pid=18776,fd=4))
 *   	 bbr wscale:10,10 rto:204 … lastsnd:612 lastrcv:612 lastack:604 …
 */
import { execFile } from 'node:child_process';
import type { Endpoint, Micros } from '../types.js';

export interface SsUser {
  name: string;
  pid: number;
  fd: number;
}

export interface SsSocket {
  /** As ss prints it: ESTAB, CLOSE-WAIT, FIN-WAIT-2, … */
  state: string;
  recvQ: number;
  sendQ: number;
  local: Endpoint;
  peer: Endpoint;
  /** Processes holding the socket (empty: none, or not visible without privilege). */
  users: SsUser[];
  /** Milliseconds since the last send / receive / ack (tcp_info, with -i), when printed. */
  lastsnd: number | null;
  lastrcv: number | null;
  lastack: number | null;
}

/** States a socket is in after a FIN has been sent or received, before it is gone. */
export const LINGERING_STATES = new Set(['CLOSE-WAIT', 'FIN-WAIT-1', 'FIN-WAIT-2', 'LAST-ACK', 'CLOSING']);

/** `127.0.0.1:8000`, `[::1]:8000`, `[::ffff:10.0.0.1]:80`, `*:8000`, `0.0.0.0:*`, `10.0.0.1%eth0:80` -> Endpoint (port 0 for `*`). */
export function parseSsAddress(tok: string): Endpoint | null {
  const i = tok.lastIndexOf(':');
  if (i <= 0) return null;
  let host = tok.slice(0, i);
  const p = tok.slice(i + 1);
  const port = p === '*' ? 0 : Number(p);
  if (!Number.isInteger(port) || port < 0 || port > 65535) return null;
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  const pct = host.indexOf('%');
  if (pct >= 0) host = host.slice(0, pct);
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(host);
  if (mapped) host = mapped[1]!;
  if (host === '*') host = '0.0.0.0';
  if (host.length === 0) return null;
  return { ip: host.toLowerCase(), port };
}

/** `users:(("node",pid=18784,fd=19),("node",pid=18785,fd=19))` -> users. */
export function parseSsUsers(text: string): SsUser[] {
  const out: SsUser[] = [];
  for (const m of text.matchAll(/\("((?:[^"\\]|\\.)*)",pid=(\d+),fd=(\d+)\)/g)) out.push({ name: m[1]!, pid: Number(m[2]), fd: Number(m[3]) });
  return out;
}

function infoNumber(info: string, name: string): number | null {
  const m = new RegExp(`(?:^|\\s)${name}:(\\d+)`).exec(info);
  return m ? Number(m[1]) : null;
}

/** Parses `ss -tan[p][i]` output; lines it does not understand are skipped. */
export function parseSs(text: string): SsSocket[] {
  const out: SsSocket[] = [];
  let last: SsSocket | null = null;
  for (const raw of text.split('\n')) {
    if (raw.trim() === '') continue;
    if (/^\s/.test(raw)) {
      // The -i line belongs to the socket above.
      if (last !== null) {
        last.lastsnd = infoNumber(raw, 'lastsnd');
        last.lastrcv = infoNumber(raw, 'lastrcv');
        last.lastack = infoNumber(raw, 'lastack');
      }
      continue;
    }
    last = null;
    const cols = raw.trim().split(/\s+/);
    if (cols[0] === 'State' || cols.length < 5) continue;
    const recvQ = Number(cols[1]);
    const sendQ = Number(cols[2]);
    const local = parseSsAddress(cols[3]!);
    const peer = parseSsAddress(cols[4]!);
    if (!Number.isInteger(recvQ) || !Number.isInteger(sendQ) || local === null || peer === null) continue;
    const rest = cols.slice(5).join(' ');
    last = { state: cols[0]!, recvQ, sendQ, local, peer, users: parseSsUsers(rest), lastsnd: null, lastrcv: null, lastack: null };
    out.push(last);
  }
  return out;
}

/** ss arguments for the sockets with either end on one of the ports. */
export function ssArgs(ports: number[]): string[] {
  const filter = ports.length ? `( ${ports.map((p) => `sport = :${p} or dport = :${p}`).join(' or ')} )` : '';
  return filter ? ['-tanpi', filter] : ['-tanpi'];
}

/** One socket seen lingering in one state across samples. */
export interface SsSighting {
  state: string;
  local: Endpoint;
  peer: Endpoint;
  firstSeen: Micros;
  lastSeen: Micros;
  samples: number;
  /** The last owner ss named (empty when none: an orphan, or not visible). */
  users: SsUser[];
}

function key(local: Endpoint, peer: Endpoint): string {
  return `${local.ip} ${local.port} ${peer.ip} ${peer.port}`;
}

/** Keeps what the samples saw of lingering sockets; bounded in count and age. */
export class SsTracker {
  private readonly seen = new Map<string, SsSighting[]>();
  samples = 0;

  constructor(
    private readonly maxSockets = 50_000,
    private readonly horizon: Micros = 15 * 60_000_000,
  ) {}

  /** Takes one sample taken at `now` (epoch µs). */
  add(sockets: SsSocket[], now: Micros): void {
    this.samples++;
    for (const s of sockets) {
      if (!LINGERING_STATES.has(s.state)) continue;
      const k = key(s.local, s.peer);
      let list = this.seen.get(k);
      if (list === undefined) {
        if (this.seen.size >= this.maxSockets) this.prune(now, true);
        list = [];
        this.seen.set(k, list);
      }
      const cur = list[list.length - 1];
      // Same state as the last sighting and no gap of a whole horizon: the same stay.
      if (cur !== undefined && cur.state === s.state && now - cur.lastSeen < this.horizon) {
        cur.lastSeen = now;
        cur.samples++;
        if (s.users.length > 0) cur.users = s.users;
      } else {
        list.push({ state: s.state, local: s.local, peer: s.peer, firstSeen: now, lastSeen: now, samples: 1, users: s.users });
        if (list.length > 8) list.shift();
      }
    }
    if (this.samples % 256 === 0) this.prune(now, false);
  }

  private prune(now: Micros, full: boolean): void {
    for (const [k, list] of this.seen) if (list[list.length - 1]!.lastSeen < now - this.horizon) this.seen.delete(k);
    if (full && this.seen.size >= this.maxSockets) {
      let n = Math.ceil(this.maxSockets / 10);
      for (const k of this.seen.keys()) {
        if (n-- <= 0) break;
        this.seen.delete(k);
      }
    }
  }

  /** The sighting of local<->peer in `state` that overlaps [from, to] (latest first), or null. */
  find(local: Endpoint, peer: Endpoint, state: string, from: Micros, to: Micros): SsSighting | null {
    const list = this.seen.get(key(local, peer));
    if (list === undefined) return null;
    for (let i = list.length - 1; i >= 0; i--) {
      const s = list[i]!;
      if (s.state === state && s.lastSeen >= from && s.firstSeen <= to) return s;
    }
    return null;
  }

  get size(): number {
    return this.seen.size;
  }
}

export interface SsSamplerOptions {
  ports: number[];
  intervalMs: number;
  tracker: SsTracker;
  /** One line when ss cannot run (once). */
  onNotice?: (line: string) => void;
  /** Each raw output with its time (to record a session). */
  onSample?: (text: string, now: Micros) => void;
  ss?: string;
}

/** Runs ss every intervalMs (never two at once; each bounded to 2 s). */
export function startSsSampler(o: SsSamplerOptions): { stop(): void } {
  let busy = false;
  let failed = false;
  let stopped = false;
  const tick = (): void => {
    if (busy || stopped || failed) return;
    busy = true;
    execFile(o.ss ?? 'ss', ssArgs(o.ports), { timeout: 2000, maxBuffer: 64 << 20, encoding: 'utf8' }, (err, stdout) => {
      busy = false;
      const now = Date.now() * 1000;
      if (err) {
        failed = true;
        const e = err as NodeJS.ErrnoException;
        o.onNotice?.(e.code === 'ENOENT' ? 'ss is not installed (apt-get install iproute2): no socket sampling' : `ss failed (${err.message.split('\n')[0]}): no socket sampling`);
        return;
      }
      if (stopped) return;
      o.onSample?.(stdout, now);
      o.tracker.add(parseSs(stdout), now);
    });
  };
  tick();
  const timer = setInterval(tick, Math.max(10, o.intervalMs));
  timer.unref();
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
