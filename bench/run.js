/**
 * `npm run bench`: hangscope against tcpdump -r, tcptrace and tshark on the
 * same deterministic captures (bench/gen.js), in the same run.
 *
 *   node bench/run.js [--size 1G | --size 256M,512M,1G] [--seed 1] [--runs 3]
 *                     [--no-tshark | --tshark-max 512M] [--no-json] [--no-live]
 *                     [--live-seconds 5] [--live-rates 5000,10000,20000,40000,0]
 *                     [--live-load raw|http]
 *                     [--dir bench/out] [--regen]
 *
 * For each size: writes (or reuses) bench/out/http-<size>-s<seed>.pcap and its
 * ground truth, checks it (capinfos packet count; hangscope's exchanges,
 * connections, packets and complete responses against the writer's counts;
 * tshark's request and response counts when tshark runs), warms the page
 * cache, then times each tool as a child process. Wall time is measured here
 * (median of --runs), peak RSS is the child's maximum resident set size from
 * /usr/bin/time (wait4 rusage). tshark runs once per size (it takes minutes).
 *
 * Live path (--no-live to skip):
 *  - pipe: `tcpdump -r FILE -w - | hangscope analyze -`: packets/s the engine
 *    sustains from a tcpdump pipe (a pipe never drops: a slow reader blocks
 *    the writer), on the smallest size;
 *  - loopback: while bench/loadgen.js sends HTTP keep-alive load on 127.0.0.1
 *    (--live-load raw: canned messages on plain sockets, the default, fast
 *    enough to load the capture; http: Node's http client and server) at each
 *    of --live-rates requests per second (0: as fast as it goes), captures
 *    with `hangscope watch -i lo --source tcpdump` and with
 *    `tcpdump -i lo -U -B 32768 -w - | hangscope analyze -`; reports
 *    packets/s, tcpdump's "dropped by kernel" count and hangscope's exchanges
 *    against the requests the load generator completed, plus a control run of
 *    tcpdump alone. Needs root (tcpdump on lo).
 *
 * Results: printed tables, and bench/out/results.json.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseSize, writeBenchCapture } from './gen.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(REPO, 'bin/hangscope.js');

// ---- options ------------------------------------------------------------------------------

const argv = process.argv.slice(2);
function opt(name, dflt) {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
}
const flag = (name) => argv.includes(name);
const sizeArgs = opt('--size', '1G').split(',').map((s) => s.trim()).filter(Boolean);
const seed = Number(opt('--seed', '1'));
const runs = Math.max(1, Number(opt('--runs', '3')));
const tsharkMax = flag('--no-tshark') ? -1 : opt('--tshark-max', null) === null ? Infinity : parseSize(opt('--tshark-max'));
const withJson = !flag('--no-json');
const withLive = !flag('--no-live');
const liveSeconds = Number(opt('--live-seconds', '5'));
const liveRates = opt('--live-rates', '5000,10000,20000,40000,0').split(',').map(Number);
const liveLoad = opt('--live-load', 'raw'); // raw: plain sockets (fast); http: Node's http client and server
const dir = path.resolve(opt('--dir', path.join(REPO, 'bench/out')));
const regen = flag('--regen');

if (!existsSync(path.join(REPO, 'dist/cli/main.js'))) {
  console.error('bench: dist/ is missing: run `npm run build` first (npm run bench does)');
  process.exit(2);
}
mkdirSync(dir, { recursive: true });

const have = (cmd, args = ['--version']) => !spawnSync(cmd, args, { stdio: 'ignore' }).error;
const HAVE = {
  time: existsSync('/usr/bin/time'),
  tcpdump: have('tcpdump'),
  tcptrace: have('tcptrace', ['-v']),
  tshark: have('tshark', ['-v']),
  capinfos: have('capinfos', ['-h']),
};
if (!HAVE.time) {
  console.error('bench: /usr/bin/time is needed for peak RSS (apt-get install time)');
  process.exit(2);
}

// ---- helpers ------------------------------------------------------------------------------

const MB = 1e6;
const fmt = (n, d = 2) => (n === null || n === undefined || Number.isNaN(n) ? '-' : n.toFixed(d));
const fmtInt = (n) => Math.round(n).toLocaleString('en-US');
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * Run `cmd args` under /usr/bin/time; stdout goes to `stdout` ('ignore' or a
 * callback receiving lines). Resolves { wall (s), rssMB, code, stderr }.
 */
