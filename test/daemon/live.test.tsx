/**
 * `hangscope daemon` end to end under the repro lab's incident, all real:
 * FastAPI on Debian's uvicorn (test/lab/servers/app.py, /exec taking 6 s) and
 * the lab's instrumented incident client (axios GET /files with `timeout:
 * 5000`, then node-fetch POST /exec on the same pooled socket: "socket hang
 * up" 5 s in), then a few more GETs on fresh sockets so the capture files
 * rotate. Started with the lab's own helpers (test/lab/harness.mjs).
 *
 * The truth is what the programs logged (the client's request lines, the GETs
 * made here) and a separate tcpdump capture of the same traffic read by
 * tshark. Checked: /metrics against that truth; the rotating files (newest N
 * kept, each a valid capture, holding the last packets, nothing else in the
 * folder touched); the NDJSON file; `watch --attach` as a child process
 * (ndjson) and drawn by the ink App (ink-testing-library); SIGTERM stopping
 * everything cleanly.
 *
 * Needs root, tcpdump and Debian's python3-uvicorn / python3-fastapi; skips
 * with a printed reason otherwise, unless CI=true. Loopback only; every
 * process is started here and stopped by PID.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { render } from 'ink-testing-library';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemoteStore, eventsUrl, followEvents } from '../../dashboards/attach.js';
import { App } from '../../dashboards/tui/App.js';
import { PYTHON, readJsonLines, startClient, startTcpdump, startUvicorn, stopAll, stopProcess, stopTcpdump, waitExit } from '../lab/harness.mjs';
import { requestsFrom } from '../lab/truth.mjs';
import { BIN, REPO as ROOT, built, childPids, hasCommand, isRoot, killAll, start, tcpdumpPath, until, type Running } from '../live/helpers.js';
import { REPO, labCapture, metric, need, parseMetrics, readBack, tshark, tsharkFrames, tsharkPresent, type Sample } from './helpers.js';

const SUITE = 'daemon: live under the lab incident';
const uvicornOk = spawnSync(PYTHON, ['-c', 'import uvicorn, fastapi'], { stdio: 'ignore' }).status === 0;
const ready =
  need(built, 'dist/ is missing (npm run build)', SUITE) &&
  need(isRoot, 'not root: live capture needs root (or CAP_NET_RAW and CAP_NET_ADMIN)', SUITE) &&
  need(tcpdumpPath !== null, 'tcpdump is not installed (apt-get install tcpdump)', SUITE) &&
  need(uvicornOk, `${PYTHON} cannot import uvicorn and fastapi (apt-get install python3-uvicorn python3-fastapi)`, SUITE);
if (ready && !tsharkPresent) need(false, 'tshark is not installed: the tshark cross-checks are left out (apt-get install tshark)', `${SUITE}: tshark`);

const haveTmux = ready && need(hasCommand('tmux'), 'tmux is not installed (apt-get install tmux)', `${SUITE}: watch --attach in a terminal`);
const TMUX = `hangscope-daemon-test-${process.pid}`;
function tmux(...args: string[]): { code: number | null; out: string } {
  const r = spawnSync('tmux', ['-L', TMUX, ...args], { encoding: 'utf8', timeout: 10_000 });
  return { code: r.status, out: r.stdout };
}

const ROTATE_SIZE = 1024;
const ROTATE_COUNT = 3;
const EXTRA_GETS = 4;
const tmp = mkdtempSync(path.join(tmpdir(), 'hangscope-daemon-'));
const dir = path.join(tmp, 'caps');
const EARLIER = 'hangscope-20000101T000000Z-000001.pcap';

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => res(p));
    });
  });
}

function request(url: string, o: { method?: string; host?: string } = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((res, rej) => {
    const req = http.request(url, { method: o.method ?? 'GET', agent: false, headers: o.host ? { host: o.host } : {} }, (r) => {
      let body = '';
      r.setEncoding('utf8').on('data', (s: string) => (body += s));
      r.on('end', () => res({ status: r.statusCode ?? 0, body, headers: r.headers }));
    });
    req.on('error', rej);
    req.setTimeout(10_000, () => req.destroy(new Error(`${url}: no answer in 10 s`)));
    req.end();
  });
}

const ndjson = (text: string): any[] =>
  text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));

interface Get {
  localPort: number;
  status: number;
}

describe.runIf(ready)(SUITE, () => {
  let port: number;
  let daemon: Running;
  let attach: Running;
  let late: Running;
  let base: string;
  let requests: any[];
  const gets: Get[] = [];
  let samples: Sample[];
  let stateDoc: any;
  let frame: string;
  /** The terminal of `watch --attach` under tmux, and whether q ended it. */
  let screen = '';
  let quitByQ = false;
  let tcpdumps: number[] = [];
  let exit: { code: number | null; signal: NodeJS.Signals | null };
  let probes: { host: number; post: number; index: number; metricsType: string };
  const truthPcap = path.join(tmp, 'truth.pcap');
  /** What the separate tcpdump said it captured and dropped. */
  let truthStats: { captured: number | null; droppedByKernel: number | null } = { captured: null, droppedByKernel: null };
  let unmount: (() => void) | null = null;
  const follow = new AbortController();
  let following: Promise<void> = Promise.resolve();

  beforeAll(async () => {
    mkdirSync(dir, { mode: 0o700 });
    // Not the daemon's to delete: a capture from an "earlier run" named like its files, and a note.
    copyFileSync(labCapture('a-incident') ?? path.join(REPO, 'samples/incident.pcap'), path.join(dir, EARLIER));
    writeFileSync(path.join(dir, 'notes.txt'), 'keep me');
    port = await freePort();
    const server = await startUvicorn({ port, logFile: path.join(tmp, 'server.log') });
    try {
      // The separate truth capture: a snaplen well above this test's largest frame (under 1 KiB), so that
      // libpcap's immediate-mode ring (one slot per snaplen-sized frame) has ~256 slots in tcpdump's default
      // 2 MiB buffer instead of 8, and a busy machine descheduling tcpdump for a moment does not drop a burst.
      const td = await startTcpdump({ port, file: truthPcap, snaplen: 8192 });
      try {
        daemon = start(
          process.execPath,
          [BIN, 'daemon', '-i', 'lo', '-p', String(port), '--dir', dir, '--rotate-size', String(ROTATE_SIZE), '--rotate-count', String(ROTATE_COUNT), '--connections', '--metrics-listen', '127.0.0.1:0'],
          { timeoutMs: 90_000 },
        );
        await until(() => daemon.stderr().includes('daemon listening on'), 15_000, `the daemon to start (stderr: ${daemon.stderr()})`);
        base = /metrics on (http:\/\/127\.0\.0\.1:\d+)\/metrics/.exec(daemon.stderr())![1]!;
        tcpdumps = childPids(daemon.child.pid!);

        attach = start(process.execPath, [BIN, 'watch', '--attach', base, '--format', 'ndjson'], { timeoutMs: 90_000 });
        await until(() => attach.stderr().includes('attached to'), 10_000, `watch --attach to connect (stderr: ${attach.stderr()})`);
        // The dashboard itself, drawn from the daemon's stream.
        const remote = new RemoteStore(base);
        following = followEvents(eventsUrl(base), { onEvent: (e) => e.event === 'snapshot' && remote.apply(JSON.parse(e.data)), onLink: (s, why) => remote.setLink(s === 'connected' ? 'connected' : why) }, follow.signal);
        const ink = render(<App store={remote} width={180} height={30} refreshMs={50} />);
        unmount = () => ink.unmount();
        // And the command itself on a real terminal.
        if (haveTmux) tmux('new-session', '-d', '-s', 'main', '-x', '180', '-y', '30', `cd ${ROOT} && ${process.execPath} ${BIN} watch --attach ${base}`);

        // The incident, by the lab's own client.
        const clientLog = path.join(tmp, 'client.log');
        const client = startClient('incident.mjs', ['--base', `http://127.0.0.1:${port}`, '--seconds', '6'], { logFile: clientLog, stderrFile: path.join(tmp, 'client.err') });
        const r = await waitExit(client, 30_000);
        if (r.code !== 0) throw new Error(`the lab client failed: ${readFileSync(path.join(tmp, 'client.err'), 'utf8')}`);
        requests = requestsFrom(readJsonLines(clientLog));
        // More sockets, so the capture files rotate; their truth is what these requests saw.
        for (let i = 0; i < EXTRA_GETS; i++) {
          const got = await new Promise<Get>((res, rej) => {
            const req = http.get(`http://127.0.0.1:${port}/files/r${i}?detail=summary`, { agent: false }, (resp) => {
              const localPort = resp.socket.localPort!;
              resp.resume();
              resp.on('end', () => res({ localPort, status: resp.statusCode! }));
            });
            req.on('error', rej);
          });
          gets.push(got);
        }
        const sockets = new Set([...requests.map((q) => q.localPort), ...gets.map((g) => g.localPort)]).size;
        // Finished sockets are reported once closed and quiet for 5 s (lib/tcp/tracker.ts closeLinger).
        const t0 = Date.now();
        for (;;) {
          samples = parseMetrics((await request(`${base}/metrics`)).body);
          if (metric(samples, 'hangscope_connections_total') === sockets || Date.now() - t0 > 20_000) break;
          await new Promise((res) => setTimeout(res, 250));
        }
        await new Promise((res) => setTimeout(res, 700));
        frame = ink.lastFrame() ?? '';
        if (haveTmux) {
          screen = tmux('capture-pane', '-p', '-t', 'main').out;
          tmux('send-keys', '-t', 'main', 'q');
          await until(() => tmux('has-session', '-t', 'main').code !== 0, 10_000, 'watch --attach to quit on q').then(
            () => (quitByQ = true),
            () => {},
          );
        }
        stateDoc = JSON.parse((await request(`${base}/state`)).body);
        const host = (await request(`${base}/metrics`, { host: 'attacker.example' })).status;
        const post = (await request(`${base}/metrics`, { method: 'POST' })).status;
        const index = (await request(`${base}/`)).status;
        const metricsType = String((await request(`${base}/metrics`)).headers['content-type']);
        probes = { host, post, index, metricsType };

        // A dashboard attached after the fact gets what happened from the daemon's backlog.
        late = start(process.execPath, [BIN, 'watch', '--attach', base, '--format', 'ndjson', '--duration', '2'], { timeoutMs: 30_000 });
        await late.exited;

        daemon.child.kill('SIGTERM');
        exit = await daemon.exited;
        await attach.exited;
      } finally {
        truthStats = await stopTcpdump(td);
      }
    } finally {
      await stopProcess(server, 'SIGINT', 3000);
    }
  }, 120_000);

  afterAll(async () => {
    if (haveTmux) tmux('kill-server');
    follow.abort();
    await following;
    unmount?.();
    killAll();
    await stopAll();
    if (!process.env.KEEP_TMP) rmSync(tmp, { recursive: true, force: true });
    else console.log('kept', tmp);
  });

  it("the lab client's own log shows the incident: /exec reused the /files socket and got socket hang up, no response", () => {
    const [files, exec] = requests;
    expect(files.status).toBe(200);
    expect(exec.localPort).toBe(files.localPort);
    expect(exec.reusedSocket).toBe(true);
    expect(exec.error).toBe('socket hang up');
    expect(exec.firstByte).toBeNull();
    expect(exec.end - exec.start).toBeGreaterThan(4.9);
    expect(gets.map((g) => g.status)).toEqual(Array(EXTRA_GETS).fill(200));
  });

  it('/metrics against the truth: exchanges by outcome, closes by side and kind, findings by code, time to first byte, packets, drops', () => {
    const all = [...requests.map((q) => ({ ok: q.status !== null && q.error === null, noResponse: q.firstByte === null && q.error !== null, firstByte: q.firstByte !== null })), ...gets.map(() => ({ ok: true, noResponse: false, firstByte: true }))];
    const sockets = new Set([...requests.map((q) => q.localPort), ...gets.map((g) => g.localPort)]).size;
    const s = samples;
    expect(metric(s, 'hangscope_exchanges_total', { outcome: 'complete' })).toBe(all.filter((x) => x.ok).length);
    expect(metric(s, 'hangscope_exchanges_total', { outcome: 'no-response' })).toBe(all.filter((x) => x.noResponse).length);
    expect(metric(s, 'hangscope_findings_total', { code: 'client-abort-before-response' })).toBe(1);
    expect(metric(s, 'hangscope_findings_total', { code: 'server-reset' })).toBeUndefined();
    expect(metric(s, 'hangscope_closes_total', { by: 'client', kind: 'FIN' })).toBeGreaterThanOrEqual(1);
    expect(metric(s, 'hangscope_connections_opened_total')).toBe(sockets);
    expect(metric(s, 'hangscope_connections_total')).toBe(sockets);
    expect(metric(s, 'hangscope_open_connections')).toBe(0);
    expect(metric(s, 'hangscope_time_to_first_byte_seconds_count')).toBe(all.filter((x) => x.firstByte).length);
    expect(metric(s, 'hangscope_capture_dropped_packets', { source: 'tcpdump', where: 'kernel' })).toBe(0);
    expect(metric(s, 'hangscope_capture_files_opened_total')).toBeGreaterThan(ROTATE_COUNT);
    expect(metric(s, 'hangscope_capture_files_deleted_total')).toBe(metric(s, 'hangscope_capture_files_opened_total')! - ROTATE_COUNT);
    expect(metric(s, 'hangscope_capture_file_errors_total')).toBe(0);
    expect(metric(s, 'hangscope_process_resident_memory_bytes')).toBeGreaterThan(0);
    if (!tsharkPresent) return;
    // The separate capture, read by tshark: every frame, each stream's closes, each request's first response byte.
    expect(truthStats.droppedByKernel, 'the separate capture dropped packets').toBe(0);
    expect(metric(s, 'hangscope_packets_total'), `separate tcpdump: ${JSON.stringify(truthStats)}`).toBe(tsharkFrames(truthPcap));
    expect(tshark(truthPcap, 'tcp.flags.syn == 1 && tcp.flags.ack == 0', ['tcp.stream'])).toHaveLength(sockets);
    const flags = tshark(truthPcap, 'tcp.flags.fin == 1 || tcp.flags.reset == 1', ['tcp.stream', 'tcp.dstport', 'tcp.flags.fin', 'tcp.flags.reset']);
    for (const [by, kind] of [['client', 'FIN'], ['server', 'FIN'], ['client', 'RST'], ['server', 'RST']] as const) {
      const streams = new Set(flags.filter((f) => (by === 'client') === (f[1] === String(port)) && (kind === 'FIN' ? f[2] === '1' || f[2] === 'True' : f[3] === '1' || f[3] === 'True')).map((f) => f[0]));
      expect(metric(s, 'hangscope_closes_total', { by, kind }) ?? 0, `${by} ${kind}`).toBe(streams.size);
    }
    const rq = tshark(truthPcap, 'http.request', ['tcp.stream', 'frame.time_epoch']);
    const rs = tshark(truthPcap, 'http.response', ['tcp.stream', 'frame.time_epoch']);
    let sum = 0;
    for (const stream of new Set(rs.map((r) => r[0]))) {
      const q = rq.filter((r) => r[0] === stream);
      rs.filter((r) => r[0] === stream).forEach((r, i) => (sum += Number(r[1]) - Number(q[i]![1])));
    }
    expect(rs).toHaveLength(all.filter((x) => x.firstByte).length);
    expect(Math.abs(metric(s, 'hangscope_time_to_first_byte_seconds_sum')! - sum)).toBeLessThan(1e-5 * rs.length + 1e-9);
  });

  it('the endpoint is read-only, answers only requests addressed to loopback, and serves the Prometheus text format', () => {
    expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(probes.host).toBe(403);
    expect(probes.post).toBe(405);
    expect(probes.index).toBe(200);
    expect(probes.metricsType).toBe('text/plain; version=0.0.4; charset=utf-8');
  });

  it('SIGTERM stops it cleanly: exit 0, tcpdump gone, the listener closed, the summary line', async () => {
    expect(exit.code, daemon.stderr()).toBe(0);
    expect(daemon.stderr()).toMatch(/daemon stopped \(SIGTERM\); tcpdump: \d+ packets received by the filter, 0 dropped by the kernel; \d+ packets in \d+ files \(3 kept, \d+ rotated away\); \d+ lines appended to /);
    expect(tcpdumps).toHaveLength(1);
    for (const pid of tcpdumps) expect(() => process.kill(pid, 0)).toThrow();
    await expect(request(`${base}/metrics`)).rejects.toThrow(/ECONNREFUSED/);
  });

  it('rotation kept the newest files, each a valid capture no larger than --rotate-size, holding the last packets; nothing else was touched', async () => {
    const lines = ndjson(readFileSync(path.join(dir, 'hangscope.ndjson'), 'utf8'));
    const stats = lines[lines.length - 1];
    expect(stats.type).toBe('stats');
    expect(stats.files.opened).toBeGreaterThan(ROTATE_COUNT);
    expect(stats.files.deleted).toBe(stats.files.opened - ROTATE_COUNT);
    const kept: string[] = stats.files.kept;
    expect(kept).toHaveLength(ROTATE_COUNT);
    const pattern = /^hangscope-\d{8}T\d{6}Z-\d{6}\.pcap$/;
    expect(readdirSync(dir).filter((n) => pattern.test(n) && n !== EARLIER).sort()).toEqual(kept.map((k) => path.basename(k)));
    expect(readFileSync(path.join(dir, EARLIER))).toEqual(readFileSync(labCapture('a-incident') ?? path.join(REPO, 'samples/incident.pcap')));
    expect(readFileSync(path.join(dir, 'notes.txt'), 'utf8')).toBe('keep me');
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    const frames: Buffer[] = [];
    for (const f of kept) {
      const st = statSync(f);
      expect(st.mode & 0o777).toBe(0o600);
      expect(st.size).toBeLessThanOrEqual(ROTATE_SIZE);
      const r = await readBack(f);
      expect(r.format).toBe('pcap');
      expect(r.anomalies).toEqual({});
      expect([...r.linkTypes]).toEqual([1]);
      expect(r.recs.length).toBeGreaterThan(0);
      if (tsharkPresent) expect(tsharkFrames(f)).toBe(r.recs.length);
      frames.push(...r.recs.map((x) => x.data));
    }
    // The same frames as the last ones of the separate capture.
    const truthRecs = (await readBack(truthPcap)).recs;
    // Every frame whole in the truth capture (none cut by its snaplen).
    for (const r of truthRecs) expect(r.data.length).toBe(r.origLen);
    const truth = truthRecs.map((x) => x.data);
    expect(truth.length).toBe(stats.packets);
    expect(frames.map((b) => b.toString('hex'))).toEqual(truth.slice(truth.length - frames.length).map((b) => b.toString('hex')));
  });

  it('the NDJSON file: a start line, every socket, the findings (the incident socket aborted by the client), the stats line; mode 0600', () => {
    const file = path.join(dir, 'hangscope.ndjson');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const lines = ndjson(readFileSync(file, 'utf8'));
    expect(lines[0].type).toBe('start');
    expect(lines[0].capture.filter).toBe(`tcp port ${port}`);
    const conns = lines.filter((l) => l.type === 'connection');
    expect(conns.map((c) => c.client.port).sort()).toEqual([...new Set([...requests.map((q) => q.localPort), ...gets.map((g) => g.localPort)])].sort());
    const incident = conns.find((c) => c.client.port === requests[0].localPort);
    expect(incident.exchanges.map((e: any) => `${e.method} ${e.target} ${e.status} ${e.outcome}`)).toEqual([`GET ${requests[0].target} 200 complete`, 'POST /exec null no-response']);
    expect(incident.firstClose.by).toBe('client');
    expect(incident.firstClose.kind).toBe('FIN');
    const abort = lines.filter((l) => l.type === 'finding' && l.code === 'client-abort-before-response');
    expect(abort).toHaveLength(1);
    expect(abort[0].connection).toBe(incident.id);
    // The capture-wide signature comes when the daemon stops (engine.finish).
    expect(lines.some((l) => l.type === 'finding' && l.code === 'client-timeout-signature')).toBe(true);
    const stats = lines[lines.length - 1];
    expect(stats.packets).toBe(metric(samples, 'hangscope_packets_total'));
    expect(stats.capture.stoppedBy).toBe('SIGTERM');
    expect(stats.drops).toBe(0);
  });

  it('watch --attach (ndjson): the same socket and finding lines as the daemon, live and, attached late, from its backlog', () => {
    const lines = ndjson(readFileSync(path.join(dir, 'hangscope.ndjson'), 'utf8')).filter((l) => l.type === 'connection' || l.type === 'finding');
    expect(attach.stderr()).toContain('the daemon stopped (SIGTERM)');
    expect(ndjson(attach.stdout())).toEqual(lines);
    const lateLines = ndjson(late.stdout());
    expect(lateLines.find((l) => l.type === 'connection' && l.client.port === requests[0].localPort)).toEqual(lines.find((l) => l.type === 'connection' && l.client.port === requests[0].localPort));
    expect(late.stderr()).toContain('detached');
  });

  it('watch --attach (the dashboard): the socket row with both requests, the client FIN and the finding; /state has the same row', () => {
    const localPort = requests[0].localPort as number;
    const row = frame.split('\n').find((l) => l.includes(` ${localPort} `));
    expect(row, frame).toBeDefined();
    const waited = tsharkPresent
      ? (() => {
          const post = Number(tshark(truthPcap, 'http.request.method == "POST"', ['frame.time_epoch'])[0]![0]);
          const fin = Number(tshark(truthPcap, `tcp.flags.fin == 1 && tcp.srcport == ${localPort}`, ['frame.time_epoch'])[0]![0]);
          return (fin - post).toFixed(2);
        })()
      : '5.00';
    expect(row).toContain(`GET /files/abc 200 -> POST /exec x client FIN ${waited}s`);
    expect(row).toContain('client-abort-before-response');
    expect(frame).toContain(`tcpdump on lo  filter "tcp port ${port}"`);
    expect(frame).toMatch(/findings: client-abort-before-response 1/);
    if (haveTmux) {
      // The same row in `hangscope watch --attach URL` on a terminal (tmux); q quit it.
      const termRow = screen.split('\n').find((l) => l.includes(` ${localPort} `));
      expect(termRow, screen).toBeDefined();
      expect(termRow).toContain(`GET /files/abc 200 -> POST /exec x client FIN ${waited}s`);
      expect(termRow).toContain('client-abort-before-response');
      expect(screen).toContain(`attached to ${base}`);
      expect(quitByQ).toBe(true);
    }
    const stateRow = stateDoc.rows.find((r: any) => r.client.port === localPort);
    expect(stateRow.exchanges.map((e: any) => e.target)).toEqual([requests[0].target, '/exec']);
    expect(stateRow.closes[0]).toMatchObject({ by: 'client', kind: 'FIN' });
  });
});
