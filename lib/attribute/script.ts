/**
 * The bpftrace program: tracepoints only (kernels without kprobe support
 * exist), filtered in the kernel to the ports of interest, one line per
 * event in the format events.ts parses.
 *
 * Tracepoints and why:
 *  - sock:inet_sock_set_state: every TCP state change. The active ones (to
 *    SYN_SENT on connect(), ESTABLISHED -> FIN_WAIT1 and CLOSE_WAIT -> LAST_ACK
 *    on close()/shutdown()) run in the calling process: that is who sent the
 *    SYN or FIN. The passive ones (to CLOSE_WAIT when a FIN arrives, to CLOSE on
 *    an RST) run in softirq context, where pid/comm are whatever task the CPU
 *    was running: on loopback that is often the peer process.
 *  - tcp:tcp_send_reset: every RST the kernel builds (tcp_v4/v6_send_reset for
 *    a segment, tcp_send_active_reset for close/abort/timers), with the socket
 *    (none: "no socket") and, on Linux 6.10+, enum sk_rst_reason.
 *  - tcp:tcp_receive_reset: a socket got an RST.
 *  - sock:sock_send_length / sock:sock_recv_length (Linux 6.3+, optional):
 *    the first send or receive on a socket runs in its owner's process, which
 *    gives the owner of accepted sockets (accept() itself changes no state).
 *
 * Tracepoint layouts differ between kernels (tcp_send_reset moved from
 * sport/dport fields to sockaddr buffers and gained `reason` in 6.10), so the
 * program is built from the tracepoints' format files (tracefs).
 */

/** Fields of one tracepoint, from its tracefs `format` file: name -> size in bytes. */
export type TracepointFields = Map<string, number>;

export interface TracepointFormats {
  setState: TracepointFields | null;
  sendReset: TracepointFields | null;
  receiveReset: TracepointFields | null;
  sendLength: TracepointFields | null;
  recvLength: TracepointFields | null;
  /** enum sk_rst_reason names by value, from tcp_send_reset's print fmt (empty when it has none). */
  rstReasons: Record<number, string>;
}

/** The tracepoints the program may use, as category/name (paths under tracefs events/). */
export const TRACEPOINTS = {
  setState: 'sock/inet_sock_set_state',
  sendReset: 'tcp/tcp_send_reset',
  receiveReset: 'tcp/tcp_receive_reset',
  sendLength: 'sock/sock_send_length',
  recvLength: 'sock/sock_recv_length',
} as const;

/** Parses the fields of a tracefs format file (`field:__u8 saddr[28];	offset:32;	size:28;	signed:0;`). */
export function parseFormatFields(text: string): TracepointFields {
  const out: TracepointFields = new Map();
  for (const m of text.matchAll(/^\s*field:([^;]*);\s*offset:\d+;\s*size:(\d+);/gm)) {
    const decl = m[1]!.trim();
    const name = /([A-Za-z_][A-Za-z0-9_]*)\s*(\[[^\]]*\])?$/.exec(decl)?.[1];
    if (name !== undefined && !name.startsWith('common_')) out.set(name, Number(m[2]));
  }
  return out;
}

/** enum values printed by `__print_symbolic(REC->reason, { 1, "NO_SOCKET" }, ...)` in a format's print fmt. */
export function parseReasonTable(text: string): Record<number, string> {
  const out: Record<number, string> = {};
  const at = text.indexOf('__print_symbolic(REC->reason');
  if (at < 0) return out;
  // The table ends at the closing parenthesis of this __print_symbolic.
  let depth = 0;
  let end = text.length;
  for (let i = text.indexOf('(', at); i < text.length; i++) {
    if (text[i] === '(') depth++;
    else if (text[i] === ')' && --depth === 0) {
      end = i;
      break;
    }
  }
  for (const m of text.slice(at, end).matchAll(/\{\s*(\d+)\s*,\s*"([A-Z0-9_]+)"\s*\}/g)) out[Number(m[1])] = m[2]!;
  return out;
}

/**
 * Splits the output of `for f in ...; do echo "== $f"; cat $f/format; done`
 * (see bpftrace.ts) into TracepointFormats.
 */
