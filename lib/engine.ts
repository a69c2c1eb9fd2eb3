/**
 * The engine: one pipeline for files and live sources.
 *   PacketRecord -> Decoder -> Correlator (TCP tracker + HTTP parser) -> Diagnoser -> listeners
 * Sources push records with packet(); finish() flushes open connections and
 * runs the capture-wide rules.
 */
import { ChunkRecord } from './capture/parser.js';
import { Correlator, type ConnectionRecord } from './correlate/index.js';
import { Decoder } from './decode/index.js';
import { Diagnoser, type Finding } from './diagnose/index.js';
import type { Connection } from './tcp/index.js';
import { Anomalies, type Exchange, type Micros, type PacketRecord } from './types.js';

export interface EngineOptions {
  /** Only connections whose server port is this (null: every TCP connection). */
  port?: number | null;
  showSecrets?: boolean;
  /** Time to first response byte above which `slow-first-byte` is reported (µs, default 5 s). */
  slowFirstByte?: Micros;
  onConnection?: (rec: ConnectionRecord) => void;
  onFinding?: (f: Finding) => void;
  onOpen?: (conn: Connection) => void;
  onExchange?: (conn: Connection, ex: Exchange) => void;
  maxConnections?: number;
  maxBufferedBytes?: number;
}

export class Engine {
  readonly anomalies = new Anomalies();
  readonly decoder: Decoder;
  readonly correlator: Correlator;
  readonly diagnoser: Diagnoser;
  packets = 0;
  bytes = 0;
  // Times of the first and the last packet, NaN before the first: a field that
  // starts as null cannot hold a double in place, and every packet stores one
  // (a new heap number each, 20 MB of garbage per GB of capture).
  private _firstTs = NaN;
  private _lastTs = NaN;
  connections = 0;
  private finished = false;

  constructor(private readonly o: EngineOptions = {}) {
    this.decoder = new Decoder(this.anomalies);
    this.diagnoser = new Diagnoser({
      ...(o.slowFirstByte !== undefined ? { slowFirstByte: o.slowFirstByte } : {}),
      showSecrets: o.showSecrets === true,
    });
    this.correlator = new Correlator({
      anomalies: this.anomalies,
      port: o.port ?? null,
      ...(o.maxConnections !== undefined ? { maxConnections: o.maxConnections } : {}),
      ...(o.maxBufferedBytes !== undefined ? { maxBufferedBytes: o.maxBufferedBytes } : {}),
      ...(o.onOpen !== undefined ? { onOpen: o.onOpen } : {}),
      ...(o.onExchange !== undefined ? { onExchange: o.onExchange } : {}),
      onConnection: (rec) => this.connection(rec),
    });
  }

  /** Feed one captured frame. The record and its data may be reused by the source after this returns. */
  packet(rec: PacketRecord): void {
    this.packets++;
    this.bytes += rec instanceof ChunkRecord ? rec.len : rec.data.length;
    if (this._firstTs !== this._firstTs) this._firstTs = rec.ts;
    this._lastTs = rec.ts;
    const seg = this.decoder.decode(rec);
    if (seg !== null) this.correlator.segment(seg);
  }

  /**
   * Live sources: let time pass without packets (call about once a second with
   * the current time), so closed connections are finished and reported even
   * when traffic stops.
   */
  tick(now: Micros): void {
    this.diagnoser.setClock(now);
    if (this.lastTs === null || now > this.lastTs) this.correlator.tracker.sweep(now);
  }

  /** End of input: finish open connections, run capture-wide rules. Idempotent. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.lastTs !== null) this.diagnoser.setClock(this.lastTs);
    this.correlator.flush();
    for (const f of this.diagnoser.finish()) this.o.onFinding?.(f);
  }

  /** Time of the first packet, null before it. */
  get firstTs(): Micros | null {
    return this._firstTs === this._firstTs ? this._firstTs : null;
  }

  /** Time of the last packet, null before the first. */
  get lastTs(): Micros | null {
    return this._lastTs === this._lastTs ? this._lastTs : null;
  }

  get exchanges(): number {
    return this.correlator.exchanges;
  }

  get openConnections(): number {
    return this.correlator.tracker.open;
  }

  private connection(rec: ConnectionRecord): void {
    this.connections++;
    this.o.onConnection?.(rec);
    for (const f of this.diagnoser.connection(rec)) this.o.onFinding?.(f);
  }
}
