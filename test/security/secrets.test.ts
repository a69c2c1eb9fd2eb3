/**
 * No secret from real traffic appears in any output, unless --show-secrets.
 *
 * The traffic (secrets-traffic.mjs): a Node http client sends credentials in
 * Authorization, Proxy-Authorization, Cookie, X-Api-Key, X-Auth-Token,
 * X-Amz-Security-Token, X-Functions-Key, X-Csrf-Token, in query strings
 * (token, api_key, signature, sig, password, accessToken, X-Amz-Credential,
 * key) and in a Referer URL; the server answers with Set-Cookie and a
 * Location carrying an OAuth code. The last request is abandoned by the
 * client, so the findings (summaries and evidence) name a target with a key.
 *
 * Checked for the committed capture (test/security/fixtures/secrets.pcap,
 * made by `node test/security/secrets-traffic.mjs test/security/fixtures/secrets.pcap`)
 * and, with root and tcpdump, for fresh traffic captured now, also through
 * `hangscope watch` (text and ndjson streams and summary) while it happens:
 * analyze --format text, json, ndjson, html (stdout and --output), and with
 * --show-secrets every secret is there in the JSON, the ndjson and the page.
 * A secret counts as leaked when its first 10 characters appear anywhere in
 * stdout, stderr or the output file (a cut value leaks too).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { hasCommand, isRoot, need } from '../need.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeSecrets, runClient, startServer, startTcpdump } from './secrets-traffic.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(here, '../..');
const MAIN = path.join(REPO, 'dist/cli/main.js');
const FIXTURE = path.join(here, 'fixtures/secrets.pcap');
const haveTcpdump = hasCommand('tcpdump');

const tmp = mkdtempSync(path.join(tmpdir(), 'hangscope-secrets-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

type Secrets = Record<string, string>;

interface Out {
  status: number | null;
  all: string;
}

function hangscope(args: string[], file?: string): Out {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 60_000 });
  const written = file !== undefined && existsSync(file) ? readFileSync(file, 'utf8') : '';
  return { status: r.status, all: `${r.stdout}\n${r.stderr}\n${written}` };
}

/** Secrets (by name) whose value, or its first 10 characters, occur in `text`. */
export function leaked(text: string, secrets: Secrets): string[] {
  return Object.entries(secrets)
    .filter(([, v]) => text.includes(v.slice(0, 10)))
    .map(([k]) => k);
}

/** Every format of `analyze`, redacted and with --show-secrets. */
function checkAnalyze(pcap: string, secrets: Secrets, label: string): void {
  describe(`analyze ${label}`, () => {
    it.each(['text', 'json', 'ndjson'])('--format %s: no secret on stdout, nor in --output', (format) => {
      const o = hangscope(['analyze', pcap, '--format', format, '--no-color']);
      expect(o.status).toBe(0);
      expect(leaked(o.all, secrets)).toEqual([]);
      const f = path.join(tmp, `${label}-${format}.out`);
      const o2 = hangscope(['analyze', pcap, '--format', format, '--output', f], f);
      expect(o2.status).toBe(0);
      expect(leaked(o2.all, secrets)).toEqual([]);
    });

    it('--format html: no secret in the page (text, tips, embedded JSON report)', () => {
      const f = path.join(tmp, `${label}.html`);
      const o = hangscope(['analyze', pcap, '--format', 'html', '--output', f], f);
      expect(o.status).toBe(0);
      expect(o.all).toContain('<!DOCTYPE html>');
      expect(leaked(o.all, secrets)).toEqual([]);
    });

    it('the report says where it redacted: headers, query values, Set-Cookie, the Location code', () => {
      const r = JSON.parse(spawnSync(process.execPath, [MAIN, 'analyze', pcap, '--format', 'json'], { encoding: 'utf8' }).stdout);
      const ex = r.connections[0].exchanges;
      const files = ex.find((e: any) => e.target.startsWith('/files'));
      expect(files.target).toBe(
        '/files/abc?detail=summary&token=[redacted]&api_key=[redacted]&signature=[redacted]&sig=[redacted]&password=[redacted]&accessToken=[redacted]&X-Amz-Credential=[redacted]',
      );
      for (const h of ['authorization', 'proxy-authorization', 'cookie', 'x-api-key', 'x-auth-token', 'x-amz-security-token', 'x-functions-key'])
        expect(files.requestHeaders[h], h).toBe('[redacted]');
      expect(files.requestHeaders.referer).toBe('https://app.example/view?session=[redacted]&tab=2');
      expect(files.requestHeaders['user-agent']).toBe('secrets-client/1');
      const login = ex.find((e: any) => e.target.startsWith('/login'));
      expect(login.responseHeaders['set-cookie']).toBe('[redacted]');
      expect(login.responseHeaders.location).toBe('/callback?code=[redacted]&state=ok');
      const exec = ex.find((e: any) => e.method === 'POST');
      expect(exec.target).toBe('/exec?key=[redacted]');
      expect(exec.requestHeaders['x-csrf-token']).toBe('[redacted]');
      // The findings name the abandoned request, redacted.
      expect(r.findings.length).toBeGreaterThan(0);
      expect(JSON.stringify(r.findings)).toContain('/exec?key=[redacted]');
    });

    it.each(['json', 'ndjson', 'html'])('--show-secrets --format %s: every secret is there', (format) => {
      const f = path.join(tmp, `${label}-show.${format}`);
      const o = hangscope(['analyze', pcap, '--format', format, '--show-secrets', '--output', f], f);
      expect(o.status).toBe(0);
      expect(Object.keys(secrets).filter((k) => !o.all.includes(secrets[k]!))).toEqual([]);
    });

    it('--show-secrets --format text: the secrets of the request targets are in the chain and the findings', () => {
      const o = hangscope(['analyze', pcap, '--show-secrets', '--no-color']);
      expect(o.status).toBe(0);
      expect(o.all).toContain(`POST /exec?key=${secrets.execKey}`);
      expect(o.all).toContain(`token=${secrets.qToken}`);
    });
  });
}

