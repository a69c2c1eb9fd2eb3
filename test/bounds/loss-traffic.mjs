#!/usr/bin/env node
/**
 * A bulk HTTP download with real packet loss on the way, for the
 * out-of-order buffer bound (needs root: it makes network namespaces).
 *
 *   node test/bounds/loss-traffic.mjs run OUT.pcap [BYTES] [DROP_PROBABILITY]
 *
 * Three namespaces made here and deleted at the end: a server (hs-loss-a,
 * 10.77.1.1), a router (hs-loss-r) whose FORWARD chain drops a random share
 * of the server's segments (iptables statistic), and a client (hs-loss-b,
 * 10.77.2.1) where tcpdump captures. A dropped segment never reaches the
 * capture; the receiver's kernel holds what follows the hole until the
 * sender retransmits, and so does hangscope. (Dropping in the sender's own
 * OUTPUT chain does not work: the sender's TCP sees the error and resends at
 * once, so the wire never shows a hole.)
 *
 * The server (Node http) answers GET /bulk with BYTES (default 4 MiB) of
 * text; the client (Node http) downloads it three times on one keep-alive
 * socket. Writes OUT.pcap and OUT.json (the client's byte counts, drops).
 */
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { tcpdumpListening } from '../tcpdump.mjs';

const self = fileURLToPath(import.meta.url);
const [mode, ...args] = process.argv.slice(2);

function sh(cmd) {
  const r = spawnSync('sh', ['-c', cmd], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
  return r.stdout;
}

const line = 'hangscope reassembly bound test line, 64 bytes long, plain text\n';

if (mode === 'server') {
  const bytes = Number(args[0]);
  const body = Buffer.from(line.repeat(Math.ceil(bytes / line.length)).slice(0, bytes));
  const server = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': String(body.length) });
    res.end(body);
  });
  server.listen(8080, '10.77.1.1', () => console.log('listening'));
  setTimeout(() => process.exit(0), 60_000).unref();
} else if (mode === 'client') {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const got = [];
  for (let i = 0; i < 3; i++) {
    got.push(
      await new Promise((resolve, reject) => {
        http
          .get({ host: '10.77.1.1', port: 8080, path: `/bulk?n=${i}`, agent }, (res) => {
            let n = 0;
            res.on('data', (d) => (n += d.length));
            res.on('end', () => resolve(n));
          })
          .on('error', reject);
      }),
    );
  }
  agent.destroy();
  console.log(JSON.stringify(got));
} else if (mode === 'run' && args[0]) {
  const [out, bytesArg = String(4 * 1024 * 1024), probArg = '0.02'] = args;
  const NS = ['hs-loss-a', 'hs-loss-r', 'hs-loss-b'];
  const cleanup = () => {
    for (const n of NS) spawnSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
  };
  cleanup();
  const children = [];
  try {
    for (const n of NS) sh(`ip netns add ${n} && ip -n ${n} link set lo up`);
    sh('ip link add hsl-a0 netns hs-loss-a type veth peer name hsl-a1 netns hs-loss-r');
    sh('ip link add hsl-b0 netns hs-loss-b type veth peer name hsl-b1 netns hs-loss-r');
    sh('ip -n hs-loss-a addr add 10.77.1.1/24 dev hsl-a0 && ip -n hs-loss-a link set hsl-a0 up && ip -n hs-loss-a route add default via 10.77.1.2');
    sh('ip -n hs-loss-b addr add 10.77.2.1/24 dev hsl-b0 && ip -n hs-loss-b link set hsl-b0 up && ip -n hs-loss-b route add default via 10.77.2.2');
    sh('ip -n hs-loss-r addr add 10.77.1.2/24 dev hsl-a1 && ip -n hs-loss-r addr add 10.77.2.2/24 dev hsl-b1 && ip -n hs-loss-r link set hsl-a1 up && ip -n hs-loss-r link set hsl-b1 up');
    sh('ip netns exec hs-loss-r sysctl -q -w net.ipv4.ip_forward=1');
    // Large receive windows, so many segments are in flight when one is lost.
    sh('ip netns exec hs-loss-b sysctl -q -w net.ipv4.tcp_rmem="4096 1048576 8388608"');
    sh(`ip netns exec hs-loss-r iptables -A FORWARD -p tcp --sport 8080 -m statistic --mode random --probability ${Number(probArg)} -j DROP`);

    const server = spawn('ip', ['netns', 'exec', 'hs-loss-a', process.execPath, self, 'server', bytesArg], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(server);
    await new Promise((resolve, reject) => {
      server.stdout.once('data', resolve);
      server.once('exit', () => reject(new Error('server exited')));
    });
    // A large buffer and no --immediate-mode: tcpdump itself must not lose packets (its losses would
    // be holes too); libpcap then delivers in blocks, the last one at most 1 s late (waited for below).
    const { td, stderr } = await tcpdumpListening('ip', ['netns', 'exec', 'hs-loss-b', 'tcpdump', '-i', 'hsl-b0', '-s', '0', '-U', '-B', '262144', '-w', out, 'tcp port 8080']);
    children.push(td);
    const client = spawnSync('ip', ['netns', 'exec', 'hs-loss-b', process.execPath, self, 'client'], { encoding: 'utf8', timeout: 60_000 });
    if (client.status !== 0) throw new Error(`client: ${client.stderr}`);
    await new Promise((r) => setTimeout(r, 1500));
    const done = new Promise((r) => td.on('exit', r));
    td.kill('SIGTERM');
    await done;
    const dropsLine = sh('ip netns exec hs-loss-r iptables -L FORWARD -v -n -x').split('\n').find((l) => l.includes('DROP')) ?? '';
    const log = {
      bytes: Number(bytesArg),
      dropProbability: Number(probArg),
      received: JSON.parse(client.stdout),
      routerDropped: Number(dropsLine.trim().split(/\s+/)[0]),
      tcpdumpDropped: Number(/(\d+) packets? dropped by kernel/.exec(stderr())?.[1] ?? -1),
    };
    writeFileSync(out.replace(/\.pcap$/, '.json'), `${JSON.stringify(log)}\n`);
    console.log(JSON.stringify(log));
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    cleanup();
  }
} else {
  console.error('usage: loss-traffic.mjs run OUT.pcap [BYTES] [DROP_PROBABILITY]');
  process.exit(2);
}
