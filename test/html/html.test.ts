/**
 * The HTML report in a real browser: Debian's chromium, headless, driven by
 * playwright-core. Each capture's page must load with no console errors and
 * no request but its own file, show the verdict, draw one waterfall row per
 * socket with FIN/RST markers on the right side and at the right time (all
 * checked against the JSON report of the same capture, and for the cab
 * capture against tshark's FIN/RST rows), and show an exchange's facts on
 * hover and on click. Screenshots go to test/artifacts/ (gitignored).
 *
 * Skips with a printed reason when /usr/bin/chromium is missing, unless
 * CI=true (scripts/install-system-deps.sh installs it).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectionFailing, renderHtml } from '../../dashboards/html.js';
import { fmtClock, fmtDuration, type ConnectionJSON, type ExchangeJSON, type ReportJSON } from '../../lib/report/index.js';
import { REPO } from '../capture/helpers.js';
import { CAB, HOSTILE_TARGET, cases, hostile, reportOf } from './captures.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = path.join(REPO, 'test/artifacts');
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) {
  if (process.env.CI === 'true') throw new Error(`html browser tests: ${CHROMIUM} is missing (apt-get install chromium), and CI=true requires it`);
  console.log(`[skip] html browser tests: ${CHROMIUM} is missing (apt-get install chromium)`);
}
const CASES = cases();
if (haveChromium && CASES.length === 0) {
  if (process.env.CI === 'true') throw new Error('html browser tests: no lab fixture and no corpus, and CI=true requires them');
  console.log('[skip] html browser tests: no lab fixture and no corpus to render');
}

const us = (s: number) => Math.round(s * 1e6);
const clock = (s: number) => fmtClock(us(s));
const dur = (s: number) => fmtDuration(us(s));

let ctx: BrowserContext;
let profile: string;
let tmp: string;

beforeAll(async () => {
  if (!haveChromium) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  tmp = mkdtempSync(path.join(tmpdir(), 'hangscope-html-pages-'));
  profile = mkdtempSync(path.join(tmpdir(), 'hangscope-chromium-'));
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1400, height: 900 },
  });
});

afterAll(async () => {
  await ctx?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

interface Opened {
  page: Page;
  url: string;
  errors: string[];
  requests: string[];
  blocked: string[];
}

/** Write the page to a file and open it; every request is recorded, and anything but the file itself is aborted. */
async function open(html: string, name: string): Promise<Opened> {
  const file = path.join(tmp, `${name}.html`);
  writeFileSync(file, html);
  const url = pathToFileURL(file).href;
  const page = await ctx.newPage();
  const o: Opened = { page, url, errors: [], requests: [], blocked: [] };
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') o.errors.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => o.errors.push(`pageerror: ${e.message}`));
  page.on('dialog', (d) => {
    o.errors.push(`dialog: ${d.message()}`);
    void d.dismiss();
  });
  page.on('websocket', (w) => o.blocked.push(w.url()));
  page.on('request', (r) => o.requests.push(r.url()));
  await page.route('**/*', (route) => {
    const u = route.request().url();
    if (u === url) return route.continue();
    o.blocked.push(u);
    return route.abort();
  });
  await page.goto(url, { waitUntil: 'load' });
  return o;
}

/** Where the axis puts time ts, as a fraction of the track: first packet 0, 1.5 % padding each side (as in the renderer's axis). */
function axisFraction(r: ReportJSON, ts: number): number {
  const t0 = Math.min(r.stats.firstTs ?? Infinity, ...r.connections.map((c) => c.start));
  const t1 = Math.max(r.stats.lastTs ?? -Infinity, ...r.connections.map((c) => c.end));
  const span = Math.max(t1 - t0, 0.001);
  const pad = span * 0.015;
  return (ts - t0 + pad) / (span + 2 * pad);
}

/** The exchange whose facts the hover test reads: the first one that failed, else the first one. */
function pickExchange(r: ReportJSON): { c: ConnectionJSON; e: ExchangeJSON } | null {
  for (const c of r.connections) for (const e of c.exchanges) if (e.outcome !== 'complete') return { c, e };
  for (const c of r.connections) for (const e of c.exchanges) return { c, e };
  return null;
}

