/**
 * Kernel events joined to connections: which process sent each FIN and RST.
 *
 * Who acted is decided from what the kernel was doing, not from the pid the
 * event carries, because passive work (a FIN or RST arriving, the kernel
 * answering a segment) runs in softirq context with whatever task the CPU
 * happened to run: pid 0 "swapper", or on loopback often the peer process.
 *
 *  - A FIN is sent when a process closes or shuts down its socket: the
 *    ESTABLISHED -> FIN_WAIT1 or CLOSE_WAIT -> LAST_ACK transition runs in that
 *    process (tcp_close / tcp_shutdown). attributed 'process', its pid and
 *    name. When the process was exiting (PF_EXITING), the kernel was closing
 *    the files of a dead process: attributed 'kernel', reason
 *    'process-exited', pid and name of the process that died.
 *  - An RST with no socket (tcp_v4_send_reset without sk, reason NO_SOCKET):
 *    the kernel answered a segment for a connection it does not know.
 *    attributed 'kernel', reason 'no-socket'.
 *  - An RST answering a segment on a socket that exists (softirq): the kernel
 *    did it. After the owner closed the socket (data after close, a TIME-WAIT
 *    socket) it is 'kernel', with pid/comm naming the process that had closed
 *    it; while the owner still holds it, 'owner'.
 *  - An active RST (tcp_send_active_reset: no segment to answer) comes from
 *    close() with unread data, SO_LINGER 0, abort: the calling process
 *    ('process'), or 'kernel' when it was exiting; keep-alive timeouts and
 *    memory pressure run in timers: 'owner' / 'kernel'.
 *
 * Owners are remembered per socket from process-context events: connect()
 * (CLOSE -> SYN_SENT), the first send or receive (sock_*_length), the close.
 *
 * Events are joined to a connection by 4-tuple and time: an event counts for
 * a connection when it lies between the connection's first packet and the
 * close's packet (each widened by `slack` for clock error). Memory is bounded
 * (events per 4-tuple, 4-tuples, age).
 */
import type { ConnectionRecord } from '../correlate/index.js';
import type { CloseAttribution, CloseEvent, Endpoint, Micros } from '../types.js';
import type { ClockMap } from './clock.js';
import {
  RST_REASONS_6_10,
  TCP_CLOSE,
  TCP_CLOSE_WAIT,
  TCP_ESTABLISHED,
  TCP_FIN_WAIT1,
  TCP_LAST_ACK,
  TCP_LISTEN,
  TCP_SYN_RECV,
  TCP_SYN_SENT,
  type TraceEvent,
} from './events.js';

export interface ProcessRef {
  pid: number;
  comm: string;
}

export interface CloseAttributionInfo {
  attributed: CloseAttribution;
  pid?: number;
  comm?: string;
  /** Why the kernel acted (kebab-case): no-socket, process-exited, abort-on-data, timewait-socket, … */
  reason?: string;
  /** Realtime of the kernel event that decided it. */
  eventTs: Micros;
}

export interface StoreOptions {
  /** Tolerance (µs) around the connection's packets for events to count (clock error plus scheduling). Default 20 ms. */
  slack?: Micros;
  /** Events are forgotten this long after a 4-tuple's last event (µs, default 15 min). */
  horizon?: Micros;
  /** At most this many 4-tuples (default 50000) and events per 4-tuple (default 64). */
  maxTuples?: number;
  maxEventsPerTuple?: number;
  /** enum sk_rst_reason names by value (default: Linux 6.10's). */
  rstReasons?: Record<number, string>;
}

interface Stored {
  ts: Micros;
  e: TraceEvent;
  /** Owner of the socket when the event happened (process context events before it). */
  owner: ProcessRef | null;
  /** The owner had closed the socket before this event. */
  orphan: boolean;
}

interface SockLife {
  owner: ProcessRef | null;
  closed: boolean;
  lastTs: Micros;
}

function key(local: Endpoint, remote: Endpoint): string {
  return `${local.ip} ${local.port} ${remote.ip} ${remote.port}`;
}

/** close() or shutdown(SHUT_WR) by a process: the transition that sends our FIN. */
function isFinTransition(e: TraceEvent): boolean {
  return (
    e.type === 'state' &&
    ((e.newState === TCP_FIN_WAIT1 && (e.oldState === TCP_ESTABLISHED || e.oldState === TCP_SYN_RECV)) ||
      (e.oldState === TCP_CLOSE_WAIT && e.newState === TCP_LAST_ACK))
  );
}

/** "NO_SOCKET" -> "no-socket", "TCP_ABORT_ON_DATA" -> "abort-on-data". */
export function reasonSlug(name: string): string {
  return name.replace(/^TCP_/, '').toLowerCase().replace(/_/g, '-');
}

