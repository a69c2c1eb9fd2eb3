import { UserError } from '../lib/types.js';

/**
 * Ends the process for an error: a UserError is one line and exit 2; anything
 * else is a bug: one line and exit 1, with the stack only when HANGSCOPE_DEBUG is set.
 */
export function exitWithError(err: unknown): never {
  if (err instanceof UserError) {
    process.stderr.write(`hangscope: ${err.message}\n`);
    process.exit(2);
  }
  const e = err as NodeJS.ErrnoException;
  if (e && e.code === 'EPIPE') process.exit(0);
  if (process.env.HANGSCOPE_DEBUG) process.stderr.write(`${(e && e.stack) || String(err)}\n`);
  const msg = e && e.message ? e.message : String(err);
  process.stderr.write(
    `hangscope: internal error: ${msg.split('\n')[0]} (a bug: please report it; HANGSCOPE_DEBUG=1 shows the stack)\n`,
  );
  process.exit(1);
}

let onEpipe: () => void = () => process.exit(0);

/**
 * What to do when standard output's reader goes away (EPIPE) instead of
 * exiting at once: `watch` stops its capture cleanly (tcpdump stopped, the
 * --write file closed) rather than leaving tcpdump running.
 */
export function setEpipeHandler(fn: () => void): void {
  onEpipe = fn;
}

/** Reading stdout's other end going away (`| head`) is a normal end, not an error. */
export function quietEpipe(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') onEpipe();
  });
}
