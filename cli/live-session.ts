/**
 * The run loop `watch` and `daemon` share around a live capture: one stop
 * reason (the first of a signal, the duration, the source ending or failing,
 * or what the command adds: a packet count, a full disk, a closed standard
 * output, q in the dashboard), the engine's clock ticking once a second so
 * quiet connections are finished, and the order of the stop: the capture
 * first (what is in flight is read), then the timers, then the engine's
 * last connections and capture-wide findings.
 */
import type { CaptureCounters, LiveCapture } from '../lib/capture/live.js';
import type { Engine } from '../lib/index.js';

export interface LiveSessionOptions {
  engine: Engine;
  /** Stop after this long (µs), counted from run(). */
  durationUs?: number | undefined;
  /**
   * A second signal while stopping exits at once (130): 'SIGINT' only (watch: Ctrl-C again gives up
   * waiting, a SIGTERM meanwhile changes nothing) or 'any' (daemon).
   */
  exitOnSecond: 'SIGINT' | 'any';
}

export class LiveSession {
  /** Why the capture stopped; null while it runs. */
  stopReason: string | null = null;
  /** The capture ended with an error (tcpdump died, the interface went away), if it did. */
  endError: unknown = null;
  private wake: () => void = () => {};
  private readonly stopped = new Promise<void>((r) => (this.wake = r));
  private ticker: ReturnType<typeof setInterval> | null = null;
  private durationTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly onSignal: (sig: NodeJS.Signals) => void;

  constructor(private readonly o: LiveSessionOptions) {
    this.onSignal = (sig) => {
      if (this.stopReason !== null && (o.exitOnSecond === 'any' || sig === 'SIGINT')) process.exit(130);
      this.requestStop(sig);
    };
  }

  /** Stop for this reason, unless a stop was already asked for. */
  readonly requestStop = (why: string): void => {
    if (this.stopReason !== null) return;
    this.stopReason = why;
    this.wake();
  };

  /** SIGINT and SIGTERM stop the session (until removeSignals()). */
  listenForSignals(): void {
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
  }

  removeSignals(): void {
    process.off('SIGINT', this.onSignal);
    process.off('SIGTERM', this.onSignal);
  }

  /**
   * The capture is running: tick the engine (and `onTick` with the source's
   * counters) every second, arm the duration, and stop when the source ends;
   * `failText` says why when it fails.
   */
  run(capture: LiveCapture, onTick: (counters: CaptureCounters) => void, failText: (e: Error) => string): void {
    this.ticker = setInterval(() => {
      this.o.engine.tick(Date.now() * 1000);
      onTick(capture.counters());
    }, 1000);
    const us = this.o.durationUs;
    if (us !== undefined) this.durationTimer = setTimeout(() => this.requestStop(`${us / 1e6} s elapsed`), us / 1000);
    capture.ended.then(
      () => this.requestStop(`${capture.kind} stopped`),
      (e: unknown) => {
        this.endError = e;
        this.requestStop(failText(e as Error));
      },
    );
  }

  /** Wait for the stop; stop the capture, the timers, and finish the engine. Returns the source's last counters. */
  async finish(capture: LiveCapture): Promise<CaptureCounters> {
    await this.stopped;
    const counters = await capture.stop();
    if (this.ticker !== null) clearInterval(this.ticker);
    if (this.durationTimer !== null) clearTimeout(this.durationTimer);
    this.o.engine.finish();
    return counters;
  }
}
