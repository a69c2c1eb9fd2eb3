/**
 * PcapWriter: incremental pcap output for `--write`.
 *
 * Each record is written with one synchronous writev() straight to the file
 * descriptor (no userspace buffering), so a process killed mid-run leaves a
 * valid pcap holding every packet up to the last completed write: exactly
 * what you want from a tool that is often stopped with Ctrl-C or a timeout.
 * When a write fails (a full disk, an I/O error) the part of the record that
 * did get written is cut off again (ftruncate to the last whole record), the
 * writer stops, and write() throws a PcapWriteError once: the file stays a
 * valid capture of every packet before.
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

/** Writing the capture file failed mid-run; the file holds `packets` whole records. */
export class PcapWriteError extends UserError {
  constructor(
    message: string,
    readonly code: string | undefined,
    readonly packets: number,
  ) {
    super(message);
    this.name = 'PcapWriteError';
  }
}

function errnoWords(e: NodeJS.ErrnoException): string {
  switch (e.code) {
    case 'ENOSPC':
      return 'no space left on the device';
    case 'EDQUOT':
      return 'disk quota exceeded';
    case 'EFBIG':
      return 'file too large';
    case 'EIO':
      return 'input/output error';
    case 'ENOENT':
      return 'no such directory';
    case 'EACCES':
      return 'permission denied';
    default:
      return e.message;
  }
}

export class PcapWriter {
  private fd: number | null;
  private readonly snaplen: number;
  private readonly nano: boolean;
  private readonly hdr = Buffer.alloc(16);
  /** Records written. */
  packets = 0;
  /** Records not written because their link type differs from the file's (pcap has one per file). */
  skipped = 0;
  /** Bytes of whole records (and the file header) in the file. */
  private size = 0;
  /** The write that failed, once one did: nothing more is written. */
  failed: PcapWriteError | null = null;

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
      throw new UserError(`cannot write ${path}: ${errnoWords(err as NodeJS.ErrnoException)}.`);
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
    try {
      this.writeAll([h], 24);
    } catch (err) {
      fs.closeSync(this.fd);
      this.fd = null;
      throw new UserError(`cannot write ${path}: ${errnoWords(err as NodeJS.ErrnoException)}.`);
    }
    this.size = 24;
  }

  /** Write every byte of `bufs` (writev may write less than asked: a full disk, a signal). */
  private writeAll(bufs: Buffer[], total: number): void {
    let n = fs.writevSync(this.fd!, bufs);
    while (n < total) {
      let skip = n;
      const rest: Buffer[] = [];
      for (const b of bufs) {
        if (skip >= b.length) skip -= b.length;
        else {
          rest.push(skip > 0 ? b.subarray(skip) : b);
          skip = 0;
        }
      }
      const m = fs.writevSync(this.fd!, rest);
      if (m === 0) throw Object.assign(new Error('write returned 0'), { code: 'EIO' });
      n += m;
    }
  }

  write(rec: PacketRecord): void {
    if (this.fd === null || this.failed !== null) return;
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
    try {
      this.writeAll([h, data], 16 + data.length);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      try {
        // Drop the partial record: the file stays a valid pcap of the packets before.
        fs.ftruncateSync(this.fd, this.size);
      } catch {
        /* the file is what it is */
      }
      this.failed = new PcapWriteError(
        `cannot write ${this.path}: ${errnoWords(e)}`,
        e.code,
        this.packets,
      );
      throw this.failed;
    }
    this.size += 16 + data.length;
    this.packets++;
  }

  close(): void {
    if (this.fd === null) return;
    fs.closeSync(this.fd);
    this.fd = null;
  }
}
