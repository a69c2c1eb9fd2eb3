/**
 * lib/decode against tshark: for every frame tshark dissects as TCP, our
 * segment must carry the same addresses, ports, flags, raw seq/ack, window,
 * TCP payload length, options and payload bytes. Frames tshark does not see
 * as TCP must come back null. Runs on the whole DEV corpus plus the fixtures
 * made on this machine; the committed *.tshark-tcp.tsv truth is checked even
 * without tshark.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { linkTypeName } from '../../lib/decode/index.js';
import { corpusFile, FIXTURES, manifest, need, tsharkFields } from '../capture/helpers.js';
import { compareWithTshark, decodeFile } from './helpers.js';

const haveCorpus = need('corpus', 'decode');
const haveTshark = need('tshark', 'decode vs tshark');

/** The link types and layouts the decoder must handle, one real capture each. */
const LINK_CASES: [string, number][] = [
  ['zeek/http/get.pcap', 1],
  ['zeek/http-vlan-0.pcap', 1],
  ['zeek/http-qinq-0.pcap', 1],
  ['zeek/tls/irc-starttls.pcap', 113],
  ['tcpdump/mptcp-tcprst.pcap', 101],
  ['zeek/http/261/variant-04-te_cl_desync.pcap', 228],
  ['tcpdump/tcp_rst_diag_payload.pcap', 0],
  ['zeek/http/connect-with-header.pcap', 0],
  ['zeek/ftp/ipv6.pcap', 1],
  ['zeek/tcp-http-with-padding.pcap', 1],
  ['zeek/tcp/truncated-header.pcap', 1],
  ['tcpdump/tcp_header_heapoverflow.pcap', 1],
];

describe.runIf(haveCorpus && haveTshark)('decode matches tshark on each link type', () => {
  for (const [f, lt] of LINK_CASES) {
    it(`${f} (${linkTypeName(lt)})`, async () => {
      await compareWithTshark(corpusFile(f));
    });
  }
  it('LINUX_SLL2 with TCP over IPv4 and IPv6 (fixture from tcpdump -i any)', async () => {
    const r = await compareWithTshark(path.join(FIXTURES, 'linux-sll2-loopback-http.pcap'));
    expect(r.tcpFrames).toBe(20);
    const { segs } = await decodeFile(path.join(FIXTURES, 'linux-sll2-loopback-http.pcap'));
    expect(new Set([...segs.values()].map((s) => s.ipVersion))).toEqual(new Set([4, 6]));
  });
  it('pcapng with EN10MB and LINUX_SLL interfaces (fixture from dumpcap -i lo -i any)', async () => {
    const r = await compareWithTshark(path.join(FIXTURES, 'multi-linktype-loopback.pcapng'));
    expect(r.tcpFrames).toBe(20);
  });
});

describe.runIf(haveCorpus && haveTshark)('decode matches tshark on every DEV corpus capture', () => {
  const done = new Set(LINK_CASES.map((c) => c[0]));
  for (const row of haveCorpus ? manifest() : []) {
    if (done.has(row.file)) continue;
    it(row.file, async () => {
      await compareWithTshark(corpusFile(row.file));
    });
  }
});

describe.runIf(haveCorpus)('committed tshark truth (no tshark needed)', () => {
  // *.tshark-tcp.tsv: every FIN or RST segment, see the corpus README.
  for (const row of haveCorpus ? manifest() : []) {
    const stem = row.file.replace(/\.pcap(ng)?$/, '');
    it(`${row.file}: FIN/RST segments`, async () => {
      const text = readFileSync(corpusFile(`${stem}.tshark-tcp.tsv`), 'utf8');
      const lines = text.split('\n').filter((l) => l !== '');
      const head = lines[0]!.split('\t');
      const col = (n: string): number => head.indexOf(n);
      const { segs } = await decodeFile(corpusFile(row.file));
      for (const l of lines.slice(1)) {
        const c = l.split('\t');
        const frame = Number(c[col('frame.number')]);
        const s = segs.get(frame);
        expect(s, `frame ${frame}`).toBeDefined();
        const src = c[col('ip.src')] || c[col('ipv6.src')];
        const dst = c[col('ip.dst')] || c[col('ipv6.dst')];
        expect([s!.src, s!.srcPort, s!.dst, s!.dstPort]).toEqual([
          src,
          Number(c[col('tcp.srcport')]),
          dst,
          Number(c[col('tcp.dstport')]),
        ]);
        expect([s!.flags & 2 ? 1 : 0, s!.flags & 0x10 ? 1 : 0, s!.flags & 1 ? 1 : 0, s!.flags & 4 ? 1 : 0]).toEqual([
          Number(c[col('tcp.flags.syn')]),
          Number(c[col('tcp.flags.ack')]),
          Number(c[col('tcp.flags.fin')]),
          Number(c[col('tcp.flags.reset')]),
        ]);
        expect(s!.seq).toBe(Number(c[col('tcp.seq_raw')]));
        expect(s!.payloadLen).toBe(Number(c[col('tcp.len')]));
      }
    });
  }
});