/** A point over one of the exchange's drawn parts where that part is the topmost element (markers and neighbours can cover small bars). */
async function pointOver(page: Page, tip: string): Promise<{ x: number; y: number } | null> {
  return page.evaluate((tipId) => {
    const els = [...document.querySelectorAll(`.track [data-tip="${tipId}"]`)] as HTMLElement[];
    els[0]?.closest('.row')?.scrollIntoView({ block: 'center' });
    els.sort((a, b) => b.getBoundingClientRect().width - a.getBoundingClientRect().width);
    for (const el of els) {
      const r = el.getBoundingClientRect();
      if (r.width <= 0) continue;
      for (let i = 1; i < 20; i++) {
        const x = r.left + (r.width * i) / 20;
        const y = r.top + r.height / 2;
        const hit = document.elementFromPoint(x, y);
        if (hit && hit.closest('[data-tip]')?.getAttribute('data-tip') === tipId) return { x, y };
      }
    }
    return null;
  }, tip);
}

/** The facts of an exchange that its tip must show, from the JSON report. */
function expectedFacts(r: ReportJSON, e: ExchangeJSON): string[] {
  const t0 = Math.min(r.stats.firstTs ?? Infinity, ...r.connections.map((c) => c.start));
  const facts = [e.method, e.target, e.outcome, clock(e.requestStart), `+${dur(e.requestStart - t0)}`];
  if (e.status !== null) facts.push(String(e.status));
  if (e.responseStart !== null) facts.push(clock(e.responseStart));
  if (e.responseEnd !== null) facts.push(clock(e.responseEnd), `total ${dur(e.responseEnd - e.requestStart)}`);
  return facts;
}