export function parseFormats(dump: string): TracepointFormats {
  const parts = new Map<string, string>();
  let cur: string | null = null;
  for (const line of dump.split('\n')) {
    const m = /^== (\S+)$/.exec(line);
    if (m) {
      cur = m[1]!;
      parts.set(cur, '');
    } else if (cur !== null) parts.set(cur, parts.get(cur)! + line + '\n');
  }
  const get = (k: string): TracepointFields | null => {
    const t = parts.get(k);
    if (t === undefined || !/^\s*field:/m.test(t)) return null;
    return parseFormatFields(t);
  };
  return {
    setState: get(TRACEPOINTS.setState),
    sendReset: get(TRACEPOINTS.sendReset),
    receiveReset: get(TRACEPOINTS.receiveReset),
    sendLength: get(TRACEPOINTS.sendLength),
    recvLength: get(TRACEPOINTS.recvLength),
    rstReasons: parseReasonTable(parts.get(TRACEPOINTS.sendReset) ?? ''),
  };
}

export interface ScriptOptions {
  /** Ports whose connections are traced (either end); empty: every TCP connection. */
  ports: number[];
  formats: TracepointFormats;
  /** Kernel BTF is available (/sys/kernel/btf/vmlinux): struct sock and task flags can be read. */
  btf: boolean;
}

export interface BuiltScript {
  text: string;
  /** Tracepoints used, and the ones left out with why (for the notice line). */
  used: string[];
  missing: string[];
}

/** `(a == 8000 || b == 8000)` for each port; `1` when no port filter. */
function portPredicate(a: string, b: string, ports: number[]): string {
  if (ports.length === 0) return '1';
  return `(${ports.map((p) => `${a} == ${p} || ${b} == ${p}`).join(' || ')})`;
}

const HEX16 = '%02x'.repeat(16);
const HEX4 = '%02x'.repeat(4);
function bytes(arr: string, from: number, n: number): string {
  return Array.from({ length: n }, (_, i) => `${arr}[${from + i}]`).join(', ');
}

