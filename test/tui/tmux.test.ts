/**
 * The dashboard in a real terminal: tmux runs the built CLI, `send-keys`
 * types, `capture-pane` reads the screen.
 *
 *  - `hangscope analyze <capture> --tui`: the lab's incident capture (or, when
 *    it is missing, a corpus capture with a multi-request socket) shows both
 *    requests of the socket on one row; enter opens its detail view; q quits.
 *  - `hangscope watch` live on loopback (root and tcpdump needed) while the
 *    incident client runs: the row turns into the abort; q prints the summary.
 *
 * tmux runs on a private server socket (-L) that this test starts and kills.
 * Needs tmux; skips with a printed reason otherwise, unless CI=true.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, REPO, built, hasCommand, isRoot, killAll, need, runClient, startServer, tcpdumpPath, until } from '../live/helpers.js';
import { corpusFile, labCapture, tshark, tsharkPresent } from './helpers.js';

const SOCKET = `hangscope-test-${process.pid}`;
const SUITE = 'tui: under tmux';
const ready = need(built, 'dist/ is missing (npm run build)', SUITE) && need(hasCommand('tmux'), 'tmux is not installed (apt-get install tmux)', SUITE);

function tmux(...args: string[]): { code: number | null; out: string } {
  const r = spawnSync('tmux', ['-L', SOCKET, ...args], { encoding: 'utf8', timeout: 10_000 });
  return { code: r.status, out: r.stdout };
}
const screen = (): string => tmux('capture-pane', '-p', '-t', 'main').out;
const alive = (): boolean => tmux('has-session', '-t', 'main').code === 0;

afterAll(() => {
  // Our private tmux server only (-L), and whatever the tests started.
  tmux('kill-server');
  killAll();
});

/** The capture and the two paths expected on one socket row. */
function pick(): { file: string; first: string; second: string; port: number } | null {
  const lab = labCapture('a-incident');
  if (lab !== null && tsharkPresent) {
    const reqs = tshark(lab, 'http.request', ['tcp.srcport', 'http.request.uri']);
    return { file: lab, first: '/files/abc', second: '/exec', port: Number(reqs[0]![0]) };
  }
  const ws = corpusFile('zeek/workshop_2011_browse.pcap');
  if (ws === null) return null;
  // Stream 0 (client port 49282) carried GET / then GET /css/pygments.css (tshark truth file).
  const tsv = readFileSync(ws.replace(/\.pcap$/, '.tshark-http.tsv'), 'utf8').split('\n').slice(1).map((l) => l.split('\t'));
  const reqs = tsv.filter((c) => c[2] === '0' && c[9] !== '' && c[9] !== undefined);
  return { file: ws, first: `GET ${reqs[0]![10]}`, second: reqs[1]![10]!, port: Number(reqs[0]![5]) };
}

describe.runIf(ready)(SUITE, () => {
  it('analyze --tui: both requests on one socket row; enter shows the detail view; q quits', async () => {
    const p = pick();
    if (!need(p !== null, 'neither test/fixtures/lab/a-incident (with tshark) nor the corpus is present', `${SUITE}: replay`)) return;
    const { file, first, second, port } = p!;
    tmux('kill-session', '-t', 'main');
    expect(tmux('new-session', '-d', '-s', 'main', '-x', '160', '-y', '40', `cd ${REPO} && ${process.execPath} ${BIN} analyze ${file} --tui`).code).toBe(0);
    await until(() => screen().includes('q quits'), 15_000, 'the replay to finish');
    const rows = screen().split('\n').filter((l) => l.includes(` ${port} `));
    expect(rows, screen()).toHaveLength(1);
    expect(rows[0]).toContain(first);
    expect(rows[0]).toContain(second);
    expect(rows[0]!.indexOf(first)).toBeLessThan(rows[0]!.indexOf(second));

    tmux('send-keys', '-t', 'main', 'Enter');
    await until(() => screen().includes('Exchanges'), 5_000, 'the detail view');
    const detail = screen();
    expect(detail).toMatch(new RegExp(`socket [0-9.]+:${port} -> `));
    expect(detail).toMatch(/^#1 /m);
    expect(detail).toMatch(/^#2 /m);
    expect(detail).toContain('esc/backspace back');

    tmux('send-keys', '-t', 'main', 'Escape');
    await until(() => screen().includes('REQUESTS ON THE SOCKET'), 5_000, 'the table again');
    tmux('send-keys', '-t', 'main', 'q');
    await until(() => !alive(), 5_000, 'hangscope to quit');
  });

  const live = need(isRoot && tcpdumpPath !== null, 'needs root and tcpdump', `${SUITE}: live watch`);
  it.runIf(live)('watch on loopback: the socket row turns into the abort while it happens; q stops and prints the summary', async () => {
    const server = await startServer(7000);
    try {
      tmux('kill-session', '-t', 'main');
      // The shell keeps the summary on the screen after hangscope exits (sleep), for capture-pane.
      tmux('new-session', '-d', '-s', 'main', '-x', '160', '-y', '40', `cd ${REPO} && ${process.execPath} ${BIN} watch -i lo -p ${server.port}; echo "exit=$?"; sleep 30`);
      await until(() => screen().includes('capturing'), 15_000, 'watch to start capturing');
      const client = runClient(server.port);
      await until(() => /GET \/files\/abc 200 -> POST \/exec … /.test(screen()), 10_000, 'the POST waiting, live');
      const events = await client;
      const localPort = events.find((e) => e.event === 'request-socket')!.localPort as number;
      await until(() => screen().includes('POST /exec x client FIN'), 10_000, 'the abort on the row');
      const row = screen().split('\n').find((l) => l.includes(` ${localPort} `))!;
      expect(row).toMatch(/GET \/files\/abc 200 -> POST \/exec x client FIN 5\.0\ds/);
      tmux('send-keys', '-t', 'main', 'q');
      await until(() => screen().includes('exit=0'), 15_000, 'the summary after q');
      const out = screen();
      expect(out).toContain('Verdict (high confidence): The client closed the socket');
      expect(out).toMatch(/stopped \(quit\); tcpdump: \d+ packets received by the filter, \d+ dropped by the kernel/);
    } finally {
      tmux('kill-session', '-t', 'main');
      server.run.child.kill('SIGTERM');
    }
  });
});
