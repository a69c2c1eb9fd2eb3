/**
 * Decode stage: PacketRecord -> TcpSegment (link layer, IPv4/IPv6, TCP).
 *
 * Hot path rules: one reused TcpSegment (gopacket DecodingLayerParser
 * style), payload is a subarray of the record's data, every read is bounds
 * checked against the captured length so that no input can throw, and
 * damage is counted in Anomalies instead.
 *
 * Not done here, on purpose:
 *  - checksums are not verified (tshark does not verify them by default
 *    either, and captures taken on the sending host carry offloaded,
 *    not-yet-computed checksums);
 *  - IP fragments are counted ('ip-fragment') and skipped, first fragment
 *    included: a first fragment's IP length covers only part of the TCP
 *    segment, so its payloadLen would be wrong. TCP normally sets DF and
 *    never fragments;
 *  - tunnels (IP-in-IP, GRE, VXLAN) are not entered: their packets count as
 *    non-TCP.
 */
import { ChunkRecord } from '../capture/parser.js';
import { Anomalies, type PacketRecord, type TcpSegment } from '../types.js';

// LINKTYPE_* values (https://www.tcpdump.org/linktypes.html).
export const LINKTYPE_NULL = 0;
export const LINKTYPE_ETHERNET = 1;
export const LINKTYPE_RAW = 101;
export const LINKTYPE_LOOP = 108;
export const LINKTYPE_LINUX_SLL = 113;
export const LINKTYPE_IPV4 = 228;
export const LINKTYPE_IPV6 = 229;
export const LINKTYPE_LINUX_SLL2 = 276;

const ETH_IPV4 = 0x0800;
const ETH_IPV6 = 0x86dd;
const ETH_VLAN = 0x8100; // IEEE 802.1Q
const ETH_QINQ = 0x88a8; // IEEE 802.1ad service tag
const ETH_QINQ_OLD = 0x9100; // pre-standard QinQ
const ETH_QINQ_OLD2 = 0x9200;
const ETH_PPPOE_SESSION = 0x8864; // RFC 2516
const ETH_MPLS = 0x8847;
const ETH_MPLS_MC = 0x8848;

/** Upper bound on stacked VLAN / MPLS labels / IPv6 extension headers we walk. */
const MAX_LAYERS = 8;

const LINK_NAMES: Record<number, string> = {
  0: 'NULL',
  1: 'EN10MB',
  9: 'PPP',
  12: 'RAW',
  14: 'RAW',
  101: 'RAW',
  105: 'IEEE802_11',
  108: 'LOOP',
  113: 'LINUX_SLL',
  127: 'IEEE802_11_RADIOTAP',
  228: 'IPV4',
  229: 'IPV6',
  276: 'LINUX_SLL2',
};

/** Name of a LINKTYPE_* value as in pcap-linktype(7), or "LINKTYPE_<n>". */
export function linkTypeName(lt: number): string {
  return LINK_NAMES[lt] ?? `LINKTYPE_${lt}`;
}

/** True for link types decode() understands. */
export function isSupportedLinkType(lt: number): boolean {
  switch (lt) {
    case 0:
    case 1:
    case 12:
    case 14:
    case 101:
    case 108:
    case 113:
    case 228:
    case 229:
    case 276:
      return true;
    default:
      return false;
  }
}

/** The payload of every segment without captured payload (about half of all packets: pure ACKs): no view to allocate. */
const NO_PAYLOAD = Buffer.alloc(0);

/** Result of the link layer: where IP starts and which version, or a reason to stop. */
const NOT_IP = -1;
const DAMAGED = -2;

export class Decoder {
  /** Packets that were fine but not TCP (ARP, UDP, ICMP, tunnels, ...). Not anomalies. */
  nonTcp = 0;