export class AttributionStore {
  private readonly byTuple = new Map<string, Stored[]>();
  private readonly bySk = new Map<string, SockLife>();
  private readonly o: Required<StoreOptions>;
  private added = 0;
  private newest: Micros = 0;
  /** Events taken in, and events dropped by the bounds. */
  events = 0;
  dropped = 0;

  constructor(o: StoreOptions = {}) {
    this.o = {
      slack: o.slack ?? 20_000,
      horizon: o.horizon ?? 15 * 60_000_000,
      maxTuples: o.maxTuples ?? 50_000,
      maxEventsPerTuple: o.maxEventsPerTuple ?? 64,
      rstReasons: o.rstReasons ?? RST_REASONS_6_10,
    };
  }

  /** Takes one event; its time is put on the packets' clock with `clock`. */
  add(e: TraceEvent, clock: ClockMap): void {
    this.addAt(e, clock.toRealtime(e.monoUs));
  }

  /** Takes one event whose realtime (epoch µs) is already known. */
  addAt(e: TraceEvent, ts: Micros): void {
    this.events++;
    if (ts > this.newest) this.newest = ts;
    let life = e.sk !== '0' ? this.bySk.get(e.sk) : undefined;
    if (e.type === 'state' && (e.oldState === TCP_CLOSE || e.oldState === TCP_LISTEN) && e.newState !== TCP_CLOSE) {
      // A new socket (connect, or a child cloned from a listener): a new life, even at a reused address.
      life = { owner: null, closed: false, lastTs: ts };
      if (e.sk !== '0') this.bySk.set(e.sk, life);
    }
    const processContext = e.pid !== 0 && e.exiting !== true;
    if (life !== undefined) {
      life.lastTs = ts;
      if (e.type === 'owner' && life.owner === null && processContext) life.owner = { pid: e.pid, comm: e.comm };
      if (e.type === 'state' && e.oldState === TCP_CLOSE && e.newState === TCP_SYN_SENT && processContext)
        life.owner = { pid: e.pid, comm: e.comm };
    }
    const owner = life?.owner ?? null;
    const orphan = life?.closed ?? false;
    if (life !== undefined && isFinTransition(e)) {
      if (life.owner === null && processContext) life.owner = { pid: e.pid, comm: e.comm };
      life.closed = true;
    }
    if (e.type === 'state' && e.newState === TCP_CLOSE && e.sk !== '0') this.bySk.delete(e.sk);
    // connect() changes state before the local port is chosen: that event only names the owner.
    if (e.local.port === 0 || e.remote.port === 0) return;
    const k = key(e.local, e.remote);
    let list = this.byTuple.get(k);
    if (list === undefined) {
      if (this.byTuple.size >= this.o.maxTuples) this.prune(true);
      list = [];
      this.byTuple.set(k, list);
    }
    list.push({ ts, e, owner, orphan });
    if (list.length > this.o.maxEventsPerTuple) {
      list.shift();
      this.dropped++;
    }
    if (++this.added % 4096 === 0) this.prune(false);
  }

  /** Forgets 4-tuples and sockets idle for longer than the horizon (or, when full, the oldest tenth). */
  private prune(full: boolean): void {
    const cut = this.newest - this.o.horizon;
    for (const [k, list] of this.byTuple) {
      if (list[list.length - 1]!.ts < cut) {
        this.dropped += list.length;
        this.byTuple.delete(k);
      }
    }
    for (const [sk, life] of this.bySk) if (life.lastTs < cut) this.bySk.delete(sk);
    if (full && this.byTuple.size >= this.o.maxTuples) {
      let n = Math.ceil(this.o.maxTuples / 10);
      for (const [k, list] of this.byTuple) {
        if (n-- <= 0) break;
        this.dropped += list.length;
        this.byTuple.delete(k);
      }
    }
  }

  private reasonName(v: number): string | null {
    return v >= 0 ? (this.o.rstReasons[v] ?? `reason-${v}`) : null;
  }

  private window(local: Endpoint, remote: Endpoint, from: Micros, to: Micros): Stored[] {
    const list = this.byTuple.get(key(local, remote));
    if (list === undefined) return [];
    const lo = from - this.o.slack;
    const hi = to + this.o.slack;
    return list.filter((s) => s.ts >= lo && s.ts <= hi);
  }

  /** The last process known to own the socket local->remote between two times (for kernel-sent closes and the peer of a half-close). */
  ownerOf(local: Endpoint, remote: Endpoint, from: Micros, to: Micros): ProcessRef | null {
    const evs = this.window(local, remote, from, to);
    for (let i = evs.length - 1; i >= 0; i--) {
      const s = evs[i]!;
      if (s.owner !== null) return s.owner;
      const e = s.e;
      if ((e.type === 'owner' || isFinTransition(e)) && e.pid !== 0 && e.exiting !== true) return { pid: e.pid, comm: e.comm };
    }
    return null;
  }

