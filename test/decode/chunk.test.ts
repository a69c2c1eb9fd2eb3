/**
 * The file reader hands the decoder its chunk and where a frame is in it
 * (ChunkRecord), not a view per frame. Decoding that way must give what
 * decoding a plain record holding a copy of the frame gives: for every packet
 * of every corpus capture, the same segment field by field, the same
 * payload bytes and the same anomaly counts.
 */
import { describe, expect, it } from 'vitest';
import { readCapture } from '../../lib/capture/index.js';
import { ChunkRecord } from '../../lib/capture/parser.js';
import { Decoder } from '../../lib/decode/index.js';
import { Anomalies, type PacketRecord, type TcpSegment } from '../../lib/types.js';
import { corpusFile, manifest, need } from '../capture/helpers.js';

const haveCorpus = need('corpus', 'chunk-record decoding');

/** The segment's fields, with the payload's bytes (the decoder reuses its segment object). */
function snapshot(s: TcpSegment | null): Record<string, unknown> | null {
  if (s === null) return null;
  return { ...s, payload: Buffer.from(s.payload).toString('hex') };
}

describe.runIf(haveCorpus)('decoding from the reader chunk', () => {
  it('gives the same segments as decoding a copy of each frame, on every corpus capture', async () => {
    let frames = 0;
    let withPayload = 0;
    let chunkRecords = 0;
    let pcapngFiles = 0;
    for (const row of manifest()) {
      const fromChunk = new Anomalies();
      const fromCopy = new Anomalies();
      const a = new Decoder(fromChunk);
      const b = new Decoder(fromCopy);
      const info = await readCapture(
        corpusFile(row.file),
        (rec) => {
          // A frame read in place: a ChunkRecord whose buffer is the chunk, not the frame alone.
          if (rec instanceof ChunkRecord && rec.buf.length > rec.len) chunkRecords++;
          const copy: PacketRecord = { ts: rec.ts, linkType: rec.linkType, data: Buffer.from(rec.data), origLen: rec.origLen, interfaceId: rec.interfaceId, frame: rec.frame };
          const x = snapshot(a.decode(rec));
          const y = snapshot(b.decode(copy));
          expect(x, `${row.file} frame ${rec.frame}`).toEqual(y);
          frames++;
          if (x !== null && (x.payload as string).length > 0) withPayload++;
        },
        { anomalies: new Anomalies() },
      );
      expect(fromChunk.toJSON(), row.file).toEqual(fromCopy.toJSON());
      if (info.format === 'pcapng') pcapngFiles++;
    }
    // pcap records and pcapng packet blocks are all read in place (the corpus has both formats).
    expect(pcapngFiles).toBeGreaterThan(0);
    expect(withPayload).toBeGreaterThan(1000);
    expect(chunkRecords).toBe(frames);
  });
});
