/**
 * Putting bpftrace's clock on the packets' clock.
 *
 * bpftrace's `nsecs` is bpf_ktime_get_ns(): CLOCK_MONOTONIC (time since
 * boot, not counting suspend). Packet timestamps are CLOCK_REALTIME (the
 * kernel stamps each frame with ktime_get_real when the tap sees it), which
 * hangscope keeps as integer epoch microseconds. Node's
 * process.hrtime.bigint() reads the same CLOCK_MONOTONIC as bpftrace (libuv's
 * uv_hrtime), so one sample of (monotonic, realtime) taken here gives the
 * offset between the two clocks.
 *
 * Node's only realtime clock is Date.now(), in whole milliseconds. The sample
 * is taken at the instant Date.now() ticks to the next millisecond: right
 * then the realtime clock is within about a microsecond of that whole
 * millisecond (the cost of one Date.now() and one hrtime call), so the offset
 * is known to about a microsecond instead of a millisecond. The offset only
 * moves when the realtime clock is stepped (settimeofday, an NTP step); NTP
 * slewing changes both clocks' rate alike.
 *
 * Measured against tcpdump on loopback: see test/fixtures/attribute/README.md.
 */
import type { Micros } from '../types.js';

export interface ClockSample {
  /** CLOCK_MONOTONIC, microseconds (process.hrtime). */
  monoUs: number;
  /** CLOCK_REALTIME at the same instant, epoch microseconds. */
  realUs: Micros;
  /** Width of the sampling window (µs): how far apart the two reads could be. */
  uncertaintyUs: number;
}

/** Microseconds of CLOCK_MONOTONIC (same clock as bpftrace's nsecs). */
export function monoNowUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/**
 * One (monotonic, realtime) pair, taken at a millisecond edge of Date.now().
 * Spins at most ~2 ms (bounded by a loop count too).
 */
export function sampleClock(): ClockSample {
  let best: ClockSample | null = null;
  // Five edges; keep the tightest (an interrupt or a first, unoptimised call between the two reads widens one).
  for (let round = 0; round < 5; round++) {
    const d0 = Date.now();
    let before = process.hrtime.bigint();
    let d = d0;
    for (let i = 0; i < 5_000_000 && d === d0; i++) {
      before = process.hrtime.bigint();
      d = Date.now();
    }
    const after = process.hrtime.bigint();
    if (d === d0) continue;
    // The tick to d happened between `before` and the Date.now() that saw it (<= after).
    const monoUs = Number((before + after) / 2000n);
    const s: ClockSample = { monoUs, realUs: d * 1000, uncertaintyUs: Number(after - before) / 1000 };
    if (best === null || s.uncertaintyUs < best.uncertaintyUs) best = s;
  }
  if (best !== null) return best;
  // Date.now() did not move (a frozen clock?): fall back to one plain pair.
  return { monoUs: monoNowUs(), realUs: Date.now() * 1000, uncertaintyUs: 1000 };
}

/** Converts CLOCK_MONOTONIC microseconds to epoch microseconds, from the latest sample at or before the time. */
export class ClockMap {
  private readonly samples: ClockSample[] = [];

  constructor(first?: ClockSample) {
    if (first !== undefined) this.add(first);
  }

  add(s: ClockSample): void {
    this.samples.push(s);
    this.samples.sort((a, b) => a.monoUs - b.monoUs);
    // Bounded: a long watch resamples now and then; old samples are not needed once newer ones exist.
    if (this.samples.length > 64) this.samples.splice(1, this.samples.length - 64);
  }

  get size(): number {
    return this.samples.length;
  }

  /** realtime − monotonic (µs) in effect at monotonic time t. */
  offsetAt(monoUs: number): number {
    if (this.samples.length === 0) throw new Error('ClockMap has no sample');
    let s = this.samples[0]!;
    for (const x of this.samples) {
      if (x.monoUs <= monoUs) s = x;
      else break;
    }
    return s.realUs - s.monoUs;
  }

  toRealtime(monoUs: number): Micros {
    return monoUs + this.offsetAt(monoUs);
  }

  toJSON(): ClockSample[] {
    return [...this.samples];
  }
}
