/**
 * readCapture: a file path, '-' (stdin) or a Readable -> PacketRecords.
 *
 * Gzip (Zeek ships *.pcap.gz) is detected by its magic bytes 1f 8b (RFC 1952
 * section 2.3.1), never by file name, and inflated as a stream, so memory
 * stays bounded whatever the file size.
 */
import * as fs from 'node:fs';
import { Readable, pipeline } from 'node:stream';
import * as zlib from 'node:zlib';
import { UserError, type Anomalies, type PacketRecord } from '../types.js';
import { CaptureParser, type CaptureFormat } from './parser.js';

/** Large sequential reads: fewer syscalls, fewer records spanning two chunks. */
const READ_CHUNK = 4 << 20;

/**
 * A regular file read into two reused buffers, one chunk ahead: while the
 * parser works through one chunk, the thread pool reads the next into the
 * other buffer, so the copy from the page cache (about a tenth of the work
 * on a 1 GB capture) runs on the second core instead of between chunks. No
 * buffer is allocated per chunk (no page faults on fresh memory, no
 * garbage). A chunk stays valid until the next call to next(): fine for the
 * parser, which is synchronous and copies what it keeps; the read ahead only
 * ever writes into the buffer handed out the call before. Consumers that hold
 * chunks longer (gunzip) call detach() first, after which every chunk is a
 * new buffer. Each chunk costs a turn of the event loop, so progress,
 * signals and a dashboard replaying the file keep running.
 */
class FileChunks {
  private readonly bufs = [Buffer.allocUnsafe(READ_CHUNK), Buffer.allocUnsafe(READ_CHUNK)];
  private turn = 0;
  private fresh = false;
  private ahead: Promise<Buffer | null> | null = null;
  private eof = false;

  constructor(private readonly fd: number) {}

  /** From now on, hand out chunks nobody else will write to. */
  detach(): void {
    this.fresh = true;
  }

  private read(b: Buffer): Promise<Buffer | null> {
    return new Promise((resolve, reject) => {
      fs.read(this.fd, b, 0, b.length, null, (err, n) => {
        if (err) reject(err);
        else resolve(n === 0 ? null : n === b.length ? b : b.subarray(0, n));
      });
    });
  }

  /** The next chunk, or null at the end of the file. */
  async next(): Promise<Buffer | null> {
    if (this.eof) return null;
    let p = this.ahead;
    this.ahead = null;
    if (p === null) p = this.read(this.target());
    const c = await p;
    if (c === null) {
      this.eof = true;
      return null;
    }
    // Read ahead into the other buffer (the one handed out before this call),
    // unless this chunk was short: then the file ended (or is still growing,
    // and the next call reads again).
    if (c.length === READ_CHUNK) {
      this.ahead = this.read(this.target());
      this.ahead.catch(() => {}); // seen when awaited
    }
    return c;
  }

  private target(): Buffer {
    if (this.fresh) return Buffer.allocUnsafe(READ_CHUNK);
    this.turn ^= 1;
    return this.bufs[this.turn]!;
  }

  /** Close the file once no read is in flight (a read ahead may still be writing). */
  close(): void {
    const p = this.ahead;
    this.ahead = null;
    if (p === null) fs.closeSync(this.fd);
    else p.then(() => fs.closeSync(this.fd), () => fs.closeSync(this.fd));
  }
}

export interface ReadCaptureOptions {
  anomalies: Anomalies;
  /** Called after each chunk read from the source (compressed bytes for gzip). */
  onProgress?: (bytesRead: number, totalBytes: number | null) => void;
  /**
   * Stop reading early. readCapture then resolves with what was read so far
   * (a partial last record is dropped silently, not counted as damage).
   */
  signal?: AbortSignal;
}

export interface ReadCaptureResult {
  format: CaptureFormat | null;
  compressed: boolean;
  linkTypes: number[];
  packets: number;
  /** Bytes read from the source (before inflating). */
  bytesRead: number;
}

function describeOpenError(path: string, err: NodeJS.ErrnoException): UserError {
  switch (err.code) {
    case 'ENOENT':
      return new UserError(`cannot read ${path}: no such file.`);
    case 'EACCES':
    case 'EPERM':
      return new UserError(`cannot read ${path}: permission denied.`);
    case 'EISDIR':
      return new UserError(`cannot read ${path}: it is a directory, give a capture file.`);
    default:
      return new UserError(`cannot read ${path}: ${err.message}.`);
  }
}

/**
 * Read a whole capture, calling `onPacket` for each record (see
 * CaptureParser: the record object and its data are reused / valid only
 * during the call).
 *
 * Throws UserError for a missing or unreadable file, a file that is not a
 * capture, or one cut inside its file header. Damage later in the file is
 * counted in `opts.anomalies` and the promise resolves.
 */
