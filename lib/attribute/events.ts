/**
 * The lines our bpftrace script prints (script.ts), parsed into events.
 *
 * One line per kernel event, space-separated, the process name last (it may
 * contain spaces):
 *
 *   B <ns>                                                          bpftrace attached (BEGIN)
 *   S <ns> <pid> <tid> <exiting> <sk> <saddr> <sport> <daddr> <dport> <old> <new> <comm>
 *                                                                   sock:inet_sock_set_state
 *   R <ns> <pid> <tid> <exiting> <sk> <skb> <state> <reason> <saddr> <sport> <daddr> <dport> <comm>
 *                                                                   tcp:tcp_send_reset (saddr: the RST's sender)
 *   X <ns> <pid> <tid> <exiting> <sk> <saddr> <sport> <daddr> <dport> <comm>
 *                                                                   tcp:tcp_receive_reset (saddr: the socket that got it)
 *   O <ns> <pid> <tid> <exiting> <sk> <saddr> <sport> <daddr> <dport> <comm>
 *                                                                   first send/recv on a socket (sock:sock_{send,recv}_length)
 *
 * `ns` is bpftrace's `nsecs`: bpf_ktime_get_ns(), CLOCK_MONOTONIC in
 * nanoseconds (clock.ts turns it into epoch microseconds). `pid` is the
 * thread group id, `tid` the thread, `comm` the thread's name; in softirq
 * context (packet processing) they are whatever task the CPU interrupted,
 * which is why store.ts decides who acted from the kind of transition, not
 * from the pid. `exiting` is 1 when the task had PF_EXITING set (the kernel
 * closing the files of a dying process), 0 when not, -1 when unknown (no
 * BTF). `sk`/`skb` are kernel addresses in hex, 0 for none. Addresses are
 * either text (bpftrace's ntop, possibly IPv4-mapped IPv6) or raw hex (8
 * digits IPv4, 32 digits IPv6) where the tracepoint only has a sockaddr
 * buffer. `state`/`reason` are numbers, -1 when the tracepoint has no such
 * field.
 */
import type { Endpoint } from '../types.js';

/** TCP states as the kernel numbers them (include/net/tcp_states.h). */
export const TCP_STATES: Record<number, string> = {
  1: 'ESTABLISHED',
  2: 'SYN_SENT',
  3: 'SYN_RECV',
  4: 'FIN_WAIT1',
  5: 'FIN_WAIT2',
  6: 'TIME_WAIT',
  7: 'CLOSE',
  8: 'CLOSE_WAIT',
  9: 'LAST_ACK',
  10: 'LISTEN',
  11: 'CLOSING',
  12: 'NEW_SYN_RECV',
};

export const TCP_ESTABLISHED = 1;
export const TCP_SYN_SENT = 2;
export const TCP_SYN_RECV = 3;
export const TCP_FIN_WAIT1 = 4;
export const TCP_CLOSE = 7;
export const TCP_CLOSE_WAIT = 8;
export const TCP_LAST_ACK = 9;
export const TCP_LISTEN = 10;

/**
 * enum sk_rst_reason (include/net/rstreason.h, Linux 6.10+), as this
 * kernel's tcp_send_reset format prints it. Other kernels may number them
 * differently: script.ts reads the table from the tracepoint's format when
 * it can (formatReasons), and this is only the fallback.
 */
export const RST_REASONS_6_10: Record<number, string> = {
  0: 'NOT_SPECIFIED',
  1: 'NO_SOCKET',
  2: 'TCP_INVALID_ACK_SEQUENCE',
  3: 'TCP_RFC7323_PAWS',
  4: 'TCP_TOO_OLD_ACK',
  5: 'TCP_ACK_UNSENT_DATA',
  6: 'TCP_FLAGS',
  7: 'TCP_OLD_ACK',
  8: 'TCP_ABORT_ON_DATA',
  9: 'TCP_TIMEWAIT_SOCKET',
  10: 'INVALID_SYN',
  11: 'TCP_ABORT_ON_CLOSE',
  12: 'TCP_ABORT_ON_LINGER',
  13: 'TCP_ABORT_ON_MEMORY',
  14: 'TCP_STATE',
  15: 'TCP_KEEPALIVE_TIMEOUT',
  16: 'TCP_DISCONNECT_WITH_DATA',
};

interface Common {
  /** bpftrace nsecs (CLOCK_MONOTONIC), in microseconds (nanoseconds cut). */
  monoUs: number;
  pid: number;
  tid: number;
  /** PF_EXITING was set on the current task (null: not known). */
  exiting: boolean | null;
  comm: string;
  /** Kernel address of the socket ('0': none). */
  sk: string;
}

/** A TCP state change of one socket; `local` is the socket's own address. */
export interface StateEvent extends Common {
  type: 'state';
  local: Endpoint;
  remote: Endpoint;
  oldState: number;
  newState: number;
}

/** The kernel sent an RST: `local` is its sender, `remote` its destination. */
export interface SendResetEvent extends Common {
  type: 'send-reset';
  /** The segment it answers ('0': none, an active reset from close/abort/timers). */
  skb: string;
  /** Socket state, -1 when the tracepoint has none, 0 when there was no socket. */
  state: number;
  /** enum sk_rst_reason value, -1 when the kernel has none. */
  reason: number;
  local: Endpoint;
  remote: Endpoint;
}

/** A socket received an RST: `local` is the socket's own address. */
export interface ReceiveResetEvent extends Common {
  type: 'receive-reset';
  local: Endpoint;
  remote: Endpoint;
}