function timed(cmd, args, { lines = null, shell = false } = {}) {
  return new Promise((resolve, reject) => {
    const tf = path.join(dir, `.time-${process.pid}`);
    const full = shell ? ['/bin/sh', '-c', `${cmd}`] : [cmd, ...args];
    const t0 = process.hrtime.bigint();
    const child = spawn('/usr/bin/time', ['-f', '%M %U %S', '-o', tf, ...full], {
      stdio: ['ignore', lines ? 'pipe' : 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    let done = Promise.resolve();
    if (lines) {
      const rl = createInterface({ input: child.stdout, crlfDelay: Infinity });
      rl.on('line', lines);
      done = new Promise((r) => rl.on('close', r));
    }
    child.on('error', reject);
    child.on('close', async (code) => {
      await done;
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      let rssKB = NaN;
      let cpu = NaN;
      try {
        const t = readFileSync(tf, 'utf8').trim().split('\n');
        const [m, u, s] = t[t.length - 1].split(' ').map(Number);
        rssKB = m;
        cpu = u + s;
        rmSync(tf, { force: true });
      } catch {
        /* no time output */
      }
      resolve({ wall, cpu, rssMB: (rssKB * 1024) / MB, code, stderr });
    });
  });
}

async function timedRuns(label, cmd, args, n, opts) {
  const walls = [];
  const cpus = [];
  let rss = 0;
  for (let i = 0; i < n; i++) {
    const r = await timed(cmd, args, opts);
    if (r.code !== 0) throw new Error(`${label} exited ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    walls.push(r.wall);
    cpus.push(r.cpu);
    rss = Math.max(rss, r.rssMB);
    process.stderr.write(`  ${label}: ${fmt(r.wall, 3)} s wall, ${fmt(r.cpu, 2)} s cpu, ${fmt(r.rssMB, 0)} MB\n`);
  }
  return { wall: median(walls), walls, cpu: median(cpus), rssMB: rss };
}

/** Read a file once so every tool reads it from the page cache. */
function warm(file) {
  return new Promise((resolve, reject) => {
    const s = createReadStream(file, { highWaterMark: 4 << 20 });
    s.on('data', () => {});
    s.on('end', resolve);
    s.on('error', reject);
  });
}

function assertEq(what, got, want, problems) {
  if (got !== want) problems.push(`${what}: got ${got}, want ${want}`);
}

// ---- captures -----------------------------------------------------------------------------

const GEN_VERSION = statSync(path.join(REPO, 'bench/gen.js')).size; // changes when the writer changes

function capture(sizeArg) {
  const size = parseSize(sizeArg);
  const file = path.join(dir, `http-${sizeArg}-s${seed}.pcap`);
  const tf = `${file}.truth.json`;
  if (!regen && existsSync(file) && existsSync(tf)) {
    const t = JSON.parse(readFileSync(tf, 'utf8'));
    if (t.size === size && t.seed === seed && t.gen === GEN_VERSION && statSync(file).size === t.bytes) return { file, truth: t };
  }
  process.stderr.write(`writing ${file} (${sizeArg}, seed ${seed}) ...\n`);
  const t0 = Date.now();
  const truth = { ...writeBenchCapture(file, { size, seed }), size, seed, gen: GEN_VERSION };
  writeFileSync(tf, JSON.stringify(truth, null, 1));
  process.stderr.write(`  ${((Date.now() - t0) / 1000).toFixed(1)} s: ${fmtInt(truth.packets)} packets, ${fmtInt(truth.connections)} connections, ${fmtInt(truth.requests)} requests\n`);
  return { file, truth };
}

/** hangscope's ndjson for the whole file: stats line, complete responses; checked against the writer. */
async function verifyHangscope(file, truth, problems) {
  let complete = 0;
  let exchanges = 0;
  let stats = null;
  const r = await timed(process.execPath, [BIN, 'analyze', file, '--format', 'ndjson'], {
    lines: (l) => {
      if (l.startsWith('{"type":"connection"')) {
        const c = JSON.parse(l);
        exchanges += c.exchanges.length;
        for (const e of c.exchanges) if (e.outcome === 'complete') complete++;
      } else if (l.startsWith('{"type":"stats"')) stats = JSON.parse(l);
    },
  });
  if (r.code !== 0 || stats === null) {
    problems.push(`hangscope analyze failed (exit ${r.code}): ${r.stderr.trim()}`);
    return;
  }
  assertEq('hangscope packets', stats.packets, truth.packets, problems);
  assertEq('hangscope connections', stats.connections, truth.connections, problems);
  assertEq('hangscope exchanges', stats.exchanges, truth.requests, problems);
  assertEq('hangscope exchanges listed', exchanges, truth.requests, problems);
  assertEq('hangscope complete exchanges', complete, truth.completeResponses, problems);
  const anomalies = Object.keys(stats.anomalies ?? {});
  if (anomalies.length > 0) problems.push(`hangscope anomalies on a clean capture: ${JSON.stringify(stats.anomalies)}`);
}

// ---- one size -------------------------------------------------------------------------------

async function benchSize(sizeArg) {
  const { file, truth } = capture(sizeArg);
  const bytes = statSync(file).size;
  const problems = [];
  process.stderr.write(`\n== ${sizeArg}: ${file} (${fmt(bytes / MB, 0)} MB, ${fmtInt(truth.packets)} packets)\n`);
  if (HAVE.capinfos) {
    const out = execFileSync('capinfos', ['-c', '-M', file], { encoding: 'utf8' });
    const m = /Number of packets:\s*(\d+)/.exec(out);
    assertEq('capinfos packets', m ? Number(m[1]) : null, truth.packets, problems);
  }
  await warm(file);
  process.stderr.write('  checking hangscope against the writer ...\n');
  await verifyHangscope(file, truth, problems);

  const rows = [];
  const add = (tool, what, r, extra = {}) => rows.push({ tool, what, wall: r.wall, walls: r.walls, cpu: r.cpu, rssMB: r.rssMB, ...extra });
  // The default command (text report) is the reference for the ratios; ndjson and json write every record too.
  add('hangscope', 'analyze FILE -o /dev/null (text report)', await timedRuns('hangscope', process.execPath, [BIN, 'analyze', file, '--output', '/dev/null'], runs));
  add('hangscope ndjson', 'analyze --format ndjson -o /dev/null', await timedRuns('hangscope ndjson', process.execPath, [BIN, 'analyze', file, '--format', 'ndjson', '--output', '/dev/null'], runs));
  if (withJson) add('hangscope json', 'analyze --format json -o /dev/null', await timedRuns('hangscope json', process.execPath, [BIN, 'analyze', file, '--format', 'json', '--output', '/dev/null'], runs));
  if (HAVE.tcpdump) add('tcpdump -r', 'tcpdump -r FILE -w /dev/null', await timedRuns('tcpdump -r', 'tcpdump', ['-r', file, '-w', '/dev/null'], runs));
  if (HAVE.tcptrace) add('tcptrace', 'tcptrace -n -l FILE (TCP only)', await timedRuns('tcptrace', 'tcptrace', ['-n', '-l', file], runs));
  if (HAVE.tshark && bytes <= tsharkMax) {
    let req = 0;
    let resp = 0;
    const r = await timedRuns(
      'tshark',
      'tshark',
      ['-r', file, '-Y', 'http', '-T', 'fields', '-e', 'http.request.method', '-e', 'http.response.code'],
      1,
      {
        lines: (l) => {
          const [m, c] = l.split('\t');
          if (m) req++;
          if (c) resp++;
        },
      },
    );
    // tshark 4.0 does not report a chunked message whose final LF comes alone in a segment (see gen.js).
    assertEq('tshark requests', req, truth.requests - truth.chunkedLfAlone.requests, problems);
    assertEq('tshark responses', resp, truth.completeResponses - truth.chunkedLfAlone.responses, problems);
    add('tshark', 'tshark -Y http -T fields (HTTP dissection)', r);
  }
  return { size: sizeArg, file, bytes, truth, rows, problems };
}

// ---- live path --------------------------------------------------------------------------------

/** Engine rate from a tcpdump pipe: tcpdump -r FILE -w - | hangscope analyze -. */
async function pipeRate(file, truth) {
  const out = [];
  const cmd = (src) => `${src} | ${process.execPath} ${BIN} analyze - --format ndjson --output /dev/null`;
  if (HAVE.tcpdump) {
    const r = await timedRuns('tcpdump -r | hangscope -', cmd(`tcpdump -r ${file} -w - 2>/dev/null`), [], runs, { shell: true });
    out.push({ what: 'tcpdump -r FILE -w - | hangscope analyze -', ...r, pps: truth.packets / r.wall });
  }
  const r = await timedRuns('cat | hangscope -', cmd(`cat ${file}`), [], runs, { shell: true });
  out.push({ what: 'cat FILE | hangscope analyze -', ...r, pps: truth.packets / r.wall });
  return out;
}

/** Wait for a child's stderr to match, at most `ms`. */
function waitFor(child, re, ms) {
  return new Promise((resolve) => {
    let buf = '';
    const t = setTimeout(() => resolve(false), ms);
    child.stderr.on('data', (d) => {
      buf += d;
      if (re.test(buf)) {
        clearTimeout(t);
        resolve(true);
      }
    });
  });
}

/**
 * Live capture on loopback at increasing request rates of bench/loadgen.js,
 * two ways at each rate:
 *  - watch: `hangscope watch -i lo --source tcpdump`, as users run it
 *    (tcpdump --immediate-mode -U -w - read on a worker thread);
 *  - pipe: `tcpdump -i lo -U -B 32768 -w - | hangscope analyze -`: the
 *    engine fed by a tcpdump pipe in buffered mode.
 * Each run reports packets/s, the kernel's drop count (tcpdump's "dropped by
 * kernel") and hangscope's exchanges against the requests the load generator
 * completed. A control run of `tcpdump -i lo -U -B 32768 -w /dev/null` alone
 * at the highest rate tells drops caused by the machine (load generator and
 * tcpdump on 2 cores) from drops caused by hangscope not keeping up.
 */
async function loopback() {
  if (!HAVE.tcpdump) return { skipped: 'tcpdump is not installed' };
  if (process.getuid?.() !== 0) return { skipped: 'needs root for tcpdump -i lo' };
  const loadArgs = (port, rate) => [path.join(REPO, 'bench/loadgen.js'), '--port', String(port), '--seconds', String(liveSeconds), '--rate', String(rate), ...(liveLoad === 'raw' ? ['--raw'] : [])];
  let nextPort = 18000 + (process.pid % 900);
  const runsOut = [];

  async function once(how, rate) {
    const port = nextPort++;
    const outFile = path.join(dir, `.live-${process.pid}.ndjson`);
    const errFile = path.join(dir, `.live-${process.pid}.err`);
    let child;
    if (how.startsWith('watch')) {
      // 'watch-B256': with the kernel buffer its stop line advises when the default one drops.
      child = spawn(
        process.execPath,
        [BIN, 'watch', '-i', 'lo', '-p', String(port), '--source', 'tcpdump', '--format', 'ndjson', '-o', outFile, '-d', String(liveSeconds + 4), ...(how === 'watch-B256' ? ['--buffer-size', '256'] : [])],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
    } else {
      // tcpdump's stderr (its drop count) goes to errFile; the shell's stderr is tcpdump's "listening" line too.
      child = spawn(
        '/bin/sh',
        ['-c', `tcpdump -i lo -U -s 0 -B 32768 -w - 'tcp port ${port}' 2>${errFile} | ${process.execPath} ${BIN} analyze - --format ndjson --output ${outFile}`],
        { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
      );
    }
    const closed = new Promise((r) => child.on('close', r));
    let listening;
    if (how.startsWith('watch')) listening = await waitFor(child, /listening on/, 10_000);
    else {
      listening = false;
      for (let i = 0; i < 100 && !listening; i++) {
        await new Promise((r) => setTimeout(r, 100));
        listening = existsSync(errFile) && /listening on/.test(readFileSync(errFile, 'utf8'));
      }
    }
    if (!listening) {
      process.kill(how.startsWith('watch') ? child.pid : -child.pid, 'SIGINT');
      await closed;
      return null;
    }
    const gen = spawnSync(process.execPath, loadArgs(port, rate), { encoding: 'utf8', timeout: (liveSeconds + 60) * 1000 });
    if (how === 'pipe') {
      // Buffered mode hands packets over in blocks, at the latest after tcpdump's 1 s timeout.
      await new Promise((r) => setTimeout(r, 1500));
      // Stop our tcpdump (the pipeline's process group is ours); hangscope then reads to the end.
      const pids = spawnSync('pgrep', ['-g', String(child.pid), '-x', 'tcpdump'], { encoding: 'utf8' }).stdout.trim().split('\n').filter(Boolean);
      for (const p of pids) process.kill(Number(p), 'SIGINT');
    }
    await closed;
    const load = JSON.parse(gen.stdout.trim().split('\n').pop() || '{}');
    const lines = readFileSync(outFile, 'utf8').trim().split('\n');
    const stats = JSON.parse(lines[lines.length - 1]);
    let dropped;
    if (how.startsWith('watch')) dropped = stats.capture?.dropped ?? stats.drops ?? null;
    else dropped = Number(/(\d+) packets? dropped by kernel/.exec(readFileSync(errFile, 'utf8'))?.[1] ?? NaN);
    rmSync(outFile, { force: true });
    rmSync(errFile, { force: true });
    const r = {
      how,
      rate,
      seconds: load.seconds,
      requests: load.requests,
      packets: stats.packets,
      pps: stats.packets / load.seconds,
      mbps: stats.bytes / MB / load.seconds,
      dropped,
      exchanges: stats.exchanges,
    };
    process.stderr.write(`  ${how} at ${rate || 'max'} req/s: ${fmtInt(r.pps)} packets/s, dropped ${r.dropped}, exchanges ${r.exchanges} of ${r.requests} requests\n`);
    return r;
  }

  for (const rate of liveRates) {
    // -B 256 only where the default buffer drops (the two highest rates).
    for (const how of rate === 0 || rate >= 20000 ? ['watch', 'watch-B256', 'pipe'] : ['watch', 'pipe']) {
      const r = await once(how, rate);
      if (r === null) return { skipped: `${how}: tcpdump did not start listening` };
      runsOut.push(r);
    }
  }
  // Control: tcpdump alone, at the unthrottled rate.
  const port = nextPort++;
  const td = spawn('tcpdump', ['-i', 'lo', '-U', '-s', '0', '-B', '32768', '-w', '/dev/null', `tcp port ${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let tdErr = '';
  td.stderr.on('data', (d) => (tdErr += d));
  const tdClosed = new Promise((r) => td.on('close', r));
  await waitFor(td, /listening on/, 10_000);
  const gen = spawnSync(process.execPath, loadArgs(port, 0), { encoding: 'utf8', timeout: (liveSeconds + 60) * 1000 });
  await new Promise((r) => setTimeout(r, 1500));
  td.kill('SIGINT');
  await tdClosed;
  const load = JSON.parse(gen.stdout.trim().split('\n').pop() || '{}');
  const m = (re) => Number(re.exec(tdErr)?.[1] ?? NaN);
  const control = { requests: load.requests, seconds: load.seconds, captured: m(/(\d+) packets? captured/), dropped: m(/(\d+) packets? dropped by kernel/) };
  control.pps = control.captured / control.seconds;
  process.stderr.write(`  control tcpdump -i lo -w /dev/null at max: ${fmtInt(control.pps)} packets/s, dropped ${control.dropped}\n`);
  return { runs: runsOut, control };
}

// ---- main ----------------------------------------------------------------------------------------

const loadStart = loadavg();
const results = [];
for (const s of sizeArgs) results.push(await benchSize(s));
let live = null;
if (withLive) {
  const smallest = results.reduce((a, b) => (a.bytes <= b.bytes ? a : b));
  process.stderr.write(`\n== live path (${smallest.size})\n`);
  live = { pipe: await pipeRate(smallest.file, smallest.truth), loopback: await loopback() };
}

// ---- report ------------------------------------------------------------------------------------

const cpu = cpus();
console.log(`\nhangscope benchmark: ${cpu.length} x ${cpu[0]?.model ?? 'cpu'}, ${fmt(totalmem() / 1e9, 0)} GB RAM, node ${process.version}; seed ${seed}, median of ${runs} runs (tshark: 1)`);
console.log(`load average at start ${loadStart.map((x) => fmt(x, 1)).join(' ')}, at end ${loadavg().map((x) => fmt(x, 1)).join(' ')} (other work on the machine inflates wall times; cpu = user + sys of the process)`);
for (const r of results) {
  const t = r.truth;
  console.log(`\n${r.size}: ${fmt(r.bytes / MB, 0)} MB, ${fmtInt(t.packets)} packets, ${fmtInt(t.connections)} connections, ${fmtInt(t.requests)} HTTP exchanges`);
  const hs = r.rows.find((x) => x.tool === 'hangscope');
  const head = ['tool', 'wall s', 'cpu s', 'packets/s', 'MB/s', 'peak RSS MB', 'hangscope/tool wall', 'cpu'];
  const table = [head];
  const ratio = (a, b) => (!(b >= 0.01) ? '-' : `${fmt(a / b, 2)}x` + (a < b ? ` (${fmt(b / a, 1)}x faster)` : ''));
  for (const row of r.rows) {
    const mine = row === hs || !hs;
    table.push([row.tool, fmt(row.wall, 3), fmt(row.cpu, 2), fmtInt(t.packets / row.wall), fmt(r.bytes / MB / row.wall, 0), fmt(row.rssMB, 0), mine ? '' : ratio(hs.wall, row.wall), mine ? '' : ratio(hs.cpu, row.cpu)]);
  }
  const w = head.map((_, i) => Math.max(...table.map((x) => String(x[i]).length)));
  for (const x of table) console.log('  ' + x.map((c, i) => (i === 0 ? String(c).padEnd(w[i]) : String(c).padStart(w[i]))).join('  '));
  if (r.problems.length > 0) for (const p of r.problems) console.log(`  CHECK FAILED: ${p}`);
  else console.log('  checks: capinfos packets, hangscope packets/connections/exchanges/complete responses' + (r.rows.some((x) => x.tool === 'tshark') ? ', tshark requests/responses' : '') + ' = writer\'s counts');
  if (!r.rows.some((x) => x.tool === 'tshark')) console.log(HAVE.tshark ? '  tshark: not run at this size (--no-tshark / --tshark-max)' : '  tshark: not installed');
}
if (results.length > 1) {
  console.log('\nscaling (wall time per packet, peak RSS):');
  for (const r of results) {
    const per = (tool, label) => {
      const x = r.rows.find((y) => y.tool === tool);
      return x ? `${label} ${fmt((x.wall * 1e6) / r.truth.packets, 3)} µs/packet, ${fmt(x.rssMB, 0)} MB` : null;
    };
    console.log(`  ${r.size.padEnd(5)} ` + [per('hangscope', 'text'), per('hangscope ndjson', 'ndjson'), per('hangscope json', 'json')].filter(Boolean).join('; '));
  }
}
if (live) {
  console.log('\nlive path:');
  for (const p of live.pipe) console.log(`  ${p.what}: ${fmtInt(p.pps)} packets/s (${fmt(p.wall, 3)} s wall, peak RSS of hangscope ${fmt(p.rssMB, 0)} MB)`);
  const l = live.loopback;
  if (l.skipped) console.log(`  loopback capture: skipped (${l.skipped})`);
  else {
    console.log(
      `  watch = hangscope watch -i lo --source tcpdump (watch-B256: with --buffer-size 256); pipe = tcpdump -i lo -U -B 32768 -w - | hangscope analyze -; load: bench/loadgen.js ${liveLoad === 'raw' ? '--raw (16 keep-alive sockets, canned GET and 200, 0-1 KiB bodies)' : '(Node http, 16 in flight on 8 keep-alive sockets, 0-64 KiB responses)'} on 127.0.0.1, ${liveSeconds} s per rate:`,
    );
    for (const r of l.runs)
      console.log(
        `    ${r.how.padEnd(10)} ${String(r.rate || 'max').padStart(5)} req/s asked: ${fmtInt(r.requests / r.seconds)} req/s done, ${fmtInt(r.pps)} packets/s (${fmt(r.mbps, 0)} MB/s); ` +
          `kernel drops ${r.dropped}; hangscope ${r.exchanges} exchanges of ${r.requests} requests` +
          (r.dropped === 0 && r.exchanges === r.requests ? ' (no loss)' : ''),
      );
    const c = l.control;
    console.log(`    control: tcpdump -i lo -U -B 32768 -w /dev/null alone at max: ${fmtInt(c.pps)} packets/s, kernel drops ${c.dropped}`);
  }
}
writeFileSync(path.join(dir, 'results.json'), JSON.stringify({ date: new Date().toISOString(), cpus: cpu.length, node: process.version, seed, runs, results, live }, null, 1));
const failed = results.some((r) => r.problems.length > 0);
process.exit(failed ? 1 : 0);
