/**
 * RotatingPcapWriter (lib/capture/rotate.ts) on the packets of real captures
 * (the repro lab's fixtures: uvicorn and Node servers, axios / node-fetch /
 * http clients, captured by tcpdump): the newest N files are kept, each is a
 * valid capture (our reader, and tshark when present), at most the rotation
 * size, holding the last packets in order; only the writer's own files of
 * this run are ever deleted.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, mkdirSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MIN_ROTATE_BYTES, PCAP_FILE_HEADER, PCAP_RECORD_HEADER, RotatingPcapWriter, parseSize, type RotateEvent } from '../../lib/capture/rotate.js';
import { UserError, type PacketRecord } from '../../lib/types.js';
import { REPO, labCapture, need, readBack, records, tsharkFrames, tsharkPresent } from './helpers.js';

const SUITE = 'daemon: rotating capture files';
const LABS = ['a-incident', 'e-keepalive-race', 'i-large-upload', 'j-concurrent'];
const SLL2 = path.join(REPO, 'test/fixtures/decode/linux-sll2-loopback-http.pcap');
const have = need(LABS.every((l) => labCapture(l) !== null), `lab captures ${LABS.join(', ')} are missing (npm run lab makes them)`, SUITE);
if (!tsharkPresent) need(false, 'tshark is not installed: files are checked with our reader only (apt-get install tshark)', `${SUITE}: tshark cross-check`);

const tmp = mkdtempSync(path.join(tmpdir(), 'hangscope-rotate-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const size = (r: PacketRecord): number => PCAP_RECORD_HEADER + r.data.length;

describe.runIf(have)(SUITE, () => {
  let input: PacketRecord[] = [];
  beforeAll(async () => {
    for (const l of LABS) input.push(...(await records(labCapture(l)!)));
  });

  it('keeps the newest N files, each a valid capture no larger than the rotation size, holding the last packets in order', async () => {
    const dir = path.join(tmp, 'keep');
    mkdirSync(dir);
    // Not ours to delete: a capture of an earlier run named like ours, another prefix, a note.
    const earlier = path.join(dir, 'hangscope-20000101T000000Z-000001.pcap');
    copyFileSync(labCapture('a-incident')!, earlier);
    writeFileSync(path.join(dir, 'other-20000101T000000Z-000001.pcap'), 'not a capture');
    writeFileSync(path.join(dir, 'notes.txt'), 'keep me');
    const maxBytes = 16 * 1024;
    const events: RotateEvent[] = [];
    const w = new RotatingPcapWriter({ dir, maxBytes, maxFiles: 4, onRotate: (e) => events.push(e) });
    for (const r of input) w.write(r);
    w.close();

    expect(input.length).toBeGreaterThan(1000);
    expect(w.packets).toBe(input.length);
    expect(w.filesOpened).toBe(events.length);
    expect(w.filesOpened).toBeGreaterThan(8);
    expect(w.filesDeleted).toBe(w.filesOpened - 4);
    expect(events.flatMap((e) => e.deleted)).toHaveLength(w.filesDeleted);

    const kept = w.files();
    expect(kept).toHaveLength(4);
    const onDisk = readdirSync(dir).filter((n) => w.pattern.test(n) && path.join(dir, n) !== earlier).sort();
    expect(onDisk).toEqual(kept.map((p) => path.basename(p)));
    // Newest last, by sequence number and by name.
    expect([...kept].sort()).toEqual(kept);
    expect(readFileSync(earlier)).toEqual(readFileSync(labCapture('a-incident')!));
    expect(readFileSync(path.join(dir, 'notes.txt'), 'utf8')).toBe('keep me');
    expect(readFileSync(path.join(dir, 'other-20000101T000000Z-000001.pcap'), 'utf8')).toBe('not a capture');

    // Every closed file was full: the next packet would not have fitted.
    let at = 0;
    for (const e of events) {
      if (e.closed === null) continue;
      at += e.closed.packets;
      expect(e.closed.bytes).toBeLessThanOrEqual(maxBytes);
      expect(e.closed.bytes + size(input[at]!)).toBeGreaterThan(maxBytes);
    }

    const back: PacketRecord[] = [];
    for (const f of kept) {
      const st = statSync(f);
      expect(st.mode & 0o777).toBe(0o600);
      expect(st.size).toBeLessThanOrEqual(maxBytes);
      const r = await readBack(f);
      expect(r.format).toBe('pcap');
      expect(r.anomalies).toEqual({});
      expect([...r.linkTypes]).toEqual([1]);
      expect(st.size).toBe(PCAP_FILE_HEADER + r.recs.reduce((a, x) => a + size(x), 0));
      if (tsharkPresent) expect(tsharkFrames(f)).toBe(r.recs.length);
      back.push(...r.recs);
    }
    const tail = input.slice(input.length - back.length);
    expect(back.map((r) => [r.ts, r.origLen, r.data.toString('base64')])).toEqual(tail.map((r) => [r.ts, r.origLen, r.data.toString('base64')]));
  });

  it('starts a new file when the link type changes (pcap has one per file)', async () => {
    const dir = path.join(tmp, 'linktypes');
    const sll2 = await records(SLL2);
    const eth = await records(labCapture('a-incident')!);
    const w = new RotatingPcapWriter({ dir, maxBytes: 1 << 20, maxFiles: 10 });
    for (const r of [...eth, ...sll2, ...eth]) w.write(r);
    w.close();
    const files = w.files();
    expect(files).toHaveLength(3);
    const got = [];
    for (const f of files) {
      const r = await readBack(f);
      expect(r.anomalies).toEqual({});
      if (tsharkPresent) expect(tsharkFrames(f)).toBe(r.recs.length);
      got.push([[...r.linkTypes], r.recs.length]);
    }
    expect(got).toEqual([
      [[1], eth.length],
      [[276], sll2.length],
      [[1], eth.length],
    ]);
  });

  it('never overwrites an existing file, and never deletes a file it did not make', async () => {
    const dir = path.join(tmp, 'collide');
    mkdirSync(dir);
    const t = Date.UTC(2030, 0, 2, 3, 4, 5);
    const taken = path.join(dir, 'hangscope-20300102T030405Z-000001.pcap');
    writeFileSync(taken, 'precious');
    const w = new RotatingPcapWriter({ dir, maxBytes: MIN_ROTATE_BYTES, maxFiles: 1, now: () => t });
    for (const r of input.slice(0, 200)) w.write(r);
    w.close();
    expect(readFileSync(taken, 'utf8')).toBe('precious');
    expect(w.files()).toHaveLength(1);
    expect(path.basename(w.files()[0]!)).toMatch(/^hangscope-20300102T030405Z-\d{6}\.pcap$/);
    expect(readdirSync(dir).sort()).toEqual([path.basename(taken), path.basename(w.files()[0]!)].sort());
    expect(w.filesDeleted).toBe(w.filesOpened - 1);
  });

  it('a write error (the folder removed) is reported once and counted, the writer goes on, and resumes when it can', async () => {
    const dir = path.join(tmp, 'vanish');
    const errors: Error[] = [];
    const w = new RotatingPcapWriter({ dir, maxBytes: 4096, maxFiles: 3, onError: (e) => errors.push(e) });
    const recs = [...input, ...input].slice(0, 1600);
    for (const r of recs.slice(0, 100)) w.write(r);
    rmSync(dir, { recursive: true });
    for (const r of recs.slice(100, 400)) w.write(r);
    expect(errors).toHaveLength(1);
    expect((errors[0] as NodeJS.ErrnoException).code).toBe('ENOENT');
    expect(w.lost).toBeGreaterThan(0);
    mkdirSync(dir);
    for (const r of recs.slice(400)) w.write(r);
    w.close();
    expect(errors).toHaveLength(1);
    expect(w.lastError).toBeNull();
    // Written again after the retry interval: valid files in the recreated folder.
    const files = readdirSync(dir).filter((n) => w.pattern.test(n));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) expect((await readBack(path.join(dir, f))).anomalies).toEqual({});
    expect(w.packets + w.lost).toBe(recs.length);
  });
});

describe('daemon: rotation options', () => {
  it('sizes: bytes, and k / M / G as powers of 1024', () => {
    expect(parseSize('4096', '--rotate-size')).toBe(4096);
    expect(parseSize('64k', '--rotate-size')).toBe(65536);
    expect(parseSize('100M', '--rotate-size')).toBe(104857600);
    expect(parseSize('1G', '--rotate-size')).toBe(1073741824);
    expect(parseSize('1.5MiB', '--rotate-size')).toBe(1572864);
    expect(() => parseSize('ten', '--rotate-size')).toThrow(UserError);
    expect(() => parseSize('-5', '--rotate-size')).toThrow(UserError);
  });

  it('refuses sizes below the minimum, counts below 1, and prefixes that are not plain names', () => {
    const dir = path.join(tmp, 'opts');
    expect(() => new RotatingPcapWriter({ dir, maxBytes: MIN_ROTATE_BYTES - 1, maxFiles: 2 })).toThrow(UserError);
    expect(() => new RotatingPcapWriter({ dir, maxBytes: 4096, maxFiles: 0 })).toThrow(UserError);
    expect(() => new RotatingPcapWriter({ dir, maxBytes: 4096, maxFiles: 2, prefix: '../up' })).toThrow(UserError);
    expect(() => new RotatingPcapWriter({ dir, maxBytes: 4096, maxFiles: 2, prefix: 'a*b' })).toThrow(UserError);
    writeFileSync(path.join(tmp, 'a-file'), '');
    expect(() => new RotatingPcapWriter({ dir: path.join(tmp, 'a-file'), maxBytes: 4096, maxFiles: 2 })).toThrow(/not a folder/);
  });

  it('creates a missing folder with mode 0700', () => {
    const dir = path.join(tmp, 'new', 'deeper');
    new RotatingPcapWriter({ dir, maxBytes: 4096, maxFiles: 2 }).close();
    expect(statSync(dir).mode & 0o777).toBe(0o700);
  });
});
