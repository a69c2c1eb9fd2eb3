/**
 * dashboards/grafana/hangscope.json: importable (Grafana dashboard JSON with a
 * Prometheus datasource variable), the panels the issue asks for, and every
 * query asks for metrics and labels that `hangscope daemon` really exports
 * (scraped from EngineMetrics after the lab's incident capture). Every query
 * is also parsed by Prometheus' own PromQL parser: promtool, from $PROMTOOL,
 * PATH, or .cache/promtool (taken out of Debian's prometheus package by
 * scripts/install-system-deps.sh); without it that test skips, or fails under CI=true.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineMetrics } from '../../dashboards/metrics.js';
import { Engine } from '../../lib/engine.js';
import { REPO, labCapture, need, parseMetrics, records, type Sample } from './helpers.js';

const dash = JSON.parse(readFileSync(path.join(REPO, 'dashboards/grafana/hangscope.json'), 'utf8'));
const panels: any[] = dash.panels;
const targets: { panel: string; expr: string }[] = panels.flatMap((p) => (p.targets ?? []).map((t: any) => ({ panel: p.title, expr: t.expr })));
const cachedPromtool = path.join(REPO, '.cache/promtool');
const promtool =
  process.env.PROMTOOL ??
  (spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' }).stdout.trim() || (existsSync(cachedPromtool) ? cachedPromtool : null));
const tmp = mkdtempSync(path.join(tmpdir(), 'hangscope-grafana-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Grafana's macros and this dashboard's variables, as Grafana substitutes them. */
function plain(expr: string): string {
  return expr.replace(/\$__rate_interval/g, '1m').replace(/\$__range/g, '6h').replace(/\$job|\$instance/g, '.*');
}

