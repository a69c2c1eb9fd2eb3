/**
 * The dashboard's text pieces: durations, the compact chain of a row, and the
 * timeline, on rows the real engine made from corpus and lab captures.
 */
import { describe, expect, it } from 'vitest';
import { chainText, clockDur, humanBytes, renderTimeline, shortDur, shortPath, truncate } from '../../dashboards/tui/format.js';
import { corpusFile, feed, labCapture, need } from './helpers.js';

describe('durations and sizes', () => {
  it('short table durations', () => {
    expect(shortDur(250)).toBe('250us');
    expect(shortDur(12_345)).toBe('12ms');
    expect(shortDur(5_002_417)).toBe('5.00s');
    expect(shortDur(99_994_000)).toBe('99.99s');
    expect(shortDur(185_000_000)).toBe('3m05s');
    expect(shortDur(7_380_000_000)).toBe('2h03m');
    expect(clockDur(3_723_000_000)).toBe('01:02:03');
    expect(humanBytes(1536)).toBe('1.5 KiB');
    expect(truncate('abcdef', 4)).toBe('abc…');
    expect(shortPath('/files/abc?detail=summary')).toBe('/files/abc');
  });
});

const captures = [
  labCapture('a-incident'),
  labCapture('e-keepalive-race'),
  labCapture('f-server-killed'),
  corpusFile('zeek/workshop_2011_browse.pcap'),
  corpusFile('zeek/http/pipelined-requests.pcap'),
].filter((f): f is string => f !== null);

describe.runIf(need(captures.length > 0, 'no lab fixture and no corpus capture found', 'tui: format'))('timeline on real sockets', () => {
  for (const file of captures) {
    it(`every line fits the width, one line per exchange and side (${file.split('/').slice(-2).join('/')})`, async () => {
      const { store } = await feed(file);
      const snap = store.snapshot();
      expect(snap.rows.length).toBeGreaterThan(0);
      for (const row of snap.rows.slice(0, 50)) {
        for (const width of [60, 100, 180]) {
          const lines = renderTimeline(row, width, snap.clock);
          for (const l of lines.filter((x) => x.kind !== 'note')) expect(l.text.length).toBeLessThanOrEqual(width);
          const shown = Math.min(row.exchanges.length, 12);
          expect(lines.filter((l) => /^#\d+ /.test(l.text))).toHaveLength(shown);
          const client = lines.find((l) => l.kind === 'client')!.text;
          const server = lines.find((l) => l.kind === 'server')!.text;
          // One FIN/RST marker per close event of that side (markers at the same column overlap).
          const clientMarks = new Set(row.closes.filter((c) => c.by === 'client').map((c) => c.kind[0]));
          for (const m of clientMarks) expect(client).toContain(m!);
          const serverMarks = new Set(row.closes.filter((c) => c.by === 'server').map((c) => c.kind[0]));
          for (const m of serverMarks) expect(server.slice(server.indexOf(' ', 7))).toContain(m!);
        }
        const chain = chainText(row, snap.clock, snap.slow);
        if (row.exchanges.length > 0) expect(chain.split(' -> ')).toHaveLength(Math.min(row.exchanges.length, 5));
      }
    });
  }
});