  private readonly seg: TcpSegment = {
    ts: 0,
    frame: 0,
    ipVersion: 4,
    src: '',
    dst: '',
    srcPort: 0,
    dstPort: 0,
    seq: 0,
    ack: 0,
    flags: 0,
    window: 0,
    payload: Buffer.alloc(0),
    payloadLen: 0,
    wscale: -1,
    mss: -1,
    tsval: -1,
    tsecr: -1,
    sack: false,
  };

  /** IP version found by the link layer (4 or 6), set with the offset it returns. */
  private ipVer = 0;
  /** End of the frame being decoded in its buffer (decode()). */
  private end = 0;

  // Small direct-mapped caches so a busy connection does not build the same
  // address string for every packet.
  private readonly v4Keys = new Int32Array(256).fill(-1);
  private readonly v4Vals: string[] = new Array<string>(256).fill('');
  private readonly v4Used = new Uint8Array(256);
  private readonly v6Keys = Buffer.alloc(64 * 16);
  private readonly v6Vals: string[] = new Array<string>(64).fill('');
  private readonly v6Used = new Uint8Array(64);

  constructor(private readonly anomalies: Anomalies) {}

  /**
   * Returns the shared, reused TcpSegment filled from rec, or null for
   * non-TCP packets (counted in nonTcp) and damaged ones (counted in
   * anomalies). The segment and its payload are valid until the next call.
   */
  decode(rec: PacketRecord): TcpSegment | null {
    // The frame is d[base, this.end): the reader's chunk itself when the record says where (no view made for it).
    let d: Buffer;
    let base: number;
    if (rec instanceof ChunkRecord) {
      d = rec.buf;
      base = rec.off;
      this.end = base + rec.len;
    } else {
      d = rec.data;
      base = 0;
      this.end = d.length;
    }
    const off = this.link(rec.linkType, d, base);
    if (off < 0) {
      if (off === NOT_IP) this.nonTcp++;
      return null;
    }
    // Bytes of the frame on the wire from `off` on: lets us tell "cut by
    // snaplen" (fine) from "IP length larger than the frame" (damage).
    const wireAvail = Math.max(rec.origLen, this.end - base) - (off - base);
    return this.ipVer === 4 ? this.ipv4(rec, d, off, wireAvail) : this.ipv6(rec, d, off, wireAvail);
  }

  // ---- link layer ----------------------------------------------------------

  /** Returns the offset of the IP header in d (and sets ipVer), NOT_IP or DAMAGED; the frame is d[base, this.end). */
  private link(lt: number, d: Buffer, base: number): number {
    const n = this.end - base;
    switch (lt) {
      case LINKTYPE_ETHERNET:
        if (n < 14) return this.damaged('truncated-link-header');
        return this.etherType((d[base + 12]! << 8) | d[base + 13]!, d, base + 14);
      case LINKTYPE_LINUX_SLL:
        // Linux cooked v1: 16-byte header, protocol (an EtherType) at 14.
        // https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL.html
        if (n < 16) return this.damaged('truncated-link-header');
        return this.etherType((d[base + 14]! << 8) | d[base + 15]!, d, base + 16);
      case LINKTYPE_LINUX_SLL2:
        // Linux cooked v2: 20-byte header, protocol at 0.
        // https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL2.html
        if (n < 20) return this.damaged('truncated-link-header');
        return this.etherType((d[base]! << 8) | d[base + 1]!, d, base + 20);
      case LINKTYPE_RAW:
        return this.rawIp(d, base);
      case 12: // DLT_RAW on most systems, written as-is by some; but DLT_LOOP on OpenBSD
      case 14: // DLT_RAW on OpenBSD
        if (n > 0 && (d[base]! >> 4 === 4 || d[base]! >> 4 === 6)) return this.rawIp(d, base);
        return this.loopback(d, base);
      case LINKTYPE_IPV4:
        this.ipVer = 4;
        return base;
      case LINKTYPE_IPV6:
        this.ipVer = 6;
        return base;
      case LINKTYPE_NULL:
      case LINKTYPE_LOOP:
        return this.loopback(d, base);
      default:
        this.anomalies.add('unsupported-link-type');
        return DAMAGED;
    }
  }