export async function readCapture(
  input: string | NodeJS.ReadableStream,
  onPacket: (rec: PacketRecord) => void,
  opts: ReadCaptureOptions,
): Promise<ReadCaptureResult> {
  const { anomalies, onProgress, signal } = opts;
  let name: string;
  let src: NodeJS.ReadableStream | null = null;
  let file: FileChunks | null = null;
  let totalBytes: number | null = null;
  let fd: number | null = null;

  if (typeof input === 'string' && input !== '-') {
    name = input;
    try {
      fd = await new Promise<number>((resolve, reject) =>
        fs.open(input, 'r', (err, n) => (err ? reject(err) : resolve(n))),
      );
      const st = fs.fstatSync(fd);
      if (st.isDirectory()) {
        fs.closeSync(fd);
        fd = null;
        throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
      }
      if (st.isFile()) totalBytes = st.size;
    } catch (err) {
      throw describeOpenError(input, err as NodeJS.ErrnoException);
    }
    // Regular files: reused buffers. Anything else opened by name (a FIFO, /dev/stdin): a stream.
    if (totalBytes !== null) file = new FileChunks(fd);
    else src = fs.createReadStream('', { fd, highWaterMark: READ_CHUNK, autoClose: true });
  } else if (input === '-') {
    name = 'stdin';
    src = process.stdin;
  } else {
    name = 'the input stream';
    src = input as NodeJS.ReadableStream;
  }

  const parser = new CaptureParser(onPacket, anomalies, name);
  let bytesRead = 0;
  let compressed = false;
  let aborted = signal?.aborted ?? false;

  const destroySrc = (): void => {
    if (src === null) return;
    const d = (src as Readable).destroy;
    if (typeof d === 'function') d.call(src);
  };
  const onAbort = (): void => {
    aborted = true;
    destroySrc();
  };
  signal?.addEventListener('abort', onAbort, { once: true });

  const it = src === null ? null : (src as AsyncIterable<Buffer | string>)[Symbol.asyncIterator]();
  const next = async (): Promise<Buffer | null> => {
    if (aborted) return null;
    let chunk: Buffer;
    try {
      if (file !== null) {
        const c = await file.next();
        if (c === null || aborted) return null;
        chunk = c;
      } else {
        const r = await it!.next();
        if (r.done || aborted) return null;
        chunk = typeof r.value === 'string' ? Buffer.from(r.value, 'latin1') : r.value;
      }
    } catch (err) {
      if (aborted) return null;
      throw new UserError(`cannot read ${name}: ${(err as Error).message}.`);
    }
    bytesRead += chunk.length;
    onProgress?.(bytesRead, totalBytes);
    return chunk;
  };

  try {
    // Look at the first two bytes for the gzip magic.
    let head: Buffer | null = null;
    for (;;) {
      const c = await next();
      if (c === null) break;
      head = head === null ? c : Buffer.concat([head, c]);
      if (head.length >= 2) break;
    }
    compressed = head !== null && head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;

    if (!compressed) {
      if (head !== null) parser.push(head);
      for (let c = await next(); c !== null; c = await next()) {
        parser.push(c);
        if (parser.stopped) break;
      }
    } else {
      // gunzip holds on to its input chunks: they must not be reused buffers.
      if (file !== null) {
        file.detach();
        head = Buffer.from(head!);
      }
      await inflateInto(head!, next, parser, anomalies, name, () => aborted);
    }
    // After an abort the partial tail is dropped silently: the user stopped us.
    if (!aborted) parser.end();
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (file !== null) file.close();
    else if (fd !== null) destroySrc(); // closes the fd (autoClose) even if we stopped early
  }

  return {
    format: parser.format,
    compressed,
    linkTypes: parser.linkTypes.slice(),
    packets: parser.packets,
    bytesRead,
  };
}

/**
 * Inflate gzip chunks from `next` into the parser. A gzip stream cut short
 * (a capture still being written, a partial download) keeps what inflated
 * and counts 'gzip-truncated'; corrupt data counts 'gzip-corrupt'. Several
 * concatenated gzip members (RFC 1952 section 2.2) are read as one stream.
 */
async function inflateInto(
  head: Buffer,
  next: () => Promise<Buffer | null>,
  parser: CaptureParser,
  anomalies: Anomalies,
  name: string,
  isAborted: () => boolean,
): Promise<void> {
  let sourceError: unknown = null;
  async function* compressedChunks(): AsyncGenerator<Buffer> {
    yield head;
    for (;;) {
      let c: Buffer | null;
      // Only errors of the source itself: when gunzip fails, pipeline() destroys
      // this generator's stream and Readable.from throws gunzip's error in at the
      // `yield` below; that one must stay a zlib error (gzip-corrupt), not a read error.
      try {
        c = await next();
      } catch (err) {
        sourceError = err;
        throw err;
      }
      if (c === null) return;
      yield c;
    }
  }
  const gunzip = zlib.createGunzip({ chunkSize: 256 * 1024 });
  // pipeline() destroys every stream when one fails, so the loop below sees
  // source errors too; the callback only has to exist.
  pipeline(Readable.from(compressedChunks(), { objectMode: false }), gunzip, () => {});
  let outBytes = 0;
  try {
    for await (const c of gunzip as AsyncIterable<Buffer>) {
      outBytes += c.length;
      parser.push(c);
      if (parser.stopped) break; // leaving the loop destroys the pipeline
    }
  } catch (err) {
    if (err instanceof UserError) throw err;
    if (isAborted()) return;
    if (sourceError !== null) throw sourceError;
    const e = err as NodeJS.ErrnoException;
    if (typeof e.code !== 'string' || !e.code.startsWith('Z_')) throw err;
    if (outBytes === 0) {
      throw new UserError(`${name} looks gzip-compressed but cannot be decompressed (${e.message}).`);
    }
    anomalies.add(e.code === 'Z_BUF_ERROR' ? 'gzip-truncated' : 'gzip-corrupt');
  }
}