/** Builds the bpftrace program for this kernel's tracepoint layouts. Throws if inet_sock_set_state is missing. */
export function buildScript(o: ScriptOptions): BuiltScript {
  const f = o.formats;
  const used: string[] = [];
  const missing: string[] = [];
  if (f.setState === null || !f.setState.has('sport') || !f.setState.has('saddr_v6'))
    throw new Error('the kernel has no usable sock:inet_sock_set_state tracepoint (Linux 4.16+)');
  // PF_EXITING (include/linux/sched.h): the task is in do_exit(), closing the files of a dead process.
  const exiting = o.btf ? '(curtask->flags & 4) ? 1 : 0' : '-1';
  const own = o.btf && f.sendLength !== null && f.recvLength !== null && f.sendLength.has('sk') && f.sendLength.has('protocol');
  const lines: string[] = [];
  lines.push('BEGIN { printf("B %llu\\n", nsecs); }');

  const proto = f.setState.has('protocol') ? 'args->protocol == 6 && ' : '';
  lines.push(
    `tracepoint:sock:inet_sock_set_state /${proto}${portPredicate('args->sport', 'args->dport', o.ports)}/ {`,
    `  printf("S %llu %d %d %d %llx %s %d %s %d %d %d %s\\n", nsecs, pid, tid, ${exiting}, args->skaddr, ntop(args->saddr_v6), args->sport, ntop(args->daddr_v6), args->dport, args->oldstate, args->newstate, comm);`,
    ...(own ? ['  if (args->newstate == 7) { delete(@own[args->skaddr]); }'] : []),
    '}',
  );
  used.push('sock:inet_sock_set_state');

  const sr = f.sendReset;
  if (sr === null) missing.push('tcp:tcp_send_reset (not in this kernel)');
  else {
    const state = sr.has('state') ? 'args->state' : '-1';
    const reason = sr.has('reason') ? 'args->reason' : '-1';
    const skb = sr.has('skbaddr') ? 'args->skbaddr' : '1';
    const head = `nsecs, pid, tid, ${exiting}, args->skaddr, ${skb}, ${state}, ${reason}`;
    if (sr.has('sport') && sr.has('saddr_v6')) {
      // Linux 4.15 - 6.9: ports and addresses as fields, IPv4 mapped into saddr_v6.
      lines.push(
        `tracepoint:tcp:tcp_send_reset /${portPredicate('args->sport', 'args->dport', o.ports)}/ {`,
        `  printf("R %llu %d %d %d %llx %llx %d %d %s %d %s %d %s\\n", ${head}, ntop(args->saddr_v6), args->sport, ntop(args->daddr_v6), args->dport, comm);`,
        '}',
      );
      used.push('tcp:tcp_send_reset');
    } else if ((sr.get('saddr') ?? 0) >= 24 && (sr.get('daddr') ?? 0) >= 24) {
      // Linux 6.10+: struct sockaddr_in / sockaddr_in6 in 28-byte buffers (family in host order,
      // port big-endian at offset 2, address at 4 (IPv4) or 8 (IPv6)); saddr is the RST's sender.
      lines.push(
        'tracepoint:tcp:tcp_send_reset {',
        '  $sp = (uint64)((args->saddr[2] << 8) | args->saddr[3]);',
        '  $dp = (uint64)((args->daddr[2] << 8) | args->daddr[3]);',
        `  if (${portPredicate('$sp', '$dp', o.ports)}) {`,
        '    if (args->saddr[0] == 10) {',
        `      printf("R %llu %d %d %d %llx %llx %d %d ${HEX16} %d ${HEX16} %d %s\\n", ${head}, ${bytes('args->saddr', 8, 16)}, $sp, ${bytes('args->daddr', 8, 16)}, $dp, comm);`,
        '    } else {',
        `      printf("R %llu %d %d %d %llx %llx %d %d ${HEX4} %d ${HEX4} %d %s\\n", ${head}, ${bytes('args->saddr', 4, 4)}, $sp, ${bytes('args->daddr', 4, 4)}, $dp, comm);`,
        '    }',
        '  }',
        '}',
      );
      used.push('tcp:tcp_send_reset');
    } else missing.push('tcp:tcp_send_reset (unknown field layout)');
  }

  const rr = f.receiveReset;
  if (rr === null || !rr.has('sport') || !rr.has('saddr_v6')) missing.push('tcp:tcp_receive_reset');
  else {
    lines.push(
      `tracepoint:tcp:tcp_receive_reset /${portPredicate('args->sport', 'args->dport', o.ports)}/ {`,
      `  printf("X %llu %d %d %d %llx %s %d %s %d %s\\n", nsecs, pid, tid, ${exiting}, args->skaddr, ntop(args->saddr_v6), args->sport, ntop(args->daddr_v6), args->dport, comm);`,
      '}',
    );
    used.push('tcp:tcp_receive_reset');
  }

  if (own) {
    // struct sock_common: skc_num is the local port in host order, skc_dport the remote port
    // big-endian (swapped here for a little-endian CPU: x86-64, arm64).
    lines.push(
      'tracepoint:sock:sock_send_length, tracepoint:sock:sock_recv_length /args->protocol == 6/ {',
      '  $sk = (struct sock *)args->sk;',
      '  $lp = (uint64)$sk->__sk_common.skc_num;',
      '  $rp0 = (uint64)$sk->__sk_common.skc_dport;',
      '  $rp = (($rp0 & 0xff) << 8) | ($rp0 >> 8);',
      `  if (${portPredicate('$lp', '$rp', o.ports)} && @own[args->sk] == 0) {`,
      '    @own[args->sk] = 1;',
      '    if (args->family == 2) {',
      `      printf("O %llu %d %d %d %llx %s %d %s %d %s\\n", nsecs, pid, tid, ${exiting}, args->sk, ntop(2, $sk->__sk_common.skc_rcv_saddr), $lp, ntop(2, $sk->__sk_common.skc_daddr), $rp, comm);`,
      '    } else {',
      `      printf("O %llu %d %d %d %llx %s %d %s %d %s\\n", nsecs, pid, tid, ${exiting}, args->sk, ntop($sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8), $lp, ntop($sk->__sk_common.skc_v6_daddr.in6_u.u6_addr8), $rp, comm);`,
      '    }',
      '  }',
      '}',
      // Maps are printed when bpftrace exits; nothing of ours should be.
      'END { clear(@own); }',
    );
    used.push('sock:sock_send_length', 'sock:sock_recv_length');
  } else {
    missing.push(
      o.btf
        ? 'sock:sock_send_length/sock_recv_length (Linux 6.3+; without them accepted sockets get an owner only when they close)'
        : 'owner tracking and exit detection (no kernel BTF at /sys/kernel/btf/vmlinux)',
    );
  }
  return { text: `${lines.join('\n')}\n`, used, missing };
}
