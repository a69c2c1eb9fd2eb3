/**
 * Layouts the corpus has no capture for (PPPoE, MPLS, stacked tags, IPv4
 * options, IPv6 extension headers, fragments, LOOP, raw IP link types).
 * Each case re-wraps real packets from corpus captures, writes a pcap with
 * PcapWriter, and compares our decoding with tshark's reading of that file.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PcapWriter, readCapture } from '../../lib/capture/index.js';
import { Anomalies, type PacketRecord } from '../../lib/types.js';
import { corpusFile, need } from '../capture/helpers.js';
import { compareWithTshark, decodeFile } from './helpers.js';

const haveCorpus = need('corpus', 'decode layouts');
const haveTshark = need('tshark', 'decode layouts vs tshark');
const tmp = mkdtempSync(path.join(tmpdir(), 'hangscope-layouts-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Pkt {
  ts: number;
  linkType: number;
  data: Buffer;
}

async function packets(rel: string): Promise<Pkt[]> {
  const out: Pkt[] = [];
  await readCapture(corpusFile(rel), (r) => out.push({ ts: r.ts, linkType: r.linkType, data: Buffer.from(r.data) }), {
    anomalies: new Anomalies(),
  });
  return out;
}

function writePcap(name: string, linkType: number, pkts: { ts: number; data: Buffer }[]): string {
  const f = path.join(tmp, name);
  const w = new PcapWriter(f, linkType);
  let frame = 0;
  for (const p of pkts) {
    const rec: PacketRecord = { ts: p.ts, linkType, data: p.data, origLen: p.data.length, interfaceId: 0, frame: ++frame };
    w.write(rec);
  }
  w.close();
  return f;
}

const mac = (d: Buffer): Buffer => d.subarray(0, 12);
const ipOf = (d: Buffer): Buffer => d.subarray(14);
const u16 = (v: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
};

/** IPv4 packet with `extra` bytes of options added (IHL and total length fixed up). */
function withIpv4Options(ip: Buffer, opts: Buffer): Buffer {
  const ihl = (ip[0]! & 0x0f) * 4;
  const out = Buffer.concat([ip.subarray(0, ihl), opts, ip.subarray(ihl)]);
  out[0] = 0x40 | ((ihl + opts.length) / 4);
  out.writeUInt16BE(ip.readUInt16BE(2) + opts.length, 2);
  return out;
}

/** IPv6 packet with extension headers inserted before the upper layer; `chain` lists header types in order. */
function withIpv6Ext(ip: Buffer, chain: { type: number; body: (next: number) => Buffer }[]): Buffer {
  let next = ip[6]!;
  const parts: Buffer[] = [];
  for (let i = chain.length - 1; i >= 0; i--) {
    parts.unshift(chain[i]!.body(next));
    next = chain[i]!.type;
  }
  const ext = Buffer.concat(parts);
  const out = Buffer.concat([ip.subarray(0, 40), ext, ip.subarray(40)]);
  out[6] = next;
  out.writeUInt16BE(ip.readUInt16BE(4) + ext.length, 4);
  return out;
}
const padOpts = (next: number): Buffer => Buffer.from([next, 0, 1, 4, 0, 0, 0, 0]); // PadN, 8 bytes
const fragHdr =
  (offset: number, more: boolean) =>
  (next: number): Buffer => {
    const b = Buffer.alloc(8);
    b[0] = next;
    b.writeUInt16BE((offset << 3) | (more ? 1 : 0), 2);
    b.writeUInt32BE(0x1234, 4);
    return b;
  };
const ahHdr = (next: number): Buffer => {
  // RFC 4302: next, payload len = (24 / 4) - 2, reserved, SPI, sequence, 12-byte ICV
  const b = Buffer.alloc(24);
  b[0] = next;
  b[1] = 4;
  b.writeUInt32BE(0x100, 4);
  b.writeUInt32BE(1, 8);
  return b;
};

