/**
 * The capture parser never throws anything but UserError, and never throws
 * at all once the file header was read: byte-flipped copies (seeded) of real
 * pcap and pcapng files, pushed whole and in odd-sized chunks.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CaptureParser } from '../../lib/capture/index.js';
import { Anomalies, UserError } from '../../lib/types.js';
import { corpusFile, need } from './helpers.js';

const haveCorpus = need('corpus', 'capture robustness');

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe.runIf(haveCorpus)('capture parser on damaged real files', () => {
  const files: [string, number][] = [
    ['tcpdump/print-flags.pcap', 24],
    ['tcpdump/pptp.pcap', 24],
    ['tcpdump/tcp-handshake-nano.pcap', 24],
    ['zeek/pcapng-multi-interface.pcapng', 0],
    ['zeek/http/zeek-image-1080-80-x.pcapng', 0],
  ];
  for (const [f, pcapHeader] of files) {
    it(`${f}: 300 mutated copies`, () => {
      const orig = readFileSync(corpusFile(f));
      // pcapng: the header is the first SHB, whose length is at offset 4.
      const headerLen = pcapHeader || orig.readUInt32LE(4);
      const rand = rng(7);
      for (let k = 0; k < 300; k++) {
        const m = Buffer.from(orig);
        const flips = 1 + Math.floor(rand() * 6);
        let touchedHeader = false;
        for (let j = 0; j < flips; j++) {
          const pos = Math.floor(rand() * m.length);
          if (pos < headerLen) touchedHeader = true;
          m[pos] = Math.floor(rand() * 256);
        }
        const chunk = [0, 1, 3, 64, 1000][k % 5]!;
        let packets = 0;
        const p = new CaptureParser(
          (r) => {
            packets++;
            expect(r.data.length).toBeLessThanOrEqual(r.origLen);
            expect(r.frame).toBe(packets);
            expect(Number.isSafeInteger(r.ts), `ts ${r.ts}`).toBe(true);
          },
          new Anomalies(),
        );
        try {
          if (chunk === 0) p.push(m);
          else for (let i = 0; i < m.length; i += chunk) p.push(m.subarray(i, i + chunk));
          p.end();
        } catch (err) {
          expect(err).toBeInstanceOf(UserError);
          expect(touchedHeader, `only a damaged file header may throw (copy ${k})`).toBe(true);
        }
      }
    });
  }
});
