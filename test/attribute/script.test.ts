/**
 * The bpftrace program is built from the kernel's tracepoint formats; the
 * formats in the fixtures are this machine's (Linux 6.18), read from tracefs
 * by test/attribute/record.mjs, and script-18605.bt is the program the
 * keep-alive race recording ran with.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RST_REASONS_6_10 } from '../../lib/attribute/events.js';
import { buildScript, parseFormats, type TracepointFormats } from '../../lib/attribute/script.js';
import { FIXTURES } from './helpers.js';

const dump = readFileSync(path.join(FIXTURES, 'formats.txt'), 'utf8');
const formats = parseFormats(dump);

describe('tracepoint formats', () => {
  it('reads the fields of each tracepoint', () => {
    expect([...formats.setState!.keys()]).toEqual(['skaddr', 'oldstate', 'newstate', 'sport', 'dport', 'family', 'protocol', 'saddr', 'daddr', 'saddr_v6', 'daddr_v6']);
    // Linux 6.10+: tcp_send_reset carries sockaddr buffers and a reason, no port fields.
    expect(formats.sendReset!.get('saddr')).toBe(28);
    expect(formats.sendReset!.has('reason')).toBe(true);
    expect(formats.sendReset!.has('sport')).toBe(false);
    expect(formats.receiveReset!.has('sport')).toBe(true);
    expect(formats.sendLength!.has('sk')).toBe(true);
    expect(formats.recvLength!.has('protocol')).toBe(true);
  });

  it("reads enum sk_rst_reason from tcp_send_reset's print fmt; the built-in fallback is this kernel's table", () => {
    expect(formats.rstReasons[1]).toBe('NO_SOCKET');
    expect(formats.rstReasons[8]).toBe('TCP_ABORT_ON_DATA');
    expect(formats.rstReasons[9]).toBe('TCP_TIMEWAIT_SOCKET');
    for (const [k, v] of Object.entries(RST_REASONS_6_10)) expect(formats.rstReasons[Number(k)]).toBe(v);
  });
});

describe('buildScript', () => {
  it('builds the program the recording ran (regression)', () => {
    const built = buildScript({ ports: [18605], formats, btf: true });
    expect(built.text).toBe(readFileSync(path.join(FIXTURES, 'script-18605.bt'), 'utf8'));
    expect(built.used).toEqual(['sock:inet_sock_set_state', 'tcp:tcp_send_reset', 'tcp:tcp_receive_reset', 'sock:sock_send_length', 'sock:sock_recv_length']);
    expect(built.missing).toEqual([]);
  });

  it('filters every probe by the ports, in the kernel', () => {
    const t = buildScript({ ports: [8000, 8443], formats, btf: true }).text;
    expect(t).toContain('/args->protocol == 6 && (args->sport == 8000 || args->dport == 8000 || args->sport == 8443 || args->dport == 8443)/');
    expect(t).toContain('if (($sp == 8000 || $dp == 8000 || $sp == 8443 || $dp == 8443))');
    expect(t).toContain('if (($lp == 8000 || $rp == 8000 || $lp == 8443 || $rp == 8443) && @own[args->sk] == 0)');
  });

  it('without kernel BTF: no owner probes, exits unknown (-1), and it says so', () => {
    const b = buildScript({ ports: [8000], formats, btf: false });
    expect(b.text).not.toContain('sock_send_length');
    expect(b.text).not.toContain('curtask');
    expect(b.text).toMatch(/printf\("S [^"]*", nsecs, pid, tid, -1,/);
    expect(b.missing.join(' ')).toContain('BTF');
  });

  it('a kernel without tcp_send_reset or without the length tracepoints: left out and named', () => {
    const f: TracepointFormats = { ...formats, sendReset: null, sendLength: null };
    const b = buildScript({ ports: [8000], formats: f, btf: true });
    expect(b.text).not.toContain('tcp_send_reset');
    expect(b.missing[0]).toContain('tcp:tcp_send_reset');
    expect(b.missing[1]).toContain('sock_send_length');
  });

  it('the pre-6.10 tcp_send_reset layout (port fields, as tcp_receive_reset still has) prints ntop text', () => {
    const f: TracepointFormats = { ...formats, sendReset: new Map([['skbaddr', 8], ['skaddr', 8], ...formats.receiveReset!]) };
    const t = buildScript({ ports: [8000], formats: f, btf: true }).text;
    expect(t).toContain('tracepoint:tcp:tcp_send_reset /(args->sport == 8000 || args->dport == 8000)/');
    expect(t).toMatch(/printf\("R [^"]*", nsecs, pid, tid, [^,]+, args->skaddr, args->skbaddr, -1, -1, ntop\(args->saddr_v6\)/);
  });

  it('refuses a kernel without inet_sock_set_state', () => {
    expect(() => buildScript({ ports: [8000], formats: { ...formats, setState: null }, btf: true })).toThrow(/inet_sock_set_state/);
  });
});
