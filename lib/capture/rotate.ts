/**
 * RotatingPcapWriter: the daemon's evidence, kept on disk in a bounded space.
 *
 * Packets go to `<dir>/<prefix>-<UTC time the file was opened>-<seq>.pcap`.
 * When the next record would make the current file larger than `maxBytes`,
 * the file is closed and a new one is started with a fresh pcap header, so
 * every file is a valid capture on its own (what tcpdump's -C/-W does, except
 * that tcpdump checks the size after the write and overshoots by a packet).
 * A record of another link type also starts a new file: pcap holds one link
 * type per file (draft-ietf-opsawg-pcap section 4, LinkType).
 *
 * Only the newest `maxFiles` files (the current one included) are kept; older
 * ones are deleted. Only files this writer made in this run are ever deleted,
 * and only when their name still matches the writer's own pattern in its own
 * directory: captures from an earlier run, or anything else in the folder,
 * are left alone.
 *
 * Files are created with mode 0600 (captures hold request bodies and
 * credentials) and exclusively (O_EXCL): an existing file is never
 * overwritten. Each record is written synchronously by PcapWriter, so a
 * killed process leaves every file valid up to its last whole record.
 *
 * Writing errors (disk full, the folder removed) do not stop the daemon:
 * the error is kept in `lastError`, reported once through onError, and the
 * writer tries a new file at the next rotation point (every `retryAfter`
 * records), so a full disk that is cleaned up resumes the evidence.
 */