  /** BSD loopback (NULL, LOOP): a 4-byte address family, then IP. */
  private loopback(d: Buffer, base: number): number {
    // Host byte order of the capturing machine for NULL, network order for
    // LOOP. Family values are < 256, so whichever order gives a small
    // number is the right one.
    if (this.end - base < 4) return this.damaged('truncated-link-header');
    let fam = d.readUInt32LE(base);
    if (fam > 0xffff) fam = d.readUInt32BE(base);
    if (fam === 2) {
      this.ipVer = 4;
      return base + 4;
    }
    // AF_INET6 differs per OS: 24 NetBSD/OpenBSD/BSD/OS, 28 FreeBSD,
    // 30 Darwin, 10 Linux (Wireshark epan/aftypes.h).
    if (fam === 24 || fam === 28 || fam === 30 || fam === 10) {
      this.ipVer = 6;
      return base + 4;
    }
    return NOT_IP;
  }

  /** Walk VLAN tags / PPPoE / MPLS from an EtherType to IP. */
  private etherType(type: number, d: Buffer, off: number): number {
    for (let i = 0; i < MAX_LAYERS; i++) {
      switch (type) {
        case ETH_IPV4:
          this.ipVer = 4;
          return off;
        case ETH_IPV6:
          this.ipVer = 6;
          return off;
        case ETH_VLAN:
        case ETH_QINQ:
        case ETH_QINQ_OLD:
        case ETH_QINQ_OLD2:
          // 802.1Q tag: 2 bytes TCI, then the next EtherType.
          if (this.end < off + 4) return this.damaged('truncated-link-header');
          type = d.readUInt16BE(off + 2);
          off += 4;
          continue;
        case ETH_PPPOE_SESSION: {
          // RFC 2516 section 4: 6-byte PPPoE header, then the PPP protocol (RFC 1661).
          if (this.end < off + 8) return this.damaged('truncated-link-header');
          const proto = d.readUInt16BE(off + 6);
          if (proto === 0x0021) {
            this.ipVer = 4;
            return off + 8;
          }
          if (proto === 0x0057) {
            this.ipVer = 6;
            return off + 8;
          }
          return NOT_IP;
        }
        case ETH_MPLS:
        case ETH_MPLS_MC: {
          // RFC 3032: 4-byte label entries until the bottom-of-stack bit;
          // the payload type is not signalled, guess it from the IP version.
          for (let j = 0; j < MAX_LAYERS; j++) {
            if (this.end < off + 4) return this.damaged('truncated-link-header');
            const bos = d[off + 2]! & 1;
            off += 4;
            if (bos) return this.rawIp(d, off);
          }
          return NOT_IP;
        }
        default:
          // ARP, LLDP, 802.3 length field (<= 1500) with LLC, ...
          return NOT_IP;
      }
    }
    return NOT_IP;
  }

  private rawIp(d: Buffer, off: number): number {
    if (this.end <= off) return this.damaged('truncated-ip-header');
    const v = d[off]! >> 4;
    if (v === 4 || v === 6) {
      this.ipVer = v;
      return off;
    }
    return this.damaged('bad-ip-version');
  }

  private damaged(kind: string): number {
    this.anomalies.add(kind);
    return DAMAGED;
  }

  // ---- IP ------------------------------------------------------------------

