import type { Micros } from '../types.js';

/** Microseconds to seconds, exact to the 6th decimal (the JSON time unit). */
export function secs(us: Micros): number {
  return us / 1e6;
}

export function secsOrNull(us: Micros | null | undefined): number | null {
  return us == null ? null : us / 1e6;
}

/** A duration for people: "12ms", "5.001s", "3m02s". */
export function fmtDuration(us: Micros): string {
  const abs = Math.abs(us);
  const sign = us < 0 ? '-' : '';
  if (abs < 1000) return `${sign}${abs}us`;
  if (abs < 1_000_000) return `${sign}${(abs / 1000).toFixed(abs < 10_000 ? 1 : 0)}ms`;
  if (abs < 60_000_000) return `${sign}${(abs / 1e6).toFixed(3)}s`;
  const m = Math.floor(abs / 60_000_000);
  const s = Math.floor((abs % 60_000_000) / 1e6);
  return `${sign}${m}m${String(s).padStart(2, '0')}s`;
}

/** Wall-clock time of day in UTC with microseconds: "17:51:57.123456". */
export function fmtClock(us: Micros): string {
  const d = new Date(Math.floor(us / 1000));
  const frac = String(((us % 1e6) + 1e6) % 1e6).padStart(6, '0');
  return `${d.toISOString().slice(11, 19)}.${frac}`;
}
