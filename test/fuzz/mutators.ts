/**
 * Mutations for the fuzzer. Each takes a seeded random source and returns a
 * short description of what it did (saved with a failing input), or null
 * when it found nothing to act on (the caller then picks another).
 *
 * Two kinds:
 *  - structural (on the parsed Capture): frame layers (IP / TCP header
 *    lengths, flags, sequence numbers), caplen cuts at each layer, record
 *    order, and HTTP edits made as the sender would have sent them
 *    (replaceInStream keeps sequence numbers consistent, so the bytes reach
 *    the HTTP parser): absurd Content-Length and chunk sizes, huge header
 *    lines, many headers, huge targets, a head that never ends;
 *  - byte-level (on the serialized file, using where each record landed):
 *    bit flips, truncation at every layer, absurd pcap / pcapng header and
 *    block lengths, gzip wrapping.
 */
import { gzipSync } from 'node:zlib';
import { type Capture, type Layers, type Packet, type Serialized, type Unit, layers, payload, replaceInStream } from './model.js';

export type Rng = () => number;

/** mulberry32: small, fast, good enough, and the same on every platform. */
export function rng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function int(r: Rng, n: number): number {
  return Math.floor(r() * n);
}
export function pick<T>(r: Rng, xs: readonly T[]): T {
  return xs[int(r, xs.length)]!;
}

interface Located {
  ui: number;
  pkt: Packet;
  l: Layers;
}

function tcpFrames(c: Capture): Located[] {
  const out: Located[] = [];
  c.units.forEach((u, ui) => {
    if (u.kind !== 'pkt') return;
    const l = layers(u.pkt);
    if (l !== null) out.push({ ui, pkt: u.pkt, l });
  });
  return out;
}

function packets(c: Capture): { ui: number; pkt: Packet }[] {
  const out: { ui: number; pkt: Packet }[] = [];
  c.units.forEach((u, ui) => {
    if (u.kind === 'pkt') out.push({ ui, pkt: u.pkt });
  });
  return out;
}

/** Frames whose payload contains `needle` (case-insensitive), with the match offset in the payload. */
function framesWith(c: Capture, needle: RegExp): (Located & { at: number; m: RegExpExecArray })[] {
  const out: (Located & { at: number; m: RegExpExecArray })[] = [];
  for (const f of tcpFrames(c)) {
    if (f.l.payEnd > f.pkt.data.length) continue; // only whole frames: replaceInStream needs them
    const s = payload(f.pkt, f.l).toString('latin1');
    needle.lastIndex = 0;
    const m = needle.exec(s);
    if (m) out.push({ ...f, at: m.index, m });
  }
  return out;
}

const MSS = [1, 7, 536, 1400, 1448, 8960];
function mss(r: Rng): number {
  return r() < 0.15 ? pick(r, MSS.slice(0, 2)) : pick(r, MSS.slice(2));
}

// ---------------------------------------------------------------- structural

export type StructMutator = (c: Capture, r: Rng) => string | null;

const ABSURD_CL = [
  '99999999999999999999999999',
  '18446744073709551616',
  '9007199254740993',
  '4294967296',
  '2147483648',
  '-1',
  '-0',
  '1e9',
  '0x10',
  ' ',
  '',
  '5, 6',
  '5,5',
  '00000000000000000000000000000000000005',
  '+5',
  '5 5',
  '\u00a05',
];

const ABSURD_CHUNK = [
  'ffffffffffffffffffffffffffffffff',
  'fffffffffffff',
  '20000000000000',
  '7fffffffffffffff',
  '100000000',
  '-1',
  '0x10',
  'g',
  '',
  ' 5',
  '5 ',
  '0000000000000000000000000000000000000000001',
  `1;${'x'.repeat(70_000)}`,
  `1;a=${'"'.repeat(5000)}`,
  '1e3',
];

