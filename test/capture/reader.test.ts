/**
 * lib/capture against the corpus: packet counts from MANIFEST.tsv (capinfos),
 * per-frame timestamps and lengths from tshark, plus the hand-checked facts
 * below (each value was read off `tshark -r X -T fields -e frame.time_epoch`).
 */
import { mkdtempSync, readFileSync, writeFileSync, createReadStream, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { CaptureParser, PcapWriter, readCapture } from '../../lib/capture/index.js';
import { Anomalies, UserError } from '../../lib/types.js';
import {
  copyRec,
  corpusFile,
  epochToMicros,
  FIXTURES,
  manifest,
  need,
  parseBuffer,
  tsharkFields,
  type Rec,
} from './helpers.js';

const haveCorpus = need('corpus', 'capture reader');
const haveTshark = need('tshark', 'capture reader vs tshark');

const tmp = mkdtempSync(path.join(tmpdir(), 'hangscope-capture-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function readAll(input: string | NodeJS.ReadableStream, anomalies = new Anomalies()) {
  const recs: Rec[] = [];
  const res = await readCapture(input, (r) => recs.push(copyRec(r)), { anomalies });
  return { recs, res, anomalies };
}

describe.runIf(haveCorpus)('every corpus capture', () => {
  const rows = haveCorpus ? manifest() : [];
  it('the manifest lists the DEV captures', () => {
    expect(rows.length).toBe(69);
  });
  for (const row of rows) {
    it(`${row.file}: count, format and link type match the manifest`, async () => {
      const { recs, res, anomalies } = await readAll(corpusFile(row.file));
      expect(res.packets).toBe(row.packets);
      expect(recs.length).toBe(row.packets);
      expect(res.format).toBe(row.header.startsWith('pcapng') ? 'pcapng' : 'pcap');
      expect(res.compressed).toBe(false);
      const m = /linktype (\d+)/.exec(row.header);
      if (m) expect(res.linkTypes).toEqual([Number(m[1])]);
      expect(anomalies.toJSON()).toEqual({});
      expect(recs.map((r) => r.frame)).toEqual(recs.map((_, i) => i + 1));
    });
    it.runIf(haveTshark)(`${row.file}: every frame's time, lengths and interface match tshark`, async () => {
      const { recs } = await readAll(corpusFile(row.file));
      const truth = tsharkFields(corpusFile(row.file), [
        'frame.number',
        'frame.time_epoch',
        'frame.len',
        'frame.cap_len',
        'frame.interface_id',
      ]);
      expect(recs.length).toBe(truth.length);
      const ours = recs.map((r) => [r.frame, r.ts, r.origLen, r.hex.length / 2, r.interfaceId]);
      const theirs = truth.map((t) => [Number(t[0]), epochToMicros(t[1]!), Number(t[2]), Number(t[3]), Number(t[4] || 0)]);
      expect(ours).toEqual(theirs);
    });
  }
});

describe.runIf(haveCorpus)('formats and timestamp precisions', () => {
  it('big-endian microsecond pcap (tcpdump/pptp.pcap)', async () => {
    const { recs, res } = await readAll(corpusFile('tcpdump/pptp.pcap'));
    expect(res.format).toBe('pcap');
    expect(recs.length).toBe(23);
    expect(recs[0]!.ts).toBe(954147395148077);
    expect(recs[0]!.origLen).toBe(62);
  });

  it('nanosecond pcap is floored to microseconds (tcpdump/tcp-handshake-nano.pcap)', async () => {
    const { recs, res } = await readAll(corpusFile('tcpdump/tcp-handshake-nano.pcap'));
    expect(res.linkTypes).toEqual([113]);
    expect(recs.map((r) => r.ts)).toEqual([1418145369924505, 1418145370052027, 1418145370052115]);
  });

  it('pcapng timestamp past 2106 keeps full precision (tcpdump/time_2106_overflow.pcapng)', async () => {
    const { recs } = await readAll(corpusFile('tcpdump/time_2106_overflow.pcapng'));
    expect(recs.length).toBe(1);
    expect(recs[0]!.ts).toBe(4294967296_000000);
  });

  it('pcapng with two interfaces and two resolutions (zeek/pcapng-multi-interface.pcapng)', async () => {
    const { recs } = await readAll(corpusFile('zeek/pcapng-multi-interface.pcapng'));
    expect(recs.map((r) => r.interfaceId)).toEqual([0, 0, 1, 1, 1, 1]);
    // interface 0 is nanosecond (…500330493 -> …500330), interface 1 microsecond
    expect(recs[0]!.ts).toBe(1767663089500330);
    expect(recs[5]!.ts).toBe(1767663437140942);
  });

  it('empty pcap and empty pcapng give zero packets but a format and link type', async () => {
    const a = await readAll(corpusFile('zeek/empty.pcap'));
    expect(a.res).toMatchObject({ format: 'pcap', packets: 0, linkTypes: [1] });
    const b = await readAll(corpusFile('tcpdump/empty.pcapng'));
    expect(b.res).toMatchObject({ format: 'pcapng', packets: 0, linkTypes: [1] });
    expect(a.anomalies.toJSON()).toEqual({});
    expect(b.anomalies.toJSON()).toEqual({});
  });

  it('record with caplen below origLen and above the header snaplen (zeek/trunc/trunc-hdr.pcap)', async () => {
    // snaplen 1 in the file header, caplen 8, origLen 78: read it, do not stop.
    const { recs, anomalies } = await readAll(corpusFile('zeek/trunc/trunc-hdr.pcap'));
    expect(recs.length).toBe(1);
    expect(recs[0]!.hex.length / 2).toBe(8);
    expect(recs[0]!.origLen).toBe(78);
    expect(anomalies.toJSON()).toEqual({});
  });
});

describe.runIf(haveCorpus)('chunking', () => {
  const files = [
    'tcpdump/print-flags.pcap',
    'tcpdump/pptp.pcap',
    'tcpdump/tcp-handshake-nano.pcap',
    'zeek/pcapng-multi-interface.pcapng',
    'tcpdump/time_2106_overflow.pcapng',
    'zeek/http/zeek-image-1080-80-x.pcapng',
  ];
  for (const f of files) {
    it(`${f}: 1-byte and 7-byte pushes give the same records as one push`, () => {
      const buf = readFileSync(corpusFile(f));
      const whole = parseBuffer(buf).recs;
      expect(whole.length).toBeGreaterThan(0);
      expect(parseBuffer(buf, 1).recs).toEqual(whole);
      expect(parseBuffer(buf, 7).recs).toEqual(whole);
      expect(parseBuffer(buf, 4093).recs).toEqual(whole);
    });
  }

  it('records inside a chunk are zero-copy views of that chunk', () => {
    const buf = readFileSync(corpusFile('tcpdump/print-flags.pcap'));
    const views: boolean[] = [];
    const p = new CaptureParser((r) => views.push(r.data.buffer === buf.buffer), new Anomalies());
    p.push(buf);
    p.end();
    expect(views.length).toBe(10);
    expect(views.every(Boolean)).toBe(true);
  });
});

describe.runIf(haveCorpus)('gzip', () => {
  it('a gzipped pcap reads the same as the plain file and says compressed', async () => {
    const src = corpusFile('zeek/http/get.pcap');
    const gz = path.join(tmp, 'get.pcap.gz');
    writeFileSync(gz, gzipSync(readFileSync(src)));
    const plain = await readAll(src);
    const packed = await readAll(gz);
    expect(packed.res.compressed).toBe(true);
    expect(packed.recs).toEqual(plain.recs);
    expect(packed.res.bytesRead).toBe(readFileSync(gz).length);
  });

  it('detects gzip by magic, not by name (a gzipped pcapng named .pcapng)', async () => {
    const src = corpusFile('zeek/pcapng-multi-interface.pcapng');
    const gz = path.join(tmp, 'looks-plain.pcapng');
    writeFileSync(gz, gzipSync(readFileSync(src)));
    const r = await readAll(gz);
    expect(r.res).toMatchObject({ compressed: true, format: 'pcapng', packets: 6 });
  });

  it('concatenated gzip members (RFC 1952 section 2.2) read as one stream', async () => {
    const buf = readFileSync(corpusFile('tcpdump/print-flags.pcap'));
    const gz = path.join(tmp, 'members.pcap.gz');
    writeFileSync(gz, Buffer.concat([gzipSync(buf.subarray(0, 500)), gzipSync(buf.subarray(500))]));
    const r = await readAll(gz);
    expect(r.res.packets).toBe(10);
    expect(r.anomalies.toJSON()).toEqual({});
  });

  it('a gzip file cut short keeps the packets before the cut', async () => {
    const buf = readFileSync(corpusFile('zeek/http/get.pcap'));
    const gzBuf = gzipSync(buf);
    const gz = path.join(tmp, 'cut.pcap.gz');
    writeFileSync(gz, gzBuf.subarray(0, Math.floor(gzBuf.length / 2)));
    const r = await readAll(gz);
    expect(r.res.compressed).toBe(true);
    expect(r.res.packets).toBeGreaterThan(0);
    expect(r.res.packets).toBeLessThan(14);
    expect(r.anomalies.get('gzip-truncated')).toBe(1);
  });

  it('gzip of something that is not a capture is a UserError', async () => {
    const gz = path.join(tmp, 'readme.gz');
    writeFileSync(gz, gzipSync(Buffer.from('<!DOCTYPE html><html></html>\n')));
    await expect(readAll(gz)).rejects.toThrow(UserError);
    await expect(readAll(gz)).rejects.toThrow(/not a pcap or pcapng capture \(it starts with bytes 3c 21 44 4f\)/);
  });
});

describe('user errors', () => {
  it('missing file', async () => {
    const p = path.join(tmp, 'nope.pcap');
    await expect(readAll(p)).rejects.toThrow(new UserError(`cannot read ${p}: no such file.`));
  });

  it('a directory', async () => {
    await expect(readAll(tmp)).rejects.toThrow(/is a directory/);
  });

  it('an empty file', async () => {
    const p = path.join(tmp, 'empty.bin');
    writeFileSync(p, '');
    await expect(readAll(p)).rejects.toThrow(UserError);
    await expect(readAll(p)).rejects.toThrow(/is empty/);
  });

  it('a text file names its first bytes', async () => {
    const p = path.join(tmp, 'page.html');
    writeFileSync(p, '<!DOCTYPE html>\n');
    await expect(readAll(p)).rejects.toThrow(
      `${p} is not a pcap or pcapng capture (it starts with bytes 3c 21 44 4f)`,
    );
  });

  it.runIf(haveCorpus)('a pcap cut inside its file header', async () => {
    const p = path.join(tmp, 'cut-header.pcap');
    writeFileSync(p, readFileSync(corpusFile('tcpdump/print-flags.pcap')).subarray(0, 10));
    await expect(readAll(p)).rejects.toThrow(/cut inside its pcap file header \(10 of 24 bytes\)/);
  });

  it.runIf(haveCorpus)('a pcapng cut inside its section header block', async () => {
    const p = path.join(tmp, 'cut-shb.pcapng');
    writeFileSync(p, readFileSync(corpusFile('tcpdump/empty.pcapng')).subarray(0, 20));
    await expect(readAll(p)).rejects.toThrow(/cut inside its pcapng section header/);
  });
});

describe.runIf(haveCorpus)('damage after the header', () => {
  it('an absurd caplen stops reading with pcap-bad-caplen, keeping earlier packets', () => {
    const buf = Buffer.from(readFileSync(corpusFile('tcpdump/print-flags.pcap')));
    // Second record header: after the 24-byte file header and record 1.
    const cap1 = buf.readUInt32LE(24 + 8);
    const rec2 = 24 + 16 + cap1;
    buf.writeUInt32LE(0x7fffffff, rec2 + 8);
    const an = new Anomalies();
    const { recs, parser } = parseBuffer(buf, 0, an);
    expect(recs.length).toBe(1);
    expect(parser.stopped).toBe(true);
    expect(an.toJSON()).toEqual({ 'pcap-bad-caplen': 1 });
  });

  it('a file cut inside a record counts truncated-record', async () => {
    const buf = readFileSync(corpusFile('tcpdump/print-flags.pcap'));
    const p = path.join(tmp, 'cut-record.pcap');
    writeFileSync(p, buf.subarray(0, buf.length - 5));
    const r = await readAll(p);
    expect(r.res.packets).toBe(9);
    expect(r.anomalies.toJSON()).toEqual({ 'truncated-record': 1 });
  });
});

describe.runIf(haveCorpus)('readCapture sources and options', () => {
  it('reads a Readable stream', async () => {
    const r = await readAll(createReadStream(corpusFile('tcpdump/pptp.pcap'), { highWaterMark: 100 }));
    expect(r.res.packets).toBe(23);
  });

  it('reports progress up to the file size', async () => {
    const f = corpusFile('zeek/http/methods.pcap');
    const size = readFileSync(f).length;
    const seen: [number, number | null][] = [];
    await readCapture(f, () => {}, { anomalies: new Anomalies(), onProgress: (a, b) => seen.push([a, b]) });
    expect(seen.length).toBeGreaterThan(0);
    expect(seen[seen.length - 1]).toEqual([size, size]);
  });

  it('stops early on abort and resolves with what it read', async () => {
    const buf = readFileSync(corpusFile('zeek/http/methods.pcap'));
    async function* slow(): AsyncGenerator<Buffer> {
      for (let i = 0; i < buf.length; i += 512) {
        await new Promise((r) => setImmediate(r));
        yield buf.subarray(i, i + 512);
      }
    }
    const ac = new AbortController();
    const an = new Anomalies();
    let n = 0;
    const res = await readCapture(
      Readable.from(slow()),
      () => {
        if (++n === 5) ac.abort();
      },
      { anomalies: an, signal: ac.signal },
    );
    expect(res.packets).toBeGreaterThanOrEqual(5);
    expect(res.packets).toBeLessThan(655);
    expect(an.toJSON()).toEqual({});
  });
});

describe.runIf(haveCorpus)('PcapWriter', () => {
  it('round-trips a capture (and tshark reads the copy the same)', async () => {
    const src = corpusFile('zeek/http/get.pcap');
    const out = path.join(tmp, 'copy.pcap');
    const w = new PcapWriter(out, 1);
    const orig = await readAll(src);
    await readCapture(src, (r) => w.write(r), { anomalies: new Anomalies() });
    // Valid before close(): the writes are synchronous and unbuffered.
    const before = await readAll(out);
    expect(before.recs).toEqual(orig.recs);
    w.close();
    if (haveTshark) {
      const t = tsharkFields(out, ['frame.time_epoch', 'frame.len']);
      expect(t.map((x) => epochToMicros(x[0]!))).toEqual(orig.recs.map((r) => r.ts));
    }
  });

  it('nanosecond magic and snaplen cut', async () => {
    const src = corpusFile('tcpdump/print-flags.pcap');
    const out = path.join(tmp, 'nano.pcap');
    const w = new PcapWriter(out, 1, { snaplen: 60, nanosecond: true });
    const orig = await readAll(src);
    await readCapture(src, (r) => w.write(r), { anomalies: new Anomalies() });
    w.close();
    const back = await readAll(out);
    expect(back.recs.map((r) => r.ts)).toEqual(orig.recs.map((r) => r.ts));
    expect(back.recs.map((r) => r.origLen)).toEqual(orig.recs.map((r) => r.origLen));
    expect(back.recs.every((r) => r.hex.length <= 120)).toBe(true);
    expect(readFileSync(out).readUInt32LE(0)).toBe(0xa1b23c4d);
  });

  it('skips records of another link type', () => {
    const out = path.join(tmp, 'mixed.pcap');
    const w = new PcapWriter(out, 1);
    w.write({ ts: 1, linkType: 113, data: Buffer.alloc(20), origLen: 20, interfaceId: 0, frame: 1 });
    w.close();
    expect(w.skipped).toBe(1);
    expect(readFileSync(out).length).toBe(24);
  });

  it('an unwritable path is a UserError', () => {
    expect(() => new PcapWriter(path.join(tmp, 'no/such/dir/x.pcap'), 1)).toThrow(UserError);
  });
});

describe('fixtures made on this machine', () => {
  it('multi-linktype pcapng: per-interface link types', async () => {
    const { recs, res } = await readAll(path.join(FIXTURES, 'multi-linktype-loopback.pcapng'));
    expect(res.linkTypes).toEqual([1, 113]);
    expect(recs.length).toBe(20);
    for (const r of recs) expect(r.linkType).toBe(r.interfaceId === 0 ? 1 : 113);
    if (haveTshark) {
      const t = tsharkFields(path.join(FIXTURES, 'multi-linktype-loopback.pcapng'), [
        'frame.time_epoch',
        'frame.interface_id',
      ]);
      expect(recs.map((r) => [r.ts, r.interfaceId])).toEqual(t.map((x) => [epochToMicros(x[0]!), Number(x[1])]));
    }
  });
});