describe.runIf(haveCorpus)('damage and non-TCP accounting', () => {
  it('Ethernet padding is not payload (zeek/tcp-http-with-padding.pcap)', async () => {
    const { segs, sizes } = await decodeFile(corpusFile('zeek/tcp-http-with-padding.pcap'));
    let padded = 0;
    for (const s of segs.values()) {
      expect(s.payloadHex.length / 2).toBe(s.payloadLen);
      // 14 Ethernet + 20 IP + TCP header + payload < frame: the rest is padding
      if (s.payloadLen === 1 && sizes.get(s.frame)! >= 60) padded++;
    }
    expect(padded).toBeGreaterThan(0);
  });

  it('snaplen cutting the TCP options keeps the SYN (zeek/tcp/truncated-header.pcap)', async () => {
    const { segs, anomalies } = await decodeFile(corpusFile('zeek/tcp/truncated-header.pcap'));
    expect(segs.get(1)!.flags & 0x02).toBe(2);
    expect(anomalies.toJSON()).toEqual({ 'truncated-tcp-options': 1 });
  });

  it('snaplen cutting inside the fixed TCP header drops the packet (tcpdump/tcp_header_heapoverflow.pcap)', async () => {
    const r = await decodeFile(corpusFile('tcpdump/tcp_header_heapoverflow.pcap'));
    expect(r.segs.size).toBe(0);
    expect(r.anomalies.toJSON()).toEqual({ 'truncated-tcp-header': 1 });
  });

  it('unsupported link type is counted, not fatal (tcpdump/unsupported-link-type-160.pcap)', async () => {
    const r = await decodeFile(corpusFile('tcpdump/unsupported-link-type-160.pcap'));
    expect(r.anomalies.toJSON()).toEqual({ 'unsupported-link-type': 1 });
    expect(linkTypeName(160)).toBe('LINKTYPE_160');
  });

  it('IPv4 header cut short (zeek/trunc/ip4-trunc.pcap) and Ethernet header cut short (zeek/trunc/trunc-hdr.pcap)', async () => {
    expect((await decodeFile(corpusFile('zeek/trunc/ip4-trunc.pcap'))).anomalies.toJSON()).toEqual({
      'truncated-ip-header': 1,
    });
    expect((await decodeFile(corpusFile('zeek/trunc/trunc-hdr.pcap'))).anomalies.toJSON()).toEqual({
      'truncated-link-header': 1,
    });
  });

  it('LINUX_SLL2 without TCP: all non-TCP (zeek/linux_dlt_sll2.pcap)', async () => {
    const r = await decodeFile(corpusFile('zeek/linux_dlt_sll2.pcap'));
    expect(r.segs.size).toBe(0);
    expect(r.nonTcp).toBe(6);
    expect(r.anomalies.toJSON()).toEqual({});
  });

  it.runIf(haveTshark)('nonTcp counts exactly the frames tshark shows without TCP', async () => {
    for (const f of ['zeek/wikipedia.pcap', 'zeek/http/cooper-grill-dvwa.pcapng', 'tcpdump/pptp.pcap', 'zeek/pcapng-multi-interface.pcapng']) {
      const r = await decodeFile(corpusFile(f));
      const notTcp = tsharkFields(corpusFile(f), ['frame.number'], 'not tcp').length;
      expect(r.nonTcp, f).toBe(notTcp);
      expect(r.segs.size + r.nonTcp, f).toBe(r.frames);
    }
  });
});
