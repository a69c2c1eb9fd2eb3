/**
 * Push parser for pcap and pcapng byte streams.
 *
 * Formats:
 *  - pcap: draft-ietf-opsawg-pcap (the libpcap savefile format). Both byte
 *    orders, microsecond magic 0xA1B2C3D4 and nanosecond magic 0xA1B23C4D,
 *    plus the "modified" Kuznetzov magic 0xA1B2CD34 (24-byte record headers).
 *  - pcapng: draft-ietf-opsawg-pcapng. Sections (SHB) in either byte order,
 *    IDB (link type, snaplen, if_tsresol, if_tsoffset), EPB, SPB and the
 *    obsolete Packet Block (type 2). Other blocks are skipped by length.
 *
 * Memory: the parser keeps at most one partial record between pushes. A
 * record wholly inside a pushed chunk is handed out as a zero-copy subarray
 * of that chunk; only a record spanning two chunks is copied.
 *
 * Damage after the file header is counted in Anomalies and never thrown:
 * a record length we cannot trust stops reading (there is no way to find
 * the next record boundary), a short tail becomes 'truncated-record'.
 * Problems with the file header itself are the user's (not a capture, cut
 * inside the header) and throw UserError.
 */
import { Anomalies, UserError, type PacketRecord } from '../types.js';

export type CaptureFormat = 'pcap' | 'pcapng';

/** pcap magic numbers as read little-endian from the first 4 bytes. */
const PCAP_USEC = 0xa1b2c3d4;
const PCAP_NSEC = 0xa1b23c4d;
const PCAP_MODIFIED = 0xa1b2cd34; // Kuznetzov's patched libpcap: 24-byte record headers
const PCAPNG_SHB = 0x0a0d0d0a; // palindromic: same in both byte orders
const PCAPNG_BOM = 0x1a2b3c4d;

/**
 * Largest caplen accepted when the header's snaplen is not larger. libpcap's
 * MAXIMUM_SNAPLEN and Wireshark's WTAP_MAX_PACKET_SIZE_STANDARD are both
 * 262144; a caplen above it means the record header is garbage.
 */
const MAX_CAPLEN = 262144;
/** Hard ceiling even when the file claims a larger snaplen (D-Bus, USB captures can say 128 MiB). */
const MAX_CAPLEN_ABSOLUTE = 64 * 1024 * 1024;
/** pcapng blocks larger than this are treated as a corrupt length, not allocated. */
const MAX_BLOCK_LEN = MAX_CAPLEN_ABSOLUTE + 4096;

const TWO_32 = 4294967296;

const enum State {
  Start,
  PcapHeader,
  PcapRecord,
  Pcapng,
  Stopped,
}

/** How to turn a pcapng interface's 64-bit timestamp units into microseconds. */
const enum TsMode {
  /** units * mul (resolution coarser than or equal to 1 µs, power of 10). */
  Mul,
  /** floor(units / div) with div = 10^k <= 10^6 (hi/lo split keeps it exact in doubles). */
  Div,
  /** Anything else (binary fractions, absurd decimal exponents): BigInt. */
  Big,
}

interface Iface {
  linkType: number;
  snaplen: number;
  mode: TsMode;
  /** Mul: multiplier; Div: divisor; Big: unused. */
  factor: number;
  /** Big mode: the raw if_tsresol byte. */
  tsresol: number;
  /** if_tsoffset in microseconds (seconds in the file). */
  offsetUs: number;
}

/**
 * Unsigned 32-bit reads of bytes the caller checked are there: what
 * readUInt32LE/BE return, without their argument checks (four per record).
 */
