/** Types of bench/gen.js (the benchmark capture writer), for the tests that import it. */
export interface BenchTruth {
  packets: number;
  connections: number;
  /** Requests written (each one an exchange for hangscope). */
  requests: number;
  /** Responses written to their last byte. */
  completeResponses: number;
  resets: number;
  fins: number;
  retransmissions: number;
  lanConnections: number;
  loConnections: number;
  /** Chunked messages whose final LF is alone in their last segment (tshark 4.0 does not report them). */
  chunkedLfAlone: { requests: number; responses: number };
  /** File size. */
  bytes: number;
  firstTs: number;
  lastTs: number;
}
export function parseSize(s: string | number): number;
export function writeBenchCapture(path: string, opts: { size: number; seed?: number; concurrency?: number }): BenchTruth;
