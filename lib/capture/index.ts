/**
 * Capture stage: pcap / pcapng / gzip bytes -> PacketRecord.
 *
 * Contract for every consumer: the PacketRecord handed to onPacket is one
 * object reused for every record, and `data` views the reader's chunk. Both
 * are valid only during the callback; copy what you keep.
 */
export { CaptureParser, type CaptureFormat } from './parser.js';
export { readCapture, type ReadCaptureOptions, type ReadCaptureResult } from './read.js';
export { PcapWriteError, PcapWriter, type PcapWriterOptions } from './writer.js';
