/**
 * The dashboard over HTTP (dashboards/attach.ts), in-process: a DashboardFeed
 * on a loopback HTTP server, fed by the engine reading a real capture (the
 * lab's incident: axios GET /files then node-fetch POST /exec on one pooled
 * socket, cut by the client's 5 s idle timer), followed by followEvents and
 * drawn by the unchanged ink App through a RemoteStore.
 *
 * What the attached dashboard shows is compared with the same App drawing
 * the local store (the daemon's own view), and with tshark on the capture.
 * Secrets: a corpus capture with an Authorization header (Zeek's
 * basic-auth-with-colon) must not leak through /events or /state.
 */
import * as http from 'node:http';
import { render } from 'ink-testing-library';
import { afterEach, describe, expect, it } from 'vitest';
import { DashboardFeed, RemoteStore, SseParser, eventsUrl, followEvents, wireSnapshot, type SseEvent } from '../../dashboards/attach.js';
import { App } from '../../dashboards/tui/App.js';
import { DashboardStore, type Snapshot } from '../../dashboards/tui/model.js';
import { Engine } from '../../lib/engine.js';
import { corpusFile, labCapture, labTruth, need, records, tshark, tsharkPresent } from './helpers.js';

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** A daemon's view side, in-process: store + feed + engine + loopback HTTP server. */
async function serve(showSecrets = false) {
  const store = new DashboardStore({ source: { kind: 'tcpdump', name: 'lo', filter: 'tcp port 8000', snaplen: null, port: 8000 }, showSecrets });
  const feed = new DashboardFeed(store, { showSecrets, hello: { tool: 'hangscope', pid: process.pid, interface: 'lo', filter: 'tcp port 8000' } });
  const engine = new Engine({
    showSecrets,
    onOpen: store.onOpen,
    onExchange: store.onExchange,
    onConnection: (rec) => {
      store.onConnection(rec);
      feed.connection(rec);
    },
    onFinding: (f) => {
      store.onFinding(f);
      feed.finding(f);
    },
  });
  store.attach(engine);
  const server = http.createServer((req, res) => (req.url === '/state' ? feed.state(req, res) : feed.events(req, res)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        feed.end('test over');
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  return { store, feed, engine, url: eventsUrl(`127.0.0.1:${port}`), base: `http://127.0.0.1:${port}` };
}

function follow(url: URL, o: { once?: boolean } = {}) {
  const events: SseEvent[] = [];
  const abort = new AbortController();
  const done = followEvents(url, { onEvent: (e) => events.push(e) }, abort.signal, o);
  cleanups.push(async () => {
    abort.abort();
    await done.catch(() => {});
  });
  return { events, abort, done };
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((res, rej) => {
    http
      .get(url, (r) => {
        let body = '';
        r.setEncoding('utf8').on('data', (s: string) => (body += s));
        r.on('end', () => res({ status: r.statusCode ?? 0, body }));
      })
      .on('error', rej);
  });
}

describe('daemon: event stream parsing', () => {
  it('SseParser: events split anywhere (also inside CRLF), multi-line data, comments, ids', () => {
    const text = ': comment\r\nretry: 1000\r\nevent: hello\r\ndata: {"a":1}\r\n\r\nid: 7\nevent: finding\ndata: line one\ndata: line two\n\n:ping\n\ndata: plain\r\r';
    for (const step of [1, 2, 3, 7, text.length]) {
      const got: SseEvent[] = [];
      const p = new SseParser((e) => got.push(e));
      for (let i = 0; i < text.length; i += step) p.push(text.slice(i, i + step));
      expect(got).toEqual([
        { event: 'hello', data: '{"a":1}', id: null },
        { event: 'finding', data: 'line one\nline two', id: '7' },
        { event: 'message', data: 'plain', id: '7' },
      ]);
    }
  });

  it('eventsUrl: the daemon address in the forms people type', () => {
    expect(eventsUrl('http://127.0.0.1:9464').href).toBe('http://127.0.0.1:9464/events');
    expect(eventsUrl('127.0.0.1:9464').href).toBe('http://127.0.0.1:9464/events');
    expect(eventsUrl('http://[::1]:9464/metrics').href).toBe('http://[::1]:9464/events');
    expect(eventsUrl('http://localhost:1/events').href).toBe('http://localhost:1/events');
    expect(() => eventsUrl('https://127.0.0.1:9464')).toThrow(/only http/);
  });
});

const INCIDENT = labCapture('a-incident');
const haveIncident =
  need(INCIDENT !== null, 'test/fixtures/lab/a-incident/capture.pcap is missing (npm run lab makes it)', 'daemon: attach on the incident') &&
  need(tsharkPresent, 'tshark is not installed (apt-get install tshark)', 'daemon: attach on the incident');

describe.runIf(haveIncident)('daemon: attach on the incident', () => {
  it('a client attached during the capture gets the socket, its findings and the snapshots; a late one gets them from the backlog', async () => {
    const truth = labTruth('a-incident');
    const port = truth.requests[0].localPort as number;
    const fin = truth.captureFacts[0].clientFin.frame as number;
    const { store, engine, url, feed } = await serve();
    const early = follow(url);
    await until(() => early.events.some((e) => e.event === 'snapshot'), 5000, 'the first snapshot');
    expect(early.events[0]!.event).toBe('hello');
    expect(JSON.parse(early.events[0]!.data).interface).toBe('lo');

    const recs = await records(INCIDENT!);
    const lastSnapshot = (): Snapshot | null => {
      const last = early.events.filter((e) => e.event === 'snapshot').pop();
      return last === undefined ? null : (JSON.parse(last.data) as Snapshot);
    };
    // Up to the frame before POST /exec (tshark): the GET is done, the socket idle in the pool.
    const post = Number(tshark(INCIDENT!, 'http.request.method == "POST"', ['frame.number'])[0]![0]);
    for (const r of recs.slice(0, post - 1)) engine.packet(r);
    await until(() => lastSnapshot()?.rows.some((r) => r.live && r.client.port === port && r.exchanges.length === 1 && r.exchanges[0]!.done) === true, 5000, 'a snapshot with the GET done');
    // Then POST /exec, keep-alive probes and the client's FIN: no engine event (nothing finishes), yet the
    // row changes, and the dashboard must see it.
    for (const r of recs.slice(post - 1, fin)) engine.packet(r);
    await until(() => lastSnapshot()?.rows.some((r) => r.live && r.client.port === port && r.exchanges.length === 2 && r.closes.length === 1) === true, 5000, 'a snapshot with the live socket after the client FIN');
    expect(lastSnapshot()!.packets).toBe(fin);
    expect(early.events.some((e) => e.event === 'connection')).toBe(false);

    for (const r of recs.slice(fin)) engine.packet(r);
    engine.finish();
    store.setFinal('end');
    await until(() => early.events.some((e) => e.event === 'finding' && JSON.parse(e.data).code === 'client-timeout-signature'), 5000, 'the findings');
    const conns = early.events.filter((e) => e.event === 'connection').map((e) => JSON.parse(e.data));
    expect(conns).toHaveLength(1);
    expect(conns[0].type).toBe('connection');
    expect(conns[0].client.port).toBe(port);
    expect(conns[0].exchanges.map((e: any) => `${e.method} ${e.target} ${e.status} ${e.outcome}`)).toEqual([
      `GET ${truth.requests[0].target} ${truth.requests[0].status} complete`,
      'POST /exec null no-response',
    ]);
    expect(conns[0].firstClose.by).toBe('client');
    expect(conns[0].firstClose.frame).toBe(fin);
    const codes = early.events.filter((e) => e.event === 'finding').map((e) => JSON.parse(e.data).code);
    for (const code of truth.expect.findings as string[]) expect(codes).toContain(code);
    // Ids increase: a reconnecting client resumes after the last one it saw.
    const ids = early.events.filter((e) => e.id !== null && (e.event === 'connection' || e.event === 'finding')).map((e) => Number(e.id));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));

    const late = follow(url);
    await until(() => late.events.some((e) => e.event === 'snapshot'), 5000, 'the late client');
    expect(late.events.filter((e) => e.event === 'connection' || e.event === 'finding').map((e) => e.data)).toEqual(
      early.events.filter((e) => e.event === 'connection' || e.event === 'finding').map((e) => e.data),
    );
    expect(feed.clientCount).toBe(2);
  });

  it('watch --attach draws the same dashboard as the daemon: the socket row, the findings, the verdict', async () => {
    const truth = labTruth('a-incident');
    const port = truth.requests[0].localPort as number;
    const { store, engine, url } = await serve();
    for (const r of await records(INCIDENT!)) engine.packet(r);
    engine.finish();
    store.setFinal('daemon stopped');

    const remote = new RemoteStore(url.origin);
    const abort = new AbortController();
    const done = followEvents(url, { onEvent: (e) => e.event === 'snapshot' && remote.apply(JSON.parse(e.data)), onLink: (s) => remote.setLink(s) }, abort.signal);
    cleanups.push(async () => {
      abort.abort();
      await done;
    });
    await until(() => remote.latest !== null, 5000, 'a snapshot');
    const there = render(<App store={remote} width={160} height={30} refreshMs={20} />);
    const here = render(<App store={store} width={160} height={30} refreshMs={20} />);
    cleanups.push(() => there.unmount(), () => here.unmount());
    await sleep(150);
    const a = there.lastFrame()!.split('\n');
    const b = here.lastFrame()!.split('\n');
    // Only the status differs (it says where the dashboard comes from).
    expect(a[0]).toContain('tcpdump on lo');
    expect(a[0]).toContain('connected');
    expect(a.slice(1)).toEqual(b.slice(1));
    const row = a.find((l) => l.includes(` ${port} `))!;
    expect(row).toBeDefined();
    // What tshark says about the socket: the GET's status, then the POST cut by the client's FIN.
    const status = tshark(INCIDENT!, 'http.response', ['http.response.code'])[0]![0];
    const post = Number(tshark(INCIDENT!, 'http.request.method == "POST"', ['frame.time_epoch'])[0]![0]);
    const finTs = truth.captureFacts[0].clientFin.ts as number;
    expect(row).toContain(`GET /files/abc ${status} -> POST /exec x client FIN ${(finTs - post).toFixed(2)}s`);
    expect(row).toContain('client-abort-before-response');
    expect(a.find((l) => l.startsWith('findings: '))).toMatch(/client-abort-before-response 1/);
  });

  it('the daemon stopping ends the stream with its reason; a client following once returns', async () => {
    const { url, feed } = await serve();
    const f = follow(url, { once: true });
    await until(() => f.events.some((e) => e.event === 'snapshot'), 5000, 'the first snapshot');
    feed.end('SIGTERM');
    await f.done;
    expect(f.events.map((e) => e.event).slice(-2)).toEqual(['snapshot', 'end']);
    expect(JSON.parse(f.events[f.events.length - 1]!.data)).toEqual({ reason: 'SIGTERM' });
  });
});