  /** Who sent this close of `rec`, or null when no kernel event explains it. */
  attributeClose(rec: ConnectionRecord, c: CloseEvent): CloseAttributionInfo | null {
    const local = c.by === 'client' ? rec.client : rec.server;
    const remote = c.by === 'client' ? rec.server : rec.client;
    const evs = this.window(local, remote, rec.start, c.ts);
    const lastOwner = (): ProcessRef | null => this.ownerOf(local, remote, rec.start, c.ts);
    if (c.kind === 'FIN') {
      let ev: Stored | null = null;
      for (const s of evs) if (isFinTransition(s.e)) ev = s;
      if (ev === null) return null;
      const e = ev.e;
      if (e.exiting === true) return { attributed: 'kernel', pid: e.pid, comm: e.comm, reason: 'process-exited', eventTs: ev.ts };
      if (e.pid === 0) return withOwner({ attributed: 'kernel', eventTs: ev.ts }, lastOwner());
      return { attributed: 'process', pid: e.pid, comm: e.comm, eventTs: ev.ts };
    }
    // RST: the send-reset event nearest to the packet.
    let ev: Stored | null = null;
    for (const s of evs) {
      if (s.e.type !== 'send-reset') continue;
      if (ev === null || Math.abs(s.ts - c.ts) < Math.abs(ev.ts - c.ts)) ev = s;
    }
    if (ev === null || ev.e.type !== 'send-reset') return null;
    const e = ev.e;
    const name = this.reasonName(e.reason);
    const reason = name !== null ? reasonSlug(name) : undefined;
    const base = { eventTs: ev.ts, ...(reason !== undefined ? { reason } : {}) };
    if (e.sk === '0' || name === 'NO_SOCKET') return { attributed: 'kernel', eventTs: ev.ts, reason: 'no-socket' };
    if (e.skb === '0') {
      // tcp_send_active_reset: nothing to answer, the socket's own end.
      if (name === 'TCP_KEEPALIVE_TIMEOUT') return withOwner({ attributed: 'owner', ...base }, ev.owner ?? lastOwner(), 'kernel');
      if (name === 'TCP_ABORT_ON_MEMORY') return withOwner({ attributed: 'kernel', ...base }, ev.owner ?? lastOwner());
      if (e.exiting === true) return { attributed: 'kernel', pid: e.pid, comm: e.comm, reason: 'process-exited', eventTs: ev.ts };
      if (e.pid === 0) return withOwner({ attributed: 'kernel', ...base }, ev.owner ?? lastOwner());
      return { attributed: 'process', pid: e.pid, comm: e.comm, ...base };
    }
    // Answering a segment (softirq): the pid is not the sender.
    const owner = ev.owner ?? lastOwner();
    const closed = ev.orphan || evs.some((s) => s.ts <= ev.ts && isFinTransition(s.e)) || e.state === 6 || name === 'TCP_TIMEWAIT_SOCKET';
    if (closed || owner === null) return withOwner({ attributed: 'kernel', ...base }, owner);
    return withOwner({ attributed: 'owner', ...base }, owner);
  }

  /** Sets pid/comm/attributed/attributedReason on every close of rec it can explain; returns how many. */
  annotate(rec: ConnectionRecord): number {
    let n = 0;
    for (const c of rec.closes) {
      const a = this.attributeClose(rec, c);
      if (a === null) continue;
      c.attributed = a.attributed;
      if (a.pid !== undefined) c.pid = a.pid;
      if (a.comm !== undefined) c.comm = a.comm;
      if (a.reason !== undefined) c.attributedReason = a.reason;
      n++;
    }
    return n;
  }

  /**
   * Drops what is kept for a finished connection (both directions, up to its last packet): memory then
   * follows the open connections, as in the engine. A later connection on the same 4-tuple has its own events.
   */
  forget(rec: ConnectionRecord): void {
    const cut = rec.end + this.o.slack;
    for (const k of [key(rec.client, rec.server), key(rec.server, rec.client)]) {
      const list = this.byTuple.get(k);
      if (list === undefined) continue;
      const keep = list.filter((s) => s.ts > cut);
      if (keep.length === 0) this.byTuple.delete(k);
      else this.byTuple.set(k, keep);
    }
  }

  /** How many 4-tuples and live sockets are held (for tests of the bounds). */
  get size(): { tuples: number; sockets: number } {
    return { tuples: this.byTuple.size, sockets: this.bySk.size };
  }
}

function withOwner(
  a: CloseAttributionInfo,
  owner: ProcessRef | null,
  fallback?: CloseAttribution,
): CloseAttributionInfo {
  if (owner === null) return fallback !== undefined ? { ...a, attributed: fallback } : a;
  return { ...a, pid: owner.pid, comm: owner.comm };
}
