#!/usr/bin/env node
/**
 * A real port scan of 127.0.0.1, captured with tcpdump: Node's net.connect()
 * to `count` ports from `first` on (wrapping within 20000-59999), `parallel`
 * attempts at a time. A closed port answers the SYN with RST at once; an open
 * one completes the handshake and the scanner closes the socket. Every
 * attempt is a new TCP connection for hangscope, most of them never
 * finished by a FIN: the table fills the way a SYN flood fills it.
 *
 *   node test/bounds/flood.mjs OUT.pcap COUNT [FIRST_PORT] [PARALLEL]
 *
 * Needs root and tcpdump. Prints one JSON line: attempts, refused, connected,
 * other errors, seconds.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';

const [out, countArg, firstArg = '20000', parArg = '200'] = process.argv.slice(2);
if (!out || !countArg) {
  console.error('usage: flood.mjs OUT.pcap COUNT [FIRST_PORT] [PARALLEL]');
  process.exit(2);
}
const count = Number(countArg);
const first = Number(firstArg);
const parallel = Number(parArg);
const LO = 20000;
const HI = 60000;
const portOf = (i) => LO + ((first - LO + i) % (HI - LO));

const td = spawn('tcpdump', ['-i', 'lo', '-s', '0', '-U', '-B', '65536', '-w', out, `tcp and portrange ${LO}-${HI - 1} and host 127.0.0.1`], {
  stdio: ['ignore', 'ignore', 'pipe'],
});
let tdErr = '';
td.stderr.setEncoding('utf8').on('data', (s) => (tdErr += s));
const t0 = Date.now();
while (!tdErr.includes('listening on')) {
  if (td.exitCode !== null || Date.now() - t0 > 10_000) {
    console.error(`tcpdump did not start: ${tdErr}`);
    process.exit(1);
  }
  await new Promise((r) => setTimeout(r, 20));
}

const stats = { attempts: 0, refused: 0, connected: 0, other: 0 };
let next = 0;
function attempt() {
  if (next >= count) return Promise.resolve();
  const port = portOf(next++);
  stats.attempts++;
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.setTimeout(3000, () => s.destroy(new Error('timeout')));
    s.on('connect', () => {
      stats.connected++;
      s.destroy();
    });
    s.on('error', (e) => {
      if (e.code === 'ECONNREFUSED') stats.refused++;
      else stats.other++;
    });
    s.on('close', () => resolve());
  }).then(attempt);
}
const started = Date.now();
await Promise.all(Array.from({ length: Math.min(parallel, count) }, attempt));
const seconds = (Date.now() - started) / 1000;
// Not --immediate-mode (it cannot keep up with a flood: the kernel drops packets); libpcap then hands
// packets over in blocks, at the latest after its 1 s timeout: wait for the last block before stopping.
await new Promise((r) => setTimeout(r, 1500));
const done = new Promise((r) => td.on('exit', r));
td.kill('SIGTERM');
await done;
const dropped = /(\d+) packets? dropped by kernel/.exec(tdErr)?.[1] ?? null;
console.log(JSON.stringify({ ...stats, seconds, tcpdumpDropped: dropped === null ? null : Number(dropped) }));