const BASIC = corpusFile('zeek/http/basic-auth-with-colon.pcap');
const haveBasic =
  need(BASIC !== null, 'the corpus (../shared/corpus) is missing', 'daemon: attach redaction') &&
  need(tsharkPresent, 'tshark is not installed (apt-get install tshark)', 'daemon: attach redaction');

describe.runIf(haveBasic)('daemon: attach redaction', () => {
  it('no credential leaves the daemon unless it runs with --show-secrets', async () => {
    // The credentials as tshark reads them from the Authorization header.
    const auth = tshark(BASIC!, 'http.authorization', ['http.authorization'])[0]![0]!;
    const token = auth.trim().split(/\s+/).pop()!;
    expect(token.length).toBeGreaterThan(6);
    for (const showSecrets of [false, true]) {
      const { store, engine, url, base } = await serve(showSecrets);
      const f = follow(url);
      await until(() => f.events.some((e) => e.event === 'snapshot'), 5000, 'the first snapshot');
      const recs = await records(BASIC!);
      for (const r of recs.slice(0, Math.ceil(recs.length / 2))) engine.packet(r);
      const mid = await get(`${base}/state`);
      for (const r of recs.slice(Math.ceil(recs.length / 2))) engine.packet(r);
      engine.finish();
      await until(() => f.events.some((e) => e.event === 'connection'), 5000, 'the connection event');
      await sleep(600);
      const end = await get(`${base}/state`);
      const stream = f.events.map((e) => e.data).join('\n');
      expect(JSON.parse(end.body).rows.length).toBeGreaterThan(0);
      if (showSecrets) expect(end.body + stream).toContain(token);
      else for (const text of [mid.body, end.body, stream]) expect(text).not.toContain(token);
    }
  });

  it('wireSnapshot keeps the headers the dashboard shows and drops the rest', async () => {
    const store = new DashboardStore({ source: { kind: 'file', name: 'x', filter: null, snaplen: null, port: null } });
    const engine = new Engine({ onOpen: store.onOpen, onExchange: store.onExchange, onConnection: store.onConnection, onFinding: store.onFinding });
    store.attach(engine);
    for (const r of await records(BASIC!)) engine.packet(r);
    engine.finish();
    const ex = wireSnapshot(store.snapshot(), false).rows[0]!.exchanges[0]!;
    const ua = tshark(BASIC!, 'http.request', ['http.user_agent'])[0]![0];
    expect(ex.requestHeaders['user-agent']).toBe(ua);
    expect(Object.keys(ex.requestHeaders)).not.toContain('authorization');
  });
});