describe.runIf(haveCorpus && haveTshark)('layouts rebuilt from real packets, compared with tshark', () => {
  it('PPPoE session (RFC 2516) over Ethernet', async () => {
    const src = await packets('zeek/http/get.pcap');
    const f = writePcap(
      'pppoe.pcap',
      1,
      src.map((p) => {
        const ip = ipOf(p.data).subarray(0, p.data.readUInt16BE(16));
        const ppp = Buffer.concat([u16(0x0021), ip]);
        const hdr = Buffer.concat([Buffer.from([0x11, 0x00]), u16(0x1234), u16(ppp.length)]);
        return { ts: p.ts, data: Buffer.concat([mac(p.data), u16(0x8864), hdr, ppp]) };
      }),
    );
    expect((await compareWithTshark(f)).tcpFrames).toBe(14);
  });

  it('MPLS label stack of two, then IPv4', async () => {
    const src = await packets('zeek/http/get.pcap');
    const labels = Buffer.from([0x00, 0x01, 0x00, 0x40, 0x00, 0x02, 0x01, 0x40]); // label 16, then 32 with BoS
    const f = writePcap(
      'mpls.pcap',
      1,
      src.map((p) => ({ ts: p.ts, data: Buffer.concat([mac(p.data), u16(0x8847), labels, ipOf(p.data)]) })),
    );
    expect((await compareWithTshark(f)).tcpFrames).toBe(14);
  });

  it('three stacked tags (802.1ad, 802.1Q, 802.1Q)', async () => {
    const src = await packets('zeek/ftp/ipv6.pcap');
    const tags = Buffer.from([0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x14, 0x81, 0x00, 0x00, 0x1e]);
    const f = writePcap(
      'tags.pcap',
      1,
      src.map((p) => ({ ts: p.ts, data: Buffer.concat([mac(p.data), tags, p.data.subarray(12)]) })),
    );
    await compareWithTshark(f);
  });

  it('IPv4 with options (NOP, NOP, NOP, EOL and a record-route)', async () => {
    const src = await packets('tcpdump/print-flags.pcap');
    const rr = Buffer.from([7, 11, 4, 10, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0]); // RR + NOPs + EOL pad
    const f = writePcap(
      'ipopts.pcap',
      1,
      src.map((p) => ({
        ts: p.ts,
        data: Buffer.concat([p.data.subarray(0, 14), withIpv4Options(ipOf(p.data), rr.subarray(0, 16))]),
      })),
    );
    expect((await compareWithTshark(f)).tcpFrames).toBe(10);
  });

  it('IPv4 fragments are skipped and counted (MF set, or a non-zero offset)', async () => {
    const src = await packets('tcpdump/print-flags.pcap');
    const f = writePcap(
      'ipfrag.pcap',
      1,
      src.map((p, i) => {
        const d = Buffer.from(p.data);
        if (i === 3) d.writeUInt16BE(0x2000, 20); // MF, offset 0 (a first fragment)
        if (i === 5) d.writeUInt16BE(0x0010, 20); // offset 16*8, last fragment
        return { ts: p.ts, data: d };
      }),
    );
    const r = await compareWithTshark(f);
    expect(r.tcpFrames).toBe(8);
    expect((await decodeFile(f)).anomalies.toJSON()).toEqual({ 'ip-fragment': 2 });
  });

  it('IPv6 hop-by-hop, destination options, atomic fragment and AH before TCP', async () => {
    const src = await packets('zeek/ftp/ipv6.pcap');
    const chain = [
      { type: 0, body: padOpts },
      { type: 60, body: padOpts },
      { type: 44, body: fragHdr(0, false) },
      { type: 51, body: ahHdr },
    ];
    const f = writePcap(
      'ip6ext.pcap',
      1,
      src.map((p) => ({ ts: p.ts, data: Buffer.concat([p.data.subarray(0, 14), withIpv6Ext(ipOf(p.data), chain)]) })),
    );
    const r = await compareWithTshark(f);
    expect(r.tcpFrames).toBe(src.length);
    expect((await decodeFile(f)).anomalies.toJSON()).toEqual({});
  });

  it('IPv6 fragments (M set, or a non-zero offset) are skipped and counted', async () => {
    const src = (await packets('zeek/ftp/ipv6.pcap')).slice(0, 10);
    const f = writePcap(
      'ip6frag.pcap',
      1,
      src.map((p, i) => {
        if (i !== 4 && i !== 6) return p;
        const chain = [{ type: 44, body: fragHdr(i === 4 ? 0 : 100, i === 4) }];
        return { ts: p.ts, data: Buffer.concat([p.data.subarray(0, 14), withIpv6Ext(ipOf(p.data), chain)]) };
      }),
    );
    const r = await compareWithTshark(f);
    expect(r.tcpFrames).toBe(8);
    expect((await decodeFile(f)).anomalies.toJSON()).toEqual({ 'ip-fragment': 2 });
  });

  it('LINKTYPE_LOOP (108): address family in network byte order', async () => {
    const src = await packets('tcpdump/tcp_rst_diag_payload.pcap'); // NULL, family 2 little-endian
    expect(src[0]!.data.readUInt32LE(0)).toBe(2);
    const f = writePcap(
      'loop.pcap',
      108,
      src.map((p) => {
        const d = Buffer.from(p.data);
        d.writeUInt32BE(2, 0);
        return { ts: p.ts, data: d };
      }),
    );
    expect((await compareWithTshark(f)).tcpFrames).toBe(1);
  });

  it('LINKTYPE_IPV6 (229): IPv6 without a link header', async () => {
    const src = await packets('zeek/ftp/ipv6.pcap');
    const f = writePcap('ipv6.pcap', 229, src.map((p) => ({ ts: p.ts, data: ipOf(p.data) })));
    expect((await compareWithTshark(f)).tcpFrames).toBe(src.length);
  });

  it('DLT_RAW written as link type 12', async () => {
    const src = await packets('tcpdump/mptcp-tcprst.pcap'); // LINKTYPE_RAW (101)
    const f = writePcap('raw12.pcap', 12, src);
    expect((await compareWithTshark(f)).tcpFrames).toBe(2);
  });

  it('IPv4 total length 0 (TCP segmentation offload seen on the sender) uses the frame length', async () => {
    const src = await packets('tcpdump/print-flags.pcap');
    const f = writePcap(
      'tso.pcap',
      1,
      src.map((p) => {
        const d = Buffer.from(p.data);
        d.writeUInt16BE(0, 16);
        return { ts: p.ts, data: d };
      }),
    );
    expect((await compareWithTshark(f)).tcpFrames).toBe(10);
  });
});
