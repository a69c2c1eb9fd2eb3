/**
 * Test helper: replays the TCP segments tshark extracted from a capture
 * (test/fixtures/http/extract.sh) through HttpConnectionParser, one parser
 * per tcp.stream, with a deliberately small in-order reassembly (the real
 * one lives in lib/tcp/): retransmitted bytes are dropped, out-of-order
 * bytes wait for the hole to fill, a hole left at the end becomes gap().
 *
 * Records, per exchange, the frame whose delivery completed its request and
 * its final response: tshark reports a reassembled HTTP message at the frame
 * carrying its last byte, so these frames line up with tshark's rows.
 */

import { readFileSync } from 'node:fs';
import { HttpConnectionParser } from '../../lib/http/index.js';
import { Anomalies, type Dir, type Exchange, type Micros } from '../../lib/types.js';

export interface Segment {
  frame: number;
  ts: Micros;
  stream: number;
  srcPort: number;
  dstPort: number;
  flags: number;
  seq: number;
  len: number;
  payload: Buffer;
}

/** tshark prints 9 decimals; keep integer microseconds (truncate), as the capture reader does. */
export function epochToMicros(s: string): Micros {
  const [sec, frac = ''] = s.split('.');
  return Number(sec) * 1_000_000 + Number((frac + '000000').slice(0, 6));
}

export function loadSegments(file: string): Segment[] {
  const out: Segment[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    const c = line.split('\t');
    out.push({
      frame: Number(c[0]),
      ts: epochToMicros(c[1]!),
      stream: Number(c[2]),
      srcPort: Number(c[3]),
      dstPort: Number(c[4]),
      flags: Number(c[5]),
      seq: Number(c[6]),
      len: Number(c[7]),
      payload: Buffer.from((c[8] ?? '').replace(/:/g, ''), 'hex'),
    });
  }
  return out;
}

export interface ExchangeRecord {
  ex: Exchange;
  stream: number;
  reqEndFrame: number | null;
  respEndFrame: number | null;
}

export interface StreamResult {
  stream: number;
  clientPort: number;
  parser: HttpConnectionParser;
  records: ExchangeRecord[];
  /** Order in which onExchange saw the exchanges (indexes). */
  finishedOrder: number[];
}

/** How each delivery is cut before it reaches the parser (for split-invariance tests). */
export type Splitter = (buf: Buffer) => Buffer[];

export const whole: Splitter = (b) => [b];
export const bytewise: Splitter = (b) => {
  const out: Buffer[] = [];
  for (let i = 0; i < b.length; i++) out.push(b.subarray(i, i + 1));
  return out;
};
/** Deterministic pseudo-random cuts (xorshift32), so failures reproduce. */
export function randomSplits(seed: number): Splitter {
  let x = seed >>> 0 || 1;
  const rnd = (): number => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  return (b) => {
    const out: Buffer[] = [];
    let i = 0;
    while (i < b.length) {
      const n = 1 + (rnd() % 97);
      out.push(b.subarray(i, i + n));
      i += n;
    }
    return out;
  };
}

interface DirState {
  next: number | null;
  pending: Segment[];
  finSeq: number | null;
  finTs: Micros;
  finDone: boolean;
}