export const structural: Record<string, StructMutator> = {
  'content-length': (c, r) => {
    const fs = framesWith(c, /content-length[ \t]*:[ \t]*([^\r\n]*)/i);
    if (fs.length === 0) return null;
    const f = pick(r, fs);
    const v = pick(r, ABSURD_CL);
    const valAt = f.at + f.m[0].length - f.m[1]!.length;
    return replaceInStream(c, f.ui, valAt, f.m[1]!.length, Buffer.from(v, 'latin1'), mss(r))
      ? `content-length "${f.m[1]}" -> "${v.slice(0, 40)}" in unit ${f.ui}`
      : null;
  },
  'extra-content-length': (c, r) => {
    const fs = framesWith(c, /^(?:[A-Z]+ \S+ HTTP\/1\.\d|HTTP\/1\.\d \d{3}[^\r\n]*)\r\n/);
    if (fs.length === 0) return null;
    const f = pick(r, fs);
    const add = pick(r, ['Content-Length: 1\r\nContent-Length: 99999999\r\n', 'Transfer-Encoding: chunked\r\n', 'Transfer-Encoding: gzip, chunked, identity\r\n', `Content-Length: ${pick(r, ABSURD_CL)}\r\n`]);
    return replaceInStream(c, f.ui, f.at + f.m[0].length, 0, Buffer.from(add, 'latin1'), mss(r))
      ? `inserted ${JSON.stringify(add)} in unit ${f.ui}`
      : null;
  },
  'chunk-size': (c, r) => {
    // A chunk-size line: after a head end (chunked bodies start there) or after a chunk's CRLF.
    const fs = framesWith(c, /(?:\r\n\r\n|\r\n)([0-9a-fA-F]{1,8})(;[^\r\n]*)?\r\n/);
    if (fs.length === 0) return null;
    const f = pick(r, fs);
    const v = pick(r, ABSURD_CHUNK);
    const start = f.at + f.m[0].indexOf(f.m[1]!, f.m[0].startsWith('\r\n\r\n') ? 4 : 2);
    return replaceInStream(c, f.ui, start, f.m[1]!.length, Buffer.from(v, 'latin1'), mss(r))
      ? `chunk size "${f.m[1]}" -> "${v.slice(0, 40)}" in unit ${f.ui}`
      : null;
  },
  'chunked-body': (c, r) => {
    // Make a response chunked and follow its head with hostile chunk framing.
    const fs = framesWith(c, /^HTTP\/1\.\d \d{3}[^\r\n]*\r\n/);
    if (fs.length === 0) return null;
    const f = pick(r, fs);
    const body = pick(r, [
      `${pick(r, ABSURD_CHUNK)}\r\nabc\r\n0\r\n\r\n`,
      `${'1\r\nx\r\n'.repeat(20_000)}0\r\n\r\n`,
      `0\r\n${'X-Trailer: y\r\n'.repeat(3000)}\r\n`,
      `0\r\nX-Trailer: ${'t'.repeat(100_000)}\r\n\r\n`,
      `5\r\nabcdeXX`,
    ]);
    const pay = payload(f.pkt, f.l).toString('latin1');
    const headEnd = pay.indexOf('\r\n\r\n');
    if (headEnd < 0) return null;
    const ins = `Transfer-Encoding: chunked\r\n`;
    // Replace everything after the head in this frame by the hostile body.
    const rest = pay.length - (headEnd + 4);
    if (!replaceInStream(c, f.ui, headEnd + 4, rest, Buffer.from(body, 'latin1'), mss(r))) return null;
    // The new frames start at f.ui; the head is in the first of them.
    replaceInStream(c, f.ui, f.m[0].length, 0, Buffer.from(ins, 'latin1'), 1400);
    return `chunked response with body ${JSON.stringify(body.slice(0, 40))}… in unit ${f.ui}`;
  },
  'huge-header-line': (c, r) => {
    const fs = framesWith(c, /^(?:[A-Z]+ \S+ HTTP\/1\.\d|HTTP\/1\.\d \d{3}[^\r\n]*)\r\n/);
    if (fs.length === 0) return null;
    const f = pick(r, fs);
    const n = pick(r, [8 * 1024, 65 * 1024, 200 * 1024, 1024 * 1024]);
    const kind = int(r, 4);
    const line =
      kind === 0
        ? `X-Fuzz: ${'a'.repeat(n)}\r\n`
        : kind === 1
          ? `Cookie: ${'k=v; '.repeat(n / 5)}\r\n`
          : kind === 2
            ? `X-Fuzz: a\r\n${' folded'.repeat(n / 7)}\r\n` // obs-fold continuation (RFC 9112 section 5.2)
            : `${'N'.repeat(n)}: v\r\n`;
    return replaceInStream(c, f.ui, f.m[0].length, 0, Buffer.from(line, 'latin1'), mss(r))
      ? `header line of ${line.length} bytes (kind ${kind}) in unit ${f.ui}`
      : null;
  },
  'many-headers': (c, r) => {
    const fs = framesWith(c, /^(?:[A-Z]+ \S+ HTTP\/1\.\d|HTTP\/1\.\d \d{3}[^\r\n]*)\r\n/);
    if (fs.length === 0) return null;
    const f = pick(r, fs);
    const n = pick(r, [65, 100, 1000, 20_000]);
    let s = '';
    for (let i = 0; i < n; i++) s += r() < 0.5 ? `X-H${i}: ${i}\r\n` : `Set-Cookie: c${i}=${i}\r\n`;
    return replaceInStream(c, f.ui, f.m[0].length, 0, Buffer.from(s, 'latin1'), mss(r)) ? `${n} header lines in unit ${f.ui}` : null;
  },
  'huge-target': (c, r) => {
    const fs = framesWith(c, /^[A-Z]+ (\S+) HTTP\/1\.\d\r\n/);
    if (fs.length === 0) return null;
    const f = pick(r, fs);
    const n = pick(r, [9000, 70_000, 500_000]);
    const t = `/${'p'.repeat(n)}?token=${'s'.repeat(int(r, 100))}&${'a=b&'.repeat(int(r, 3000))}`;
    const at = f.m[0].indexOf(' ') + 1;
    return replaceInStream(c, f.ui, at, f.m[1]!.length, Buffer.from(t, 'latin1'), mss(r)) ? `target of ${t.length} bytes in unit ${f.ui}` : null;
  },
  'endless-head': (c, r) => {
    // A start line (or a header) that never ends: bytes without CR LF.
    const fs = framesWith(c, /^(?:[A-Z]+ \S+ HTTP\/1\.\d|HTTP\/1\.\d \d{3})/);
    if (fs.length === 0) return null;
    const f = pick(r, fs);
    const n = pick(r, [70_000, 300_000, 1_500_000]);
    const filler = pick(r, ['a', '\r', '\n', ' ', '\0', '\xff']);
    return replaceInStream(c, f.ui, f.m[0].length, 0, Buffer.from(filler.repeat(n), 'latin1'), mss(r))
      ? `${n} bytes of ${JSON.stringify(filler)} without a line end in unit ${f.ui}`
      : null;
  },
  'start-line': (c, r) => {
    const fs = framesWith(c, /^(?:[A-Z]+ \S+ HTTP\/1\.\d|HTTP\/1\.\d \d{3}[^\r\n]*)/);
    if (fs.length === 0) return null;
    const f = pick(r, fs);
    const v = pick(r, [
      'HTTP/1.1 99999999999 X',
      'HTTP/1.1 -1 X',
      'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 101 Switching',
      'HTTP/9.9 200 OK',
      'GET  HTTP/1.1',
      'CONNECT x:1 HTTP/1.1',
      `${'G'.repeat(5000)} / HTTP/1.1`,
      'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
      '\x16\x03\x01\x02\x00',
      'HTTP/1.1 204 No Content\r\nContent-Length: 5',
      'HEAD / HTTP/1.1',
      'GET /?a=%zz&token=%E0%A4%A HTTP/1.1',
      'GET /\u0000\u0001 HTTP/1.1',
    ]);
    return replaceInStream(c, f.ui, 0, f.m[0].length, Buffer.from(v, 'latin1'), mss(r)) ? `start line -> ${JSON.stringify(v.slice(0, 40))} in unit ${f.ui}` : null;
  },
  'ip-header': (c, r) => {
    const fs = tcpFrames(c);
    if (fs.length === 0) return null;
    const { pkt, l, ui } = pick(r, fs);
    const d = pkt.data;
    const k = int(r, l.ipVer === 4 ? 6 : 4);
    if (l.ipVer === 4) {
      if (k === 0) d[l.ipOff] = 0x40 | pick(r, [0, 1, 4, 5, 6, 15]);
      else if (k === 1) d.writeUInt16BE(pick(r, [0, 1, 19, 20, 39, 40, 0xffff, d.length - l.ipOff + 1, d.length - l.ipOff - 1]) & 0xffff, l.ipOff + 2);
      else if (k === 2) d.writeUInt16BE(pick(r, [0x2000, 0x2001, 0x0001, 0x1fff, 0x4000 | 0x2000]), l.ipOff + 6);
      else if (k === 3) d[l.ipOff] = (pick(r, [0, 5, 6, 7, 15]) << 4) | (d[l.ipOff]! & 15);
      else if (k === 4) d[l.ipOff + 9] = pick(r, [0, 4, 17, 41, 47, 255]);
      else d[l.ipOff] = 0x4f; // 60-byte header: 40 bytes of "options" eat the TCP header
    } else {
      if (k === 0) d.writeUInt16BE(pick(r, [0, 1, 19, 0xffff, d.length - l.ipOff - 39]) & 0xffff, l.ipOff + 4);
      else if (k === 1) d[l.ipOff + 6] = pick(r, [0, 43, 44, 60, 59, 17, 255]); // ext headers, fragment, no next header
      else if (k === 2) {
        // Hop-by-hop header with a huge length in front of TCP.
        d[l.ipOff + 6] = 0;
        d[l.tcpOff] = 6;
        d[l.tcpOff + 1] = 255;
      } else d[l.ipOff] = (pick(r, [4, 0, 15]) << 4) | (d[l.ipOff]! & 15);
    }
    return `ip header field ${k} in unit ${ui}`;
  },
  'tcp-header': (c, r) => {
    const fs = tcpFrames(c);
    if (fs.length === 0) return null;
    const { pkt, l, ui } = pick(r, fs);
    const d = pkt.data;
    const t = l.tcpOff;
    const k = int(r, 7);
    if (k === 0) d[t + 12] = (pick(r, [0, 1, 4, 5, 6, 15]) << 4) | (d[t + 12]! & 15);
    else if (k === 1) d[t + 13] = pick(r, [0xff, 0x03, 0x05, 0x06, 0x07, 0x00, 0x29, 0x12 | 0x01]);
    else if (k === 2) d.writeUInt32BE(pick(r, [0, 0xffffffff, 0x7fffffff, 0x80000000, int(r, 2 ** 32)]) >>> 0, t + 4);
    else if (k === 3) d.writeUInt32BE(pick(r, [0, 0xffffffff, 0x80000000, int(r, 2 ** 32)]) >>> 0, t + 8);
    else if (k === 4 && l.tcpHdrLen > 20) {
      // Options: kinds with zero, one or huge lengths.
      const o = t + 20 + int(r, l.tcpHdrLen - 20);
      d[o] = pick(r, [2, 3, 4, 5, 8, 30, 34, 254]);
      if (o + 1 < t + l.tcpHdrLen) d[o + 1] = pick(r, [0, 1, 2, 255, 40]);
    } else if (k === 5) d.writeUInt16BE(pick(r, [0, 0xffff]), t + 14);
    else d[t + 12] = 0xf0 | (d[t + 12]! & 15); // 60-byte TCP header over the payload
    return `tcp header field ${k} in unit ${ui}`;
  },
  'seq-jump': (c, r) => {
    // Move one data segment far ahead: it is held as out-of-order until a gap is declared.
    const fs = tcpFrames(c).filter((f) => f.l.payEnd > f.l.payOff);
    if (fs.length === 0) return null;
    const { pkt, l, ui } = pick(r, fs);
    const s = pkt.data.readUInt32BE(l.tcpOff + 4);
    const jump = pick(r, [1, 1000, 65536, 0x3fffffff, 0x7fffffff, 0x80000001, 0xfffffff0]);
    pkt.data.writeUInt32BE((s + jump) >>> 0, l.tcpOff + 4);
    return `seq +${jump} in unit ${ui}`;
  },
  'caplen-cut': (c, r) => {
    // The frame cut (as by a snaplen) inside a chosen layer.
    const ps = packets(c);
    if (ps.length === 0) return null;
    const { pkt, ui } = pick(r, ps);
    const l = layers(pkt);
    const layer = int(r, 5);
    let cut: number;
    if (l === null || layer === 0) cut = int(r, Math.min(pkt.data.length, 20) + 1);
    else if (layer === 1) cut = l.ipOff + int(r, l.tcpOff - l.ipOff);
    else if (layer === 2) cut = l.tcpOff + int(r, l.tcpHdrLen);
    else if (layer === 3) cut = l.payOff + int(r, Math.max(1, pkt.data.length - l.payOff));
    else cut = 0;
    if (r() < 0.5) pkt.origLen = Math.max(pkt.origLen, pkt.data.length);
    else pkt.origLen = cut; // cut on the wire too (a damaged record)
    pkt.data = pkt.data.subarray(0, Math.min(cut, pkt.data.length));
    return `frame of unit ${ui} cut to ${cut} bytes (layer ${layer})`;
  },
  'reorder': (c, r) => {
    const ps = packets(c);
    if (ps.length < 2) return null;
    const k = int(r, 4);
    if (k === 0) {
      const a = pick(r, ps).ui;
      const b = pick(r, ps).ui;
      const t = c.units[a]!;
      c.units[a] = c.units[b]!;
      c.units[b] = t;
      return `swapped units ${a} and ${b}`;
    }
    if (k === 1) {
      const a = pick(r, ps).ui;
      const n = 1 + int(r, 50);
      const u = c.units[a]!;
      const copies: Unit[] = Array.from({ length: n }, () =>
        u.kind === 'raw' ? { ...u, bytes: Buffer.from(u.bytes) } : { kind: 'pkt', pkt: { ...u.pkt, data: Buffer.from(u.pkt.data), pre: Buffer.from(u.pkt.pre) } },
      );
      c.units.splice(a, 0, ...copies);
      return `unit ${a} repeated ${n} times`;
    }
    if (k === 2) {
      const a = pick(r, ps).ui;
      const n = 1 + int(r, 10);
      c.units.splice(a, n);
      return `dropped ${n} units from ${a}`;
    }
    // Reverse the whole packet order (everything out of order, time going backwards).
    c.units.reverse();
    return 'reversed unit order';
  },
  'timestamps': (c, r) => {
    const ps = packets(c);
    if (ps.length === 0) return null;
    const { pkt, ui } = pick(r, ps);
    const v = pick(r, [0, 0xffffffff, 0x7fffffff, 999_999, 1_000_000, 999_999_999, 1_000_000_000, int(r, 2 ** 32)]);
    const at = c.format === 'pcap' ? pick(r, [0, 4]) : pick(r, [4, 8]);
    if (pkt.le) pkt.pre.writeUInt32LE(v >>> 0, at);
    else pkt.pre.writeUInt32BE(v >>> 0, at);
    return `timestamp word ${at} = ${v} in unit ${ui}`;
  },
  'link-type': (c, r) => {
    const ps = packets(c);
    if (ps.length === 0) return null;
    const v = pick(r, [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 147, 65535]);
    // The packets keep their bytes: only the frame interpretation changes.
    if (c.format === 'pcap') {
      if (c.le) c.header.writeUInt32LE(v, 20);
      else c.header.writeUInt32BE(v, 20);
    } else {
      const idb = c.units.findIndex((u) => u.kind === 'raw' && u.bytes.length >= 20 && (u.le ? u.bytes.readUInt32LE(0) : u.bytes.readUInt32BE(0)) === 1);
      if (idb < 0) return null;
      const u = c.units[idb] as { kind: 'raw'; bytes: Buffer; le: boolean };
      if (u.le) u.bytes.writeUInt16LE(v, 8);
      else u.bytes.writeUInt16BE(v, 8);
    }
    return `link type -> ${v}`;
  },
};

