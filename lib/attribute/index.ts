/**
 * Process attribution for live capture (`hangscope watch --attribute`): which
 * process sent each FIN and RST, from kernel tracepoints through bpftrace
 * (store.ts says how it is decided), and which process sits on a socket left
 * in CLOSE-WAIT, from `ss` samples when eBPF is not available (or asked for
 * with --ss-interval).
 *
 * Stage: after lib/correlate (it annotates finished ConnectionRecords) and
 * before lib/diagnose, which reads the annotations from CloseEvent
 * (lib/types.ts): call annotate(rec) first thing in the engine's
 * onConnection, before the diagnosis rules run on the record.
 *
 * Nothing here stops a capture: without bpftrace, root or tracefs, start()
 * reports one notice line and attribution is off (or ss-only).
 */
import type { ConnectionRecord } from '../correlate/index.js';
import type { Micros } from '../types.js';
import { startBpftrace, type BpftraceSession } from './bpftrace.js';
import type { TraceEvent } from './events.js';
import { AttributionStore, type StoreOptions } from './store.js';
import { SsTracker, startSsSampler } from './ss.js';

export { parseLine, stateName, type TraceEvent, type ParsedLine } from './events.js';
export { ClockMap, sampleClock, type ClockSample } from './clock.js';
export { AttributionStore, reasonSlug, type ProcessRef, type CloseAttributionInfo } from './store.js';
export { SsTracker, parseSs, ssArgs, type SsSocket, type SsSighting } from './ss.js';
export { buildScript, parseFormats } from './script.js';
export { probe, startBpftrace, type BpftraceSession } from './bpftrace.js';

/** ss sampling interval when eBPF is unavailable and none was asked for (ms). */
export const DEFAULT_SS_INTERVAL_MS = 500;

export interface AttributeOptions {
  /** Ports to watch (the server port); both the eBPF filter and the ss filter. */
  ports: number[];
  /** Run bpftrace. */
  ebpf: boolean;
  /**
   * Sample ss every this many ms. undefined: only as the fallback when eBPF
   * was asked for and cannot run (then DEFAULT_SS_INTERVAL_MS); 0: never.
   */
  ssIntervalMs?: number;
  /** One line per notice (no bpftrace, no privilege, tracefs, …). */
  onNotice: (line: string) => void;
  /** Raw bpftrace lines and ss outputs, to record a session (test fixtures). */
  onBpftraceLine?: (line: string) => void;
  onSsSample?: (text: string, now: Micros) => void;
  store?: StoreOptions;
  bpftrace?: string;
}

/** How long after a FIN an ss sighting of the peer in CLOSE-WAIT may start and still belong to it (µs). */
const SS_SLACK: Micros = 1_000_000;

export class Attributor {
  readonly store: AttributionStore;
  readonly ss: SsTracker | null;
  private constructor(
    readonly session: BpftraceSession | null,
    store: AttributionStore,
    ss: SsTracker | null,
    private readonly sampler: { stop(): void } | null,
    /** What runs, for the start line: "eBPF (bpftrace)", "ss every 500 ms", … */
    readonly description: string,
  ) {
    this.store = store;
    this.ss = ss;
  }

