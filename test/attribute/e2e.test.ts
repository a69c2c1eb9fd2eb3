/**
 * End to end: `hangscope watch --attribute --format ndjson` as a child process
 * on loopback while the lab's uvicorn app (test/lab/servers, Debian's
 * uvicorn) and real Node clients run the keep-alive race and the server kill;
 * the closes it prints must name the processes this test started (PIDs from
 * spawn). Then the fallback: no bpftrace on PATH, one notice line, ss names
 * the process left in CLOSE-WAIT.
 *
 * Needs root, bpftrace, tcpdump, ss, /usr/bin/python3 with uvicorn, and a
 * build (dist/); skips with a printed reason otherwise, unless CI=true.
 * Then `hangscope daemon --attribute`: the same attribution in its NDJSON
 * file. Ports 18615-18617 and 18619 (the lab and the recordings use others). Every process is
 * started through the lab harness and stopped by PID; every wait is bounded.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error: the lab harness is plain JavaScript (test/lab/harness.mjs)
import * as lab from '../lab/harness.mjs';
import { IN_CI, REPO } from './helpers.js';

interface Proc {
  pid: number;
  exitInfo: { code: number | null; signal: string | null } | null;
  exited: Promise<{ code: number | null; signal: string | null }>;
}
const harness = lab as {
  startUvicorn(o: { port: number; logFile: string }): Promise<Proc>;
  startClient(script: string, args: string[], o: { logFile: string; stderrFile?: string }): Proc;
  startProcess(name: string, cmd: string, args: string[], o: { stdoutFile?: string; stderrFile?: string; env?: Record<string, string> }): Proc;
  stopProcess(p: Proc, signal?: string, graceMs?: number): Promise<unknown>;
  stopAll(): Promise<void>;
  waitExit(p: Proc, ms: number): Promise<unknown>;
  waitFor<T>(what: string, fn: () => T, ms?: number, every?: number): Promise<T>;
  waitForLine(what: string, file: string, pred: (l: Record<string, unknown>) => boolean, ms?: number, p?: Proc): Promise<Record<string, unknown>>;
  readJsonLines(file: string): Record<string, unknown>[];
  has(cmd: string): boolean;
};

const BIN = path.join(REPO, 'bin/hangscope.js');
const root = typeof process.getuid === 'function' && process.getuid() === 0;
const missing = [
  !root && 'root',
  !harness.has('bpftrace') && 'bpftrace (apt-get install bpftrace)',
  !harness.has('tcpdump') && 'tcpdump',
  !harness.has('ss') && 'ss (iproute2)',
  !existsSync(path.join(REPO, 'dist/cli/main.js')) && 'a build (npm run build)',
  spawnSync('/usr/bin/python3', ['-c', 'import uvicorn, fastapi'], { stdio: 'ignore' }).status !== 0 && "Debian's python3-uvicorn and python3-fastapi",
].filter((x): x is string => typeof x === 'string');
const ready = missing.length === 0;
if (!ready) {
  const why = `attribution end to end needs ${missing.join(', ')}`;
  if (IN_CI) throw new Error(`${why}, and CI=true requires it`);
  console.log(`[skip] ${why}`);
}

const work = mkdtempSync(path.join(tmpdir(), 'hangscope-attr-e2e-'));
afterAll(async () => {
  await harness.stopAll();
  rmSync(work, { recursive: true, force: true });
});

interface CloseOut {
  by: 'client' | 'server';
  kind: 'FIN' | 'RST';
  ts: number;
  attributed?: string;
  pid?: number;
  comm?: string;
  attributedReason?: string;
}
interface ConnOut {
  type: 'connection';
  client: { ip: string; port: number };
  closes: CloseOut[];
}

/** Starts watch and waits for its "listening" line (after bpftrace attached and tcpdump started). */
async function startWatch(dir: string, port: number, extra: string[], env: Record<string, string> = {}): Promise<{ p: Proc; out: string; err: string }> {
  const out = path.join(dir, 'watch.ndjson');
  const err = path.join(dir, 'watch.stderr');
  const p = harness.startProcess('hangscope watch', process.execPath, [BIN, 'watch', '-i', 'lo', '-p', String(port), '--format', 'ndjson', '--duration', '90', ...extra], {
    stdoutFile: out,
    stderrFile: err,
    env,
  });
  await harness.waitFor('watch to listen', () => {
    if (p.exitInfo) throw new Error(`watch exited: ${readFileSync(err, 'utf8')}`);
    return existsSync(err) && /listening on/.test(readFileSync(err, 'utf8'));
  }, 90_000, 50);
  return { p, out, err };
}