// ---------------------------------------------------------------- byte level

export type ByteMutator = (s: Serialized, r: Rng) => { buf: Buffer; what: string } | null;

function put32(b: Buffer, o: number, v: number, le: boolean): void {
  if (o < 0 || o + 4 > b.length) return;
  if (le) b.writeUInt32LE(v >>> 0, o);
  else b.writeUInt32BE(v >>> 0, o);
}

export const byteLevel: Record<string, ByteMutator> = {
  'bit-flips': (s, r) => {
    const b = Buffer.from(s.buf);
    const n = 1 + int(r, 16);
    // Mostly after the file header (a flipped header is just "not a capture").
    const from = r() < 0.9 ? Math.min(s.headerLen, b.length - 1) : 0;
    for (let i = 0; i < n; i++) {
      const o = from + int(r, b.length - from);
      b[o]! ^= 1 << int(r, 8);
    }
    return { buf: b, what: `${n} bit flips` };
  },
  'interesting-bytes': (s, r) => {
    const b = Buffer.from(s.buf);
    const n = 1 + int(r, 8);
    for (let i = 0; i < n; i++) b[int(r, b.length)] = pick(r, [0, 0xff, 0x7f, 0x80, 0x0d, 0x0a, 0x3a, 0x20]);
    return { buf: b, what: `${n} bytes set` };
  },
  'truncate-layer': (s, r) => {
    // Cut the file inside a record: its header, link layer, IP, TCP or payload.
    if (s.placed.length === 0) return { buf: s.buf.subarray(0, int(r, s.buf.length)), what: 'truncated (no records)' };
    const p = pick(r, s.placed);
    const where = int(r, 6);
    let cut: number;
    if (where === 0) cut = p.start + int(r, Math.max(1, p.dataStart - p.start));
    else if (where === 5) cut = int(r, Math.max(1, s.headerLen));
    else {
      // Inside the frame, proportionally: link (first bytes), IP, TCP, payload.
      const frac = [0, 0.05, 0.2, 0.4, 0.8][where]!;
      cut = p.dataStart + Math.floor(p.dataLen * (frac + r() * 0.15));
    }
    return { buf: s.buf.subarray(0, Math.min(cut, s.buf.length)), what: `truncated at ${cut} (${['record header', 'link', 'ip', 'tcp', 'payload', 'file header'][where]} of unit ${p.unit})` };
  },
  'pcap-record-lengths': (s, r) => {
    const recs = s.placed.filter((p) => p.kind === 'pcap-rec');
    if (recs.length === 0) return null;
    const b = Buffer.from(s.buf);
    const p = pick(r, recs);
    const field = pick(r, [8, 12, 8, 4, 0]);
    const v = pick(r, [0, 1, 0xffffffff, 0x7fffffff, 262144, 262145, 65536, 64 * 1024 * 1024, 64 * 1024 * 1024 + 1, p.dataLen + 1, p.dataLen - 1, b.length]);
    put32(b, p.start + field, v, p.le);
    return { buf: b, what: `pcap record ${p.unit} field ${field} = ${v}` };
  },
  'pcap-file-header': (s, r) => {
    if (s.headerLen !== 24 || s.buf.readUInt32LE(0) === 0x0a0d0d0a) return null;
    const b = Buffer.from(s.buf);
    const le = b.readUInt32LE(0) === 0xa1b2c3d4 || b.readUInt32LE(0) === 0xa1b23c4d;
    const field = pick(r, [16, 20, 4, 8, 0]);
    const v =
      field === 0
        ? pick(r, [0xa1b2cd34, 0xa1b23c4d, 0xa1b2c3d4])
        : pick(r, [0, 1, 0xffffffff, 0x7fffffff, 0xffff, 65535, 262145, 64 * 1024 * 1024 + 1, 0x04000001]);
    put32(b, field, v, field === 0 ? true : le);
    return { buf: b, what: `pcap file header field ${field} = ${v}` };
  },
  'pcapng-block-lengths': (s, r) => {
    const blocks = s.placed.filter((p) => p.kind === 'epb' || p.kind === 'block');
    if (blocks.length === 0 || s.buf.readUInt32LE(0) !== 0x0a0d0d0a) return null;
    const b = Buffer.from(s.buf);
    const p = pick(r, blocks);
    const len = p.end - p.start;
    const k = int(r, 5);
    if (k === 0) {
      const v = pick(r, [0, 4, 8, 11, 12, 13, 0xffffffff, 0x7fffffff, 0x04001000, 0x04001004, len + 4, len - 4, len + 1]);
      put32(b, p.start + 4, v, p.le);
      return { buf: b, what: `block ${p.unit} total length = ${v}` };
    }
    if (k === 1) {
      const v = pick(r, [0, len + 4, 0xffffffff]);
      put32(b, p.end - 4, v, p.le);
      return { buf: b, what: `block ${p.unit} trailing length = ${v}` };
    }
    if (k === 2 && p.kind === 'epb') {
      const field = pick(r, [20, 24, 8]);
      const v = pick(r, [0, 0xffffffff, 0x7fffffff, p.dataLen + 4, p.dataLen + 100, 262145, 1]);
      put32(b, p.start + field, v, p.le);
      return { buf: b, what: `epb ${p.unit} field ${field} = ${v}` };
    }
    if (k === 3) {
      // An option header with an absurd length, at the first option position of the block.
      const type = p.le ? b.readUInt32LE(p.start) : b.readUInt32BE(p.start);
      const optAt = type === 6 ? p.start + 28 + ((p.dataLen + 3) & ~3) : type === 1 ? p.start + 16 : type === 0x0a0d0d0a ? p.start + 24 : p.start + 8;
      if (optAt + 4 > p.end - 4) return null;
      const code = pick(r, [1, 2, 9, 10, 14, 0, 0xffff, 2988]);
      const olen = pick(r, [0xffff, 0, 1, 8, p.end - optAt]);
      if (p.le) {
        b.writeUInt16LE(code, optAt);
        b.writeUInt16LE(olen & 0xffff, optAt + 2);
      } else {
        b.writeUInt16BE(code, optAt);
        b.writeUInt16BE(olen & 0xffff, optAt + 2);
      }
      if (optAt + 4 < p.end - 4 && code === 9) b[optAt + 4] = pick(r, [0x7f, 0xff, 0x80, 0x13, 0x3f, 0]); // if_tsresol
      return { buf: b, what: `block ${p.unit} option ${code} length ${olen}` };
    }
    // Another block type (unknown, SHB, SPB, obsolete packet block) with the same bytes.
    const t = pick(r, [0x0a0d0d0a, 2, 3, 5, 7, 0x80000001, 0xbad, 1]);
    put32(b, p.start, t, p.le);
    return { buf: b, what: `block ${p.unit} type = ${t}` };
  },
  'append-garbage': (s, r) => {
    const n = pick(r, [1, 3, 15, 16, 23, 100, 70_000]);
    const g = Buffer.alloc(n);
    for (let i = 0; i < n; i++) g[i] = int(r, 256);
    return { buf: Buffer.concat([s.buf, g]), what: `${n} garbage bytes appended` };
  },
};

/** Final wrapping: sometimes gzip the file, and sometimes damage the gzip stream. */
export function maybeGzip(buf: Buffer, r: Rng): { buf: Buffer; what: string | null } {
  if (r() >= 0.08) return { buf, what: null };
  const z = gzipSync(buf, { level: 1 });
  const k = int(r, 4);
  if (k === 0) return { buf: z, what: 'gzip' };
  if (k === 1) return { buf: z.subarray(0, 2 + int(r, z.length - 2)), what: 'gzip, truncated' };
  if (k === 2) {
    const b = Buffer.from(z);
    b[10 + int(r, Math.max(1, b.length - 10))]! ^= 1 << int(r, 8);
    return { buf: b, what: 'gzip, one bit flipped' };
  }
  return { buf: Buffer.concat([z, z.subarray(0, int(r, z.length))]), what: 'gzip, two members (second cut)' };
}
