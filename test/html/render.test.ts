/**
 * The HTML report without a browser: escaping, the embedded JSON, the page's
 * structure against the JSON report of the same capture (one waterfall row per
 * socket, one marker per close with its side and kind, one tip per exchange),
 * self-containment (no URL the browser would fetch), the row cap, and the CLI.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeStory, esc, evidenceText, jsonForScript, renderHtml, ticks } from '../../dashboards/html.js';
import type { ReportJSON } from '../../lib/report/index.js';
import { REPO } from '../capture/helpers.js';
import { BROWSE, HOSTILE_HEADER, HOSTILE_TARGET, cases, hostile, reportOf } from './captures.js';

const CASES = cases();
if (CASES.length === 0) {
  if (process.env.CI === 'true') throw new Error('html render: neither the lab fixtures nor the corpus are present, and CI=true requires them');
  console.log('[skip] html render: no lab fixture and no corpus to render');
}

/** The embedded JSON report, parsed back. */
function embedded(html: string): unknown {
  const m = /<script id="hangscope-report" type="application\/json">([\s\S]*?)<\/script>/.exec(html);
  expect(m).not.toBeNull();
  return JSON.parse(m![1]!);
}

/** Each waterfall row's HTML, by connection id, in page order. */
function rows(html: string): { id: number; fail: boolean; html: string }[] {
  const re = /<div class="row( fail)?" id="sock-(\d+)" data-conn="(\d+)"/g;
  const starts: { id: number; fail: boolean; at: number }[] = [];
  for (let m = re.exec(html); m !== null; m = re.exec(html)) {
    expect(m[2]).toBe(m[3]);
    starts.push({ id: Number(m[2]), fail: m[1] !== undefined, at: m.index });
  }
  const end = html.indexOf('</section>', starts.at(-1)?.at ?? 0);
  return starts.map((s, i) => ({ id: s.id, fail: s.fail, html: html.slice(s.at, starts[i + 1]?.at ?? end) }));
}

function markers(rowHtml: string): [string, string][] {
  return [...rowHtml.matchAll(/<div class="mk (client|server) (fin|rst)" data-side="(\w+)" data-kind="(\w+)"/g)].map((m) => {
    expect(m[1]).toBe(m[3]);
    expect(m[2]).toBe(m[4]!.toLowerCase());
    return [m[3]!, m[4]!];
  });
}

describe('escaping', () => {
  it('esc turns markup characters into entities and C0 controls into U+FFFD', () => {
    expect(esc(`<a href="x">&'`)).toBe('&lt;a href=&quot;x&quot;&gt;&amp;&#39;');
    expect(esc('a\u0000b\u001bc\td\ne')).toBe('a\ufffdb\ufffdc\td\ne');
    expect(esc(42)).toBe('42');
  });

  it('jsonForScript has no <, >, &, U+2028/2029 and parses back to the same value', () => {
    const v = { t: HOSTILE_TARGET, h: HOSTILE_HEADER, s: ']]> <!-- -->', u: 'a\u2028b\u2029c', n: [1.5, null, true] };
    const s = jsonForScript(v);
    expect(s).not.toMatch(/[<>&\u2028\u2029]/);
    expect(JSON.parse(s)).toEqual(v);
  });
});

describe('helpers', () => {
  it('evidence: durations as durations, epoch times relative to the capture start', () => {
    const t0 = 1795284149.603479;
    // "sinceRequestStart" ends in "Start" but is a duration; "requestStart" is a time.
    expect(evidenceText('sinceRequestStart', 5.003672, t0)).toBe('5.004s');
    expect(evidenceText('requestStart', t0 + 0.010477, t0)).toBe('+10ms');
    expect(evidenceText('closeTs', t0 + 5.014149, t0)).toBe('+5.014s');
    expect(evidenceText('clientPort', 48768, t0)).toBe('48768');
    expect(evidenceText('connections', [0, 3], t0)).toBe('#0, #3');
    expect(evidenceText('request', { method: 'POST', target: '/exec', status: null }, t0)).toBe('POST /exec');
    expect(evidenceText('reusedSocket', true, t0)).toBe('yes');
    expect(evidenceText('requestMinusFin', -0.000764, t0)).toBe('-764us');
  });

  it('ticks: 1-2-5 steps from the first packet, minutes past a minute', () => {
    expect(ticks(-0.075, 5.09).map((t) => t.label)).toEqual(['0', '+1s', '+2s', '+3s', '+4s', '+5s']);
    // 1.5 ms wide: 0.19 ms per tick wanted, 0.2 ms steps.
    expect(ticks(5.8964, 5.8979).map((t) => t.label)).toEqual(['+5.8966s', '+5.8968s', '+5.8970s', '+5.8972s', '+5.8974s', '+5.8976s', '+5.8978s']);
    // 20 minutes: 150 s per tick wanted, 5 min steps.
    expect(ticks(0, 1200).map((t) => t.label)).toEqual(['0', '+5m', '+10m', '+15m', '+20m']);
  });
});

