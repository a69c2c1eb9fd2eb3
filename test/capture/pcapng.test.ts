/**
 * pcapng details the corpus has no file for (big-endian sections, several
 * sections, binary if_tsresol, if_tsoffset, SPB, the obsolete Packet Block,
 * damaged block lengths). Each case starts from the blocks of a real corpus
 * capture and rewrites only the block framing, then checks our reading
 * against tshark's reading of the same bytes where tshark can read them.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Anomalies } from '../../lib/types.js';
import { corpusFile, epochToMicros, need, parseBuffer, tsharkFields } from './helpers.js';

const haveCorpus = need('corpus', 'pcapng blocks');
const haveTshark = need('tshark', 'pcapng blocks vs tshark');
const tmp = mkdtempSync(path.join(tmpdir(), 'hangscope-pcapng-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Block {
  type: number;
  body: Buffer; // between the length field and the trailing length
}

/** Splits a little-endian pcapng file into blocks. */
function blocks(buf: Buffer): Block[] {
  const out: Block[] = [];
  for (let off = 0; off < buf.length; ) {
    const type = buf.readUInt32LE(off);
    const len = buf.readUInt32LE(off + 4);
    out.push({ type, body: Buffer.from(buf.subarray(off + 8, off + len - 4)) });
    off += len;
  }
  return out;
}

function block(type: number, body: Buffer, be = false): Buffer {
  const len = 12 + body.length;
  const b = Buffer.alloc(len);
  if (be) {
    b.writeUInt32BE(type, 0);
    b.writeUInt32BE(len, 4);
    b.writeUInt32BE(len, len - 4);
  } else {
    b.writeUInt32LE(type, 0);
    b.writeUInt32LE(len, 4);
    b.writeUInt32LE(len, len - 4);
  }
  body.copy(b, 8);
  return b;
}

/** Swaps 16/32-bit fields at the given body offsets. */
function swap(body: Buffer, u16: number[], u32: number[]): Buffer {
  const b = Buffer.from(body);
  for (const o of u16) b.writeUInt16BE(body.readUInt16LE(o), o);
  for (const o of u32) b.writeUInt32BE(body.readUInt32LE(o), o);
  return b;
}

/** Swaps an option list starting at `from` (codes and lengths only; values are bytes or strings here). */
function swapOptions(b: Buffer, from: number): void {
  for (let p = from; p + 4 <= b.length; ) {
    const code = b.readUInt16LE(p);
    const len = b.readUInt16LE(p + 2);
    b.writeUInt16BE(code, p);
    b.writeUInt16BE(len, p + 2);
    if (code === 0) break;
    p += 4 + ((len + 3) & ~3);
  }
}

/**
 * Rewrites a little-endian pcapng as big-endian, as a big-endian machine
 * would have written it: block framing, SHB/IDB/EPB fixed fields, option
 * headers. Packet bytes are unchanged.
 */
function toBigEndian(buf: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (const { type, body } of blocks(buf)) {
    let b: Buffer;
    if (type === 0x0a0d0d0a) {
      b = swap(body, [4, 6], [0]);
      // 64-bit section length: swap the halves too
      const lo = body.readUInt32LE(8);
      const hi = body.readUInt32LE(12);
      b.writeUInt32BE(hi, 8);
      b.writeUInt32BE(lo, 12);
      swapOptions(b, 16);
    } else if (type === 1) {
      b = swap(body, [0, 2], [4]);
      swapOptions(b, 8);
    } else if (type === 6) {
      b = swap(body, [], [0, 4, 8, 12, 16]);
      const cap = body.readUInt32LE(12);
      swapOptions(b, 20 + ((cap + 3) & ~3));
    } else {
      b = body;
    }
    parts.push(block(type, b, true));
  }
  return Buffer.concat(parts);
}

function tsharkTimes(file: string): number[] {
  return tsharkFields(file, ['frame.time_epoch']).map((r) => epochToMicros(r[0]!));
}

