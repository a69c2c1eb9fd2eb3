/**
 * The terminal dashboard (ink): header, sockets table, detail view of one
 * socket, findings panel, help line.
 *
 * Rendering is decoupled from the engine: a timer takes a snapshot of the
 * store at most every `refreshMs` (100 ms: ~10 frames/s), and only when
 * something changed (or once a second, for ages and elapsed time). The
 * engine never waits for the screen.
 */
import { Box, Text, useApp, useInput, useStdout } from 'ink';
import { useEffect, useMemo, useRef, useState } from 'react';
import type { Finding } from '../../lib/diagnose/index.js';
import { fmtDuration } from '../../lib/report/index.js';
import {
  chainLink,
  chainText,
  clockDur,
  exchangeFacts,
  firstCloser,
  humanBytes,
  renderTimeline,
  shortDur,
  truncate,
  type TimelineLine,
} from './format.js';
import type { DashboardStore, Snapshot, SocketRow } from './model.js';

export interface AppProps {
  store: DashboardStore;
  /** Columns and rows (default: the terminal's, or 100 x 30). */
  width?: number;
  height?: number;
  /** Snapshot interval, ms (default 100: ~10 frames/s). */
  refreshMs?: number;
  /** Called when the user quits (q, Ctrl-C). */
  onQuit?: () => void;
}

type View = 'table' | 'detail';

const HELP_TABLE = '↑/↓ select  enter detail  f failing only  / filter path  p pause  q quit';
const HELP_DETAIL = '↑/↓ scroll  esc/backspace back  f failing only  / filter path  p pause  q quit';

function wrap(text: string, width: number, maxLines: number): string[] {
  const words = text.split(/\s+/);
  const lines: string[] = [];
  let cur = '';
  for (const w of words) {
    if (cur === '') cur = w;
    else if (cur.length + 1 + w.length <= width) cur += ` ${w}`;
    else {
      lines.push(cur);
      cur = w;
    }
  }
  if (cur !== '') lines.push(cur);
  if (lines.length > maxLines) {
    const kept = lines.slice(0, maxLines);
    kept[maxLines - 1] = truncate(`${kept[maxLines - 1]!} ${lines[maxLines]!}`, width - 1) + '…';
    return kept;
  }
  return lines;
}

export function visibleRows(rows: SocketRow[], failingOnly: boolean, pathFilter: string): SocketRow[] {
  const f = pathFilter.trim().toLowerCase();
  return rows.filter(
    (r) =>
      (!failingOnly || r.failing || r.state === 'reset') &&
      (f === '' || r.exchanges.some((e) => e.target.toLowerCase().includes(f))),
  );
}

function sourceLine(s: Snapshot): string {
  const src = s.source;
  const what = src.kind === 'file' ? `replay of ${src.name}` : `${src.kind} on ${src.name}`;
  const filter = src.filter !== null ? `  filter "${src.filter}"` : src.port !== null ? `  port ${src.port}` : '';
  return `hangscope  ${what}${filter}`;
}

function countersLine(s: Snapshot): string {
  const drops = s.drops === null ? 'drops ?' : `drops ${s.drops.toLocaleString('en-US')}${s.ifDrops ? ` (+${s.ifDrops} by the interface)` : ''}`;
  return [
    `packets ${s.packets.toLocaleString('en-US')}`,
    `bytes ${humanBytes(s.bytes)}`,
    s.source.kind === 'file' ? null : drops,
    `open ${s.open}`,
    `done ${s.connections}`,
    `exchanges ${s.exchanges}`,
    `elapsed ${clockDur(s.elapsed)}`,
  ]
    .filter((x) => x !== null)
    .join('  ');
}

function Header({ snap, width, paused }: { snap: Snapshot; width: number; paused: boolean }): React.JSX.Element {
  const status = [snap.status, paused ? 'PAUSED (p resumes)' : ''].filter((x) => x !== '').join('  ');
  return (
    <Box flexDirection="column">
      <Text wrap="truncate">
        <Text bold>{truncate(sourceLine(snap), Math.max(10, width - status.length - 2))}</Text>
        {status !== '' ? <Text color={paused ? 'yellow' : 'cyan'}>{`  ${status}`}</Text> : null}
      </Text>
      <Text wrap="truncate" color={snap.drops ? 'red' : undefined}>
        {truncate(countersLine(snap), width)}
      </Text>
      {snap.source.snaplen !== null ? (
        <Text wrap="truncate" color="yellow">
          {truncate(
            `snaplen ${snap.source.snaplen}: frames are cut, bodies are not captured whole; chunked and Content-Length framing after a cut may be lost`,
            width,
          )}
        </Text>
      ) : null}
    </Box>
  );
}

