/**
 * cli/live-session.ts, the run loop watch and daemon share: the first stop
 * reason wins; the source ending or failing stops it (a failure keeps its
 * error); the duration stops it; ticks reach the engine and the command once
 * a second; the stop runs capture first, then the engine's finish; a second
 * signal while stopping exits (130) for the signals each command asks for.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LiveSession } from '../../cli/live-session.js';
import type { CaptureCounters, LiveCapture } from '../../lib/capture/live.js';
import type { Engine } from '../../lib/index.js';

const COUNTERS: CaptureCounters = { received: 10, dropped: 0, ifDropped: null };

function fakes() {
  const calls: string[] = [];
  let end: { ok: () => void; fail: (e: Error) => void } = { ok: () => {}, fail: () => {} };
  const ended = new Promise<void>((ok, fail) => (end = { ok, fail }));
  const capture = {
    kind: 'tcpdump',
    ended,
    counters: () => COUNTERS,
    stop: async () => {
      calls.push('capture.stop');
      return COUNTERS;
    },
  } as unknown as LiveCapture;
  const engine = {
    tick: (now: number) => calls.push(`tick ${now > 0}`),
    finish: () => calls.push('engine.finish'),
  } as unknown as Engine;
  return { calls, capture, engine, end };
}

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe('LiveSession', () => {
  it('the first stop reason wins; finish stops the capture, then the timers, then the engine', async () => {
    const f = fakes();
    const s = new LiveSession({ engine: f.engine, exitOnSecond: 'any' });
    s.run(f.capture, () => f.calls.push('onTick'), (e) => e.message);
    s.requestStop('3 packets captured');
    s.requestStop('SIGTERM');
    expect(await s.finish(f.capture)).toBe(COUNTERS);
    expect(s.stopReason).toBe('3 packets captured');
    expect(s.endError).toBeNull();
    expect(f.calls).toEqual(['capture.stop', 'engine.finish']);
  });

  it('the source ending stops it; a failing source keeps its error and says why', async () => {
    const a = fakes();
    const s1 = new LiveSession({ engine: a.engine, exitOnSecond: 'SIGINT' });
    s1.run(a.capture, () => {}, () => 'unused');
    a.end.ok();
    await s1.finish(a.capture);
    expect(s1.stopReason).toBe('tcpdump stopped');
    const b = fakes();
    const s2 = new LiveSession({ engine: b.engine, exitOnSecond: 'any' });
    s2.run(b.capture, () => {}, (e) => e.message.replace(/\.$/, ''));
    const err = new Error('the interface went away.');
    b.end.fail(err);
    await s2.finish(b.capture);
    expect(s2.stopReason).toBe('the interface went away');
    expect(s2.endError).toBe(err);
  });

  it('ticks once a second (engine clock, then the command), and the duration stops it', async () => {
    vi.useFakeTimers();
    const f = fakes();
    const s = new LiveSession({ engine: f.engine, durationUs: 2_500_000, exitOnSecond: 'SIGINT' });
    const ticks: CaptureCounters[] = [];
    s.run(f.capture, (c) => ticks.push(c), (e) => e.message);
    await vi.advanceTimersByTimeAsync(2_600);
    expect(ticks).toEqual([COUNTERS, COUNTERS]);
    expect(f.calls).toEqual(['tick true', 'tick true']);
    await s.finish(f.capture);
    expect(s.stopReason).toBe('2.5 s elapsed');
    await vi.advanceTimersByTimeAsync(3_000);
    expect(ticks).toHaveLength(2); // the ticker stopped
  });

  it('a second signal while stopping exits at once: any signal for the daemon, only SIGINT for watch', () => {
    const exit = vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    for (const [exitOnSecond, second, exits] of [
      ['any', 'SIGTERM', true],
      ['SIGINT', 'SIGTERM', false],
      ['SIGINT', 'SIGINT', true],
    ] as const) {
      exit.mockClear();
      const f = fakes();
      const s = new LiveSession({ engine: f.engine, exitOnSecond });
      s.listenForSignals();
      try {
        process.emit('SIGTERM', 'SIGTERM');
        expect(s.stopReason).toBe('SIGTERM');
        expect(exit).not.toHaveBeenCalled();
        process.emit(second, second);
        if (exits) expect(exit).toHaveBeenCalledWith(130);
        else expect(exit).not.toHaveBeenCalled();
      } finally {
        s.removeSignals();
      }
    }
  });
});
