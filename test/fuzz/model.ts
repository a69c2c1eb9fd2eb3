/**
 * A small, independent model of a capture file for the fuzzer: parse a pcap
 * or pcapng file into units (raw bytes, or packets whose frame bytes can be
 * edited), serialize it back with a layout (where each record, its header,
 * its frame and, for pcapng, its length fields sit in the output), and find
 * the link / IP / TCP / payload offsets inside a frame.
 *
 * It is written separately from lib/capture and lib/decode on purpose: the
 * fuzzer must not share the assumptions of the code under test. It follows
 * draft-ietf-opsawg-pcap (24-byte file header, 16-byte record headers) and
 * draft-ietf-opsawg-pcapng (SHB byte-order magic 0x1A2B3C4D, IDB link type,
 * EPB: interface id, timestamp high/low, captured and original length,
 * frame padded to 32 bits, options). Anything it does not understand stays
 * a raw unit and is only mutated byte-wise.
 */

export interface Packet {
  linkType: number;
  /** Frame bytes (a private copy: mutators edit it in place or replace it). */
  data: Buffer;
  origLen: number;
  /** pcap: the 8 timestamp bytes of the record header. pcapng EPB: interface id, ts high, ts low (12 bytes). */
  pre: Buffer;
  /** pcapng EPB options (after the padded frame), as in the file. */
  opts: Buffer;
  /** Byte order of the section the packet is in. */
  le: boolean;
}

export type Unit = { kind: 'raw'; bytes: Buffer; le: boolean } | { kind: 'pkt'; pkt: Packet };

export interface Capture {
  format: 'pcap' | 'pcapng';
  /** pcap: the file header (24 bytes); pcapng: empty (the SHB is a raw unit). */
  header: Buffer;
  le: boolean;
  units: Unit[];
  /** Bytes after the last unit that could be parsed (kept as they are). */
  tail: Buffer;
}

/** Where a unit landed in a serialized file. */
export interface Placed {
  kind: 'pcap-rec' | 'epb' | 'block';
  /** Offset of the record header / block start. */
  start: number;
  /** Offset of the frame bytes (pcap-rec, epb), else start + 8. */
  dataStart: number;
  dataLen: number;
  /** Offset just after the unit. */
  end: number;
  le: boolean;
  /** Index into Capture.units. */
  unit: number;
}

export interface Serialized {
  buf: Buffer;
  placed: Placed[];
  /** Length of the file header (pcap 24; pcapng: the first SHB's length). */
  headerLen: number;
}

const PCAP_USEC = 0xa1b2c3d4;
const PCAP_NSEC = 0xa1b23c4d;
const PCAPNG_SHB = 0x0a0d0d0a;
const PCAPNG_BOM = 0x1a2b3c4d;

function u32(b: Buffer, o: number, le: boolean): number {
  return le ? b.readUInt32LE(o) : b.readUInt32BE(o);
}
function w32(b: Buffer, o: number, v: number, le: boolean): void {
  if (le) b.writeUInt32LE(v >>> 0, o);
  else b.writeUInt32BE(v >>> 0, o);
}

