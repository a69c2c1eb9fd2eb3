/**
 * The decoder never throws: every prefix of every corpus packet, and
 * byte-flipped copies of them (seeded, so failures reproduce), decode to a
 * segment or null. Returned segments keep their invariants. Also: IPv6 text
 * form against glibc's inet_ntop (the function tshark's output comes from).
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { readCapture } from '../../lib/capture/index.js';
import { Decoder, formatIPv6 } from '../../lib/decode/index.js';
import { Anomalies, type PacketRecord, type TcpSegment } from '../../lib/types.js';
import { corpusFile, IN_CI, manifest, need } from '../capture/helpers.js';

const haveCorpus = need('corpus', 'decode robustness');

/** Mulberry32: small seeded PRNG. */
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

function checkSegment(s: TcpSegment | null, rec: PacketRecord): void {
  if (s === null) return;
  expect(s.srcPort).toBeGreaterThanOrEqual(0);
  expect(s.srcPort).toBeLessThan(65536);
  expect(s.seq).toBeGreaterThanOrEqual(0);
  expect(s.seq).toBeLessThan(2 ** 32);
  expect(s.payloadLen).toBeGreaterThanOrEqual(0);
  expect(s.payload.length).toBeLessThanOrEqual(s.payloadLen);
  expect(s.payload.length).toBeLessThanOrEqual(rec.data.length);
  expect(s.wscale).toBeLessThanOrEqual(14);
  expect(s.frame).toBe(rec.frame);
}

describe.runIf(haveCorpus)('decoder robustness on damaged real packets', () => {
  it('prefixes and seeded mutations of the DEV corpus packets: no throw', async () => {
    const an = new Anomalies();
    const dec = new Decoder(an);
    const rand = rng(20260121);
    let decoded = 0;
    for (const row of manifest()) {
      await readCapture(
        corpusFile(row.file),
        (rec) => {
          const orig = Buffer.from(rec.data);
          const r: PacketRecord = { ...rec, data: orig };
          // Every prefix (up to the first 120 bytes, where all headers are)
          // of the first 40 packets of each file.
          for (let n = 0; rec.frame <= 40 && n <= orig.length && n <= 120; n++) {
            r.data = orig.subarray(0, n);
            const s = dec.decode(r);
            checkSegment(s, r);
            if (s) decoded++;
          }
          for (let k = 0; k < 8; k++) {
            const m = Buffer.from(orig);
            const flips = 1 + Math.floor(rand() * 4);
            for (let j = 0; j < flips && m.length > 0; j++) {
              // Bias toward header bytes, where the lengths live.
              const pos = Math.floor(rand() * Math.min(m.length, rand() < 0.8 ? 80 : m.length));
              m[pos] = Math.floor(rand() * 256);
            }
            r.data = m;
            r.origLen = rand() < 0.2 ? Math.floor(rand() * 100) : rec.origLen;
            checkSegment(dec.decode(r), r);
            r.origLen = rec.origLen;
          }
          // Every link type with these bytes, including unsupported ones.
          for (const lt of [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147]) {
            r.data = orig;
            r.linkType = lt;
            checkSegment(dec.decode(r), r);
          }
        },
        { anomalies: new Anomalies() },
      );
    }
    expect(decoded).toBeGreaterThan(1000);
    // Damage was seen and counted, by kebab-case name.
    for (const k of Object.keys(an.toJSON())) expect(k).toMatch(/^[a-z0-9]+(-[a-z0-9]+)*$/);
  });
});

describe('IPv6 text form (RFC 5952) against glibc inet_ntop', () => {
  const addrs = [
    '::',
    '::1',
    '1::',
    'fe80::1',
    '2001:db8::ff00:42:8329',
    '2001:db8:0:0:1:0:0:1',
    '2001:0:0:1:0:0:0:1',
    '2001:db8:0:1:1:1:1:1',
    '::ffff:192.0.2.128',
    '::192.0.2.128',
    '::ffff:0:1',
    '64:ff9b::192.0.2.33',
    '2001:db8:85a3:8d3:1319:8a2e:370:7348',
    '0:0:0:0:0:0:0:2',
    '1:0:0:2:0:0:0:3',
    'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
    '0:1:0:0:0:0:0:0',
    '::1:0:0:0:1',
  ];
  const py = spawnSync(
    'python3',
    [
      '-c',
      'import socket,sys\nfor a in sys.argv[1:]:\n b=socket.inet_pton(socket.AF_INET6,a)\n print(b.hex(), socket.inet_ntop(socket.AF_INET6,b))',
      ...addrs,
    ],
    { encoding: 'utf8' },
  );
  const ok = py.status === 0;
  if (!ok) {
    if (IN_CI) throw new Error('python3 is needed for the inet_ntop comparison');
    console.log('[skip] IPv6 text form: python3 not available');
  }
  it.runIf(ok)('matches for every sample', () => {
    const lines = py.stdout.trim().split('\n');
    expect(lines.length).toBe(addrs.length);
    for (const l of lines) {
      const [hex, text] = l.split(' ');
      expect(formatIPv6(Buffer.from(hex!, 'hex'), 0), hex).toBe(text);
    }
  });
});
