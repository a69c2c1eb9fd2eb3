/**
 * Benchmark capture writer: a deterministic (seeded) pcap of realistic
 * HTTP/1.1 traffic, as large as asked.
 *
 * What it holds (Ethernet link type, as `tcpdump -i lo` and `-i eth0` write):
 *  - many connections, about 32 open at once, interleaved flight by flight;
 *    each carries 1 to ~1500 keep-alive exchanges (log-uniform), with idle
 *    time between them and server think time before responses;
 *  - two kinds of path, half the connections each:
 *      "lan": 10.1.x.y clients to 10.0.0.10:80, MSS 1448 (1500-byte MTU with
 *             the timestamp option), a separate ACK every second segment
 *             (delayed ACK, RFC 9293 section 3.8.6.3), rare retransmissions;
 *      "lo":  127.0.0.1 to 127.0.0.1:8000, MSS 65483 (loopback MTU 65536),
 *             64 KB segments, an ACK for each;
 *  - requests: GET (with query strings, some with Authorization / Cookie),
 *    HEAD, DELETE, POST and PUT with Content-Length or chunked bodies;
 *  - responses: Content-Length or chunked bodies (0 B to 1 MB, most small,
 *    about 3 KB on average), 204 / 304 without a body, 404 / 500;
 *  - ends: client FIN, server FIN (idle close), client RST, server RST in
 *    the middle of a response body, the keep-alive race (a request crossing
 *    the server's idle FIN, answered by RST), and connections still open
 *    when the capture ends.
 * Sequence and acknowledgement numbers, IP lengths, IP IDs and IPv4 header
 * checksums are correct; TCP checksums are left 0 (as offloaded checksums
 * look on the sending host; tshark and hangscope do not verify them).
 *
 * Ground truth comes back as counts (requests written, responses written
 * completely, connections, packets), for the benchmark and test/bench to
 * compare with what hangscope and tshark find.
 *
 * CLI: node bench/gen.js --size 256M [--seed N] [--out FILE]
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

/** "256M", "1G", "1.5G", "500K" or a number of bytes -> bytes (binary units). */
export function parseSize(s) {
  const m = /^(\d+(?:\.\d+)?)\s*([KMG]?)i?B?$/i.exec(String(s).trim());
  if (!m) throw new Error(`bad size "${s}" (try 256M, 1G)`);
  const mul = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2].toUpperCase()];
  return Math.round(Number(m[1]) * mul);
}

/** sfc32 (Chris Doty-Humphrey's small fast counter PRNG): deterministic, 32-bit state words. */
function prng(seed) {
  let a = 0x9e3779b9,
    b = 0x243f6a88,
    c = 0xb7e15162,
    d = seed >>> 0;
  const next = () => {
    a >>>= 0; b >>>= 0; c >>>= 0; d >>>= 0;
    let t = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    t = (t + d) | 0;
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 20; i++) next();
  return next;
}

const TCP_FIN = 0x01, TCP_SYN = 0x02, TCP_RST = 0x04, TCP_PSH = 0x08, TCP_ACK = 0x10;

const LAN = { name: 'lan', mss: 1448, ackEvery: 2, retransRate: 0.002 };
const LO = { name: 'lo', mss: 65483, ackEvery: 1, retransRate: 0 };