describe.runIf(haveCorpus)('pcapng layouts', () => {
  const multi = haveCorpus ? readFileSync(corpusFile('zeek/pcapng-multi-interface.pcapng')) : Buffer.alloc(0);

  it('a big-endian section reads the same as the little-endian original', () => {
    const le = parseBuffer(multi).recs;
    const be = toBigEndian(multi);
    expect(be.equals(multi)).toBe(false);
    expect(parseBuffer(be).recs).toEqual(le);
    expect(parseBuffer(be, 3).recs).toEqual(le);
  });

  it('several sections, mixed byte orders: interfaces reset per section', () => {
    const both = Buffer.concat([multi, toBigEndian(multi)]);
    const { recs, parser } = parseBuffer(both);
    const one = parseBuffer(multi).recs;
    expect(recs.length).toBe(12);
    expect(recs.map((r) => r.interfaceId)).toEqual([0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1]);
    expect(recs.slice(6).map((r) => [r.ts, r.hex])).toEqual(one.map((r) => [r.ts, r.hex]));
    expect(recs.map((r) => r.frame)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(parser.packets).toBe(12);
  });

  it.runIf(haveTshark)('two concatenated sections: tshark agrees on count and times', () => {
    const f = path.join(tmp, 'two-sections.pcapng');
    writeFileSync(f, Buffer.concat([multi, readFileSync(corpusFile('tcpdump/time_2106_overflow.pcapng'))]));
    const { recs } = parseBuffer(readFileSync(f));
    expect(recs.map((r) => r.ts)).toEqual(tsharkTimes(f));
  });

  /** time_2106_overflow.pcapng: SHB, IDB (no options), one EPB. Rebuilds it with IDB options. */
  function withIdbOptions(options: Buffer): Buffer {
    const src = readFileSync(corpusFile('tcpdump/time_2106_overflow.pcapng'));
    const bl = blocks(src);
    expect(bl.map((b) => b.type)).toEqual([0x0a0d0d0a, 1, 6]);
    const idbBody = Buffer.concat([bl[1]!.body.subarray(0, 8), options, Buffer.alloc(4)]); // + opt_endofopt
    return Buffer.concat([block(bl[0]!.type, bl[0]!.body), block(1, idbBody), block(6, bl[2]!.body)]);
  }
  function option(code: number, value: Buffer): Buffer {
    const b = Buffer.alloc(4 + ((value.length + 3) & ~3));
    b.writeUInt16LE(code, 0);
    b.writeUInt16LE(value.length, 2);
    value.copy(b, 4);
    return b;
  }

  it.runIf(haveTshark)('binary if_tsresol (2^-20 s) matches tshark', () => {
    const buf = withIdbOptions(option(9, Buffer.from([0x80 | 20])));
    const f = path.join(tmp, 'tsresol-bin.pcapng');
    writeFileSync(f, buf);
    const { recs } = parseBuffer(buf);
    expect(recs.map((r) => r.ts)).toEqual(tsharkTimes(f));
    // Independent BigInt check: the raw 64-bit value is 4294967296 * 10^6 units of 2^-20 s.
    expect(recs[0]!.ts).toBe(Number((4294967296000000n * 1000000n) >> 20n));
  });

  it.runIf(haveTshark)('decimal if_tsresol 10^-9 and 10^-12 match tshark', () => {
    const buf = withIdbOptions(option(9, Buffer.from([9])));
    const f = path.join(tmp, 'tsresol-9.pcapng');
    writeFileSync(f, buf);
    expect(parseBuffer(buf).recs.map((x) => x.ts)).toEqual(tsharkTimes(f));
    // pcapng-multi-interface's interface 0 has if_tsresol 9: make it 12 in place.
    const pico = Buffer.from(multi);
    const at = pico.indexOf(Buffer.from([0x09, 0x00, 0x01, 0x00, 0x09]));
    expect(at).toBeGreaterThan(0);
    pico[at + 4] = 12;
    const g = path.join(tmp, 'tsresol-12.pcapng');
    writeFileSync(g, pico);
    const ours = parseBuffer(pico).recs.map((x) => x.ts);
    // tshark 4.0 gets the whole seconds right but overflows 64 bits in the
    // fraction for resolutions finer than 1 ns (wiretap/pcapng.c multiplies
    // ts % units_per_second by 10^9), so compare seconds with tshark and
    // the exact value with BigInt arithmetic on the raw count.
    expect(ours.map((t) => Math.floor(t / 1e6))).toEqual(tsharkTimes(g).map((t) => Math.floor(t / 1e6)));
    expect(ours[0]).toBe(Number(1767663089500330493n / 1000000n)); // raw count of frame 1 (tshark: ...089.500330493 s at 10^-9)
  });

  it('a timestamp beyond 2^53 µs (10^-3 units holding a µs count) is counted, not passed on inexact', () => {
    const an = new Anomalies();
    const buf = withIdbOptions(option(9, Buffer.from([3])));
    expect(parseBuffer(buf, 0, an).recs.map((x) => x.ts)).toEqual([0]);
    expect(an.toJSON()).toEqual({ 'pcapng-bad-timestamp': 1 });
  });

  it('if_tsoffset adds whole seconds', () => {
    const off = Buffer.alloc(8);
    off.writeBigInt64LE(-1000n);
    const buf = withIdbOptions(option(14, off));
    expect(parseBuffer(buf).recs[0]!.ts).toBe((4294967296 - 1000) * 1_000_000);
  });

  it.runIf(haveTshark)('Simple Packet Block: interface 0, previous timestamp (tshark reads the same bytes)', () => {
    const bl = blocks(multi);
    // Replace the second EPB with an SPB carrying the same packet.
    let epbSeen = 0;
    const parts = bl.map((b) => {
      if (b.type === 6 && ++epbSeen === 2) {
        const cap = b.body.readUInt32LE(12);
        const orig = b.body.readUInt32LE(16);
        const data = b.body.subarray(20, 20 + cap);
        const body = Buffer.alloc(4 + ((cap + 3) & ~3));
        body.writeUInt32LE(orig, 0);
        data.copy(body, 4);
        return block(3, body);
      }
      return block(b.type, b.body);
    });
    const buf = Buffer.concat(parts);
    const f = path.join(tmp, 'spb.pcapng');
    writeFileSync(f, buf);
    const ours = parseBuffer(buf).recs;
    const orig = parseBuffer(multi).recs;
    expect(ours.length).toBe(6);
    expect(ours[1]!.hex).toBe(orig[1]!.hex);
    expect(ours[1]!.interfaceId).toBe(0);
    expect(ours[1]!.ts).toBe(ours[0]!.ts);
    // tshark agrees on the packet bytes' length; it shows no time for an SPB.
    const t = tsharkFields(f, ['frame.len', 'frame.interface_id']);
    expect(ours.map((r) => r.origLen)).toEqual(t.map((x) => Number(x[0])));
  });

  it.runIf(haveTshark)('obsolete Packet Block (type 2) reads like an EPB and tshark agrees', () => {
    const bl = blocks(multi);
    const parts = bl.map((b) => {
      if (b.type !== 6) return block(b.type, b.body);
      const body = Buffer.from(b.body);
      const ifId = b.body.readUInt32LE(0);
      body.writeUInt16LE(ifId, 0); // interface id (16 bits)
      body.writeUInt16LE(0, 2); // drops count
      return block(2, body);
    });
    const buf = Buffer.concat(parts);
    const f = path.join(tmp, 'opb.pcapng');
    writeFileSync(f, buf);
    const ours = parseBuffer(buf).recs;
    expect(ours).toEqual(parseBuffer(multi).recs);
    expect(ours.map((r) => r.ts)).toEqual(tsharkTimes(f));
  });

  it('a bad block length stops reading with an anomaly, keeping earlier packets', () => {
    for (const bad of [13, 8, 0x7ffffff0]) {
      const buf = Buffer.from(multi);
      // Find the third EPB and corrupt its length.
      let off = 0;
      let epb = 0;
      while (off < buf.length) {
        const type = buf.readUInt32LE(off);
        const len = buf.readUInt32LE(off + 4);
        if (type === 6 && ++epb === 3) break;
        off += len;
      }
      buf.writeUInt32LE(bad, off + 4);
      const an = new Anomalies();
      const { recs, parser } = parseBuffer(buf, 0, an);
      expect(recs.length).toBe(2);
      expect(parser.stopped).toBe(true);
      expect(an.toJSON()).toEqual({ 'pcapng-bad-block-length': 1 });
    }
  });

  it('an EPB naming an interface that does not exist is skipped and counted', () => {
    const bl = blocks(multi);
    let epb = 0;
    const parts = bl.map((b) => {
      const body = Buffer.from(b.body);
      if (b.type === 6 && ++epb === 1) body.writeUInt32LE(7, 0);
      return block(b.type, body);
    });
    const an = new Anomalies();
    const { recs } = parseBuffer(Buffer.concat(parts), 0, an);
    expect(recs.length).toBe(5);
    expect(recs[0]!.frame).toBe(1);
    expect(an.toJSON()).toEqual({ 'pcapng-unknown-interface': 1 });
  });
});