  /** Starts eBPF and/or ss sampling. Resolves once bpftrace is attached (or found unusable). */
  static async start(o: AttributeOptions): Promise<Attributor> {
    let session: BpftraceSession | null = null;
    let store: AttributionStore | null = null;
    let ebpfNotice: string | null = null;
    if (o.ebpf) {
      const pending: TraceEvent[] = [];
      let ready: AttributionStore | null = null;
      let clockRef: BpftraceSession['clock'] | null = null;
      const r = await startBpftrace({
        ports: o.ports,
        ...(o.bpftrace !== undefined ? { bpftrace: o.bpftrace } : {}),
        ...(o.onBpftraceLine !== undefined ? { onLine: o.onBpftraceLine } : {}),
        onEvent: (e) => {
          // Events before start() resolved (none in practice: BEGIN comes first) wait for the clock.
          if (ready !== null && clockRef !== null) ready.add(e, clockRef);
          else pending.push(e);
        },
      });
      if ('notice' in r) ebpfNotice = r.notice;
      else {
        session = r;
        store = new AttributionStore(o.store);
        clockRef = r.clock;
        for (const e of pending) store.add(e, r.clock);
        ready = store;
        for (const n of r.notes) o.onNotice(`attribution: ${n}`);
        if (r.missing.length) o.onNotice(`attribution: without ${r.missing.join('; ')}`);
        void r.ended.then((why) => {
          if (!stopping.has(r)) o.onNotice(`attribution: bpftrace stopped${why ? ` (${why})` : ''}; closes from now on are not attributed`);
        });
      }
    }
    const interval = o.ssIntervalMs ?? (o.ebpf && session === null ? DEFAULT_SS_INTERVAL_MS : 0);
    let ss: SsTracker | null = null;
    let sampler: { stop(): void } | null = null;
    if (interval > 0) {
      ss = new SsTracker();
      sampler = startSsSampler({
        ports: o.ports,
        intervalMs: interval,
        tracker: ss,
        onNotice: o.onNotice,
        ...(o.onSsSample !== undefined ? { onSample: o.onSsSample } : {}),
      });
    }
    if (ebpfNotice !== null)
      o.onNotice(`no eBPF process attribution: ${ebpfNotice}${ss !== null ? `; sampling ss every ${interval} ms for CLOSE-WAIT sockets instead` : ''}`);
    const parts: string[] = [];
    if (session !== null) parts.push(`eBPF (bpftrace${session.tracefs === 'unshare' ? ', tracefs mounted in a private mount namespace' : ''})`);
    if (ss !== null) parts.push(`ss every ${interval} ms`);
    return new Attributor(session, store ?? new AttributionStore(o.store), ss, sampler, parts.join(' and ') || 'off');
  }

  /** Wraps an existing store and ss tracker (recorded sessions, tests). */
  static offline(store: AttributionStore | null, ss: SsTracker | null = null): Attributor {
    return new Attributor(null, store ?? new AttributionStore(), ss, null, 'offline');
  }

  get active(): boolean {
    return this.session !== null || this.ss !== null || this.description === 'offline';
  }

  /**
   * Annotates the closes of a finished connection in place: pid, comm,
   * attributed, attributedReason from eBPF; for each FIN, `peer` (the
   * receiving socket's owner and what ss saw of it).
   */
  annotate(rec: ConnectionRecord): void {
    // The kernel events of a close reach us within microseconds of its packet, long before the engine
    // finishes the connection (a closed connection lingers 5 s, lib/tcp/tracker.ts closeLinger).
    this.store.annotate(rec);
    for (const c of rec.closes) {
      if (c.kind !== 'FIN') continue;
      const sender = c.by === 'client' ? rec.client : rec.server;
      const receiver = c.by === 'client' ? rec.server : rec.client;
      const owner = this.store.ownerOf(receiver, sender, rec.start, Math.max(rec.end, c.ts));
      const seen = this.ss?.find(receiver, sender, 'CLOSE-WAIT', c.ts - SS_SLACK, Number.MAX_SAFE_INTEGER) ?? null;
      if (owner === null && seen === null) continue;
      const user = seen?.users[0] ?? null;
      c.peer = {
        pid: owner?.pid ?? user?.pid ?? null,
        comm: owner?.comm ?? user?.name ?? null,
        ss:
          seen !== null
            ? { state: seen.state, process: user?.name ?? null, pid: user?.pid ?? null, seenFor: seen.lastSeen - seen.firstSeen }
            : null,
      };
    }
    this.store.forget(rec);
  }

  async stop(): Promise<void> {
    this.sampler?.stop();
    if (this.session !== null) {
      stopping.add(this.session);
      await this.session.stop();
    }
  }
}

/** Sessions being stopped on purpose (their end is not news). */
const stopping = new WeakSet<BpftraceSession>();