  private ipv4(rec: PacketRecord, d: Buffer, off: number, wireAvail: number): TcpSegment | null {
    // RFC 791 section 3.1.
    const cap = this.end - off;
    if (cap < 20) return this.fail('truncated-ip-header');
    const vihl = d[off]!;
    if (vihl >> 4 !== 4) return this.fail('bad-ip-version');
    const ihl = (vihl & 0x0f) * 4;
    if (ihl < 20) return this.fail('bad-ip-header-length');
    if (cap < ihl) return this.fail('truncated-ip-header');
    let totalLen = (d[off + 2]! << 8) | d[off + 3]!;
    if (totalLen === 0) {
      // TCP segmentation offload: the sending host's capture sees the
      // super-frame before the NIC fills the length in (Wireshark's
      // "ip.tso_support" preference does the same).
      totalLen = Math.min(wireAvail, 65535);
    }
    if (totalLen < ihl) return this.fail('bad-ip-total-length');
    if (totalLen > wireAvail) {
      // Longer than the frame itself: trust the frame, note the damage.
      this.anomalies.add('ip-length-exceeds-frame');
      totalLen = wireAvail;
    }
    const frag = (d[off + 6]! << 8) | d[off + 7]!;
    if ((frag & 0x3fff) !== 0) {
      // MF set or a non-zero fragment offset: see the file comment.
      return this.fail('ip-fragment');
    }
    if (d[off + 9] !== 6) {
      this.nonTcp++;
      return null;
    }
    const seg = this.seg;
    seg.ipVersion = 4;
    // Addresses as signed 32-bit keys (v4() only needs the bits).
    seg.src = this.v4((d[off + 12]! << 24) | (d[off + 13]! << 16) | (d[off + 14]! << 8) | d[off + 15]!);
    seg.dst = this.v4((d[off + 16]! << 24) | (d[off + 17]! << 16) | (d[off + 18]! << 8) | d[off + 19]!);
    // The IP total length trims Ethernet padding (frames shorter than 60 bytes).
    const ipEnd = off + totalLen;
    return this.tcp(rec, d, off + ihl, ipEnd, totalLen - ihl);
  }

  private ipv6(rec: PacketRecord, d: Buffer, off: number, wireAvail: number): TcpSegment | null {
    // RFC 8200 section 3.
    const cap = this.end - off;
    if (cap < 40) return this.fail('truncated-ip-header');
    if (d[off]! >> 4 !== 6) return this.fail('bad-ip-version');
    let plen = d.readUInt16BE(off + 4);
    if (plen === 0) {
      // Jumbogram (RFC 2675) or TSO: take the frame's length.
      plen = Math.max(0, wireAvail - 40);
    }
    if (40 + plen > wireAvail) {
      this.anomalies.add('ip-length-exceeds-frame');
      plen = Math.max(0, wireAvail - 40);
    }
    const ipEnd = off + 40 + plen;
    let next = d[off + 6]!;
    let p = off + 40;
    for (let i = 0; ; i++) {
      if (next === 6) break;
      if (i >= MAX_LAYERS) return this.fail('ipv6-too-many-extension-headers');
      let hlen: number;
      switch (next) {
        case 0: // hop-by-hop options
        case 43: // routing
        case 60: // destination options
          if (this.end < p + 2) return this.fail('truncated-ip-header');
          hlen = (d[p + 1]! + 1) * 8; // RFC 8200 section 4.3: 8-octet units, not counting the first 8
          break;
        case 51: // AH, RFC 4302 section 2.2: 4-octet units minus 2
          if (this.end < p + 2) return this.fail('truncated-ip-header');
          hlen = (d[p + 1]! + 2) * 4;
          break;
        case 44: {
          // Fragment header (RFC 8200 section 4.5), 8 bytes.
          if (this.end < p + 8) return this.fail('truncated-ip-header');
          const fo = d.readUInt16BE(p + 2);
          if ((fo & 0xfff9) !== 0) return this.fail('ip-fragment'); // offset != 0 or M set
          hlen = 8; // atomic fragment: carry on
          break;
        }
        default:
          // UDP, ICMPv6, ESP, No Next Header (59), ...
          this.nonTcp++;
          return null;
      }
      if (p + hlen > ipEnd) return this.fail('bad-ip-total-length');
      next = d[p]!;
      p += hlen;
    }
    const seg = this.seg;
    seg.ipVersion = 6;
    seg.src = this.v6(d, off + 8);
    seg.dst = this.v6(d, off + 24);
    return this.tcp(rec, d, p, ipEnd, ipEnd - p);
  }

