// tcpdump for the traffic generators of the bounds and security tests: started
// (directly, or through `ip netns exec`), then waited for, bounded, until its
// "listening on" line says the filter is installed.
import { spawn } from 'node:child_process';

/** Spawn `cmd args` (tcpdump writing a file) and wait up to `timeoutMs` for "listening on": {td, stderr()}. */
export async function tcpdumpListening(cmd, args, timeoutMs = 10_000) {
  const td = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  td.stderr.setEncoding('utf8').on('data', (s) => (err += s));
  const t0 = Date.now();
  while (!err.includes('listening on')) {
    if (td.exitCode !== null || Date.now() - t0 > timeoutMs) {
      if (td.exitCode === null) td.kill('SIGKILL'); // ours, by PID: not left running when we give up
      throw new Error(`tcpdump did not start: ${err}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { td, stderr: () => err };
}
