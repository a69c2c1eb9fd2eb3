/**
 * The dashboard on a terminal: renders App with ink on the alternate screen
 * (the shell's scrollback is left as it was), and resolves when the user quits.
 */
import { render } from 'ink';
import { App } from './App.js';
import type { DashboardStore } from './model.js';

export { App, visibleRows, detailLines } from './App.js';
export { DashboardStore, type SocketRow, type Snapshot, type SourceInfo } from './model.js';
export * from './format.js';

export interface DashboardHandle {
  /** Resolves when the user quits (q, Ctrl-C) or close() was called. */
  done: Promise<void>;
  /** Take the dashboard down (restores the screen). Idempotent. */
  close(): void;
}

export function runDashboard(store: DashboardStore, o: { onQuit?: () => void } = {}): DashboardHandle {
  const out = process.stdout;
  // Alternate screen + hidden cursor (xterm private modes 1049 and 25).
  out.write('\x1b[?1049h\x1b[H');
  const instance = render(<App store={store} {...(o.onQuit ? { onQuit: o.onQuit } : {})} />, {
    exitOnCtrlC: true,
    patchConsole: true,
    maxFps: 10,
  });
  let closed = false;
  const restore = (): void => {
    if (closed) return;
    closed = true;
    out.write('\x1b[?1049l\x1b[?25h');
  };
  const onResize = (): void => instance.clear();
  out.on('resize', onResize);
  const done = instance.waitUntilExit().then(
    () => {
      out.off('resize', onResize);
      restore();
    },
    () => {
      out.off('resize', onResize);
      restore();
    },
  );
  return {
    done,
    close() {
      instance.unmount();
      restore();
    },
  };
}