describe.runIf(CASES.length > 0).each(CASES)('renderHtml($name)', ({ file }) => {
  let report: ReportJSON;
  let html: string;
  beforeAll(async () => {
    report = await reportOf(file);
    html = renderHtml(report);
  });

  it('leads with the verdict, then the findings, then the waterfall', () => {
    const v = html.indexOf('id="verdict"');
    const f = html.indexOf('id="findings"');
    const s = html.indexOf('id="sockets"');
    expect(v).toBeGreaterThan(0);
    expect(f).toBeGreaterThan(v);
    expect(s).toBeGreaterThan(f);
    if (report.verdict) {
      expect(html).toContain(`<p class="headline">${esc(report.verdict.headline)}</p>`);
      expect(html).toContain(esc(report.verdict.advice));
      expect(html).toContain(`${esc(report.verdict.confidence)} confidence`);
    }
    expect((html.match(/<tr class="f sev-/g) ?? []).length).toBe(Math.min(report.findings.length, 200));
    for (const fd of report.findings) expect(html).toContain(`<td class="code">${esc(fd.code)}</td>`);
  });

  it('one waterfall row per socket, in order of first packet, with its close markers by side and kind', () => {
    const rs = rows(html);
    expect(rs.map((r) => r.id)).toEqual(report.connections.map((c) => c.id).slice(0, 300));
    for (const r of rs) {
      const c = report.connections.find((x) => x.id === r.id)!;
      expect(markers(r.html)).toEqual(c.closes.map((cl) => [cl.by, cl.kind]));
      // One request bar per exchange, each with its facts in a template.
      expect((r.html.match(/class="bar req/g) ?? []).length).toBe(c.exchanges.length);
      for (const e of c.exchanges) expect(html).toContain(`<template id="t-c${c.id}e${e.index}">`);
      if (c.closes[0]) expect(r.html).toContain(esc(closeStory(c, c.closes[0])));
      expect(r.html).toContain(`<b>:${c.client.port}</b> → ${esc(c.server.ip)}:${c.server.port}`);
    }
  });

  it('is self-contained: no URL the browser would fetch, CSP allows only its own script', () => {
    expect(html).not.toMatch(/\s(src|srcset|action|poster|formaction)\s*=/i);
    expect([...html.matchAll(/\shref="([^"]*)"/g)].map((m) => m[1])).toEqual(['data:,']);
    const style = /<style>([\s\S]*?)<\/style>/.exec(html)![1]!;
    expect(style).not.toMatch(/@import|url\(|@font-face/);
    const script = /<script>([\s\S]*?)<\/script>/.exec(html)![1]!;
    const hash = createHash('sha256').update(script, 'utf8').digest('base64');
    expect(html).toContain(`content="default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-${hash}';`);
  });

  it('embeds the JSON report unchanged', () => {
    expect(embedded(html)).toEqual(report);
  });

  it('wire strings cannot break out: hostile targets, headers and summaries stay text', () => {
    // A crafted request line is delivered to the report as-is (the parser keeps the target's bytes); mutate a real report the same way.
    const h = hostile(report);
    const page = renderHtml(h);
    expect((page.match(/<script/gi) ?? []).length).toBe(2);
    expect((page.match(/<\/script/gi) ?? []).length).toBe(2);
    expect((page.match(/<template/gi) ?? []).length).toBe((page.match(/<\/template>/gi) ?? []).length);
    expect(page).not.toContain('<img');
    expect(page).not.toContain('<b>bold</b>');
    expect(page).not.toContain(HOSTILE_TARGET);
    expect(page).not.toContain(HOSTILE_HEADER);
    if (h.connections.some((c) => c.exchanges.length > 0)) expect(page).toContain(esc(HOSTILE_TARGET));
    expect(embedded(page)).toEqual(h);
  });
});

describe.runIf(existsSync(BROWSE))('waterfall cap', () => {
  it('keeps maxRows rows and says how many are not drawn', async () => {
    const r = await reportOf(BROWSE);
    expect(r.connections.length).toBe(6); // workshop_2011_browse: 6 TCP streams (tshark -z conv,tcp in the corpus truth)
    const page = renderHtml(r, { maxRows: 2 });
    expect(rows(page).map((x) => x.id)).toEqual([0, 1]);
    expect(page).toContain('4 more sockets not drawn');
  });

  it('keeps failing sockets first when it has to choose', async () => {
    const r = await reportOf(BROWSE);
    // Mark the last socket as reset (as the JSON report would for an RST) so that the cap must pick it over the earlier ones.
    const last = r.connections.at(-1)!;
    last.state = 'reset';
    const page = renderHtml(r, { maxRows: 2 });
    const rs = rows(page);
    expect(rs.map((x) => x.id)).toEqual([0, last.id]);
    expect(rs[1]!.fail).toBe(true);
  });
});

describe.runIf(existsSync(BROWSE))('hangscope analyze --format html', () => {
  const BIN = path.join(REPO, 'bin/hangscope.js');
  const tmp = mkdtempSync(path.join(tmpdir(), 'hangscope-html-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  beforeAll(() => {
    if (!existsSync(path.join(REPO, 'dist/cli/main.js'))) throw new Error('dist/ is missing: run `npm run build` first (test/run.sh does)');
  });
  const run = (args: string[]) => {
    const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 << 20 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  it('--output writes the page (mode 0600) with the same JSON report as --format json inside', () => {
    const out = path.join(tmp, 'report.html');
    const r = run(['analyze', BROWSE, '--format', 'html', '--output', out]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('');
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const page = readFileSync(out, 'utf8');
    expect(page.startsWith('<!DOCTYPE html>')).toBe(true);
    const json = run(['analyze', BROWSE, '--format', 'json']);
    expect(embedded(page)).toEqual(JSON.parse(json.stdout));
  });

  it('writes to standard output when it is not a terminal', () => {
    const r = run(['analyze', BROWSE, '-f', 'html']);
    expect(r.code).toBe(0);
    expect(r.stdout.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(r.stdout.trimEnd().endsWith('</html>')).toBe(true);
  });
});