/** SIGINT (by PID) and the connections it printed. */
async function stopWatch(w: { p: Proc; out: string }): Promise<ConnOut[]> {
  await new Promise((r) => setTimeout(r, 500));
  await harness.stopProcess(w.p, 'SIGINT', 15_000);
  return harness.readJsonLines(w.out).filter((l) => l.type === 'connection') as unknown as ConnOut[];
}

function scenarioDir(name: string): string {
  const d = path.join(work, name);
  mkdirSync(d, { recursive: true });
  return d;
}

/**
 * The notices of an eBPF Attributor started with PATH set to `bin`, holding bpftrace, sh and cat (and what
 * `extra` puts there): how it explains that it cannot mount tracefs.
 */
async function noticesWithPath(bin: string, extra: (bin: string) => void = () => {}): Promise<string[]> {
  const { Attributor } = await import('../../lib/attribute/index.js');
  for (const cmd of ['bpftrace', 'sh', 'cat']) symlinkSync(spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).stdout.trim(), path.join(bin, cmd));
  extra(bin);
  const saved = process.env.PATH;
  const notices: string[] = [];
  try {
    process.env.PATH = bin;
    const att = await Attributor.start({ ports: [18618], ebpf: true, ssIntervalMs: 0, onNotice: (l) => notices.push(l) });
    await att.stop();
  } finally {
    process.env.PATH = saved;
  }
  return notices;
}

describe.runIf(ready)('tracefs', () => {
  it('not mounted and no unshare to mount it privately: the notice says exactly what to run', async () => {
    const { tracefsPath } = await import('../../lib/attribute/bpftrace.js');
    if (tracefsPath() !== null) {
      console.log('[skip] tracefs is mounted on this machine: the unshare path is not taken');
      return;
    }
    const notices = await noticesWithPath(scenarioDir('no-unshare-bin'));
    expect(notices).toEqual([
      'no eBPF process attribution: tracefs is not mounted and unshare (util-linux) is missing: run `mount -t tracefs nodev /sys/kernel/tracing` as root, then retry',
    ]);
  });
});

describe.runIf(ready)('tracefs, mounting refused', () => {
  it('unshare without the privilege (run as nobody): the notice quotes its error and what to run', async () => {
    const { tracefsPath } = await import('../../lib/attribute/bpftrace.js');
    const setpriv = spawnSync('sh', ['-c', 'command -v setpriv'], { encoding: 'utf8' }).stdout.trim();
    const unshare = spawnSync('sh', ['-c', 'command -v unshare'], { encoding: 'utf8' }).stdout.trim();
    if (tracefsPath() !== null || !setpriv || !unshare) {
      console.log('[skip] tracefs is mounted here, or no setpriv/unshare: the refused-mount path is not taken');
      return;
    }
    const notices = await noticesWithPath(scenarioDir('nobody-unshare-bin'), (bin) =>
      // The real unshare, dropped to nobody: the kernel refuses the new mount namespace.
      writeFileSync(path.join(bin, 'unshare'), `#!/bin/sh\nexec ${setpriv} --reuid=65534 --regid=65534 --clear-groups ${unshare} "$@"\n`, { mode: 0o755 }),
    );
    expect(notices).toEqual([
      'no eBPF process attribution: tracefs is not mounted at /sys/kernel/tracing and mounting it in a private mount namespace failed (unshare: unshare failed: Operation not permitted): run `mount -t tracefs nodev /sys/kernel/tracing` as root (or give the container CAP_SYS_ADMIN, kubectl debug --profile=sysadmin), then retry',
    ]);
  });
});