function FindingsPanel({ snap, width }: { snap: Snapshot; width: number }): React.JSX.Element {
  const counts =
    snap.findingCounts.length === 0
      ? snap.final ? 'none' : 'none yet'
      : snap.findingCounts.map((c) => `${c.code} ${c.count}`).join(' · ');
  const verdict = snap.verdict ? wrap(`verdict: ${snap.verdict.headline}`, width, 2) : [snap.final ? 'verdict: no known failure pattern' : 'verdict: no failure pattern seen yet'];
  const worst = snap.findingCounts[0]?.severity;
  return (
    <Box flexDirection="column">
      <Text wrap="truncate" color={worst === 'error' ? 'red' : worst === 'warning' ? 'yellow' : undefined}>
        {truncate(`findings: ${counts}`, width)}
      </Text>
      {verdict.map((l, i) => (
        <Text key={i} wrap="truncate" bold={snap.verdict !== null}>
          {l}
        </Text>
      ))}
    </Box>
  );
}

interface Cols {
  port: number;
  age: number;
  state: number;
  closer: number;
  finding: number;
  chain: number;
}

function columns(width: number): Cols {
  const port = 6;
  const age = 7;
  const state = 11;
  const closer = 12;
  const finding = width >= 140 ? 32 : width >= 100 ? 24 : 14;
  const chain = Math.max(10, width - 2 - port - age - state - closer - finding - 5);
  return { port, age, state, closer, finding, chain };
}

function cell(s: string, n: number): string {
  return truncate(s, n).padEnd(n);
}

export function rowText(r: SocketRow, c: Cols, clock: number, slow: number): string {
  const age = shortDur(Math.max(0, clock - r.start));
  const state = r.live ? r.state : `${r.state}`;
  return [
    cell(String(r.client.port), c.port),
    cell(age, c.age),
    cell(state, c.state),
    cell(chainText(r, clock, slow), c.chain),
    cell(firstCloser(r), c.closer),
    cell(r.worst?.code ?? '', c.finding),
  ].join(' ');
}

function rowColor(r: SocketRow, clock: number, slow: number): string | undefined {
  if (r.failing || r.worst?.severity === 'error') return 'red';
  if (r.worst?.severity === 'warning') return 'yellow';
  if (r.exchanges.some((e) => chainLink(e, r, clock, slow).kind === 'waiting')) return 'yellow';
  if (r.live) return undefined;
  return 'gray';
}

function Table({
  snap,
  rows,
  selectedId,
  width,
  height,
}: {
  snap: Snapshot;
  rows: SocketRow[];
  selectedId: number | null;
  width: number;
  height: number;
}): React.JSX.Element {
  const c = columns(width);
  const n = Math.max(1, height - 1);
  const sel = Math.max(0, rows.findIndex((r) => r.id === selectedId));
  const top = sel < n ? 0 : sel - n + 1;
  const shown = rows.slice(top, top + n);
  const head = ['PORT', 'AGE', 'STATE', 'REQUESTS ON THE SOCKET', 'CLOSED FIRST', 'WORST FINDING']
    .map((h, i) => cell(h, [c.port, c.age, c.state, c.chain, c.closer, c.finding][i]!))
    .join(' ');
  return (
    <Box flexDirection="column">
      <Text wrap="truncate" bold underline>
        {`  ${head}`}
      </Text>
      {shown.length === 0 ? (
        <Text wrap="truncate" color="gray">
          {snap.rows.length === 0 ? '  no TCP connections yet' : '  no socket matches the filter'}
        </Text>
      ) : null}
      {shown.map((r) => {
        const selected = r.id === selectedId;
        return (
          <Text key={r.id} wrap="truncate" inverse={selected} color={rowColor(r, snap.clock, snap.slow)}>
            {`${selected ? '▸' : ' '} ${rowText(r, c, snap.clock, snap.slow)}`}
          </Text>
        );
      })}
    </Box>
  );
}

function lineColor(kind: TimelineLine['kind']): string | undefined {
  switch (kind) {
    case 'failed':
      return 'red';
    case 'waiting':
      return 'yellow';
    case 'client':
      return 'cyan';
    case 'server':
      return 'magenta';
    case 'axis':
    case 'note':
      return 'gray';
    default:
      return undefined;
  }
}

