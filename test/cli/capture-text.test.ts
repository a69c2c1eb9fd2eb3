/** The stop line of watch and daemon: counters, and what to change when the kernel dropped packets. */
import { describe, expect, test } from 'vitest';
import { counterText, snaplenNote } from '../../cli/capture-text.js';

const counters = (dropped: number | null, ifDropped: number | null = null) => ({ received: 1000, dropped, ifDropped });

describe('counterText', () => {
  test('no drops: the counters only', () => {
    expect(counterText('tcpdump', counters(0), 32)).toBe('tcpdump: 1000 packets received by the filter, 0 dropped by the kernel');
  });
  test('drops: says to raise the buffer, at least 256 MiB or 4 times the current one', () => {
    expect(counterText('tcpdump', counters(12), 32)).toBe(
      'tcpdump: 1000 packets received by the filter, 12 dropped by the kernel (the 32 MiB capture buffer overflowed: raise it, e.g. --buffer-size 256)',
    );
    expect(counterText('libpcap', counters(1, 3), 512)).toBe(
      'libpcap: 1000 packets received by the filter, 1 dropped by the kernel, 3 dropped by the interface (the 512 MiB capture buffer overflowed: raise it, e.g. --buffer-size 2048)',
    );
  });
  test('unknown drops: no advice', () => {
    expect(counterText('tcpdump', { received: null, dropped: null, ifDropped: null }, 32)).toBe('tcpdump: drops unknown');
  });
  test('snaplen note only below whole frames', () => {
    expect(snaplenNote(262144)).toBeNull();
    expect(snaplenNote(96)).toMatch(/^snaplen 96: frames longer than that are cut/);
  });
});
