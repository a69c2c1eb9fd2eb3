/**
 * Replay a capture file as if it were live: as fast as possible, or paced at
 * its recorded speed (speed 1) or a multiple of it, for the dashboard
 * (`hangscope analyze FILE --tui --speed 1`).
 *
 * Pacing needs packets to wait, which the push parser cannot do: records are
 * copied into a bounded queue, and reading the file pauses while the queue is
 * full, so memory stays bounded whatever the file size.
 */
import { createReadStream, statSync } from 'node:fs';
import { Readable } from 'node:stream';
import { UserError, type Anomalies, type Micros, type PacketRecord } from '../types.js';
import { readCapture, type ReadCaptureResult } from './read.js';

export interface ReplayOptions {
  anomalies: Anomalies;
  /** Multiple of the recorded speed; 0 or undefined: as fast as possible. */
  speed?: number;
  signal?: AbortSignal;
  /** The replay clock in capture time (µs), about once a second while pacing (for Engine.tick). */
  onClock?: (now: Micros) => void;
}

/** Queue bounds while pacing: this many records or bytes, whichever comes first. */
const MAX_QUEUED = 20_000;
const MAX_QUEUED_BYTES = 32 * 1024 * 1024;

interface Queued {
  ts: Micros;
  linkType: number;
  data: Buffer;
  origLen: number;
  interfaceId: number;
  frame: number;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

export async function replayCapture(
  path: string,
  onPacket: (rec: PacketRecord) => void,
  o: ReplayOptions,
): Promise<ReadCaptureResult> {
  const speed = o.speed ?? 0;
  if (!(speed > 0)) {
    return readCapture(path, onPacket, {
      anomalies: o.anomalies,
      ...(o.signal !== undefined ? { signal: o.signal } : {}),
    });
  }
  try {
    if (statSync(path).isDirectory()) throw new UserError(`cannot read ${path}: it is a directory, give a capture file.`);
  } catch (e) {
    if (e instanceof UserError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : (e as Error).message}.`);
  }

  const queue: Queued[] = [];
  let head = 0;
  let queuedBytes = 0;
  let readDone = false;
  let wake: (() => void) | null = null;
  const signal = o.signal;

  const full = (): boolean => queue.length - head >= MAX_QUEUED || queuedBytes >= MAX_QUEUED_BYTES;
  async function* gated(): AsyncGenerator<Buffer> {
    for await (const chunk of createReadStream(path, { highWaterMark: 256 * 1024 })) {
      while (full() && !signal?.aborted) await new Promise<void>((r) => (wake = r));
      if (signal?.aborted) return;
      yield chunk as Buffer;
    }
  }

  const reading = readCapture(
    Readable.from(gated(), { objectMode: false }),
    (rec) => {
      queue.push({
        ts: rec.ts,
        linkType: rec.linkType,
        data: Buffer.from(rec.data),
        origLen: rec.origLen,
        interfaceId: rec.interfaceId,
        frame: rec.frame,
      });
      queuedBytes += rec.data.length;
    },
    { anomalies: o.anomalies, ...(signal !== undefined ? { signal } : {}) },
  ).finally(() => {
    readDone = true;
  });
  // Surface a read error (not a capture, cut header) after pacing stops.
  let readError: unknown = null;
  reading.catch((e: unknown) => {
    readError = e;
  });

  const rec: PacketRecord = { ts: 0, linkType: 0, data: Buffer.alloc(0), origLen: 0, interfaceId: 0, frame: 0 };
  let baseTs: Micros | null = null;
  let baseWall = 0;
  // -Infinity: the first pass reports the clock (performance.now() starts near 0 in a young process, so 0
  // here meant no report at all during the first second of the process's life).
  let lastClock = -Infinity;
  while (!signal?.aborted && readError === null) {
    if (head >= queue.length) {
      if (readDone) break;
      await sleep(5, signal);
      continue;
    }
    const nowWall = performance.now();
    if (baseTs === null) {
      baseTs = queue[head]!.ts;
      baseWall = nowWall;
    }
    const due = baseTs + (nowWall - baseWall) * 1000 * speed;
    while (head < queue.length && queue[head]!.ts <= due) {
      const q = queue[head]!;
      queue[head] = undefined as unknown as Queued;
      head++;
      queuedBytes -= q.data.length;
      rec.ts = q.ts;
      rec.linkType = q.linkType;
      rec.data = q.data;
      rec.origLen = q.origLen;
      rec.interfaceId = q.interfaceId;
      rec.frame = q.frame;
      onPacket(rec);
    }
    if (head > 4096 && head * 2 > queue.length) {
      queue.splice(0, head);
      head = 0;
    }
    if (wake !== null && !full()) {
      const w: () => void = wake;
      wake = null;
      w();
    }
    if (nowWall - lastClock >= 1000) {
      lastClock = nowWall;
      o.onClock?.(Math.floor(due));
    }
    const next = head < queue.length ? queue[head]!.ts : null;
    const waitMs = next === null ? 5 : Math.min(250, Math.max(0, (next - due) / 1000 / speed));
    if (waitMs > 0) await sleep(waitMs, signal);
  }
  if (wake !== null) (wake as () => void)();
  // Rejects with the read error, if there was one.
  return await reading;
}