function severityColor(f: Finding): string | undefined {
  return f.severity === 'error' ? 'red' : f.severity === 'warning' ? 'yellow' : undefined;
}

export function detailLines(row: SocketRow, snap: Snapshot, width: number): { text: string; color?: string | undefined; bold?: boolean }[] {
  const out: { text: string; color?: string | undefined; bold?: boolean }[] = [];
  const lasted = row.live ? `open for ${fmtDuration(Math.max(0, snap.clock - row.start))}` : `lasted ${fmtDuration(row.end - row.start)}`;
  out.push({
    text: `socket ${row.client.ip}:${row.client.port} -> ${row.server.ip}:${row.server.port}  #${row.id}  ${row.live ? 'live, ' : ''}${row.state}  ${row.history}  ${lasted}`,
    bold: true,
    color: row.failing ? 'red' : undefined,
  });
  out.push({
    text: `packets client ${row.packets[0]} / server ${row.packets[1]}, payload bytes client ${row.bytes[0]} / server ${row.bytes[1]}${row.closes.length ? `, ${row.closes.map((c) => `${c.by} ${c.kind} +${fmtDuration(c.ts - row.start)}`).join(', ')}` : ''}`,
    color: 'gray',
  });
  out.push({ text: '' });
  for (const l of renderTimeline(row, width, snap.clock)) out.push({ text: l.text, color: lineColor(l.kind) });
  out.push({ text: '' });
  if (row.exchanges.length > 0) {
    out.push({ text: 'Exchanges', bold: true });
    for (const l of exchangeFacts(row, snap.showSecrets, snap.clock)) out.push({ text: l });
  } else out.push({ text: row.protocol !== 'none' ? `payload: ${row.protocol}, not HTTP/1.x` : 'no payload' });
  if (row.findings.length > 0) {
    out.push({ text: '' });
    out.push({ text: 'Findings on this socket', bold: true });
    for (const f of row.findings) {
      for (const [i, l] of wrap(`${f.severity} ${f.code}: ${f.summary}`, width - 2, 4).entries())
        out.push({ text: `${i === 0 ? '' : '   '}${l}`, color: severityColor(f) });
    }
  } else if (row.live) {
    out.push({ text: '' });
    out.push({ text: 'Findings come when the socket is finished (closed and quiet, or at the end).', color: 'gray' });
  }
  return out;
}

