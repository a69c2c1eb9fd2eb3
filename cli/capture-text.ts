/**
 * The lines `watch` and `daemon` print about their live capture: the
 * source's counters when it stops (with what to change when the kernel
 * dropped packets) and the note about a cut snaplen.
 */
import { FULL_SNAPLEN, type CaptureCounters } from '../lib/capture/live.js';

/**
 * "tcpdump: N packets received by the filter, M dropped by the kernel".
 * With drops, says to raise --buffer-size: live capture runs in immediate
 * mode, where libpcap's ring holds buffer / frame-size packets (frames sized
 * by the snaplen: about 500 whole frames on `lo` in 32 MiB), so a burst
 * overflows it; in the benchmark (docs/performance.md) 256 MiB kept up on
 * `lo` where 32 MiB dropped.
 */
export function counterText(kind: string, c: CaptureCounters, bufferMiB: number): string {
  const parts: string[] = [];
  if (c.received !== null) parts.push(`${c.received} packets received by the filter`);
  parts.push(c.dropped === null ? 'drops unknown' : `${c.dropped} dropped by the kernel`);
  if (c.ifDropped) parts.push(`${c.ifDropped} dropped by the interface`);
  let text = `${kind}: ${parts.join(', ')}`;
  if (c.dropped !== null && c.dropped > 0) {
    text += ` (the ${bufferMiB} MiB capture buffer overflowed: raise it, e.g. --buffer-size ${Math.min(4096, Math.max(256, bufferMiB * 4))})`;
  }
  return text;
}

export function snaplenNote(snaplen: number): string | null {
  return snaplen < FULL_SNAPLEN
    ? `snaplen ${snaplen}: frames longer than that are cut, so bodies are not captured whole (counted as bytes not captured) and chunked or Content-Length framing after a cut may be lost.`
    : null;
}
