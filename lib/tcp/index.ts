/** TCP connection tracking: per-4-tuple connections, in-order bytes per direction, FIN/RST close events. */
export { TcpTracker, type TrackerOptions, type PayloadKind } from './tracker.js';
export { Connection, HalfStream, type StreamHandler, type Orientation, type CloseReason } from './connection.js';
export { seqAdd, seqAfter, seqDiff } from './seq.js';