/** Parse a capture; null when it is neither a (16-byte record) pcap nor a pcapng. */
export function parseCapture(file: Buffer): Capture | null {
  if (file.length < 24) return null;
  const mle = file.readUInt32LE(0);
  const mbe = file.readUInt32BE(0);
  if (mle === PCAP_USEC || mle === PCAP_NSEC || mbe === PCAP_USEC || mbe === PCAP_NSEC) {
    const le = mle === PCAP_USEC || mle === PCAP_NSEC;
    const linkType = u32(file, 20, le) & 0xffff;
    const units: Unit[] = [];
    let off = 24;
    while (off + 16 <= file.length) {
      const caplen = u32(file, off + 8, le);
      if (caplen > 262144 || off + 16 + caplen > file.length) break;
      units.push({
        kind: 'pkt',
        pkt: {
          linkType,
          data: Buffer.from(file.subarray(off + 16, off + 16 + caplen)),
          origLen: u32(file, off + 12, le),
          pre: Buffer.from(file.subarray(off, off + 8)),
          opts: Buffer.alloc(0),
          le,
        },
      });
      off += 16 + caplen;
    }
    return { format: 'pcap', header: Buffer.from(file.subarray(0, 24)), le, units, tail: Buffer.from(file.subarray(off)) };
  }
  if (mle !== PCAPNG_SHB) return null;
  const units: Unit[] = [];
  let off = 0;
  let le = true;
  let ifaces: number[] = [];
  while (off + 12 <= file.length) {
    let type = file.readUInt32LE(off);
    if (type === PCAPNG_SHB) {
      const bom = file.readUInt32LE(off + 8);
      if (bom === PCAPNG_BOM) le = true;
      else if (file.readUInt32BE(off + 8) === PCAPNG_BOM) le = false;
      else break;
      ifaces = [];
    } else type = u32(file, off, le);
    const len = u32(file, off + 4, le);
    if (len < 12 || len % 4 !== 0 || off + len > file.length) break;
    const block = file.subarray(off, off + len);
    if (type === 1 && len >= 20) ifaces.push(u32(block, 8, le) & 0xffff);
    if (type === 6 && len >= 32) {
      const caplen = u32(block, 20, le);
      const padded = (caplen + 3) & ~3;
      const ifid = u32(block, 8, le);
      if (28 + padded + 4 <= len && ifid < ifaces.length) {
        units.push({
          kind: 'pkt',
          pkt: {
            linkType: ifaces[ifid]!,
            data: Buffer.from(block.subarray(28, 28 + caplen)),
            origLen: u32(block, 24, le),
            pre: Buffer.from(block.subarray(8, 20)),
            opts: Buffer.from(block.subarray(28 + padded, len - 4)),
            le,
          },
        });
        off += len;
        continue;
      }
    }
    units.push({ kind: 'raw', bytes: Buffer.from(block), le });
    off += len;
  }
  return { format: 'pcapng', header: Buffer.alloc(0), le: true, units, tail: Buffer.from(file.subarray(off)) };
}

export function cloneCapture(c: Capture): Capture {
  return {
    format: c.format,
    header: Buffer.from(c.header),
    le: c.le,
    units: c.units.map((u) =>
      u.kind === 'raw'
        ? { kind: 'raw', bytes: Buffer.from(u.bytes), le: u.le }
        : { kind: 'pkt', pkt: { ...u.pkt, data: Buffer.from(u.pkt.data), pre: Buffer.from(u.pkt.pre), opts: Buffer.from(u.pkt.opts) } },
    ),
    tail: Buffer.from(c.tail),
  };
}

/** Write the capture back; record lengths follow the (possibly edited) frames. */
export function serialize(c: Capture): Serialized {
  const parts: Buffer[] = [];
  const placed: Placed[] = [];
  let off = 0;
  let headerLen = 0;
  if (c.format === 'pcap') {
    parts.push(c.header);
    off = headerLen = c.header.length;
  }
  c.units.forEach((u, i) => {
    if (u.kind === 'raw') {
      if (off === 0) headerLen = u.bytes.length;
      parts.push(u.bytes);
      placed.push({ kind: 'block', start: off, dataStart: off + 8, dataLen: Math.max(0, u.bytes.length - 12), end: off + u.bytes.length, le: u.le, unit: i });
      off += u.bytes.length;
      return;
    }
    const p = u.pkt;
    if (c.format === 'pcap') {
      const h = Buffer.alloc(16);
      p.pre.copy(h, 0, 0, 8);
      w32(h, 8, p.data.length, p.le);
      w32(h, 12, Math.max(p.origLen, p.data.length), p.le);
      parts.push(h, p.data);
      placed.push({ kind: 'pcap-rec', start: off, dataStart: off + 16, dataLen: p.data.length, end: off + 16 + p.data.length, le: p.le, unit: i });
      off += 16 + p.data.length;
      return;
    }
    const padded = (p.data.length + 3) & ~3;
    const len = 28 + padded + p.opts.length + 4;
    const b = Buffer.alloc(len);
    w32(b, 0, 6, p.le);
    w32(b, 4, len, p.le);
    p.pre.copy(b, 8, 0, 12);
    w32(b, 20, p.data.length, p.le);
    w32(b, 24, Math.max(p.origLen, p.data.length), p.le);
    p.data.copy(b, 28);
    p.opts.copy(b, 28 + padded);
    w32(b, len - 4, len, p.le);
    parts.push(b);
    placed.push({ kind: 'epb', start: off, dataStart: off + 28, dataLen: p.data.length, end: off + len, le: p.le, unit: i });
    off += len;
  });
  parts.push(c.tail);
  return { buf: Buffer.concat(parts), placed, headerLen };
}

