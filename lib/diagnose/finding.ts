import type { Micros } from '../types.js';

export type Severity = 'error' | 'warning' | 'info';

/**
 * A diagnosis: a stable code, the connection and exchange it concerns, one
 * plain sentence, and the numbers behind it (like Wireshark's expert info:
 * every finding has a severity). Evidence durations are seconds with 6
 * decimals; evidence times are seconds since the epoch.
 */
export interface Finding {
  code: string;
  severity: Severity;
  connection: number | null;
  exchange: number | null;
  ts: Micros | null;
  summary: string;
  evidence: Record<string, unknown>;
}
