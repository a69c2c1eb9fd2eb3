/**
 * Every prefix of a real capture must read as a partial result or fail with
 * a UserError (only while the file header is incomplete), never throw
 * anything else; packet counts grow with the prefix and reach the full count.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Anomalies, UserError } from '../../lib/types.js';
import { corpusFile, need, parseBuffer } from './helpers.js';

const haveCorpus = need('corpus', 'capture truncation');

function everyPrefix(file: string, headerLen: number, full: number, chunk: number): void {
  const buf = readFileSync(corpusFile(file));
  let prev = 0;
  for (let n = 0; n <= buf.length; n++) {
    const an = new Anomalies();
    let packets: number;
    try {
      packets = parseBuffer(buf.subarray(0, n), chunk, an).recs.length;
    } catch (err) {
      expect(err, `prefix ${n}`).toBeInstanceOf(UserError);
      expect(n, `UserError only inside the file header (prefix ${n})`).toBeLessThan(headerLen);
      continue;
    }
    expect(n, `prefix ${n} inside the header must be a UserError`).toBeGreaterThanOrEqual(headerLen);
    expect(packets).toBeGreaterThanOrEqual(prev);
    // Only a cut record can be reported here.
    for (const k of Object.keys(an.toJSON())) expect(k).toBe('truncated-record');
    prev = packets;
  }
  expect(prev).toBe(full);
}

describe.runIf(haveCorpus)('every truncation point', () => {
  it('tcpdump/print-flags.pcap (pcap, 24-byte header)', () => {
    everyPrefix('tcpdump/print-flags.pcap', 24, 10, 0);
  });
  it('tcpdump/print-flags.pcap pushed in 7-byte chunks', () => {
    everyPrefix('tcpdump/print-flags.pcap', 24, 10, 7);
  });
  it('zeek/pcapng-multi-interface.pcapng (pcapng; SHB is the header)', () => {
    const buf = readFileSync(corpusFile('zeek/pcapng-multi-interface.pcapng'));
    everyPrefix('zeek/pcapng-multi-interface.pcapng', buf.readUInt32LE(4), 6, 0);
  });
  it('tcpdump/time_2106_overflow.pcapng pushed in 5-byte chunks', () => {
    const buf = readFileSync(corpusFile('tcpdump/time_2106_overflow.pcapng'));
    everyPrefix('tcpdump/time_2106_overflow.pcapng', buf.readUInt32LE(4), 1, 5);
  });
});