const u32le = (b: Buffer, o: number): number => (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16)) + b[o + 3]! * 0x1000000;
const u32be = (b: Buffer, o: number): number => b[o]! * 0x1000000 + ((b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!);

const EMPTY = Buffer.alloc(0);

/**
 * The reader's record, reused for every packet: where the bytes are in the
 * chunk being parsed (buf, off, len), and `data`, the view of them, made only
 * when asked for. The decoder reads the chunk directly, so that no object is
 * made and collected per frame for it. Only an instance is read that way: a
 * copy ({ ...rec, data }) is a plain record, read through its data.
 */
export class ChunkRecord implements PacketRecord {
  ts = 0;
  linkType = 0;
  origLen = 0;
  interfaceId = 0;
  frame = 0;
  buf: Buffer = EMPTY;
  off = 0;
  len = 0;
  private view: Buffer | null = EMPTY;

  /** The bytes are buf[off, off + len). */
  at(buf: Buffer, off: number, len: number): void {
    this.buf = buf;
    this.off = off;
    this.len = len;
    this.view = null;
  }

  get data(): Buffer {
    if (this.view === null) this.view = this.buf.subarray(this.off, this.off + this.len);
    return this.view;
  }

  set data(b: Buffer) {
    this.buf = b;
    this.off = 0;
    this.len = b.length;
    this.view = b;
  }
}

/**
 * Push parser: feed chunks in order; `onPacket` is called synchronously for
 * each complete record.
 *
 * The PacketRecord passed to `onPacket` is ONE object reused for every
 * record (a ChunkRecord), and its bytes are in the caller's chunk (or the
 * parser's spill buffer). Both are valid only during the callback: copy what
 * you keep.
 */
export class CaptureParser {
  private state: State = State.Start;
  private _format: CaptureFormat | null = null;
  private readonly _linkTypes: number[] = [];
  /** Records delivered; equals the last frame number. */
  packets = 0;

  // pcap state
  private le = true;
  private nano = false;
  private recHdrLen = 16;
  private pcapLinkType = 0;
  private caplenLimit = MAX_CAPLEN;

  // pcapng state
  private ifaces: Iface[] = [];
  private sections = 0;
  private lastTs = 0;

  // Bytes kept between pushes: spill[0, spillLen) is the start of a unit
  // (file header, record or block) that did not fit in the previous chunk.
  private spill: Buffer | null = null;
  private spillLen = 0;

  private readonly rec = new ChunkRecord();

  /**
   * @param name how to call the input in UserError messages (a path, "stdin").
   */
  constructor(
    private readonly onPacket: (rec: PacketRecord) => void,
    private readonly anomalies: Anomalies,
    private readonly name = 'the input',
  ) {}

  get format(): CaptureFormat | null {
    return this._format;
  }

  /** Distinct link types seen, in order of first appearance (pcap header / pcapng IDBs). */
  get linkTypes(): number[] {
    return this._linkTypes;
  }

  /** True once reading stopped on a record length that cannot be trusted. */
  get stopped(): boolean {
    return this.state === State.Stopped;
  }

  push(chunk: Buffer): void {
    if (this.state === State.Stopped || chunk.length === 0) return;
    let off = 0;
    if (this.spillLen > 0) {
      // Complete the spanning unit with just the bytes it needs, so the rest
      // of the chunk can still be handed out zero-copy.
      for (;;) {
        const view = this.spill!.subarray(0, this.spillLen);
        const r = this.step(view, 0);
        if (this.stopped) {
          this.spillLen = 0;
          this.spill = null;
          return;
        }
        if (r > 0) {
          if (r < this.spillLen) {
            // Only possible if a step consumes less than it asked for; keep the rest.
            this.spill!.copyWithin(0, r, this.spillLen);
            this.spillLen -= r;
            continue;
          }
          this.spillLen = 0;
          break;
        }
        const need = -r;
        const take = Math.min(need - this.spillLen, chunk.length - off);
        if (take <= 0) return; // chunk exhausted
        this.appendSpill(chunk, off, take);
        off += take;
        if (this.spillLen < need) return; // chunk exhausted, still short
      }
      if (this.spill !== null && this.spill.length > 1 << 20) this.spill = null; // don't pin a huge buffer
    }
    while (off < chunk.length) {
      // Classic pcap records, the bulk of most files, without the dispatch of step().
      const r = this.state === State.PcapRecord ? this.pcapRecord(chunk, off) : this.step(chunk, off);
      if (this.stopped) return;
      if (r < 0) break;
      off += r;
    }
    if (off < chunk.length) this.appendSpill(chunk, off, chunk.length - off);
  }

  /** End of input. */
  end(): void {
    if (this.state === State.Stopped) return;
    const have = this.spillLen;
    if (this.state === State.Start) {
      if (have === 0) throw new UserError(`${this.name} is empty: it is not a pcap or pcapng capture.`);
      throw new UserError(
        `${this.name} is only ${have} byte${have === 1 ? '' : 's'} long: it is not a pcap or pcapng capture.`,
      );
    }
    if (this.state === State.PcapHeader) {
      throw new UserError(
        `${this.name} is cut inside its pcap file header (${have} of 24 bytes): the capture is incomplete.`,
      );
    }
    if (this.state === State.Pcapng && this.sections === 0) {
      throw new UserError(
        `${this.name} is cut inside its pcapng section header (${have} bytes): the capture is incomplete.`,
      );
    }
    if (have > 0) this.anomalies.add('truncated-record');
    this.spillLen = 0;
    this.spill = null;
  }

  private appendSpill(src: Buffer, off: number, n: number): void {
    const needLen = this.spillLen + n;
    if (this.spill === null || this.spill.length < needLen) {
      const grown = Buffer.allocUnsafe(Math.max(needLen, this.spill ? this.spill.length * 2 : 0, 256));
      if (this.spill !== null && this.spillLen > 0) this.spill.copy(grown, 0, 0, this.spillLen);
      this.spill = grown;
    }
    src.copy(this.spill, this.spillLen, off, off + n);
    this.spillLen = needLen;
  }

  private stop(kind: string): void {
    this.anomalies.add(kind);
    this.state = State.Stopped;
    this.spillLen = 0;
    this.spill = null;
  }

  private addLinkType(lt: number): void {
    if (!this._linkTypes.includes(lt)) this._linkTypes.push(lt);
  }

  /**
   * Try to consume one unit at buf[off..]. Returns bytes consumed (> 0), or
   * -need where need (> available) is the total length the unit requires.
   */
  private step(buf: Buffer, off: number): number {
    switch (this.state) {
      case State.PcapRecord:
        return this.pcapRecord(buf, off);
      case State.Pcapng:
        return this.pcapngBlock(buf, off);
      case State.Start:
        return this.detect(buf, off);
      case State.PcapHeader:
        return this.pcapHeader(buf, off);
      default:
        return 1; // Stopped: callers check the state
    }
  }

  private detect(buf: Buffer, off: number): number {
    if (buf.length - off < 4) return -4;
    const m = buf.readUInt32LE(off);
    const mbe = buf.readUInt32BE(off);
    if (m === PCAP_USEC || m === PCAP_NSEC || m === PCAP_MODIFIED) {
      this.le = true;
    } else if (mbe === PCAP_USEC || mbe === PCAP_NSEC || mbe === PCAP_MODIFIED) {
      this.le = false;
    } else if (m === PCAPNG_SHB) {
      this._format = 'pcapng';
      this.state = State.Pcapng;
      return this.pcapngBlock(buf, off);
    } else {
      const hex = Array.from(buf.subarray(off, off + 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
      let hint = 'give a file written by tcpdump -w, tshark -w, dumpcap or Wireshark.';
      if (buf[off] === 0x1f && buf[off + 1] === 0x8b) hint = 'it is gzip-compressed; read it with readCapture, which inflates it.';
      throw new UserError(`${this.name} is not a pcap or pcapng capture (it starts with bytes ${hex}); ${hint}`);
    }
    const magic = this.le ? m : mbe;
    this.nano = magic === PCAP_NSEC;
    this.recHdrLen = magic === PCAP_MODIFIED ? 24 : 16;
    this._format = 'pcap';
    this.state = State.PcapHeader;
    return this.pcapHeader(buf, off);
  }

  private pcapHeader(buf: Buffer, off: number): number {
    if (buf.length - off < 24) return -24;
    const le = this.le;
    const snaplen = le ? buf.readUInt32LE(off + 16) : buf.readUInt32BE(off + 16);
    const ltField = le ? buf.readUInt32LE(off + 20) : buf.readUInt32BE(off + 20);
    // The low 16 bits are the link type; bits 26-31 carry FCS information
    // (draft-ietf-opsawg-pcap section 4, "LinkType and additional information").
    this.pcapLinkType = ltField & 0xffff;
    this.addLinkType(this.pcapLinkType);
    // Trust a snaplen above the standard maximum (some link types need it),
    // but only up to a hard ceiling. A snaplen below caplen is common in
    // crafted files (zeek/trunc/trunc-hdr.pcap: snaplen 1, caplen 8), so it
    // never lowers the limit.
    this.caplenLimit = snaplen > MAX_CAPLEN ? Math.min(snaplen, MAX_CAPLEN_ABSOLUTE) : MAX_CAPLEN;
    this.state = State.PcapRecord;
    return 24;
  }

  private pcapRecord(buf: Buffer, off: number): number {
    const hl = this.recHdrLen;
    const avail = buf.length - off;
    if (avail < hl) return -hl;
    const le = this.le;
    const caplen = le ? u32le(buf, off + 8) : u32be(buf, off + 8);
    if (caplen > this.caplenLimit) {
      // No way to find the next record: stop, keep what we have.
      this.stop('pcap-bad-caplen');
      return 0;
    }
    const total = hl + caplen;
    if (avail < total) return -total;
    const sec = le ? u32le(buf, off) : u32be(buf, off);
    const frac = le ? u32le(buf, off + 4) : u32be(buf, off + 4);
    let origLen = le ? u32le(buf, off + 12) : u32be(buf, off + 12);
    if (origLen < caplen) {
      // libpcap tolerates this; later stages rely on origLen >= data.length.
      this.anomalies.add('pcap-origlen-lt-caplen');
      origLen = caplen;
    }
    const rec = this.rec;
    rec.ts = sec * 1_000_000 + (this.nano ? Math.floor(frac / 1000) : frac);
    rec.linkType = this.pcapLinkType;
    rec.at(buf, off + hl, caplen);
    rec.origLen = origLen;
    rec.interfaceId = 0;
    rec.frame = ++this.packets;
    this.onPacket(rec);
    return total;
  }

  // ---- pcapng -------------------------------------------------------------

  private pcapngBlock(buf: Buffer, off: number): number {
    const avail = buf.length - off;
    if (avail < 12) return -12;
    let type = buf.readUInt32LE(off); // SHB type is palindromic; others are read again below
    if (type === PCAPNG_SHB) {
      const bom = buf.readUInt32LE(off + 8);
      if (bom === PCAPNG_BOM) this.le = true;
      else if (buf.readUInt32BE(off + 8) === PCAPNG_BOM) this.le = false;
      else {
        if (this.sections === 0) {
          throw new UserError(
            `${this.name} starts like a pcapng capture but its section header has no valid byte-order magic; the file is damaged.`,
          );
        }
        this.stop('pcapng-bad-byte-order-magic');
        return 0;
      }
    }
    const le = this.le;
    if (!le) type = buf.readUInt32BE(off);
    const len = le ? buf.readUInt32LE(off + 4) : buf.readUInt32BE(off + 4);
    // pcapng section 3.1: Block Total Length is a multiple of 4 and covers
    // type, length, body and the trailing length copy (so at least 12).
    if (len < 12 || len % 4 !== 0 || len > MAX_BLOCK_LEN || (type === PCAPNG_SHB && len < 28)) {
      if (this.sections === 0) {
        throw new UserError(
          `${this.name} starts like a pcapng capture but its section header length (${len}) is invalid; the file is damaged.`,
        );
      }
      this.stop('pcapng-bad-block-length');
      return 0;
    }
    if (avail < len) return -len;
    const trail = le ? buf.readUInt32LE(off + len - 4) : buf.readUInt32BE(off + len - 4);
    if (trail !== len) {
      if (this.sections === 0) {
        throw new UserError(
          `${this.name} starts like a pcapng capture but its section header is inconsistent; the file is damaged.`,
        );
      }
      this.stop('pcapng-bad-block-length');
      return 0;
    }
    switch (type) {
      case PCAPNG_SHB:
        this.sectionHeader(buf, off, len);
        break;
      case 1:
        this.interfaceDescription(buf, off, len);
        break;
      case 6:
        this.packetBlock(buf, off, len, false);
        break;
      case 3:
        this.simplePacket(buf, off, len);
        break;
      case 2:
        this.packetBlock(buf, off, len, true);
        break;
      default:
        // NRB (4), ISB (5), DSB, custom blocks ...: nothing we need.
        break;
    }
    return len;
  }

  private sectionHeader(buf: Buffer, off: number, len: number): void {
    const major = this.le ? buf.readUInt16LE(off + 12) : buf.readUInt16BE(off + 12);
    if (major !== 1) {
      // Section 4.1: a different major version means the layout may differ.
      if (this.sections === 0) {
        throw new UserError(
          `${this.name} is a pcapng capture of major version ${major}, which is not supported (only version 1 exists).`,
        );
      }
      this.stop('pcapng-unsupported-version');
      return;
    }
    void len;
    this.sections++;
    // Interface ids are per section (section 4.2).
    this.ifaces = [];
  }

  private interfaceDescription(buf: Buffer, off: number, len: number): void {
    if (len < 20) {
      this.anomalies.add('pcapng-bad-idb');
      // Keep interface numbering aligned with the file: later EPBs refer by index.
      this.ifaces.push({ linkType: -1, snaplen: 0, mode: TsMode.Mul, factor: 1, tsresol: 6, offsetUs: 0 });
      return;
    }
    const le = this.le;
    const linkType = le ? buf.readUInt16LE(off + 8) : buf.readUInt16BE(off + 8);
    const snaplen = le ? buf.readUInt32LE(off + 12) : buf.readUInt32BE(off + 12);
    const iface: Iface = { linkType, snaplen, mode: TsMode.Mul, factor: 1, tsresol: 6, offsetUs: 0 };
    // Options: code u16, length u16, value padded to 32 bits (section 3.5).
    let p = off + 16;
    const end = off + len - 4;
    while (p + 4 <= end) {
      const code = le ? buf.readUInt16LE(p) : buf.readUInt16BE(p);
      const olen = le ? buf.readUInt16LE(p + 2) : buf.readUInt16BE(p + 2);
      if (code === 0) break; // opt_endofopt
      const v = p + 4;
      if (v + olen > end) {
        this.anomalies.add('pcapng-bad-option');
        break;
      }
      if (code === 9 && olen >= 1) {
        // if_tsresol: MSB clear -> 10^-n seconds, set -> 2^-n (section 4.2).
        iface.tsresol = buf[v]!;
      } else if (code === 14 && olen >= 8) {
        // if_tsoffset: signed 64-bit seconds added to every timestamp.
        const hi = le ? buf.readInt32LE(v + 4) : buf.readInt32BE(v);
        const lo = le ? buf.readUInt32LE(v) : buf.readUInt32BE(v + 4);
        iface.offsetUs = (hi * TWO_32 + lo) * 1_000_000;
      }
      p = v + ((olen + 3) & ~3);
    }
    const r = iface.tsresol;
    if (r & 0x80) {
      iface.mode = TsMode.Big;
    } else if (r <= 6) {
      iface.mode = TsMode.Mul;
      iface.factor = 10 ** (6 - r);
    } else if (r <= 12) {
      iface.mode = TsMode.Div;
      iface.factor = 10 ** (r - 6);
    } else {
      iface.mode = TsMode.Big;
    }
    this.ifaces.push(iface);
    this.addLinkType(linkType);
  }

  /** 64-bit timestamp (hi, lo) in the interface's units -> integer µs (floor). */
  private toMicros(iface: Iface, hi: number, lo: number): number {
    let us: number;
    if (iface.mode === TsMode.Mul) {
      us = (hi * TWO_32 + lo) * iface.factor;
    } else if (iface.mode === TsMode.Div) {
      // floor((hi*2^32 + lo) / d) without leaving exact double range:
      // hi = qh*d + rh  =>  value/d = qh*2^32 + (rh*2^32 + lo)/d, and
      // rh*2^32 + lo < d*2^32 <= 10^6 * 2^32 < 2^53.
      const d = iface.factor;
      const rh = hi % d;
      const qh = (hi - rh) / d;
      us = qh * TWO_32 + Math.floor((rh * TWO_32 + lo) / d);
    } else {
      const units = (BigInt(hi) << 32n) | BigInt(lo);
      const r = iface.tsresol;
      if (r & 0x80) {
        us = Number((units * 1_000_000n) >> BigInt(r & 0x7f));
      } else {
        us = Number((units * 1_000_000n) / 10n ** BigInt(r));
      }
    }
    us += iface.offsetUs;
    if (!Number.isSafeInteger(us)) {
      // Past the year 2255 (2^53 µs) or garbage from a damaged block: keep
      // time moving forward from the previous packet instead of handing
      // later stages an inexact number.
      this.anomalies.add('pcapng-bad-timestamp');
      return this.lastTs;
    }
    return us;
  }

  /** A packet block's frame, buf[start, start + caplen), to onPacket (read in place, as pcap records are). */
  private deliver(iface: Iface, ifId: number, ts: number, buf: Buffer, start: number, caplen: number, origLen: number): void {
    if (origLen < caplen) {
      this.anomalies.add('pcapng-origlen-lt-caplen');
      origLen = caplen;
    }
    const rec = this.rec;
    rec.ts = ts;
    rec.linkType = iface.linkType;
    rec.at(buf, start, caplen);
    rec.origLen = origLen;
    rec.interfaceId = ifId;
    rec.frame = ++this.packets;
    this.lastTs = ts;
    this.onPacket(rec);
  }

  /**
   * Enhanced Packet Block, or the obsolete Packet Block (`obsolete`): the same
   * layout but for the Interface ID, 16 bits followed by a Drops Count there.
   */
  private packetBlock(buf: Buffer, off: number, len: number, obsolete: boolean): void {
    if (len < 32) {
      this.anomalies.add(obsolete ? 'pcapng-bad-packet-block' : 'pcapng-bad-epb');
      return;
    }
    const le = this.le;
    const ifId = obsolete
      ? le ? buf.readUInt16LE(off + 8) : buf.readUInt16BE(off + 8)
      : le ? buf.readUInt32LE(off + 8) : buf.readUInt32BE(off + 8);
    const iface = this.ifaces[ifId];
    if (iface === undefined || iface.linkType < 0) {
      this.anomalies.add('pcapng-unknown-interface');
      return;
    }
    const hi = le ? buf.readUInt32LE(off + 12) : buf.readUInt32BE(off + 12);
    const lo = le ? buf.readUInt32LE(off + 16) : buf.readUInt32BE(off + 16);
    const caplen = le ? buf.readUInt32LE(off + 20) : buf.readUInt32BE(off + 20);
    const origLen = le ? buf.readUInt32LE(off + 24) : buf.readUInt32BE(off + 24);
    if (28 + caplen > len - 4) {
      this.anomalies.add('pcapng-bad-caplen');
      return;
    }
    this.deliver(iface, ifId, this.toMicros(iface, hi, lo), buf, off + 28, caplen, origLen);
  }

  private simplePacket(buf: Buffer, off: number, len: number): void {
    if (len < 16) {
      this.anomalies.add('pcapng-bad-spb');
      return;
    }
    // SPB (section 4.4): implicitly interface 0, no timestamp, captured
    // length = min(original length, snaplen of interface 0, room in block).
    const iface = this.ifaces[0];
    if (iface === undefined || iface.linkType < 0) {
      this.anomalies.add('pcapng-unknown-interface');
      return;
    }
    const origLen = this.le ? buf.readUInt32LE(off + 8) : buf.readUInt32BE(off + 8);
    let caplen = Math.min(origLen, len - 16);
    if (iface.snaplen > 0 && iface.snaplen < caplen) caplen = iface.snaplen;
    // No timestamp: reuse the previous packet's, so time never goes backwards.
    this.deliver(iface, 0, this.lastTs, buf, off + 12, caplen, origLen);
  }
}