// ---------------------------------------------------------------- frames

/** Offsets of the layers inside one frame (all relative to the frame start). */
export interface Layers {
  ipOff: number;
  ipVer: 4 | 6;
  tcpOff: number;
  tcpHdrLen: number;
  payOff: number;
  /** End of the TCP payload on the wire according to the IP length (may exceed the captured bytes). */
  payEnd: number;
}

/** Offset of the IP header for the link types in the corpus, or -1. */
export function ipOffset(linkType: number, d: Buffer): number {
  const etherAt = (typeOff: number, start: number): number => {
    let t = typeOff;
    let o = start;
    for (let i = 0; i < 4 && t + 2 <= d.length; i++) {
      const et = d.readUInt16BE(t);
      if (et === 0x0800 || et === 0x86dd) return o;
      if (et !== 0x8100 && et !== 0x88a8 && et !== 0x9100) return -1;
      t = o + 2;
      o += 4;
    }
    return -1;
  };
  switch (linkType) {
    case 1:
      return d.length >= 14 ? etherAt(12, 14) : -1;
    case 113:
      return d.length >= 16 ? etherAt(14, 16) : -1;
    case 276:
      return d.length >= 20 ? etherAt(0, 20) : -1;
    case 0:
    case 108:
      return d.length >= 4 ? 4 : -1;
    case 12:
    case 14:
    case 101:
    case 228:
    case 229:
      return 0;
    default:
      return -1;
  }
}

/** The layers of a TCP frame (IPv4, or IPv6 with TCP as the first next header), or null. */
export function layers(p: Packet): Layers | null {
  const d = p.data;
  const ipOff = ipOffset(p.linkType, d);
  if (ipOff < 0 || ipOff + 20 > d.length) return null;
  const v = d[ipOff]! >> 4;
  let tcpOff: number;
  let ipEnd: number;
  if (v === 4) {
    const ihl = (d[ipOff]! & 15) * 4;
    if (ihl < 20 || d[ipOff + 9] !== 6) return null;
    if ((d.readUInt16BE(ipOff + 6) & 0x3fff) !== 0) return null; // fragment
    tcpOff = ipOff + ihl;
    ipEnd = ipOff + d.readUInt16BE(ipOff + 2);
  } else if (v === 6) {
    if (ipOff + 40 > d.length || d[ipOff + 6] !== 6) return null;
    tcpOff = ipOff + 40;
    ipEnd = tcpOff + d.readUInt16BE(ipOff + 4);
  } else return null;
  if (tcpOff + 20 > d.length) return null;
  const tcpHdrLen = (d[tcpOff + 12]! >> 4) * 4;
  if (tcpHdrLen < 20 || tcpOff + tcpHdrLen > d.length || ipEnd < tcpOff + tcpHdrLen) return null;
  return { ipOff, ipVer: v as 4 | 6, tcpOff, tcpHdrLen, payOff: tcpOff + tcpHdrLen, payEnd: ipEnd };
}

