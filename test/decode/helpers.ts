/**
 * Decode-test helpers: decode a whole capture into plain copies of the
 * segments, and compare them frame by frame with tshark.
 */
import { expect } from 'vitest';
import { readCapture } from '../../lib/capture/index.js';
import { Decoder } from '../../lib/decode/index.js';
import { Anomalies, TCP_ACK, TCP_RST, type TcpSegment } from '../../lib/types.js';
import { tsharkFields } from '../capture/helpers.js';

export interface Seg {
  frame: number;
  ipVersion: number;
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  flags: number;
  seq: number;
  ack: number;
  window: number;
  payloadLen: number;
  payloadHex: string;
  mss: number;
  wscale: number;
  tsval: number;
  tsecr: number;
  sack: boolean;
}

function copySeg(s: TcpSegment): Seg {
  return {
    frame: s.frame,
    ipVersion: s.ipVersion,
    src: s.src,
    dst: s.dst,
    srcPort: s.srcPort,
    dstPort: s.dstPort,
    flags: s.flags,
    seq: s.seq,
    ack: s.ack,
    window: s.window,
    payloadLen: s.payloadLen,
    payloadHex: s.payload.toString('hex'),
    mss: s.mss,
    wscale: s.wscale,
    tsval: s.tsval,
    tsecr: s.tsecr,
    sack: s.sack,
  };
}

export async function decodeFile(file: string) {
  const anomalies = new Anomalies();
  const dec = new Decoder(anomalies);
  const segs = new Map<number, Seg>();
  let frames = 0;
  const sizes = new Map<number, number>();
  await readCapture(
    file,
    (rec) => {
      frames++;
      sizes.set(rec.frame, rec.data.length);
      const s = dec.decode(rec);
      if (s) segs.set(s.frame, copySeg(s));
    },
    { anomalies },
  );
  return { segs, frames, anomalies, nonTcp: dec.nonTcp, sizes };
}

const FIELDS = [
  'frame.number',
  'ip.src',
  'ipv6.src',
  'ip.dst',
  'ipv6.dst',
  'tcp.srcport',
  'tcp.dstport',
  'tcp.flags',
  'tcp.seq_raw',
  'tcp.ack_raw',
  'tcp.window_size_value',
  'tcp.len',
  'tcp.options.mss_val',
  'tcp.options.wscale.shift',
  'tcp.options.timestamp.tsval',
  'tcp.options.timestamp.tsecr',
  'tcp.options.sack_le',
  'tcp.payload',
];

/** Compares one capture with tshark, frame by frame. */
export async function compareWithTshark(file: string): Promise<{ tcpFrames: number }> {
  const { segs, frames } = await decodeFile(file);
  const rows = tsharkFields(file, FIELDS);
  expect(rows.length).toBe(frames);
  let tcpFrames = 0;
  for (const c of rows) {
    const frame = Number(c[0]);
    const ours = segs.get(frame);
    if (c[7] === '' || c[8] === '') {
      // tshark found no (complete) TCP header here: we must not invent one.
      expect(ours, `frame ${frame}: tshark has no TCP header`).toBeUndefined();
      continue;
    }
    tcpFrames++;
    expect(ours, `frame ${frame}: tshark decodes TCP`).toBeDefined();
    const s = ours!;
    const v6 = c[2] !== '';
    const flags = parseInt(c[7]!, 16) & 0xff;
    const expected = {
      frame,
      ipVersion: v6 ? 6 : 4,
      src: v6 ? c[2] : c[1],
      dst: v6 ? c[4] : c[3],
      srcPort: Number(c[5]),
      dstPort: Number(c[6]),
      flags,
      seq: Number(c[8]),
      ack: flags & TCP_ACK ? Number(c[9]) : s.ack,
      window: Number(c[10]),
      payloadLen: Number(c[11]),
      mss: c[12] ? Number(c[12]) : -1,
      wscale: c[13] ? Math.min(14, Number(c[13])) : -1,
      tsval: c[14] ? Number(c[14]) : -1,
      tsecr: c[15] ? Number(c[15]) : -1,
      sack: c[16] !== '',
    };
    const { payloadHex, ...rest } = s;
    expect(rest, `frame ${frame}`).toEqual(expected);
    // tshark shows the captured part of the payload in tcp.payload, except
    // on a RST, whose data it dissects as the reset cause instead.
    if (flags & TCP_RST) expect(payloadHex.length / 2).toBeLessThanOrEqual(s.payloadLen);
    else expect(payloadHex, `frame ${frame} payload`).toBe((c[17] ?? '').replace(/:/g, ''));
  }
  return { tcpFrames };
}