describe.runIf(haveChromium && CASES.length > 0).each(CASES)('HTML report in chromium: $name', ({ name, file }) => {
  let report: ReportJSON;
  let o: Opened;

  beforeAll(async () => {
    report = await reportOf(file);
    o = await open(renderHtml(report), name);
    await o.page.screenshot({ path: path.join(ARTIFACTS, `html-${name}.png`), fullPage: true });
  });
  afterAll(async () => {
    await o?.page.close();
  });

  it('loads with no console errors and no request but the file itself', async () => {
    await o.page.waitForSelector('.wf[data-ready="1"]');
    expect(o.errors).toEqual([]);
    expect(o.blocked).toEqual([]);
    expect(o.requests.filter((u) => u !== o.url && !u.startsWith('data:'))).toEqual([]);
  });

  it('shows the verdict first', async () => {
    const headline = (await o.page.locator('#verdict .headline').textContent()) ?? '';
    if (report.verdict) {
      expect(headline).toBe(report.verdict.headline);
      expect(await o.page.locator('#verdict .advice').textContent()).toBe(`Change: ${report.verdict.advice}`);
    } else {
      expect(headline).toMatch(/^(No failed HTTP exchanges|Some exchanges did not complete)/);
    }
    const order = await o.page.evaluate(() =>
      ['#verdict', '#findings', '#sockets'].map((s) => document.querySelector(s)!.getBoundingClientRect().top),
    );
    expect(order[0]).toBeLessThan(order[1]!);
    expect(order[1]).toBeLessThan(order[2]!);
  });

  it('draws one row per socket, with FIN/RST markers by side, at their time on the shared axis', async () => {
    const rows = await o.page.evaluate(() =>
      [...document.querySelectorAll('.wf .row')].map((row) => {
        const track = row.querySelector('.track')!.getBoundingClientRect();
        const lane = [...row.querySelectorAll('.bar.req')].map((b) => b.getBoundingClientRect()).at(0);
        return {
          id: Number(row.getAttribute('data-conn')),
          label: row.querySelector('.lbl .sock')!.textContent,
          trackLeft: track.left,
          trackWidth: track.width,
          laneMid: lane ? lane.top + lane.height / 2 : null,
          markers: [...row.querySelectorAll('.mk')].map((m) => {
            const box = m.getBoundingClientRect();
            const g = m.querySelector('svg')!.getBoundingClientRect();
            return {
              side: m.getAttribute('data-side'),
              kind: m.getAttribute('data-kind'),
              x: box.left + box.width / 2,
              glyphMid: g.top + g.height / 2,
              color: getComputedStyle(m).color,
              visible: box.width > 0 && getComputedStyle(m).display !== 'none',
            };
          }),
        };
      }),
    );
    expect(rows.map((r) => r.id)).toEqual(report.connections.map((c) => c.id));
    const colors = { client: new Set<string>(), server: new Set<string>() };
    for (const row of rows) {
      const c = report.connections.find((x) => x.id === row.id)!;
      expect(row.label).toContain(`:${c.client.port} → ${c.server.ip}:${c.server.port}`);
      expect(row.markers.map((m) => [m.side, m.kind])).toEqual(c.closes.map((cl) => [cl.by, cl.kind]));
      row.markers.forEach((m, i) => {
        expect(m.visible).toBe(true);
        const want = row.trackLeft + axisFraction(report, c.closes[i]!.ts) * row.trackWidth;
        expect(Math.abs(m.x - want)).toBeLessThan(1.5);
        // Client markers above the bar lane, server markers below it.
        if (row.laneMid !== null) {
          if (m.side === 'client') expect(m.glyphMid).toBeLessThan(row.laneMid);
          else expect(m.glyphMid).toBeGreaterThan(row.laneMid);
        }
        colors[m.side as 'client' | 'server'].add(m.color);
      });
    }
    // One colour per side, and not the same one.
    for (const s of colors.client) expect(colors.server.has(s)).toBe(false);
    expect(colors.client.size).toBeLessThanOrEqual(1);
    expect(colors.server.size).toBeLessThanOrEqual(1);
    if (file === CAB) {
      // tshark (vnd.ms-cab-compressed-multi-conn.tshark-tcp.tsv): every stream has FIN from port 80 first, then RST from the client.
      expect(rows).toHaveLength(5);
      for (const row of rows) expect(row.markers.map((m) => `${m.side} ${m.kind}`)).toEqual(['server FIN', 'client RST']);
    }
  });

  it('hover and click show the exchange facts (after zooming to it)', async () => {
    const pick = pickExchange(report);
    if (pick === null) return;
    const { page } = o;
    const { c, e } = pick;
    const tipId = `c${c.id}e${e.index}`;
    // Small bars can hide under markers at the whole-capture scale: zoom to the exchange through the page's own
    // controls first (pin it with a DOM click, which needs no free pixel, then "Zoom to this exchange").
    await page.evaluate((id) => (document.querySelector(`.track [data-tip="${id}"]`) as HTMLElement).click(), tipId);
    await expect.poll(() => page.locator('#details').isVisible()).toBe(true);
    await page.locator('#details [data-zoom]').first().click();
    const end = e.responseEnd ?? c.end;
    if (end - e.requestStart < 0.5 * ((report.stats.lastTs ?? 0) - (report.stats.firstTs ?? 0)))
      expect(await page.locator('#zoom-reset').isEnabled()).toBe(true);
    await page.keyboard.press('Escape');
    await expect.poll(() => page.locator('#details').isVisible()).toBe(false);

    const at = await pointOver(page, tipId);
    expect(at).not.toBeNull();
    await page.mouse.move(at!.x, at!.y);
    await expect.poll(() => page.locator('#tip').isVisible()).toBe(true);
    const tipText = (await page.locator('#tip').textContent()) ?? '';
    for (const fact of expectedFacts(report, e)) expect(tipText).toContain(fact);
    expect(tipText).toContain(`socket ${c.client.ip}:${c.client.port} → ${c.server.ip}:${c.server.port}`);
    await page.screenshot({ path: path.join(ARTIFACTS, `html-${name}-hover.png`) });

    await page.mouse.click(at!.x, at!.y);
    await expect.poll(() => page.locator('#details').isVisible()).toBe(true);
    const detailText = (await page.locator('#details').textContent()) ?? '';
    for (const fact of expectedFacts(report, e)) expect(detailText).toContain(fact);
    expect(await page.locator(`.sel[data-tip="${tipId}"]`).count()).toBe(1);
    await page.screenshot({ path: path.join(ARTIFACTS, `html-${name}-details.png`) });

    await page.locator('#details .close').click();
    expect(await page.locator('#details').isVisible()).toBe(false);
    // (An exchange that spans the whole capture, like the incident's POST /exec, leaves nothing to zoom into.)
    if (await page.locator('#zoom-reset').isEnabled()) await page.locator('#zoom-reset').click();
    expect(await page.locator('#zoom-reset').isEnabled()).toBe(false);
    expect(o.errors).toEqual([]);
  });

  it('the filter keeps exactly the sockets with a failure', async () => {
    const failing = new Set(report.connections.filter(connectionFailing).map((c) => c.id));
    for (const f of report.findings) if (f.connection !== null && f.severity !== 'info') failing.add(f.connection);
    const box = o.page.locator('#only-failing');
    if (failing.size === 0) {
      expect(await box.isDisabled()).toBe(true);
      return;
    }
    await box.check();
    const shown = await o.page.evaluate(() =>
      [...document.querySelectorAll('.wf .row')].filter((r) => (r as HTMLElement).offsetHeight > 0).map((r) => Number(r.getAttribute('data-conn'))),
    );
    expect(shown).toEqual([...failing].sort((a, b) => a - b));
    await box.uncheck();
    expect(await o.page.locator('.wf .row:visible').count()).toBe(report.connections.length);
  });
});

