/**
 * Prerequisites of the tests that need root, a tool or a build: a missing one
 * skips the suite with a printed reason on a laptop, and fails it under
 * CI=true (the CI machine has everything). No side effects on import.
 */
import { spawnSync } from 'node:child_process';

export const IN_CI = process.env.CI === 'true';
export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** A command on PATH. */
export function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** True when `ok`; otherwise prints why `suite` skips (and throws under CI=true). */
export function need(ok: boolean, why: string, suite: string): boolean {
  if (ok) return true;
  if (IN_CI) throw new Error(`${suite}: ${why}, and CI=true requires it`);
  console.log(`[skip] ${suite}: ${why}`);
  return false;
}
