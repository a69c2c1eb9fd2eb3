/**
 * bpftrace's clock (CLOCK_MONOTONIC) put on the packets' clock (CLOCK_REALTIME).
 *
 * The recorded sessions check it against tcpdump: a kernel event that makes a
 * packet (the FIN_WAIT1 transition in tcp_close, tcp_send_reset) happens
 * before tcpdump stamps that packet, and an event caused by a packet
 * (CLOSE_WAIT when a FIN arrives, tcp_receive_reset) happens after. With
 * `err` our error on the event times, every "sent" event gives
 * err >= -(packet - event) and every "received" one err <= (event - packet):
 * the two sides bracket the error. test/fixtures/attribute/README.md quotes
 * the brackets.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ClockMap, sampleClock } from '../../lib/attribute/clock.js';
import type { TraceEvent } from '../../lib/attribute/events.js';
import type { Endpoint } from '../../lib/types.js';
import { analyzeFixture, loadFixture } from './helpers.js';

const same = (a: Endpoint, b: Endpoint): boolean => a.ip === b.ip && a.port === b.port;

/** packet ts − event ts (µs) for every close whose kernel event is in the recording, split by causality. */
async function deltas(name: string): Promise<{ sent: number[]; received: number[] }> {
  const fx = loadFixture(name);
  const a = await analyzeFixture(fx, { ebpf: false });
  const sent: number[] = [];
  const received: number[] = [];
  const near = (ts: number, c: { ts: number }) => Math.abs(ts - c.ts) < 1_000_000;
  for (const rec of a.connections) {
    for (const c of rec.closes) {
      const from = c.by === 'client' ? rec.client : rec.server;
      const to = c.by === 'client' ? rec.server : rec.client;
      const on = (e: TraceEvent, l: Endpoint, r: Endpoint) => same(e.local, l) && same(e.remote, r);
      for (const { e, ts } of fx.events) {
        if (!near(ts, c)) continue;
        if (c.kind === 'FIN' && e.type === 'state' && on(e, from, to) && ((e.oldState === 1 && e.newState === 4) || (e.oldState === 8 && e.newState === 9)))
          sent.push(c.ts - ts);
        if (c.kind === 'FIN' && e.type === 'state' && on(e, to, from) && e.oldState === 1 && e.newState === 8) received.push(c.ts - ts);
        if (c.kind === 'RST' && e.type === 'send-reset' && on(e, from, to)) sent.push(c.ts - ts);
        if (c.kind === 'RST' && e.type === 'receive-reset' && on(e, to, from)) received.push(c.ts - ts);
      }
    }
  }
  return { sent, received };
}

describe('clock alignment against tcpdump (recorded sessions)', () => {
  for (const name of ['keepalive-race', 'server-killed', 'close-wait', 'server-close-wait', 'no-socket']) {
    it(`${name}: events that send a packet come before it, events a packet causes come after it`, async () => {
      const { sent, received } = await deltas(name);
      expect(sent.length).toBeGreaterThan(0);
      expect(received.length).toBeGreaterThan(0);
      const lo = -Math.min(...sent);
      const hi = -Math.max(...received);
      console.log(`[clock] ${name}: ${sent.length} sent, ${received.length} received; error on event times within [${lo}, ${hi}] µs`);
      expect(Math.min(...sent)).toBeGreaterThan(0);
      expect(Math.max(...received)).toBeLessThan(0);
      // The bracket is tight: the clock error is below a fifth of a millisecond.
      expect(hi - lo).toBeLessThan(200);
      // And the kernel's own latency from event to wire stays small on loopback.
      expect(Math.max(...sent)).toBeLessThan(2_000);
    });
  }
});

describe('sampleClock', () => {
  it('agrees with Python reading CLOCK_REALTIME and CLOCK_MONOTONIC directly', () => {
    if (!existsSync('/usr/bin/python3')) {
      console.log('[skip] sampleClock vs python: no /usr/bin/python3');
      return;
    }
    const s = sampleClock();
    const r = spawnSync(
      '/usr/bin/python3',
      [
        '-c',
        'import time\nbest=None\nfor i in range(20):\n a=time.clock_gettime_ns(time.CLOCK_MONOTONIC); r=time.clock_gettime_ns(time.CLOCK_REALTIME); b=time.clock_gettime_ns(time.CLOCK_MONOTONIC)\n if best is None or b-a<best[1]: best=((r-(a+b)//2)//1000, b-a)\nprint(best[0])',
      ],
      { encoding: 'utf8' },
    );
    const python = Number(r.stdout.trim());
    const ours = s.realUs - s.monoUs;
    console.log(`[clock] realtime - monotonic: ours ${ours} µs (window ${s.uncertaintyUs} µs), python ${python} µs`);
    expect(s.uncertaintyUs).toBeLessThan(100);
    expect(Math.abs(ours - python)).toBeLessThan(100);
  });
});

describe('ClockMap', () => {
  it('uses the latest sample at or before the time (a stepped realtime clock)', () => {
    const m = new ClockMap({ monoUs: 1_000, realUs: 1_000_000, uncertaintyUs: 1 });
    m.add({ monoUs: 5_000, realUs: 1_004_500, uncertaintyUs: 1 });
    expect(m.toRealtime(500)).toBe(999_500);
    expect(m.toRealtime(4_999)).toBe(1_003_999);
    expect(m.toRealtime(5_000)).toBe(1_004_500);
    expect(m.toRealtime(9_000)).toBe(1_008_500);
  });
});