describe.runIf(haveChromium && CASES.length > 0)('HTML report in chromium: hostile wire strings', () => {
  it('a target with </script> and markup is shown as text and runs nothing', async () => {
    const { name, file } = CASES[0]!;
    const report = hostile(await reportOf(file));
    const o = await open(renderHtml(report), `${name}-hostile`);
    try {
      await o.page.waitForSelector('.wf[data-ready="1"]');
      expect(o.errors).toEqual([]);
      expect(o.blocked).toEqual([]);
      expect(await o.page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
      expect(await o.page.evaluate(() => document.scripts.length)).toBe(2);
      expect(await o.page.locator('img').count()).toBe(0);
      if (report.verdict) expect(await o.page.locator('#verdict .headline').textContent()).toBe(report.verdict.headline);
      const pick = pickExchange(report);
      if (pick) {
        const id = `c${pick.c.id}e${pick.e.index}`;
        await o.page.evaluate((tid) => (document.querySelector(`.track [data-tip="${tid}"]`) as HTMLElement).click(), id);
        await o.page.locator('#details [data-zoom]').first().click();
        await o.page.keyboard.press('Escape');
        const at = await pointOver(o.page, id);
        expect(at).not.toBeNull();
        await o.page.mouse.click(at!.x, at!.y);
        expect(await o.page.locator('#details .d-head').textContent()).toContain(HOSTILE_TARGET);
      }
      // The embedded data reads back as the report, hostile strings and all.
      const data = await o.page.evaluate(() => JSON.parse(document.getElementById('hangscope-report')!.textContent!));
      expect(data).toEqual(report);
      expect(await o.page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
      expect(o.errors).toEqual([]);
    } finally {
      await o.page.close();
    }
  });
});

describe.runIf(haveChromium)('the browser harness', () => {
  it('sees and blocks a fetch, so "no request" above means none was made', async () => {
    // No real traffic: the route aborts the request before it leaves the browser.
    const o = await open('<!DOCTYPE html><title>t</title><img src="http://hangscope.invalid/x.png">', 'harness-check');
    try {
      await expect.poll(() => o.blocked).toEqual(['http://hangscope.invalid/x.png']);
      expect(o.requests).toContain('http://hangscope.invalid/x.png');
      expect(o.requests).toContain(o.url);
    } finally {
      await o.page.close();
    }
  });
});