  private fail(kind: string): null {
    this.anomalies.add(kind);
    return null;
  }

  // ---- TCP -----------------------------------------------------------------

  /**
   * @param off   start of the TCP header
   * @param ipEnd end of the IP packet (frame offset; may be past the captured bytes)
   * @param wireLen TCP header + payload length on the wire, from the IP length fields
   */
  private tcp(rec: PacketRecord, d: Buffer, off: number, ipEnd: number, wireLen: number): TcpSegment | null {
    // RFC 9293 section 3.1.
    const capEnd = ipEnd < this.end ? ipEnd : this.end;
    const cap = capEnd - off;
    if (wireLen < 20) return this.fail('bad-tcp-header-length');
    if (cap < 20) return this.fail('truncated-tcp-header');
    const dataOff = (d[off + 12]! >> 4) * 4;
    if (dataOff < 20 || dataOff > wireLen) return this.fail('bad-tcp-header-length');
    const seg = this.seg;
    seg.ts = rec.ts;
    seg.frame = rec.frame;
    // Bytes read directly (the 20-byte header is there, checked above): readUInt*BE's argument checks cost more than the reads.
    seg.srcPort = (d[off]! << 8) | d[off + 1]!;
    seg.dstPort = (d[off + 2]! << 8) | d[off + 3]!;
    seg.seq = d[off + 4]! * 0x1000000 + ((d[off + 5]! << 16) | (d[off + 6]! << 8) | d[off + 7]!);
    seg.ack = d[off + 8]! * 0x1000000 + ((d[off + 9]! << 16) | (d[off + 10]! << 8) | d[off + 11]!);
    seg.flags = d[off + 13]!;
    seg.window = (d[off + 14]! << 8) | d[off + 15]!;
    seg.payloadLen = wireLen - dataOff;
    seg.payload = off + dataOff < capEnd ? d.subarray(off + dataOff, capEnd) : NO_PAYLOAD;
    seg.mss = -1;
    seg.wscale = -1;
    seg.tsval = -1;
    seg.tsecr = -1;
    seg.sack = false;
    if (dataOff > 20) {
      if (cap < dataOff) {
        // Snaplen cut inside the options (zeek/tcp/truncated-header.pcap,
        // snaplen 68, frame 1 is a SYN). The fixed header is intact and a
        // lost SYN would make the connection look mid-stream, so keep the
        // segment, parse the options we have, and note it (tshark also
        // shows the fixed fields of such a frame).
        this.anomalies.add('truncated-tcp-options');
        seg.payload = NO_PAYLOAD;
        this.options(d, off + 20, capEnd, true);
      } else {
        this.options(d, off + 20, off + dataOff, false);
      }
    }
    return seg;
  }

  /** TCP options (RFC 9293 section 3.2, RFC 7323, RFC 2018). Malformed options end parsing, never throw. */
  private options(d: Buffer, p: number, end: number, cut: boolean): void {
    const seg = this.seg;
    while (p < end) {
      const kind = d[p]!;
      if (kind === 0) return; // end of option list
      if (kind === 1) {
        p++; // NOP
        continue;
      }
      if (p + 1 >= end) {
        if (!cut) this.anomalies.add('tcp-bad-option');
        return;
      }
      const len = d[p + 1]!;
      if (len < 2 || p + len > end) {
        // A length running past `end` is damage, unless snaplen cut the header there.
        if (len < 2 || !cut) this.anomalies.add('tcp-bad-option');
        return;
      }
      switch (kind) {
        case 2: // MSS
          if (len === 4) seg.mss = d.readUInt16BE(p + 2);
          break;
        case 3: {
          // Window scale. RFC 7323 section 2.3: a shift above 14 MUST be used as 14.
          if (len === 3) {
            let s = d[p + 2]!;
            if (s > 14) {
              this.anomalies.add('tcp-wscale-too-large');
              s = 14;
            }
            seg.wscale = s;
          }
          break;
        }
        case 5: // SACK blocks
          seg.sack = true;
          break;
        case 8: // timestamps
          if (len === 10) {
            seg.tsval = d.readUInt32BE(p + 2);
            seg.tsecr = d.readUInt32BE(p + 6);
          }
          break;
        default:
          break;
      }
      p += len;
    }
  }