/** Buffered pcap output: one large write per 8 MiB. */
class PcapOut {
  constructor(path) {
    this.fd = openSync(path, 'w');
    this.buf = Buffer.allocUnsafe(8 << 20);
    this.pos = 0;
    this.bytes = 0;
    this.packets = 0;
    const h = this.buf;
    h.writeUInt32LE(0xa1b2c3d4, 0); // microsecond pcap, little-endian (draft-ietf-opsawg-pcap)
    h.writeUInt16LE(2, 4);
    h.writeUInt16LE(4, 6);
    h.writeUInt32LE(0, 8);
    h.writeUInt32LE(0, 12);
    h.writeUInt32LE(262144, 16);
    h.writeUInt32LE(1, 20); // LINKTYPE_ETHERNET
    this.pos = 24;
  }
  /** Room for one more record of at most `n` bytes. */
  reserve(n) {
    if (this.pos + n > this.buf.length) this.flush();
  }
  flush() {
    let off = 0;
    while (off < this.pos) off += writeSync(this.fd, this.buf, off, this.pos - off);
    this.bytes += this.pos;
    this.pos = 0;
  }
  close() {
    this.flush();
    closeSync(this.fd);
  }
  get size() {
    return this.bytes + this.pos;
  }
}

/** A fixed pseudo-random filler for bodies (printable, so nothing in it looks like a start line by accident). */
function makeFiller(rand) {
  const abc = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.:{}"';
  const b = Buffer.allocUnsafe(1 << 20);
  for (let i = 0; i < b.length; i++) b[i] = abc.charCodeAt(Math.floor(rand() * abc.length));
  return b;
}

const PATHS = ['/api/v1/users', '/api/v1/orders', '/files', '/search', '/static/app.js', '/health', '/exec', '/api/v2/items'];
const AGENTS = ['axios/1.8.4', 'node-fetch/1.0 (+https://github.com/bitinn/node-fetch)', 'curl/8.5.0', 'python-httpx/0.27.0', 'Go-http-client/1.1'];

/**
 * Write a capture of about `size` bytes to `path`. Returns the ground truth.
 * @param {string} path
 * @param {{ size: number, seed?: number, concurrency?: number }} opts
 */