describe.runIf(ready)('watch --attribute on loopback', () => {
  it('keep-alive race (uvicorn): FINs by python3 and node, the RST for a request on a closed socket by the kernel', { timeout: 180_000 }, async () => {
    const dir = scenarioDir('race');
    const port = 18615;
    const srv = await harness.startUvicorn({ port, logFile: path.join(dir, 'server.log') });
    const w = await startWatch(dir, port, ['--attribute']);
    expect(readFileSync(w.err, 'utf8')).toMatch(/attribution: eBPF \(bpftrace/);
    const lateLog = path.join(dir, 'late.log');
    const late = harness.startProcess('request-after-fin', process.execPath, [path.join(REPO, 'test/attribute/clients/request-after-fin.mjs'), '--port', String(port)], { stdoutFile: lateLog, stderrFile: path.join(dir, 'late.err') });
    const raceLog = path.join(dir, 'race.log');
    const race = harness.startClient('keepalive-race.mjs', ['--base', `http://127.0.0.1:${port}`, '--delays', '4.9990,4.9995,5.0000,5.0005,5.0010,5.0015', '--spin-ms', '20', '--stagger-ms', '450'], { logFile: raceLog, stderrFile: path.join(dir, 'race.err') });
    await harness.waitExit(race, 40_000);
    await harness.waitExit(late, 20_000);
    const conns = await stopWatch(w);
    await harness.stopProcess(srv, 'SIGINT', 3000);

    const lateConnect = harness.readJsonLines(lateLog).find((l) => l.event === 'connect') as { localPort: number };
    const raced = harness.readJsonLines(raceLog).filter((l) => l.event === 'race-attempt' && l.outcome === 'raced').map((l) => l.firstLocalPort as number);
    console.log(`[e2e] race: ${conns.length} sockets, raced attempts on ports ${raced.join(', ') || 'none'} (the request after the FIN always gets its RST)`);
    expect(conns.length).toBeGreaterThanOrEqual(7);
    for (const c of conns) {
      for (const x of c.closes) {
        if (x.kind === 'FIN' && x.by === 'server') expect(x, `port ${c.client.port}`).toMatchObject({ attributed: 'process', pid: srv.pid, comm: 'python3' });
        if (x.kind === 'FIN' && x.by === 'client') {
          expect(x).toMatchObject({ attributed: 'process', comm: 'node' });
          expect([late.pid, race.pid]).toContain(x.pid);
        }
      }
    }
    const lateConn = conns.find((c) => c.client.port === lateConnect.localPort)!;
    expect(lateConn.closes.find((x) => x.kind === 'RST')).toMatchObject({ by: 'server', attributed: 'kernel', pid: srv.pid, comm: 'python3' });
    for (const port of raced) {
      const closes = conns.find((c) => c.client.port === port)!.closes;
      const rst = closes.find((x) => x.kind === 'RST' && x.by === 'server')!;
      const finFirst = closes.some((x) => x.kind === 'FIN' && x.by === 'server' && x.ts <= rst.ts);
      console.log(`[e2e] raced port ${port}: ${closes.map((x) => `${x.by} ${x.kind} ${x.attributed ?? '?'} ${x.attributedReason ?? ''}`.trim()).join(', ')}`);
      if (finFirst) {
        // uvicorn's FIN went first; the request reached a socket it had closed: the kernel answers.
        expect(rst).toMatchObject({ attributed: 'kernel', pid: srv.pid, comm: 'python3' });
        expect(['abort-on-data', 'timewait-socket']).toContain(rst.attributedReason);
      } else {
        // The request arrived first and sat unread when uvicorn's keep-alive timer closed the socket:
        // close() with unread data sends RST instead of FIN (RFC 9293 3.6), from uvicorn itself.
        expect(rst).toMatchObject({ attributed: 'process', pid: srv.pid, comm: 'python3', attributedReason: 'abort-on-close' });
      }
    }
  });

  it('server killed mid-response: its FIN is sent by the kernel as the killed python3 exits', { timeout: 120_000 }, async () => {
    const dir = scenarioDir('kill');
    const port = 18616;
    const serverLog = path.join(dir, 'server.log');
    const srv = await harness.startUvicorn({ port, logFile: serverLog });
    const w = await startWatch(dir, port, ['--attribute']);
    const c = harness.startClient('slow-body.mjs', ['--base', `http://127.0.0.1:${port}`, '--target', '/slow?chunks=40&interval=0.25'], { logFile: path.join(dir, 'client.log'), stderrFile: path.join(dir, 'client.err') });
    await harness.waitForLine('the 4th chunk', serverLog, (l) => l.event === 'slow-chunk' && (l.index as number) >= 3, 15_000);
    process.kill(srv.pid, 'SIGKILL');
    await harness.waitExit(c, 15_000);
    const conns = await stopWatch(w);
    expect(conns).toHaveLength(1);
    const [server, client] = [conns[0]!.closes.find((x) => x.by === 'server'), conns[0]!.closes.find((x) => x.by === 'client')];
    // What really happens: the kernel closes the dead process's socket with a FIN (nothing unread), in that process's exit.
    expect(server).toMatchObject({ kind: 'FIN', attributed: 'kernel', attributedReason: 'process-exited', pid: srv.pid, comm: 'python3' });
    expect(client).toMatchObject({ kind: 'FIN', attributed: 'process', pid: c.pid, comm: 'node' });
  });

  it('without bpftrace: one notice, capture goes on, ss names the node client left in CLOSE-WAIT', { timeout: 120_000 }, async () => {
    const dir = scenarioDir('no-bpftrace');
    const port = 18617;
    // A PATH with what watch needs, and no bpftrace.
    const bin = path.join(dir, 'bin');
    mkdirSync(bin);
    for (const cmd of ['tcpdump', 'ss', 'sh', 'unshare']) {
      const found = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).stdout.trim();
      if (found) symlinkSync(found, path.join(bin, cmd));
    }
    const srv = await harness.startUvicorn({ port, logFile: path.join(dir, 'server.log') });
    const w = await startWatch(dir, port, ['--attribute', '--ss-interval', '200'], { PATH: bin });
    const notices = readFileSync(w.err, 'utf8').split('\n').filter((l) => /attribution/.test(l) && !/listening on/.test(l));
    expect(notices).toEqual(['hangscope: no eBPF process attribution: bpftrace is not installed (apt-get install bpftrace); sampling ss every 200 ms for CLOSE-WAIT sockets instead']);
    expect(readFileSync(w.err, 'utf8')).toMatch(/listening on lo with tcpdump, filter "tcp port 18617", attribution: ss every 200 ms/);
    const clientLog = path.join(dir, 'client.log');
    const c = harness.startClient('half-open.mjs', ['--host', '127.0.0.1', '--port', String(port), '--hold-ms', '15000'], { logFile: clientLog, stderrFile: path.join(dir, 'client.err') });
    await harness.waitForLine('the server FIN', clientLog, (l) => l.event === 'half-open', 15_000, c);
    await new Promise((r) => setTimeout(r, 3000));
    await stopWatch(w);
    await harness.stopProcess(c, 'SIGKILL', 1000);
    await harness.stopProcess(srv, 'SIGINT', 3000);
    const findings = harness.readJsonLines(w.out).filter((l) => l.type === 'finding' && l.code === 'half-close-stuck') as unknown as { summary: string; evidence: Record<string, unknown> }[];
    expect(findings).toHaveLength(1);
    expect(findings[0]!.summary).toContain(`pid ${c.pid} node) sat in CLOSE-WAIT`);
    expect(findings[0]!.evidence.ss).toMatchObject({ state: 'CLOSE-WAIT', process: 'node', pid: c.pid });
  });
});