  // ---- address text ----------------------------------------------------------

  private v4(a: number): string {
    const h = (a ^ (a >>> 8) ^ (a >>> 16) ^ (a >>> 24)) & 0xff;
    const key = a | 0;
    if (this.v4Used[h] === 1 && this.v4Keys[h] === key) return this.v4Vals[h]!;
    const s = (a >>> 24) + '.' + ((a >>> 16) & 0xff) + '.' + ((a >>> 8) & 0xff) + '.' + (a & 0xff);
    this.v4Keys[h] = key;
    this.v4Vals[h] = s;
    this.v4Used[h] = 1;
    return s;
  }

  private v6(d: Buffer, off: number): string {
    const h = (d[off + 15]! ^ d[off + 13]! ^ (d[off + 11]! << 1)) & 63;
    const k = this.v6Keys;
    const ko = h * 16;
    if (this.v6Used[h] === 1 && d.compare(k, ko, ko + 16, off, off + 16) === 0) return this.v6Vals[h]!;
    const s = formatIPv6(d, off);
    d.copy(k, ko, off, off + 16);
    this.v6Vals[h] = s;
    this.v6Used[h] = 1;
    return s;
  }
}

/** IPv4 address (4 bytes at off) as a dotted quad. */
export function formatIPv4(d: Buffer, off: number): string {
  return d[off] + '.' + d[off + 1] + '.' + d[off + 2] + '.' + d[off + 3];
}

/**
 * IPv6 address (16 bytes at off) in RFC 5952 form: lower-case hex without
 * leading zeros, the longest run of two or more zero groups (the first on a
 * tie) as "::". IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d)
 * addresses keep the dotted tail, as glibc's inet_ntop (BIND's algorithm)
 * does, which is what tshark prints.
 */
export function formatIPv6(d: Buffer, off: number): string {
  const w: number[] = new Array<number>(8);
  for (let i = 0; i < 8; i++) w[i] = (d[off + 2 * i]! << 8) | d[off + 2 * i + 1]!;
  let bestBase = -1;
  let bestLen = 0;
  let curBase = -1;
  let curLen = 0;
  for (let i = 0; i < 8; i++) {
    if (w[i] === 0) {
      if (curBase < 0) {
        curBase = i;
        curLen = 1;
      } else curLen++;
    } else if (curBase >= 0) {
      if (curLen > bestLen) {
        bestBase = curBase;
        bestLen = curLen;
      }
      curBase = -1;
    }
  }
  if (curBase >= 0 && curLen > bestLen) {
    bestBase = curBase;
    bestLen = curLen;
  }
  if (bestLen < 2) bestBase = -1;
  let s = '';
  for (let i = 0; i < 8; i++) {
    if (bestBase >= 0 && i >= bestBase && i < bestBase + bestLen) {
      if (i === bestBase) s += ':';
      continue;
    }
    if (i !== 0) s += ':';
    if (i === 6 && bestBase === 0 && (bestLen === 6 || (bestLen === 5 && w[5] === 0xffff))) {
      s += formatIPv4(d, off + 12);
      return s;
    }
    s += w[i]!.toString(16);
  }
  if (bestBase >= 0 && bestBase + bestLen === 8) s += ':';
  return s;
}