describe('daemon: the Grafana dashboard', () => {
  it('is an importable dashboard: uid, title, Prometheus datasource variable, unique panel ids, panels inside the 24-column grid and not overlapping', () => {
    expect(dash.uid).toBe('hangscope-daemon');
    expect(dash.title).toBe('hangscope');
    expect(typeof dash.schemaVersion).toBe('number');
    const ds = dash.templating.list.find((v: any) => v.type === 'datasource');
    expect(ds.query).toBe('prometheus');
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Set<string>();
    for (const p of panels) {
      const g = p.gridPos;
      expect(g.x + g.w, p.title).toBeLessThanOrEqual(24);
      for (let x = g.x; x < g.x + g.w; x++)
        for (let y = g.y; y < g.y + g.h; y++) {
          expect(cells.has(`${x},${y}`), `${p.title} overlaps at ${x},${y}`).toBe(false);
          cells.add(`${x},${y}`);
        }
      if (p.type !== 'row') {
        expect(p.datasource.uid).toBe('${datasource}');
        expect(p.targets.length).toBeGreaterThan(0);
        for (const t of p.targets) expect(t.datasource.uid).toBe('${datasource}');
      }
    }
  });

  it('has the panels the issue asks for: closes by side and kind, findings by code, time-to-first-byte quantiles, drops, open connections', () => {
    const has = (re: RegExp): boolean => targets.some((t) => re.test(t.expr));
    expect(has(/sum by \(by, kind\) \(rate\(hangscope_closes_total/)).toBe(true);
    expect(has(/sum by \(code\) \(increase\(hangscope_findings_total/)).toBe(true);
    for (const q of ['0.5', '0.9', '0.99']) expect(has(new RegExp(`histogram_quantile\\(${q.replace('.', '\\.')}, sum by \\(le\\) \\(rate\\(hangscope_time_to_first_byte_seconds_bucket`))).toBe(true);
    expect(has(/hangscope_capture_dropped_packets/)).toBe(true);
    expect(has(/hangscope_open_connections/)).toBe(true);
  });

  const INCIDENT = labCapture('a-incident');
  describe.runIf(need(INCIDENT !== null, 'test/fixtures/lab/a-incident/capture.pcap is missing (npm run lab makes it)', 'daemon: Grafana queries vs exported metrics'))('against the exported metrics', () => {
    let samples: Sample[];
    /** Metric name -> label names, as registered (a labelled counter with no value yet has no sample). */
    const declared = new Map<string, Set<string>>();
    beforeAll(async () => {
      const m = new EngineMetrics();
      const engine = new Engine({ onOpen: m.onOpen, onExchange: m.onExchange, onConnection: m.onConnection, onFinding: m.onFinding });
      m.attach(engine, () => ({ source: 'tcpdump', counters: { received: 22, dropped: 0, ifDropped: 0 } }));
      m.attachFiles(() => ({ filesOpened: 1, filesDeleted: 0, bytes: 2477, lost: 0, errors: 0 }));
      for (const r of await records(INCIDENT!)) engine.packet(r);
      engine.finish();
      samples = parseMetrics(await m.metrics());
      for (const metric of m.registry.getMetricsAsArray() as unknown as { name: string; labelNames?: string[]; type?: string }[]) {
        const labels = new Set(metric.labelNames ?? []);
        declared.set(metric.name, labels);
        if (metric.name.endsWith('_seconds') && samples.some((x) => x.name === `${metric.name}_bucket`)) {
          declared.set(`${metric.name}_bucket`, new Set([...labels, 'le']));
          declared.set(`${metric.name}_sum`, labels);
          declared.set(`${metric.name}_count`, labels);
        }
      }
    });

    it('every metric a query reads is exported, and every label it groups or filters by is on that metric', () => {
      const names = new Set(declared.keys());
      const labelsOf = (n: string): Set<string> => declared.get(n) ?? new Set();
      // What was declared is what was scraped.
      for (const x of samples) if (x.name.startsWith('hangscope_') && !x.name.startsWith('hangscope_process_') && !x.name.startsWith('hangscope_nodejs_')) expect(names.has(x.name), x.name).toBe(true);
      for (const { panel, expr } of targets) {
        const metrics = [...expr.matchAll(/\b(hangscope_[a-z_]+)/g)].map((m) => m[1]!);
        expect(metrics.length, panel).toBeGreaterThan(0);
        for (const n of metrics) expect(names.has(n), `${panel}: ${n}`).toBe(true);
        const grouped = [...expr.matchAll(/by \(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((s) => s.trim()));
        for (const l of grouped) expect(metrics.some((n) => labelsOf(n).has(l) || false), `${panel}: label ${l}`).toBe(true);
        for (const sel of expr.matchAll(/(hangscope_[a-z_]+)\{([^}]*)\}/g)) {
          for (const m of sel[2]!.matchAll(/([a-z_]+)\s*=~?\s*"/g)) {
            if (m[1] === 'job' || m[1] === 'instance') continue;
            expect(labelsOf(sel[1]!).has(m[1]!), `${panel}: ${sel[1]} has no label ${m[1]}`).toBe(true);
          }
        }
      }
      // The label values the dashboard filters on exist.
      expect(samples.some((s) => s.name === 'hangscope_findings_total' && s.labels.code === 'client-abort-before-response')).toBe(true);
      expect(samples.some((s) => s.name === 'hangscope_time_to_first_byte_seconds_bucket' && s.labels.le === '5')).toBe(true);
    });
  });

  const why = 'promtool not found (scripts/install-system-deps.sh puts it in .cache/promtool; or set PROMTOOL)';
  it.runIf(need(promtool !== null, why, 'daemon: Grafana queries parsed by promtool'))('every query parses with PromQL (promtool check rules)', () => {
    const file = path.join(tmp, 'rules.yml');
    const rules = targets.map((t, i) => `  - record: hangscope_dashboard_${i}\n    expr: ${JSON.stringify(plain(t.expr))}`).join('\n');
    writeFileSync(file, `groups:\n- name: hangscope-dashboard\n  rules:\n${rules}\n`);
    const r = spawnSync(promtool!, ['check', 'rules', file], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain(`SUCCESS: ${targets.length} rules found`);
  });
});
