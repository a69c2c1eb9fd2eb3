/**
 * The terminal dashboard shows no secret from the committed capture of
 * secrets-traffic.mjs: the sockets table, the detail view of the socket (its
 * exchange facts with full targets) and the findings panel, rendered with
 * ink-testing-library from the real engine. With showSecrets the detail view
 * shows the abandoned request's key (the opt-out reaches the dashboard too).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { render } from 'ink-testing-library';
import { afterEach, describe, expect, it } from 'vitest';
import { App } from '../../dashboards/tui/App.js';
import { DashboardStore } from '../../dashboards/tui/model.js';
import { readCapture } from '../../lib/capture/index.js';
import { Engine } from '../../lib/engine.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const FIXTURE = path.join(here, 'fixtures/secrets.pcap');
const secrets = JSON.parse(readFileSync(path.join(here, 'fixtures/secrets.json'), 'utf8')).secrets as Record<string, string>;

const instances: { unmount: () => void }[] = [];
afterEach(() => {
  for (const i of instances.splice(0)) i.unmount();
});
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function dashboard(showSecrets: boolean): Promise<string[]> {
  const store = new DashboardStore({ source: { kind: 'file', name: 'secrets.pcap', filter: null, snaplen: null, port: null }, showSecrets });
  const engine = new Engine({
    showSecrets,
    onOpen: store.onOpen,
    onExchange: store.onExchange,
    onConnection: store.onConnection,
    onFinding: store.onFinding,
  });
  store.attach(engine);
  await readCapture(FIXTURE, (rec) => engine.packet(rec), { anomalies: engine.anomalies });
  engine.finish();
  store.setFinal('end of capture');
  // Wide and tall, so nothing that could leak is cut off by the frame.
  const r = render(<App store={store} width={400} height={80} refreshMs={20} />);
  instances.push(r);
  await sleep(150);
  const frames = [r.lastFrame()!];
  r.stdin.write('\r'); // the detail view of the selected (only) socket
  await sleep(150);
  frames.push(r.lastFrame()!);
  return frames;
}

function leaked(text: string): string[] {
  return Object.entries(secrets)
    .filter(([, v]) => text.includes(v.slice(0, 10)))
    .map(([k]) => k);
}

describe('dashboard on the secrets capture', () => {
  it('table, findings and detail view: the requests are there, no secret', async () => {
    const [table, detail] = await dashboard(false);
    expect(table).toContain('/exec');
    expect(detail).toContain('/exec?key=[redacted]');
    expect(leaked(`${table}\n${detail}`)).toEqual([]);
  });

  it('showSecrets: the detail view shows the key of the abandoned request', async () => {
    const [, detail] = await dashboard(true);
    expect(detail).toContain(`/exec?key=${secrets.execKey}`);
  });
});