// ---------------------------------------------------------------- the committed capture

const fixtureSecrets = JSON.parse(readFileSync(path.join(here, 'fixtures/secrets.json'), 'utf8')).secrets as Secrets;
describe('the committed capture', () => {
  it('is built', () => expect(existsSync(MAIN), `${MAIN} is missing: npm run build`).toBe(true));
  it('holds every secret in its bytes (so the checks below mean something)', () => {
    const raw = readFileSync(FIXTURE).toString('latin1');
    expect(Object.keys(fixtureSecrets).filter((k) => !raw.includes(fixtureSecrets[k]!))).toEqual([]);
  });
});
checkAnalyze(FIXTURE, fixtureSecrets, 'fixture');

// ---------------------------------------------------------------- fresh traffic, live

const SUITE = 'secrets: fresh traffic captured with tcpdump and watched live';
const live = need(isRoot, 'not root (live capture needs it)', SUITE) && need(haveTcpdump, 'tcpdump is not installed', SUITE);

describe.runIf(live)(SUITE, () => {
  const secrets = makeSecrets() as Secrets;
  const pcap = path.join(tmp, 'fresh.pcap');
  const watchOut: Record<string, Out> = {};

  beforeAll(async () => {
    const { server, port } = await startServer(secrets, 2500);
    const td = await startTcpdump(pcap, port);
    const { spawn } = await import('node:child_process');
    // `watch` in both stream formats while the traffic happens (killed by PID if it overstays).
    const watches = ['text', 'ndjson'].map((format) => {
      const c = spawn(process.execPath, [MAIN, 'watch', '--interface', 'lo', '--port', String(port), '--format', format, '--duration', '6', '--source', 'tcpdump'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      c.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
      c.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
      const timer = setTimeout(() => c.kill('SIGKILL'), 30_000);
      const done = new Promise<void>((resolve) =>
        c.on('close', (code) => {
          clearTimeout(timer);
          watchOut[format] = { status: code, all: out };
          resolve();
        }),
      );
      return { c, done, out: () => out };
    });
    const t0 = Date.now();
    while (!watches.every((w) => w.out().includes('listening on'))) {
      if (Date.now() - t0 > 15_000) throw new Error(`watch did not start: ${watches.map((w) => w.out()).join('\n')}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    await runClient(port, secrets);
    await new Promise((r) => setTimeout(r, 2000));
    await td.stop();
    server.close();
    server.closeAllConnections();
    await Promise.all(watches.map((w) => w.done));
  }, 60_000);

  it('the capture holds every secret (tcpdump saw the traffic)', () => {
    const raw = readFileSync(pcap).toString('latin1');
    expect(Object.keys(secrets).filter((k) => !raw.includes(secrets[k]!))).toEqual([]);
  });

  it.each(['text', 'ndjson'])('watch --format %s: the abandoned request is there, no secret', (format) => {
    const o = watchOut[format]!;
    expect(o.status, o.all).toBe(0);
    expect(o.all).toContain('/exec?key=[redacted]');
    expect(leaked(o.all, secrets)).toEqual([]);
  });

  // Registered here, run after beforeAll made the capture.
  describe('analyze', () => {
    it.each(['text', 'json', 'ndjson', 'html'])('--format %s: no secret', (format) => {
      const f = path.join(tmp, `fresh.${format}`);
      const o = hangscope(['analyze', pcap, '--format', format, '--output', f], f);
      expect(o.status).toBe(0);
      expect(o.all.length).toBeGreaterThan(100);
      expect(leaked(o.all, secrets)).toEqual([]);
    });
    it('--show-secrets --format json: every secret', () => {
      const o = hangscope(['analyze', pcap, '--format', 'json', '--show-secrets']);
      expect(Object.keys(secrets).filter((k) => !o.all.includes(secrets[k]!))).toEqual([]);
    });
  });
});