export function writeBenchCapture(path, opts) {
  const target = opts.size;
  const rand = prng(opts.seed ?? 1);
  const filler = makeFiller(rand);
  const out = new PcapOut(path);
  const concurrency = opts.concurrency ?? 32;
  const truth = {
    packets: 0,
    connections: 0,
    requests: 0,
    completeResponses: 0,
    resets: 0,
    fins: 0,
    retransmissions: 0,
    lanConnections: 0,
    loConnections: 0,
    chunkedLfAlone: { requests: 0, responses: 0 },
  };
  const chunkedMsgs = new WeakSet();
  // Capture clock in µs: starts 2025-01-01T00:00:00Z.
  let now = 1735689600 * 1e6;
  const ri = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));
  const logUniform = (lo, hi) => Math.floor(Math.exp(Math.log(lo) + rand() * (Math.log(hi) - Math.log(lo))));
  let nextLanClient = 0;
  let loPort = 32768;
  const lanPorts = new Map();

  // ---- packet assembly --------------------------------------------------------

  /** Write one TCP/IPv4/Ethernet frame from side `dir` (0 client, 1 server) of conn `c`. */
  function packet(c, dir, flags, payload, pOff, pLen, syn) {
    const optLen = syn ? 20 : 12;
    const tcpLen = 20 + optLen;
    const frameLen = 14 + 20 + tcpLen + pLen;
    out.reserve(16 + frameLen);
    const b = out.buf;
    let p = out.pos;
    now += ri(1, 12);
    const sec = Math.floor(now / 1e6);
    b.writeUInt32LE(sec, p);
    b.writeUInt32LE(now - sec * 1e6, p + 4);
    b.writeUInt32LE(frameLen, p + 8);
    b.writeUInt32LE(frameLen, p + 12);
    p += 16;
    // Ethernet: loopback frames carry zero MACs (Linux lo), LAN frames real-looking ones.
    if (c.path === LO) b.fill(0, p, p + 12);
    else {
      const macA = dir === 0 ? c.cMac : c.sMac;
      const macB = dir === 0 ? c.sMac : c.cMac;
      macB.copy(b, p);
      macA.copy(b, p + 6);
    }
    b.writeUInt16BE(0x0800, p + 12);
    p += 14;
    // IPv4 (RFC 791), DF set, TTL 64, header checksum computed.
    const ip = p;
    b[p] = 0x45;
    b[p + 1] = 0;
    b.writeUInt16BE(20 + tcpLen + pLen, p + 2);
    b.writeUInt16BE(c.ipId[dir], p + 4);
    c.ipId[dir] = (c.ipId[dir] + 1) & 0xffff;
    b.writeUInt16BE(0x4000, p + 6);
    b[p + 8] = 64;
    b[p + 9] = 6;
    b.writeUInt16BE(0, p + 10);
    b.writeUInt32BE(dir === 0 ? c.cIp : c.sIp, p + 12);
    b.writeUInt32BE(dir === 0 ? c.sIp : c.cIp, p + 16);
    let sum = 0;
    for (let i = 0; i < 20; i += 2) sum += (b[ip + i] << 8) | b[ip + i + 1];
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    b.writeUInt16BE(~sum & 0xffff, ip + 10);
    p += 20;
    // TCP (RFC 9293 section 3.1), timestamps option (RFC 7323) on every segment.
    b.writeUInt16BE(dir === 0 ? c.cPort : c.sPort, p);
    b.writeUInt16BE(dir === 0 ? c.sPort : c.cPort, p + 2);
    b.writeUInt32BE(c.seq[dir] >>> 0, p + 4);
    b.writeUInt32BE(flags & TCP_ACK ? c.seq[1 - dir] >>> 0 : 0, p + 8);
    b[p + 12] = (tcpLen / 4) << 4;
    b[p + 13] = flags;
    b.writeUInt16BE(syn ? 65535 : 512, p + 14);
    b.writeUInt32BE(0, p + 16); // checksum (left to offload), urgent pointer
    let o = p + 20;
    const tsval = Math.floor(now / 1000) >>> 0;
    if (syn) {
      b[o] = 2; b[o + 1] = 4; b.writeUInt16BE(c.path.mss + 12, o + 2); // MSS (without options)
      b[o + 4] = 4; b[o + 5] = 2; // SACK permitted
      b[o + 6] = 8; b[o + 7] = 10; b.writeUInt32BE(tsval, o + 8); b.writeUInt32BE(c.tsPeer[dir], o + 12);
      b[o + 16] = 1; b[o + 17] = 3; b[o + 18] = 3; b[o + 19] = 7; // NOP, window scale 7
    } else {
      b[o] = 1; b[o + 1] = 1; b[o + 2] = 8; b[o + 3] = 10;
      b.writeUInt32BE(tsval, o + 4);
      b.writeUInt32BE(c.tsPeer[dir], o + 8);
    }
    c.tsPeer[1 - dir] = tsval;
    p += tcpLen;
    if (pLen > 0) payload.copy(b, p, pOff, pOff + pLen);
    p += pLen;
    out.pos = p;
    truth.packets++;
  }

  /** A segment without payload; SYN and FIN take one sequence number (RFC 9293 section 3.4). */
  function control(c, dir, flags) {
    packet(c, dir, flags, null, 0, 0, (flags & TCP_SYN) !== 0);
    if (flags & (TCP_SYN | TCP_FIN)) c.seq[dir] = (c.seq[dir] + 1) >>> 0;
  }

  /**
   * Send bytes from side `dir`: `msg` is a Buffer, [from, to) the part to send
   * now, cut into MSS-sized segments; the peer ACKs every `ackEvery` segments
   * and after the last. A segment strictly inside a message may be sent twice
   * (a retransmission, LAN only).
   */
  function send(c, dir, msg, from, to, ackLast) {
    const mss = c.path.mss;
    let n = 0;
    for (let off = from; off < to; ) {
      const len = Math.min(mss, to - off);
      const last = off + len >= to;
      const startSeq = c.seq[dir];
      packet(c, dir, TCP_ACK | (last ? TCP_PSH : 0), msg, off, len, false);
      if (!last && off > 0 && c.path.retransRate > 0 && rand() < c.path.retransRate) {
        // Same bytes again, 200 ms-ish later in the stream's own terms (just later here).
        packet(c, dir, TCP_ACK, msg, off, len, false);
        truth.retransmissions++;
      }
      c.seq[dir] = (startSeq + len) >>> 0;
      // The last LF of a chunked message alone in the message's last segment:
      // tshark 4.0 marks the message "[Malformed Packet: HTTP]" and does not
      // report it (hangscope does); the checks need the count.
      if (len === 1 && off + 1 === msg.length && chunkedMsgs.has(msg)) {
        if (dir === 0) truth.chunkedLfAlone.requests++;
        else truth.chunkedLfAlone.responses++;
      }
      off += len;
      n++;
      if ((n % c.path.ackEvery === 0 && !last) || (last && ackLast)) control(c, 1 - dir, TCP_ACK);
    }
  }

  // ---- messages ------------------------------------------------------------------

  function requestFor(c, getOnly) {
    const r = getOnly ? 1 : rand();
    let method = 'GET';
    let body = 0;
    let chunked = false;
    if (r < 0.05) method = 'HEAD';
    else if (r < 0.1) method = 'DELETE';
    else if (r < 0.18) {
      method = 'POST';
      body = logUniform(50, 8192);
    } else if (r < 0.21) {
      method = 'POST';
      body = logUniform(50, 32768);
      chunked = true;
    } else if (r < 0.25) {
      method = 'PUT';
      body = logUniform(100, 65536);
    }
    const path = PATHS[ri(0, PATHS.length - 1)] + '/' + ri(1, 999999) + (rand() < 0.4 ? '?detail=summary&page=' + ri(1, 50) : '');
    let h = `${method} ${path} HTTP/1.1\r\nHost: ${c.host}\r\nUser-Agent: ${c.agent}\r\nAccept: application/json, text/plain, */*\r\n`;
    if (c.auth) h += 'Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl\r\n';
    if (rand() < 0.2) h += 'Cookie: session=7f3a9c0e12; theme=dark\r\n';
    h += 'Connection: keep-alive\r\n';
    if (body > 0 && !chunked) h += `Content-Type: application/json\r\nContent-Length: ${body}\r\n`;
    if (chunked) h += 'Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n';
    h += '\r\n';
    return { method, msg: message(Buffer.from(h, 'latin1'), body, chunked) };
  }

  function responseFor(method) {
    let status = 200;
    let reason = 'OK';
    let body = 0;
    const r = rand();
    if (method === 'DELETE') {
      status = 204;
      reason = 'No Content';
    } else if (method === 'GET' && r < 0.06) {
      status = 304;
      reason = 'Not Modified';
    } else if (r < 0.09) {
      status = 404;
      reason = 'Not Found';
      body = ri(20, 200);
    } else if (r < 0.1) {
      status = 500;
      reason = 'Internal Server Error';
      body = ri(20, 200);
    } else {
      if (method === 'POST' && r < 0.3) {
        status = 201;
        reason = 'Created';
      }
      // Mostly small JSON, a tail of larger bodies: about 3 KB per exchange on average.
      const k = rand();
      if (k < 0.55) body = ri(0, 512);
      else if (k < 0.88) body = logUniform(512, 4096);
      else if (k < 0.985) body = logUniform(4096, 16384);
      else if (k < 0.999) body = logUniform(16384, 131072);
      else body = logUniform(131072, 1048576);
    }
    const noBody = status === 204 || status === 304;
    const chunked = !noBody && rand() < 0.3;
    let h = `HTTP/1.1 ${status} ${reason}\r\ndate: Wed, 01 Jan 2025 00:00:00 GMT\r\nserver: uvicorn\r\n`;
    if (!noBody) h += 'content-type: application/json\r\n';
    if (chunked) h += 'transfer-encoding: chunked\r\n';
    else if (!noBody) h += `content-length: ${body}\r\n`;
    if (rand() < 0.05) h += 'set-cookie: session=7f3a9c0e12; Path=/; HttpOnly\r\n';
    h += '\r\n';
    // HEAD: the headers announce the body, none follows (RFC 9110 section 9.3.2).
    if (method === 'HEAD') return { status, msg: Buffer.from(h, 'latin1') };
    return { status, msg: message(Buffer.from(h, 'latin1'), noBody ? 0 : body, chunked) };
  }

  /** Head + body (Content-Length or chunked with random chunk sizes) as one Buffer. */
  function message(head, body, chunked) {
    if (!chunked) {
      if (body === 0) return head;
      const parts = [head];
      for (let left = body; left > 0; ) {
        const n = Math.min(left, filler.length - 1);
        const at = ri(0, filler.length - n);
        parts.push(filler.subarray(at, at + n));
        left -= n;
      }
      return Buffer.concat(parts);
    }
    const parts = [head];
    for (let left = body; left > 0; ) {
      const n = Math.min(left, logUniform(16, 16384));
      const at = ri(0, filler.length - n);
      parts.push(Buffer.from(n.toString(16) + '\r\n', 'latin1'), filler.subarray(at, at + n), Buffer.from('\r\n', 'latin1'));
      left -= n;
    }
    parts.push(Buffer.from('0\r\n\r\n', 'latin1'));
    const m = Buffer.concat(parts);
    chunkedMsgs.add(m);
    return m;
  }

  // ---- connections ------------------------------------------------------------------

  function newConn() {
    const lan = rand() < 0.5;
    const c = {
      path: lan ? LAN : LO,
      cIp: 0,
      sIp: 0,
      cPort: 0,
      sPort: lan ? 80 : 8000,
      cMac: null,
      sMac: null,
      seq: [Math.floor(rand() * 4294967296) >>> 0, Math.floor(rand() * 4294967296) >>> 0],
      ipId: [ri(0, 65535), ri(0, 65535)],
      tsPeer: [0, 0],
      readyAt: now,
      host: lan ? 'api.example.internal' : '127.0.0.1:8000',
      agent: AGENTS[ri(0, AGENTS.length - 1)],
      auth: rand() < 0.3,
      it: null,
    };
    if (lan) {
      const n = nextLanClient++ % 2000;
      c.cIp = (10 << 24) | (1 << 16) | ((n >> 8) << 8) | ((n & 0xff) + 1);
      c.sIp = (10 << 24) | 10;
      const port = (lanPorts.get(n) ?? 40000) + 1;
      lanPorts.set(n, port > 60999 ? 40000 : port);
      c.cPort = port;
      c.cMac = Buffer.from([0x02, 0x00, 0x0a, 0x01, n >> 8, n & 0xff]);
      c.sMac = Buffer.from([0x02, 0x00, 0x0a, 0x00, 0x00, 0x0a]);
      truth.lanConnections++;
    } else {
      c.cIp = c.sIp = 0x7f000001;
      c.cPort = loPort;
      loPort = loPort >= 60999 ? 32768 : loPort + 1;
      truth.loConnections++;
    }
    truth.connections++;
    c.it = script(c);
    return c;
  }

  /** One connection's life, one flight per step (the caller interleaves connections). */
  function* script(c) {
    control(c, 0, TCP_SYN);
    control(c, 1, TCP_SYN | TCP_ACK);
    control(c, 0, TCP_ACK);
    const exchanges = logUniform(1, 1500);
    const e = rand();
    const end = e < 0.5 ? 'client-fin' : e < 0.75 ? 'server-fin' : e < 0.85 ? 'client-rst' : e < 0.93 ? 'server-rst-mid' : 'race';
    for (let i = 0; i < exchanges; i++) {
      c.readyAt = now + logUniform(50, i === 0 ? 500 : 200_000);
      yield;
      const last = i === exchanges - 1;
      if (last && end === 'race') {
        // The server closes the idle socket while the client reuses it: the
        // request crosses the FIN and is answered by RST.
        control(c, 1, TCP_FIN | TCP_ACK);
        const { msg } = requestFor(c, true); // a GET: one segment
        truth.requests++;
        packet(c, 0, TCP_ACK | TCP_PSH, msg, 0, msg.length, false);
        c.seq[0] = (c.seq[0] + msg.length) >>> 0;
        packet(c, 1, TCP_RST, null, 0, 0, false);
        truth.resets++;
        truth.fins++;
        return;
      }
      const req = requestFor(c);
      truth.requests++;
      send(c, 0, req.msg, 0, req.msg.length, c.path === LAN && req.msg.length > c.path.mss);
      c.readyAt = now + logUniform(100, 50_000);
      yield;
      const res = responseFor(req.method);
      const msg = res.msg;
      const cut = last && end === 'server-rst-mid' && msg.length > 600 ? ri(300, msg.length - 1) : -1;
      const stop = cut >= 0 ? cut : msg.length;
      // Large responses go out in windows of 64 KiB, interleaved with other connections.
      for (let off = 0; off < stop; ) {
        const n = Math.min(65536, stop - off);
        send(c, 1, msg, off, off + n, true);
        off += n;
        if (off < stop) {
          c.readyAt = now + ri(10, 400);
          yield;
        }
      }
      if (cut >= 0) {
        packet(c, 1, TCP_RST | TCP_ACK, null, 0, 0, false);
        truth.resets++;
        return;
      }
      truth.completeResponses++;
    }
    c.readyAt = now + logUniform(100, 500_000);
    yield;
    if (end === 'client-rst') {
      packet(c, 0, TCP_RST | TCP_ACK, null, 0, 0, false);
      truth.resets++;
    } else if (end === 'server-fin' || end === 'server-rst-mid' /* response too small to cut */) {
      control(c, 1, TCP_FIN | TCP_ACK);
      control(c, 0, TCP_ACK);
      control(c, 0, TCP_FIN | TCP_ACK);
      control(c, 1, TCP_ACK);
      truth.fins += 2;
    } else {
      control(c, 0, TCP_FIN | TCP_ACK);
      control(c, 1, TCP_FIN | TCP_ACK);
      control(c, 0, TCP_ACK);
      truth.fins += 2;
    }
  }

  // ---- scheduler: pick a ready connection, run one flight ------------------------------

  const active = [];
  for (let i = 0; i < concurrency; i++) {
    const c = newConn();
    c.readyAt = now + ri(0, 20_000);
    active.push(c);
  }
  // 64 KiB + headers is the largest flight step; stop once the target is reached.
  while (out.size < target) {
    let k = ri(0, active.length - 1);
    if (active[k].readyAt > now) {
      let best = 0;
      for (let j = 1; j < active.length; j++) if (active[j].readyAt < active[best].readyAt) best = j;
      k = best;
      if (active[k].readyAt > now) now = active[k].readyAt;
    }
    const c = active[k];
    if (c.it.next().done) active[k] = newConn();
  }
  out.close();
  truth.bytes = out.size;
  truth.firstTs = 1735689600;
  truth.lastTs = now / 1e6;
  return truth;
}

// ---- CLI -------------------------------------------------------------------------------

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const args = process.argv.slice(2);
  const get = (name, dflt) => {
    const i = args.indexOf(name);
    return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
  };
  const size = parseSize(get('--size', '256M'));
  const seed = Number(get('--seed', '1'));
  const outPath = get('--out', `bench/out/http-${get('--size', '256M')}.pcap`);
  const t0 = process.hrtime.bigint();
  const truth = writeBenchCapture(outPath, { size, seed });
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  process.stdout.write(`${JSON.stringify({ file: outPath, seed, seconds: +secs.toFixed(2), ...truth })}\n`);
}