export function App({ store, width: w, height: h, refreshMs = 100, onQuit }: AppProps): React.JSX.Element {
  const { exit } = useApp();
  const { stdout } = useStdout();
  const width = w ?? Math.max(40, stdout.columns || 100);
  const height = h ?? Math.max(12, stdout.rows || 30);
  const [snap, setSnap] = useState<Snapshot>(() => store.snapshot());
  const [view, setView] = useState<View>('table');
  const [selectedId, setSelectedId] = useState<number | null>(null);
  const [failingOnly, setFailingOnly] = useState(false);
  const [pathFilter, setPathFilter] = useState('');
  const [typing, setTyping] = useState<string | null>(null);
  const [paused, setPaused] = useState(false);
  const [scroll, setScroll] = useState(0);
  const pausedRef = useRef(false);
  pausedRef.current = paused;
  const typingRef = useRef<string | null>(null);
  const selRef = useRef<number | null>(null);

  useEffect(() => {
    let seen = store.version;
    let last = Date.now();
    const t = setInterval(() => {
      if (pausedRef.current) return;
      const now = Date.now();
      if (store.version !== seen || now - last >= 1000) {
        seen = store.version;
        last = now;
        setSnap(store.snapshot());
      }
    }, refreshMs);
    return () => clearInterval(t);
  }, [store, refreshMs]);

  const rows = useMemo(() => visibleRows(snap.rows, failingOnly, pathFilter), [snap, failingOnly, pathFilter]);
  const selIndex = rows.findIndex((r) => r.id === selectedId);
  const effectiveSel = selIndex >= 0 ? rows[selIndex]!.id : (rows[0]?.id ?? null);
  const selected = rows.find((r) => r.id === effectiveSel) ?? null;
  if (!rows.some((r) => r.id === selRef.current)) selRef.current = effectiveSel;

  const headerH = 2 + (snap.source.snaplen !== null ? 1 : 0);
  const panelH = 1 + (snap.verdict ? Math.min(2, wrap(`verdict: ${snap.verdict.headline}`, width, 2).length) : 1);
  const statusH = pathFilter !== '' || failingOnly || typing !== null ? 1 : 0;
  const tableH = Math.max(3, height - headerH - panelH - statusH - 3);

  const quit = (): void => {
    onQuit?.();
    exit();
  };

  useInput((input, key) => {
    // Functional updates: several keys can arrive before the next render (a paste, a fast typist).
    if (typingRef.current !== null) {
      if (key.return) {
        const t = typingRef.current;
        setPathFilter(t);
        typingRef.current = null;
        setTyping(null);
      } else if (key.escape) {
        typingRef.current = null;
        setTyping(null);
      } else if (key.backspace || key.delete) {
        typingRef.current = typingRef.current.slice(0, -1);
        setTyping(typingRef.current);
      } else if (input && !key.ctrl && !key.meta) {
        typingRef.current += input;
        setTyping(typingRef.current);
      }
      return;
    }
    if (input === 'q' || (key.ctrl && input === 'c')) return quit();
    if (input === 'p') {
      const next = !paused;
      setPaused(next);
      if (!next) setSnap(store.snapshot());
      return;
    }
    if (input === 'f') return setFailingOnly((v) => !v);
    if (input === '/') {
      typingRef.current = pathFilter;
      return setTyping(pathFilter);
    }
    if (view === 'table') {
      const cur = rows.findIndex((r) => r.id === selRef.current);
      const i = Math.max(0, cur);
      const step = key.pageDown ? tableH : key.pageUp ? -tableH : key.downArrow ? 1 : key.upArrow ? -1 : 0;
      const select = (j: number): void => {
        selRef.current = rows[j]!.id;
        setSelectedId(selRef.current);
      };
      if (step !== 0 && rows.length > 0) return select(Math.max(0, Math.min(rows.length - 1, i + step)));
      if (key.home && rows.length > 0) return select(0);
      if (key.end && rows.length > 0) return select(rows.length - 1);
      if (key.return && rows.length > 0) {
        select(i);
        setScroll(0);
        setView('detail');
      }
      return;
    }
    if (key.escape || key.backspace || key.delete || key.leftArrow) {
      setView('table');
      return;
    }
    if (key.downArrow) setScroll((v) => v + 1);
    else if (key.upArrow) setScroll((v) => Math.max(0, v - 1));
    else if (key.pageDown) setScroll((v) => v + 10);
    else if (key.pageUp) setScroll((v) => Math.max(0, v - 10));
  });

  const statusLine =
    typing !== null
      ? `filter by path: ${typing}▏ (enter applies, esc cancels)`
      : [failingOnly ? 'failing sockets only (f shows all)' : '', pathFilter !== '' ? `path contains "${pathFilter}" (/ to change)` : '', `${rows.length} of ${snap.rows.length} sockets`]
          .filter((x) => x !== '')
          .join('  ·  ');

  let body: React.JSX.Element;
  if (view === 'detail') {
    const detailRow = selected ?? null;
    const lines = detailRow !== null ? detailLines(detailRow, snap, width) : [{ text: 'that socket is no longer in the table (esc goes back)' }];
    const avail = Math.max(3, height - headerH - 1 - statusH);
    const maxScroll = Math.max(0, lines.length - avail);
    const s = Math.min(scroll, maxScroll);
    body = (
      <Box flexDirection="column">
        {lines.slice(s, s + avail).map((l, i) => (
          <Text key={i} wrap="truncate" color={l.color} bold={l.bold === true}>
            {l.text === '' ? ' ' : l.text}
          </Text>
        ))}
      </Box>
    );
  } else {
    body = (
      <Box flexDirection="column">
        <FindingsPanel snap={snap} width={width} />
        <Text> </Text>
        <Table snap={snap} rows={rows} selectedId={effectiveSel} width={width} height={tableH} />
      </Box>
    );
  }

  return (
    <Box flexDirection="column" width={width}>
      <Header snap={snap} width={width} paused={paused} />
      {body}
      {statusH > 0 ? (
        <Text wrap="truncate" color="cyan">
          {truncate(statusLine, width)}
        </Text>
      ) : null}
      <Text wrap="truncate" color="gray">
        {truncate(view === 'table' ? HELP_TABLE : HELP_DETAIL, width)}
      </Text>
    </Box>
  );
}