import { closeSync, fchmodSync, mkdirSync, openSync, statSync, unlinkSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { UserError, type PacketRecord } from '../types.js';
import { PcapWriter } from './writer.js';

export interface RotatingPcapOptions {
  /** Folder of the files; created with mode 0700 when missing. */
  dir: string;
  /** File name prefix: letters, digits, '.', '_' and '-' (default "hangscope"). */
  prefix?: string;
  /** Largest size of one file in bytes, header included (at least MIN_ROTATE_BYTES). */
  maxBytes: number;
  /** How many files to keep, the current one included (at least 1). */
  maxFiles: number;
  /** Snapshot length of the files; longer frames are cut to it. Default 262144. */
  snaplen?: number;
  /** Wall clock for file names, ms since the epoch (default Date.now). */
  now?: () => number;
  /** A file was closed (complete) and possibly older ones deleted. */
  onRotate?: (ev: RotateEvent) => void;
  /** Writing failed (reported once per failure streak). */
  onError?: (err: Error) => void;
}

export interface RotateEvent {
  /** The file just closed, with its size and records; null when the first file is opened. */
  closed: { path: string; bytes: number; packets: number } | null;
  /** The file opened next. */
  opened: string;
  /** Files deleted to keep maxFiles. */
  deleted: string[];
}

/** Bytes of the pcap file header and of each record header (draft-ietf-opsawg-pcap sections 4 and 5). */
export const PCAP_FILE_HEADER = 24;
export const PCAP_RECORD_HEADER = 16;
/** Below this, rotation would make files of one or two packets each. */
export const MIN_ROTATE_BYTES = 1024;
/** Records between attempts to write again after an error. */
const RETRY_AFTER = 1000;

const PREFIX_RE = /^[A-Za-z0-9._-]{1,64}$/;

/** "20250101T120000Z": the UTC time of day of a wall-clock time, sortable. */
function stamp(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

/** Throws the UserError the writer would throw for these options (so a command can check before it starts anything). */
export function checkRotateOptions(o: Pick<RotatingPcapOptions, 'prefix' | 'maxBytes' | 'maxFiles'>): void {
  const prefix = o.prefix ?? 'hangscope';
  if (!PREFIX_RE.test(prefix)) throw new UserError(`the file prefix "${prefix}" may only hold letters, digits, ".", "_" and "-" (at most 64).`);
  if (!Number.isInteger(o.maxBytes) || o.maxBytes < MIN_ROTATE_BYTES)
    throw new UserError(`the rotation size must be at least ${MIN_ROTATE_BYTES} bytes, not ${o.maxBytes}.`);
  if (!Number.isInteger(o.maxFiles) || o.maxFiles < 1) throw new UserError(`the rotation count must be at least 1, not ${o.maxFiles}.`);
}

export class RotatingPcapWriter {
  readonly dir: string;
  readonly prefix: string;
  readonly maxBytes: number;
  readonly maxFiles: number;
  readonly snaplen: number;
  /** Matches the names this writer gives its files (and nothing else). */
  readonly pattern: RegExp;
  /** Records written, all files together. */
  packets = 0;
  /** Bytes written, all files together (headers included). */
  bytes = 0;
  /** Files opened in this run. */
  filesOpened = 0;
  /** Files this writer deleted to keep maxFiles. */
  filesDeleted = 0;
  /** Records not written because writing failed. */
  lost = 0;
  /** Write errors so far. */
  errors = 0;
  lastError: Error | null = null;
  private writer: PcapWriter | null = null;
  private fileBytes = 0;
  private seq = 0;
  /** Files made in this run and still kept, oldest first. */
  private readonly made: string[] = [];
  private closed = false;
  private failing = false;
  private sinceFailure = 0;
  private readonly now: () => number;

  constructor(private readonly o: RotatingPcapOptions) {
    this.prefix = o.prefix ?? 'hangscope';
    checkRotateOptions(o);
    this.maxBytes = o.maxBytes;
    this.maxFiles = o.maxFiles;
    this.snaplen = o.snaplen ?? 262144;
    this.now = o.now ?? Date.now;
    this.dir = resolve(o.dir);
    const esc = this.prefix.replace(/[.]/g, '\\.');
    this.pattern = new RegExp(`^${esc}-\\d{8}T\\d{6}Z-\\d{6}\\.pcap$`);
    ensureDir(this.dir);
  }

  /** The file being written, or null (none yet, or closed). */
  get current(): string | null {
    return this.writer?.path ?? null;
  }

  /** The files kept from this run, oldest first (the current one last). */
  files(): string[] {
    return [...this.made];
  }

  /**
   * Open the first file now (e.g. once the live source knows its link type),
   * so a capture with no packet still leaves a valid, empty file.
   */
  start(linkType: number): void {
    if (this.writer === null && !this.closed) this.safely(() => this.rotate(linkType));
  }

  write(rec: PacketRecord): void {
    if (this.closed) return;
    if (this.failing) {
      // After an error: try a fresh file now and then, not on every packet.
      if (++this.sinceFailure < RETRY_AFTER) {
        this.lost++;
        return;
      }
      this.sinceFailure = 0;
      this.writer = null;
    }
    const len = PCAP_RECORD_HEADER + Math.min(rec.data.length, this.snaplen);
    const w = this.writer;
    const full = w !== null && w.packets > 0 && this.fileBytes + len > this.maxBytes;
    if (w === null || full || rec.linkType !== w.linkType) {
      if (!this.safely(() => this.rotate(rec.linkType))) {
        this.lost++;
        return;
      }
    }
    if (
      !this.safely(() => {
        this.writer!.write(rec);
      })
    ) {
      this.lost++;
      return;
    }
    this.fileBytes += len;
    this.bytes += len;
    this.packets++;
    if (this.failing) {
      this.failing = false;
      this.lastError = null;
    }
  }

  /** Close the current file (it stays a valid capture). Idempotent; nothing is written afterwards. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const w = this.writer;
    this.writer = null;
    if (w !== null) {
      try {
        w.close();
      } catch {
        /* already reported */
      }
    }
  }

  /** Run `fn`; on a write error, remember and report it, and answer false. */
  private safely(fn: () => void): boolean {
    try {
      fn();
      return true;
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      this.errors++;
      this.lastError = err;
      if (!this.failing) {
        this.failing = true;
        this.sinceFailure = 0;
        this.o.onError?.(err);
      }
      try {
        this.writer?.close();
      } catch {
        /* the descriptor is gone already */
      }
      this.writer = null;
      return false;
    }
  }

  private rotate(linkType: number): void {
    const prev = this.writer;
    const closed = prev !== null ? { path: prev.path, bytes: this.fileBytes, packets: prev.packets } : null;
    this.writer = null;
    prev?.close();
    const path = this.createFile();
    this.writer = new PcapWriter(path, linkType, { snaplen: this.snaplen });
    this.fileBytes = PCAP_FILE_HEADER;
    this.bytes += PCAP_FILE_HEADER;
    this.filesOpened++;
    this.made.push(path);
    const deleted = this.prune();
    this.o.onRotate?.({ closed, opened: path, deleted });
  }

  /** Create the next file name exclusively with mode 0600; PcapWriter then opens it (truncating an empty file). */
  private createFile(): string {
    const t = stamp(this.now());
    for (let tries = 0; tries < 1000; tries++) {
      const name = `${this.prefix}-${t}-${String(++this.seq % 1_000_000).padStart(6, '0')}.pcap`;
      const path = join(this.dir, name);
      let fd: number;
      try {
        fd = openSync(path, 'wx', 0o600);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw e;
      }
      // The umask may have taken bits away from 0600; never more than 0600 either way.
      fchmodSync(fd, 0o600);
      closeSync(fd);
      return path;
    }
    throw new Error(`no free file name for ${this.prefix}-${t}-*.pcap in ${this.dir}`);
  }

  /** Delete the oldest files of this run beyond maxFiles: ours by list, by name and by folder. */
  private prune(): string[] {
    const deleted: string[] = [];
    while (this.made.length > this.maxFiles) {
      const path = this.made.shift()!;
      if (!this.pattern.test(basename(path)) || resolve(path, '..') !== this.dir) continue;
      try {
        unlinkSync(path);
        deleted.push(path);
        this.filesDeleted++;
      } catch (e) {
        // Moved or deleted by someone else: nothing to do.
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    }
    return deleted;
  }
}

/** The folder exists (created 0700 when missing) and is a folder. */
function ensureDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new UserError(`cannot use ${dir} for captures: ${err.code === 'EACCES' ? 'permission denied' : err.code === 'EEXIST' || err.code === 'ENOTDIR' ? 'not a folder' : err.message}.`);
  }
  if (!statSync(dir).isDirectory()) throw new UserError(`cannot use ${dir} for captures: not a folder.`);
}

/** "100M", "64k", "1G", "4096": bytes (k, M, G are powers of 1024, as tcpdump's -C is not: it uses 1,000,000). */
export function parseSize(v: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kKmMgG])?(?:i?[bB])?$/.exec(v.trim());
  if (m === null) throw new UserError(`${flag} wants a size such as 100M, 512k or 4096 (bytes), not "${v}"`);
  const mult = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m[2] ?? '').toLowerCase() as 'k' | 'm' | 'g'] ?? 1;
  const n = Math.floor(Number(m[1]) * mult);
  if (!Number.isSafeInteger(n)) throw new UserError(`${flag}: "${v}" is too large`);
  return n;
}
