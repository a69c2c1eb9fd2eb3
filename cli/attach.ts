/**
 * `hangscope watch --attach URL`: the dashboard of a running daemon
 * (`hangscope daemon`), read from its /events stream (dashboards/attach.ts).
 *
 *  - On a terminal (or --format tui): the same ink dashboard as `watch`,
 *    drawn from the daemon's snapshots; it reconnects when the daemon restarts
 *    and stays until q.
 *  - Otherwise (--format ndjson or text): the finished sockets and findings
 *    the daemon reports, the same lines `watch` prints (ndjson: identical
 *    JSON; text: one line each), starting with the ones the daemon still holds
 *    from before; ends when the daemon stops (or --duration).
 */
import { eventsUrl, followEvents, RemoteStore, type SseEvent } from '../dashboards/attach.js';
import type { Snapshot } from '../dashboards/tui/model.js';
import type { ConnectionJSON, FindingJSON } from '../lib/report/index.js';
import { fmtClock } from '../lib/report/index.js';
import { UserError } from '../lib/types.js';
import { Output } from './analyze.js';

export interface AttachOptions {
  url: string;
  format?: string | undefined;
  output?: string | undefined;
  /** µs */
  durationUs?: number | undefined;
}

function exchangeText(e: ConnectionJSON['exchanges'][number], c: ConnectionJSON): string {
  const head = `${e.method} ${e.target}`;
  if (e.status !== null) {
    const took = e.responseEnd !== null ? ` ${((e.responseEnd - e.requestStart) * 1000).toFixed(1)}ms` : '';
    return `${head} ${e.status}${took}`;
  }
  const close = c.closes.find((x) => x.ts >= e.requestStart);
  return close ? `${head} no response, ${close.by} ${close.kind} after ${(close.ts - e.requestStart).toFixed(3)}s` : `${head} ${e.outcome}`;
}

/** A finished socket as one text line (the JSON form of cli/watch.ts connectionLine). */
export function connectionJsonLine(c: ConnectionJSON): string {
  const chain = c.exchanges.length > 0 ? c.exchanges.map((e) => exchangeText(e, c)).join(' -> ') : c.protocol !== 'none' && c.protocol !== 'http' ? `${c.protocol} payload, not HTTP/1.x` : 'no payload';
  const closed = c.firstClose ? `; ${c.firstClose.by} ${c.firstClose.kind} first` : '';
  return `${fmtClock(Math.round(c.end * 1e6))} socket ${c.client.ip}:${c.client.port} -> ${c.server.ip}:${c.server.port} #${c.id} ${c.state}: ${chain}${closed}`;
}

export function findingJsonLine(f: FindingJSON): string {
  const when = f.ts !== null ? `${fmtClock(Math.round(f.ts * 1e6))} ` : '';
  return `${when}${f.severity} ${f.code}${f.connection !== null ? ` (#${f.connection})` : ''}: ${f.summary}`;
}

export async function runAttach(o: AttachOptions): Promise<void> {
  let url: URL;
  try {
    url = eventsUrl(o.url);
  } catch (e) {
    throw new UserError(`--attach: ${(e as Error).message}; give the daemon's address, e.g. http://127.0.0.1:9464`);
  }
  const tty = process.stdout.isTTY === true && process.stdin.isTTY === true && o.output === undefined;
  const format = o.format ?? (tty ? 'tui' : 'ndjson');
  if (!['tui', 'text', 'ndjson'].includes(format)) throw new UserError(`--format is one of tui, text, ndjson (not "${format}")`);
  if (format === 'tui' && !tty) throw new UserError('--format tui needs a terminal on standard input and output; use --format text or ndjson');
  const abort = new AbortController();
  const durationTimer = o.durationUs !== undefined ? setTimeout(() => abort.abort(), o.durationUs / 1000) : null;
  const onTerm = (): void => abort.abort();
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onTerm);

  try {
    if (format === 'tui') {
      const { runDashboard } = await import('../dashboards/tui/index.js');
      const store = new RemoteStore(url.origin);
      const dashboard = runDashboard(store, { onQuit: () => abort.abort() });
      void dashboard.done.then(() => abort.abort());
      abort.signal.addEventListener('abort', () => dashboard.close());
      await followEvents(
        url,
        {
          onEvent: (e) => {
            if (e.event === 'snapshot') store.apply(JSON.parse(e.data) as Snapshot);
            else if (e.event === 'end') store.setLink(`the daemon stopped (${(JSON.parse(e.data) as { reason: string }).reason}); q quits`);
          },
          onLink: (state, why) => store.setLink(state === 'connected' ? `attached to ${url.origin}` : `${why}; retrying`),
        },
        abort.signal,
      );
      await dashboard.done;
      return;
    }

    const out = new Output(o.output);
    let connected = false;
    let ended: string | null = null;
    const onEvent = (e: SseEvent): void => {
      if (e.event === 'connection' || e.event === 'finding') {
        if (format === 'ndjson') out.write(`${e.data}\n`);
        else if (e.event === 'connection') out.write(`${connectionJsonLine(JSON.parse(e.data) as ConnectionJSON)}\n`);
        else out.write(`${findingJsonLine(JSON.parse(e.data) as FindingJSON)}\n`);
      } else if (e.event === 'hello') {
        const h = JSON.parse(e.data) as { pid: number; interface: string; filter: string };
        if (!connected) process.stderr.write(`hangscope: attached to ${url.origin} (daemon pid ${h.pid}, ${h.interface}, filter "${h.filter}")\n`);
        connected = true;
      } else if (e.event === 'end') {
        ended = (JSON.parse(e.data) as { reason: string }).reason;
      }
    };
    try {
      await followEvents(url, { onEvent }, abort.signal, { once: true });
    } catch (e) {
      throw new UserError(`cannot attach to ${url.origin}: ${(e as Error).message}.`);
    } finally {
      out.close();
    }
    process.stderr.write(
      ended !== null ? `hangscope: the daemon stopped (${ended}).\n` : abort.signal.aborted ? 'hangscope: detached.\n' : 'hangscope: the daemon went away.\n',
    );
  } finally {
    if (durationTimer !== null) clearTimeout(durationTimer);
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onTerm);
  }
}
