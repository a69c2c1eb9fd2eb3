/**
 * Readers for the truth files copied beside the segment fixtures
 * (test/fixtures/http/README.md): tshark's http rows and Zeek's http.log.
 */

import { existsSync, readFileSync } from 'node:fs';
import { epochToMicros } from './replay.js';

export interface TsharkHttpRow {
  frame: number;
  ts: number;
  stream: number;
  srcPort: number;
  method: string;
  uri: string;
  version: string;
  requestNumber: number | null;
  code: number | null;
  responseNumber: number | null;
  requestIn: number | null;
}

const num = (s: string | undefined): number | null => (s === undefined || s === '' ? null : Number(s.split(',')[0]));

export function loadTsharkHttp(file: string): TsharkHttpRow[] {
  const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
  const head = lines[0]!.split('\t');
  const col = (name: string): number => head.indexOf(name);
  return lines.slice(1).map((l) => {
    const c = l.split('\t');
    return {
      frame: Number(c[col('frame.number')]),
      ts: epochToMicros(c[col('frame.time_epoch')]!),
      stream: Number(c[col('tcp.stream')]),
      srcPort: Number(c[col('tcp.srcport')]),
      method: c[col('http.request.method')] ?? '',
      uri: c[col('http.request.uri')] ?? '',
      version: c[col('http.request.version')] ?? '',
      requestNumber: num(c[col('http.request_number')]),
      code: num(c[col('http.response.code')]),
      responseNumber: num(c[col('http.response_number')]),
      requestIn: num(c[col('http.request_in')]),
    };
  });
}

export interface ZeekHttpRow {
  origPort: number;
  transDepth: number;
  method: string;
  uri: string;
  version: string;
  requestBodyLen: number;
  responseBodyLen: number;
  status: string;
}

/** Zeek http.log (btest baseline, `#fields` header) or an uncut-columns copy; null when absent. */
export function loadZeekHttp(file: string): ZeekHttpRow[] | null {
  if (!existsSync(file)) return null;
  const lines = readFileSync(file, 'utf8').split('\n');
  let head: string[] | null = null;
  const rows: ZeekHttpRow[] = [];
  for (const l of lines) {
    if (l.startsWith('#fields\t')) {
      head = l.split('\t').slice(1);
      continue;
    }
    if (l === '' || l.startsWith('#')) continue;
    if (!head) {
      if (l.includes('trans_depth')) head = l.split('\t');
      continue;
    }
    const c = l.split('\t');
    const get = (n: string): string => c[head!.indexOf(n)]!;
    rows.push({
      origPort: Number(get('id.orig_p')),
      transDepth: Number(get('trans_depth')),
      method: get('method'),
      uri: get('uri'),
      version: get('version'),
      requestBodyLen: Number(get('request_body_len')),
      responseBodyLen: Number(get('response_body_len')),
      status: get('status_code'),
    });
  }
  return rows;
}

/**
 * Zeek logs the URI percent-decoded, with bytes outside printable ASCII as
 * \xNN and an empty one as "(empty)". Turn a raw target into that form.
 */
export function zeekUri(target: string): string {
  if (target === '') return '(empty)';
  const bytes = Buffer.from(target, 'latin1');
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b === 0x25 && i + 2 < bytes.length && /^[0-9a-fA-F]{2}$/.test(bytes.toString('latin1', i + 1, i + 3))) {
      out.push(parseInt(bytes.toString('latin1', i + 1, i + 3), 16));
      i += 2;
    } else out.push(b);
  }
  let s = '';
  for (const b of out) s += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '\\x' + b.toString(16).padStart(2, '0');
  return s;
}
