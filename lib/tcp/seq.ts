/**
 * TCP sequence-number arithmetic modulo 2^32 (RFC 9293 section 3.4).
 * Like gopacket's reassembly.Sequence: values are unsigned 32-bit numbers,
 * and comparisons go through the signed difference so they survive wrap-around.
 */

/** a - b as a signed 32-bit difference: > 0 when a is after b. */
export function seqDiff(a: number, b: number): number {
  return (a - b) | 0;
}

/** a + n modulo 2^32. */
export function seqAdd(a: number, n: number): number {
  return (a + n) >>> 0;
}

/** True when a comes strictly after b. */
export function seqAfter(a: number, b: number): boolean {
  return ((a - b) | 0) > 0;
}