/** The first send or receive by a process on a socket: who owns it (process context, always). */
export interface OwnerEvent extends Common {
  type: 'owner';
  local: Endpoint;
  remote: Endpoint;
}

export interface BeginEvent {
  type: 'begin';
  monoUs: number;
}

export type TraceEvent = StateEvent | SendResetEvent | ReceiveResetEvent | OwnerEvent;
export type ParsedLine = TraceEvent | BeginEvent;

/** RFC 5952 text of an IPv6 address given as 16 bytes. */
function ipv6Text(b: Uint8Array): string {
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((b[i]! << 8) | b[i + 1]!);
  // IPv4-mapped: hangscope's decoder sees IPv4 packets for these sockets.
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  // Longest run of two or more zero words becomes "::" (RFC 5952 section 4.2).
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** An address token: bpftrace ntop text (IPv4-mapped IPv6 unmapped) or raw hex (8 or 32 digits). */
export function parseAddress(tok: string): string | null {
  if (/^[0-9a-f]{8}$/i.test(tok)) {
    const n = parseInt(tok, 16);
    return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  }
  if (/^[0-9a-f]{32}$/i.test(tok)) return ipv6Text(Buffer.from(tok, 'hex'));
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(tok)) return tok;
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(tok);
  if (mapped) return mapped[1]!;
  if (/^[0-9a-f:.]+$/i.test(tok) && tok.includes(':')) return tok.toLowerCase();
  return null;
}

function int(tok: string | undefined): number | null {
  if (tok === undefined || !/^-?\d+$/.test(tok)) return null;
  return Number(tok);
}

function port(tok: string | undefined): number | null {
  const n = int(tok);
  return n !== null && n >= 0 && n <= 65535 ? n : null;
}

/** Nanoseconds (decimal text, may exceed 2^53) to integer microseconds. */
function monoUs(tok: string | undefined): number | null {
  if (tok === undefined || !/^\d{1,20}$/.test(tok)) return null;
  return Number(BigInt(tok) / 1000n);
}

function hexAddr(tok: string | undefined): string | null {
  if (tok === undefined || !/^[0-9a-f]{1,16}$/i.test(tok)) return null;
  return tok === '0' ? '0' : tok.toLowerCase().replace(/^0+/, '');
}

/** Splits off the first n space-separated fields; the rest of the line (the comm) stays whole. */
function fields(line: string, n: number): { f: string[]; rest: string } | null {
  const f: string[] = [];
  let i = 0;
  for (let k = 0; k < n; k++) {
    const j = line.indexOf(' ', i);
    if (j < 0) return null;
    f.push(line.slice(i, j));
    i = j + 1;
  }
  return { f, rest: line.slice(i) };
}

function common(f: string[], rest: string): Common | null {
  const mono = monoUs(f[1]);
  const pid = int(f[2]);
  const tid = int(f[3]);
  const ex = int(f[4]);
  const sk = hexAddr(f[5]);
  if (mono === null || pid === null || tid === null || ex === null || sk === null) return null;
  return { monoUs: mono, pid, tid, exiting: ex < 0 ? null : ex !== 0, comm: rest, sk };
}

function endpoints(f: string[], at: number): { a: Endpoint; b: Endpoint } | null {
  const ai = parseAddress(f[at] ?? '');
  const ap = port(f[at + 1]);
  const bi = parseAddress(f[at + 2] ?? '');
  const bp = port(f[at + 3]);
  if (ai === null || ap === null || bi === null || bp === null) return null;
  return { a: { ip: ai, port: ap }, b: { ip: bi, port: bp } };
}

/** One line of the script's output; null for anything else (bpftrace's own messages, damaged lines). */
export function parseLine(line: string): ParsedLine | null {
  const l = line.endsWith('\r') ? line.slice(0, -1) : line;
  switch (l.charAt(0)) {
    case 'B': {
      const m = /^B (\d{1,20})$/.exec(l);
      return m ? { type: 'begin', monoUs: monoUs(m[1])! } : null;
    }
    case 'S': {
      const s = fields(l, 12);
      if (s === null) return null;
      const c = common(s.f, s.rest);
      const e = endpoints(s.f, 6);
      const o = int(s.f[10]);
      const n = int(s.f[11]);
      if (c === null || e === null || o === null || n === null) return null;
      return { type: 'state', ...c, local: e.a, remote: e.b, oldState: o, newState: n };
    }
    case 'R': {
      const s = fields(l, 13);
      if (s === null) return null;
      const c = common(s.f, s.rest);
      const skb = hexAddr(s.f[6]);
      const st = int(s.f[7]);
      const rs = int(s.f[8]);
      const e = endpoints(s.f, 9);
      if (c === null || skb === null || st === null || rs === null || e === null) return null;
      return { type: 'send-reset', ...c, skb, state: st, reason: rs, local: e.a, remote: e.b };
    }
    case 'X':
    case 'O': {
      const s = fields(l, 10);
      if (s === null) return null;
      const c = common(s.f, s.rest);
      const e = endpoints(s.f, 6);
      if (c === null || e === null) return null;
      return { type: l.charAt(0) === 'X' ? 'receive-reset' : 'owner', ...c, local: e.a, remote: e.b };
    }
    default:
      return null;
  }
}

/** "FIN_WAIT1" for 4; the number as text for one this table does not know. */
export function stateName(n: number): string {
  return TCP_STATES[n] ?? String(n);
}
