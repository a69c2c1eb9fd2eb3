/**
 * The live sources as a library (lib/capture/live.ts, live-replay.ts):
 * filters, link types, error sentences from the real messages of tcpdump
 * 4.99 / libpcap 1.10, tcpdump's counters, the paced replay of a file, and
 * startLiveCapture itself on loopback (root and tcpdump or npm pcap needed).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readCapture } from '../../lib/capture/index.js';
import { replayCapture } from '../../lib/capture/live-replay.js';
import {
  buildFilter,
  classifyCaptureError,
  linkTypeFromPcapName,
  parseTcpdumpStats,
  startLiveCapture,
  type CaptureCounters,
} from '../../lib/capture/live.js';
import { Anomalies, UserError } from '../../lib/types.js';
import { REPO, isRoot, killAll, libpcapBinding, need, tcpdumpPath, track } from './helpers.js';

afterAll(() => killAll());

describe('capture filter', () => {
  it('--port, --filter, both, neither', () => {
    expect(buildFilter(8000, undefined)).toBe('tcp port 8000');
    expect(buildFilter(null, 'host 10.0.0.1')).toBe('host 10.0.0.1');
    expect(buildFilter(8000, 'host 10.0.0.1 or host 10.0.0.2')).toBe('tcp port 8000 and (host 10.0.0.1 or host 10.0.0.2)');
    expect(buildFilter(null, '  ')).toBe('tcp');
  });
});

describe('node_pcap link type names to LINKTYPE_* values (tcpdump.org/linktypes.html)', () => {
  it('maps the names node_pcap returns, and "Unknown linktype N" by its DLT number', () => {
    expect(linkTypeFromPcapName('LINKTYPE_ETHERNET')).toBe(1);
    expect(linkTypeFromPcapName('LINKTYPE_LINUX_SLL')).toBe(113);
    expect(linkTypeFromPcapName('LINKTYPE_RAW')).toBe(101);
    expect(linkTypeFromPcapName('LINKTYPE_NULL')).toBe(0);
    expect(linkTypeFromPcapName('LINKTYPE_IEEE802_11_RADIO')).toBe(127);
    expect(linkTypeFromPcapName('Unknown linktype 276')).toBe(276);
  });
});

describe('error sentences from real capture errors', () => {
  // Messages as printed on this project's Debian 12 machine (tcpdump 4.99.3, libpcap 1.10.3).
  const cases: [string, RegExp][] = [
    ["tcpdump: lo: You don't have permission to perform this capture on that device\n(socket: Operation not permitted)\n", /no permission to capture on lo: run as root or with CAP_NET_RAW and CAP_NET_ADMIN/],
    ['socket: Operation not permitted', /no permission to capture on lo/],
    ['tcpdump: nosuch0: No such device exists\n(No such device exists)\n', /no such interface "lo"/],
    ['No such device exists\nSIOCGIFADDR: nosuch0: No such device', /no such interface "lo"/],
    ["tcpdump: can't parse filter expression: syntax error\n", /tcpdump cannot use the filter "tcp port": can't parse filter expression: syntax error\.$/],
  ];
  for (const [text, want] of cases) {
    it(JSON.stringify(text.split('\n')[0]), () => {
      const e = classifyCaptureError(text, 'lo', 'tcp port', 'tcpdump');
      expect(e).toBeInstanceOf(UserError);
      expect(e.message).toMatch(want);
      expect(e.message).not.toContain('\n');
    });
  }
});

describe("tcpdump's counters", () => {
  it('reads the exit report and the SIGUSR1 one-liner (last report wins)', () => {
    const c: CaptureCounters = { received: null, dropped: null, ifDropped: null };
    // tcpdump 4.99.3 on SIGUSR1, then at exit:
    parseTcpdumpStats('tcpdump: 3 packets captured, 6 packets received by filter, 0 packets dropped by kernel\n', c);
    expect(c).toEqual({ received: 6, dropped: 0, ifDropped: null });
    parseTcpdumpStats('22 packets captured\n44 packets received by filter\n2 packets dropped by kernel\n1 packet dropped by interface\n', c);
    expect(c).toEqual({ received: 44, dropped: 2, ifDropped: 1 });
  });

  it.runIf(need(isRoot && tcpdumpPath !== null, 'needs root and tcpdump', 'live: tcpdump counters'))('parses what a real tcpdump prints on SIGUSR1 and at exit', async () => {
    const child = track(spawn(tcpdumpPath!, ['-i', 'lo', '-n', '-w', '/dev/null', 'tcp port 9'], { stdio: ['ignore', 'ignore', 'pipe'] }));
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (err += s));
    const t0 = Date.now();
    while (!err.includes('listening on') && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGUSR1');
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGINT');
    await new Promise((r) => child.on('close', r));
    const c: CaptureCounters = { received: null, dropped: null, ifDropped: null };
    expect(parseTcpdumpStats(err, c)).toBe(true);
    expect(err).toMatch(/\d+ packets? captured, \d+ packets? received by filter, \d+ packets? dropped by kernel/);
    expect(c.dropped).toBe(Number(/(\d+) packets? dropped by kernel\n*$/.exec(err)![1]));
    expect(c.received).not.toBeNull();
  });
});

describe('paced replay of a file', () => {
  const file = path.resolve(REPO, '../shared/corpus/zeek/workshop_2011_browse.pcap');
  it.runIf(need(existsSync(file), 'corpus capture workshop_2011_browse.pcap not found', 'live: replay'))(
    'speed 40 takes the capture span / 40 and hands over the same records in order; speed 0 is as fast as possible',
    async () => {
      const all: [number, number][] = [];
      await readCapture(file, (r) => all.push([r.frame, r.ts]), { anomalies: new Anomalies() });
      const span = all[all.length - 1]![1] - all[0]![1];
      const paced: [number, number][] = [];
      const clocks: number[] = [];
      const t0 = performance.now();
      await replayCapture(file, (r) => paced.push([r.frame, r.ts]), { anomalies: new Anomalies(), speed: 40, onClock: (c) => clocks.push(c) });
      const took = performance.now() - t0;
      expect(paced).toEqual(all);
      // The span (15.47 s per tshark's conv table) at 40x is about 387 ms; timers only ever wait longer.
      expect(took).toBeGreaterThanOrEqual((span / 1000 / 40) * 0.95);
      expect(took).toBeLessThan((span / 1000 / 40) * 3 + 1000);
      expect(clocks.length).toBeGreaterThanOrEqual(1);
      const fast: [number, number][] = [];
      await replayCapture(file, (r) => fast.push([r.frame, r.ts]), { anomalies: new Anomalies() });
      expect(fast).toEqual(all);
      await expect(replayCapture(path.join(REPO, 'no-such.pcap'), () => {}, { anomalies: new Anomalies(), speed: 1 })).rejects.toThrow(/no such file/);
    },
  );
});

describe('startLiveCapture on loopback', () => {
  const sources: ['tcpdump' | 'libpcap', string, number, boolean][] = [
    ['tcpdump', 'lo', 1, tcpdumpPath !== null],
    // libpcap's "any" without pcap_set_datalink gives Linux cooked v1 (LINKTYPE_LINUX_SLL).
    ['libpcap', 'any', 113, libpcapBinding],
  ];
  for (const [source, iface, linkType, present] of sources) {
    it.runIf(need(isRoot && present, `needs root and ${source}`, `live: ${source} source`))(`${source} on ${iface}: packets with their link type, then counters`, async () => {
      const server = http.createServer((_req, res) => res.end('ok'));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const port = (server.address() as { port: number }).port;
      const frames: { ts: number; len: number; linkType: number }[] = [];
      let announced: number | null = null;
      const cap = await startLiveCapture({
        source,
        iface,
        filter: `tcp port ${port}`,
        anomalies: new Anomalies(),
        onLinkType: (lt) => (announced = lt),
        onPacket: (rec) => frames.push({ ts: rec.ts, len: rec.data.length, linkType: rec.linkType }),
      });
      const before = Date.now() * 1000;
      await new Promise<void>((resolve) =>
        http.get({ host: '127.0.0.1', port, path: '/x', agent: false }, (res) => {
          res.resume();
          res.on('end', resolve);
        }),
      );
      await new Promise((r) => setTimeout(r, 300));
      const after = Date.now() * 1000;
      const counters = await cap.stop();
      server.close();
      expect(cap.kind).toBe(source);
      expect(announced).toBe(linkType);
      expect(frames.length).toBeGreaterThanOrEqual(8);
      for (const f of frames) {
        expect(f.linkType).toBe(linkType);
        // Kernel timestamps of this very exchange (CLOCK_REALTIME, like Date.now()).
        expect(f.ts).toBeGreaterThanOrEqual(before - 5000);
        expect(f.ts).toBeLessThanOrEqual(after + 5000);
      }
      expect(counters.dropped).toBe(0);
      expect(counters.received).toBeGreaterThanOrEqual(frames.length);
    });
  }
});
