/**
 * PcapWriter: incremental pcap output for `--write`.
 *
 * Each record is written with one synchronous writev() straight to the file
 * descriptor (no userspace buffering), so a process killed mid-run leaves a
 * valid pcap holding every packet up to the last completed write: exactly
 * what you want from a tool that is often stopped with Ctrl-C or a timeout.
 *
 * Format: draft-ietf-opsawg-pcap, version 2.4, written in host byte order
 * like libpcap's pcap_dump (readers handle both orders).
 */
import * as fs from 'node:fs';
import { UserError, type PacketRecord } from '../types.js';

export interface PcapWriterOptions {
  /** Snapshot length written in the header; longer frames are cut to it. Default 262144. */
  snaplen?: number;
  /** Write the nanosecond-resolution magic (0xA1B23C4D). Timestamps stay µs-exact (×1000). */
  nanosecond?: boolean;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export class PcapWriter {
  private fd: number | null;
  private readonly snaplen: number;
  private readonly nano: boolean;
  private readonly hdr = Buffer.alloc(16);
  /** Records written. */
  packets = 0;
  /** Records not written because their link type differs from the file's (pcap has one per file). */
  skipped = 0;

  constructor(
    readonly path: string,
    readonly linkType: number,
    opts: PcapWriterOptions = {},
  ) {
    this.snaplen = opts.snaplen ?? 262144;
    this.nano = opts.nanosecond ?? false;
    try {
      // 0600 when it creates the file: captures hold credentials and bodies.
      this.fd = fs.openSync(path, 'w', 0o600);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const why = e.code === 'ENOENT' ? 'no such directory' : e.code === 'EACCES' ? 'permission denied' : e.message;
      throw new UserError(`cannot write ${path}: ${why}.`);
    }
    const h = Buffer.alloc(24);
    const w32 = (v: number, o: number): number => (LITTLE_ENDIAN ? h.writeUInt32LE(v, o) : h.writeUInt32BE(v, o));
    const w16 = (v: number, o: number): number => (LITTLE_ENDIAN ? h.writeUInt16LE(v, o) : h.writeUInt16BE(v, o));
    w32(this.nano ? 0xa1b23c4d : 0xa1b2c3d4, 0);
    w16(2, 4);
    w16(4, 6);
    // thiszone and sigfigs: 0 (section 4 of the pcap draft says both SHOULD be 0)
    w32(this.snaplen, 16);
    w32(linkType, 20);
    fs.writeSync(this.fd, h);
  }

  write(rec: PacketRecord): void {
    if (this.fd === null) return;
    if (rec.linkType !== this.linkType) {
      this.skipped++;
      return;
    }
    const data = rec.data.length > this.snaplen ? rec.data.subarray(0, this.snaplen) : rec.data;
    const sec = Math.floor(rec.ts / 1_000_000);
    const us = rec.ts - sec * 1_000_000;
    const frac = this.nano ? us * 1000 : us;
    const orig = Math.max(rec.origLen, rec.data.length);
    const h = this.hdr;
    if (LITTLE_ENDIAN) {
      h.writeUInt32LE(sec >>> 0, 0);
      h.writeUInt32LE(frac, 4);
      h.writeUInt32LE(data.length, 8);
      h.writeUInt32LE(orig, 12);
    } else {
      h.writeUInt32BE(sec >>> 0, 0);
      h.writeUInt32BE(frac, 4);
      h.writeUInt32BE(data.length, 8);
      h.writeUInt32BE(orig, 12);
    }
    fs.writevSync(this.fd, [h, data]);
    this.packets++;
  }

  close(): void {
    if (this.fd === null) return;
    fs.closeSync(this.fd);
    this.fd = null;
  }
}