describe.runIf(ready)('daemon --attribute on loopback', () => {
  it('the request sent after the server FIN: in the NDJSON file, the FIN by python3, the RST by the kernel for python3', { timeout: 120_000 }, async () => {
    const dir = scenarioDir('daemon');
    const port = 18619;
    const srv = await harness.startUvicorn({ port, logFile: path.join(dir, 'server.log') });
    const err = path.join(dir, 'daemon.stderr');
    const d = harness.startProcess('hangscope daemon', process.execPath, [BIN, 'daemon', '-i', 'lo', '-p', String(port), '--dir', path.join(dir, 'caps'), '--connections', '--metrics-listen', '127.0.0.1:0', '--attribute', '--duration', '90'], { stderrFile: err });
    await harness.waitFor('the daemon to listen', () => {
      if (d.exitInfo) throw new Error(`daemon exited: ${readFileSync(err, 'utf8')}`);
      return existsSync(err) && /daemon listening on/.test(readFileSync(err, 'utf8'));
    }, 90_000, 50);
    expect(readFileSync(err, 'utf8')).toMatch(/daemon listening on lo with tcpdump, filter "tcp port 18619", attribution: eBPF \(bpftrace/);
    const lateLog = path.join(dir, 'late.log');
    const late = harness.startProcess('request-after-fin', process.execPath, [path.join(REPO, 'test/attribute/clients/request-after-fin.mjs'), '--port', String(port)], { stdoutFile: lateLog, stderrFile: path.join(dir, 'late.err') });
    await harness.waitExit(late, 20_000);
    await new Promise((r) => setTimeout(r, 500));
    await harness.stopProcess(d, 'SIGTERM', 15_000);
    await harness.stopProcess(srv, 'SIGINT', 3000);
    const lateConnect = harness.readJsonLines(lateLog).find((l) => l.event === 'connect') as { localPort: number };
    const conns = harness.readJsonLines(path.join(dir, 'caps', 'hangscope.ndjson')).filter((l) => l.type === 'connection') as unknown as ConnOut[];
    const c = conns.find((x) => x.client.port === lateConnect.localPort)!;
    expect(c, 'the late client\'s socket in the NDJSON file').toBeDefined();
    expect(c.closes.find((x) => x.kind === 'FIN' && x.by === 'server')).toMatchObject({ attributed: 'process', pid: srv.pid, comm: 'python3' });
    expect(c.closes.find((x) => x.kind === 'RST')).toMatchObject({ by: 'server', attributed: 'kernel', pid: srv.pid, comm: 'python3' });
  });
});