/** One direction of a TCP flow: addresses and ports as a string. */
export function flowKey(p: Packet, l: Layers): { fwd: string; rev: string } {
  const d = p.data;
  const alen = l.ipVer === 4 ? 4 : 16;
  const sa = l.ipVer === 4 ? l.ipOff + 12 : l.ipOff + 8;
  const src = d.subarray(sa, sa + alen).toString('hex');
  const dst = d.subarray(sa + alen, sa + 2 * alen).toString('hex');
  const sp = d.readUInt16BE(l.tcpOff);
  const dp = d.readUInt16BE(l.tcpOff + 2);
  return { fwd: `${src}:${sp}>${dst}:${dp}`, rev: `${dst}:${dp}>${src}:${sp}` };
}

/** The captured TCP payload of a frame (a view). */
export function payload(p: Packet, l: Layers): Buffer {
  return p.data.subarray(l.payOff, Math.min(l.payEnd, p.data.length));
}

function seqAfter(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}

/**
 * Replace `del` bytes at `pos` of the payload of unit `ui` with `ins`, as if
 * the sender had sent that instead: the new payload is cut into segments of
 * at most `mss` bytes (new frames with copied headers, IP length and
 * sequence numbers set), later segments of the same direction move by the
 * size difference and the peer's acknowledgements after the edit point too.
 * Only for fully captured frames; returns false when it does not apply.
 */
export function replaceInStream(c: Capture, ui: number, pos: number, del: number, ins: Buffer, mss: number): boolean {
  const u = c.units[ui];
  if (u === undefined || u.kind !== 'pkt') return false;
  const p = u.pkt;
  const l = layers(p);
  if (l === null || l.payEnd > p.data.length) return false;
  const pay = payload(p, l);
  if (pos < 0 || pos + del > pay.length) return false;
  const d = p.data;
  const seq0 = d.readUInt32BE(l.tcpOff + 4);
  const flags = d[l.tcpOff + 13]!;
  const editSeq = (seq0 + pos) >>> 0;
  const delta = ins.length - del;
  const newPay = Buffer.concat([pay.subarray(0, pos), ins, pay.subarray(pos + del)]);
  const hdr = d.subarray(0, l.payOff);
  const step = Math.max(1, mss, Math.ceil(newPay.length / 4000));
  const frames: Unit[] = [];
  for (let o = 0; o < newPay.length || (o === 0 && newPay.length === 0); o += step) {
    const chunk = newPay.subarray(o, o + step);
    const f = Buffer.concat([hdr, chunk]);
    if (l.ipVer === 4) f.writeUInt16BE(l.payOff - l.ipOff + chunk.length, l.ipOff + 2);
    else f.writeUInt16BE(l.payOff - l.tcpOff + chunk.length, l.ipOff + 4);
    f.writeUInt32BE((seq0 + o) >>> 0, l.tcpOff + 4);
    const last = o + step >= newPay.length;
    let fl = flags;
    if (!last) fl &= ~0x01; // FIN only on the last piece
    if (o > 0) fl &= ~0x02; // SYN only on the first
    f[l.tcpOff + 13] = fl;
    frames.push({ kind: 'pkt', pkt: { ...p, data: f, origLen: f.length, pre: Buffer.from(p.pre), opts: Buffer.from(p.opts) } });
    if (newPay.length === 0) break;
  }
  const { fwd, rev } = flowKey(p, l);
  for (let j = ui + 1; j < c.units.length; j++) {
    const v = c.units[j]!;
    if (v.kind !== 'pkt') continue;
    const lj = layers(v.pkt);
    if (lj === null) continue;
    const k = flowKey(v.pkt, lj).fwd;
    const dj = v.pkt.data;
    if (k === fwd) {
      const s = dj.readUInt32BE(lj.tcpOff + 4);
      if (!seqAfter(editSeq, s)) dj.writeUInt32BE((s + delta) >>> 0, lj.tcpOff + 4);
    } else if (k === rev && (dj[lj.tcpOff + 13]! & 0x10) !== 0) {
      const a = dj.readUInt32BE(lj.tcpOff + 8);
      if (seqAfter(a, editSeq)) dj.writeUInt32BE((a + delta) >>> 0, lj.tcpOff + 8);
    }
  }
  c.units.splice(ui, 1, ...frames);
  return true;
}
