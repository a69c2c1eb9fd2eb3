/**
 * `--attribute` and `--ss-interval`, as `watch` and `daemon` take them:
 * checked before anything starts (planAttribution), started before the
 * capture so the kernel events of its first connections are seen
 * (startAttribution).
 */
import { Attributor } from '../lib/attribute/index.js';
import { UserError } from '../lib/types.js';
import { parseWholeNumber } from './analyze.js';

export interface AttributionPlan {
  port: number;
  ebpf: boolean;
  ssIntervalMs: number | undefined;
}

/** What the options ask for, or null when they ask for no attribution. UserError for a bad value or no --port. */
export function planAttribution(o: { attribute?: boolean | undefined; ssInterval?: string | undefined }, port: number | null): AttributionPlan | null {
  const ssIntervalMs = parseWholeNumber(o.ssInterval, '--ss-interval', 0, 3_600_000);
  if (o.attribute !== true && !(ssIntervalMs !== undefined && ssIntervalMs > 0)) return null;
  if (port === null) throw new UserError('--attribute and --ss-interval need --port: the kernel events and ss samples are filtered by the server port');
  return { port, ebpf: o.attribute === true, ssIntervalMs };
}

/** Start what the plan asks for (null: nothing); its notices go to standard error, one line each. */
export function startAttribution(plan: AttributionPlan | null): Promise<Attributor | null> {
  if (plan === null) return Promise.resolve(null);
  return Attributor.start({
    ports: [plan.port],
    ebpf: plan.ebpf,
    ...(plan.ssIntervalMs !== undefined ? { ssIntervalMs: plan.ssIntervalMs } : {}),
    onNotice: (line) => process.stderr.write(`hangscope: ${line}\n`),
  });
}