export function replay(
  segments: Segment[],
  split: Splitter = whole,
  anomalies = new Anomalies(),
  opts: { maxExchanges?: number; maxHeaders?: number; maxHeaderBytes?: number; lose?: Set<number> } = {},
): StreamResult[] {
  const streams = new Map<number, Segment[]>();
  for (const s of segments) {
    let a = streams.get(s.stream);
    if (!a) streams.set(s.stream, (a = []));
    a.push(s);
  }
  const results: StreamResult[] = [];
  for (const [stream, segs] of streams) {
    // Client = sender of a SYN without ACK; else the side not on the lower (server) port.
    const syn = segs.find((s) => (s.flags & 0x12) === 0x02);
    const first = segs[0]!;
    const clientPort = syn ? syn.srcPort : first.srcPort > first.dstPort ? first.srcPort : first.dstPort;
    const records: ExchangeRecord[] = [];
    const byEx = new Map<Exchange, ExchangeRecord>();
    const finishedOrder: number[] = [];
    const parser = new HttpConnectionParser({
      anomalies,
      maxExchanges: opts.maxExchanges,
      maxHeaders: opts.maxHeaders,
      maxHeaderBytes: opts.maxHeaderBytes,
      onExchange: (ex) => finishedOrder.push(ex.index),
    });
    const dirs: [DirState, DirState] = [
      { next: null, pending: [], finSeq: null, finTs: 0, finDone: false },
      { next: null, pending: [], finSeq: null, finTs: 0, finDone: false },
    ];
    let currentFrame = 0;
    const track = (): void => {
      for (const ex of parser.exchanges) {
        let r = byEx.get(ex);
        if (!r) {
          r = { ex, stream, reqEndFrame: null, respEndFrame: null };
          byEx.set(ex, r);
          records.push(r);
        }
        if (r.reqEndFrame === null && ex.requestEnd !== null) r.reqEndFrame = currentFrame;
        if (r.respEndFrame === null && ex.responseEnd !== null) r.respEndFrame = currentFrame;
      }
    };
    const deliver = (dir: Dir, buf: Buffer, ts: Micros): void => {
      for (const piece of split(buf)) parser.data(dir, piece, ts);
    };
    const drain = (dir: Dir, d: DirState): void => {
      for (;;) {
        d.pending.sort((a, b) => a.seq - b.seq);
        const s = d.pending[0];
        if (!s || d.next === null || s.seq > d.next) break;
        d.pending.shift();
        const end = s.seq + s.len;
        if (end > d.next) {
          // Frames listed in `lose` stand for bytes the capture missed: a gap where they were.
          if (opts.lose?.has(s.frame)) parser.gap(dir, end - d.next, s.ts);
          else deliver(dir, s.payload.subarray(d.next - s.seq), s.ts);
          d.next = end;
        }
      }
      if (d.finSeq !== null && !d.finDone && d.next !== null && d.next >= d.finSeq) {
        d.finDone = true;
        parser.fin(dir, d.finTs);
      }
    };
    let ended = false;
    for (const s of segs) {
      if (ended) break;
      currentFrame = s.frame;
      const dir: Dir = s.srcPort === clientPort ? 0 : 1;
      const d = dirs[dir];
      if (s.flags & 0x02) {
        d.next = s.seq + 1;
        continue;
      }
      if (d.next === null) d.next = s.seq;
      if (s.len > 0 && s.payload.length === s.len) {
        d.pending.push(s);
      }
      if (s.flags & 0x01 && d.finSeq === null) {
        d.finSeq = s.seq + s.len;
        d.finTs = s.ts;
      }
      drain(dir, d);
      if (s.flags & 0x04) {
        parser.end(s.ts, 'reset');
        ended = true;
      }
      track();
    }
    if (!ended) {
      // Holes left at the end: the bytes were never captured.
      for (const dir of [0, 1] as Dir[]) {
        const d = dirs[dir];
        while (d.pending.length > 0 && d.next !== null) {
          d.pending.sort((a, b) => a.seq - b.seq);
          const s = d.pending[0]!;
          if (s.seq > d.next) {
            parser.gap(dir, s.seq - d.next, s.ts);
            d.next = s.seq;
          }
          drain(dir, d);
        }
      }
      const last = segs[segs.length - 1]!;
      parser.end(last.ts, dirs[0].finDone && dirs[1].finDone ? 'closed' : 'capture-end');
      track();
    }
    results.push({ stream, clientPort, parser, records, finishedOrder });
  }
  return results;
}

/** A plain, comparable summary of an exchange (for split-invariance checks). */
export function summary(ex: Exchange): unknown {
  return JSON.parse(JSON.stringify(ex));
}
