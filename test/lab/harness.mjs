// Process, capture and log plumbing for the repro lab (test/lab/run.mjs).
//
// Every process the lab starts is registered here and stopped by its PID
// (never by name). Every wait is bounded in time.
import { spawn, execFileSync } from 'node:child_process';
import { openSync, closeSync, readFileSync, existsSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** A timer that does not keep the process alive (for races against exits). */
const delay = (ms) => sleep(ms, undefined, { ref: false });
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const LAB_DIR = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(LAB_DIR, '..', '..');
export const SERVERS = path.join(LAB_DIR, 'servers');
export const CLIENTS = path.join(LAB_DIR, 'clients');
export const PYTHON = '/usr/bin/python3';

/** Processes started by the lab and not yet known to have exited. */
const live = new Set();

/**
 * Starts a process. stdout/stderr go to files (opened here, closed once the
 * child has them) or are kept in memory ('pipe').
 * @returns {{pid:number, name:string, child:import('node:child_process').ChildProcess,
 *            exited:Promise<{code:number|null, signal:string|null}>, stderrText:()=>string, stdoutText:()=>string}}
 */
export function startProcess(name, cmd, args, { cwd = REPO, env = {}, stdoutFile, stderrFile, netns } = {}) {
  if (netns) {
    // `ip netns exec` enters the namespace and execs the command: same PID.
    args = ['netns', 'exec', netns, cmd, ...args];
    cmd = 'ip';
  }
  const fds = [];
  const out = stdoutFile ? openSync(stdoutFile, 'a') : 'pipe';
  if (stdoutFile) fds.push(out);
  let err = 'pipe';
  if (stderrFile === stdoutFile && stdoutFile) err = out;
  else if (stderrFile) { err = openSync(stderrFile, 'a'); fds.push(err); }
  const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', out, err] });
  for (const fd of fds) closeSync(fd);
  let stdoutBuf = '';
  let stderrBuf = '';
  child.stdout?.on('data', (d) => { stdoutBuf += d; });
  child.stderr?.on('data', (d) => { stderrBuf += d; });
  const p = {
    pid: child.pid,
    name,
    child,
    exitInfo: null,
    stdoutText: () => stdoutBuf,
    stderrText: () => stderrBuf,
  };
  p.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => { p.exitInfo = { code, signal }; live.delete(p); resolve(p.exitInfo); });
    child.on('error', (e) => { p.exitInfo = { code: null, signal: null, error: e.message }; live.delete(p); resolve(p.exitInfo); });
  });
  if (child.pid == null) throw new Error(`could not start ${name} (${cmd})`);
  live.add(p);
  return p;
}

/** Sends `signal` to the process by PID, then SIGKILL after `graceMs`. */
export async function stopProcess(p, signal = 'SIGTERM', graceMs = 3000) {
  if (!p || p.exitInfo) return p?.exitInfo;
  try { process.kill(p.pid, signal); } catch { /* already gone */ }
  const r = await Promise.race([p.exited, delay(graceMs).then(() => null)]);
  if (r) return r;
  try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
  return Promise.race([p.exited, delay(2000).then(() => ({ code: null, signal: 'unknown' }))]);
}

/** Stops every process the lab started that is still running (failure path). */
export async function stopAll() {
  for (const p of [...live]) await stopProcess(p, 'SIGKILL', 1000);
}

/** Polls `fn` until it returns a truthy value; throws after `timeoutMs`. */
export async function waitFor(what, fn, timeoutMs = 10_000, intervalMs = 25) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

export function readText(file) {
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

/** Parses a JSON-lines file; lines that are not JSON are returned as {raw}. */
export function readJsonLines(file) {
  return readText(file).split('\n').filter((l) => l.trim()).map((l) => {
    try { return JSON.parse(l); } catch { return { raw: l }; }
  });
}

/** Waits until a JSON line in `file` satisfies `pred`; returns it. */
export function waitForLine(what, file, pred, timeoutMs = 10_000, proc) {
  return waitFor(what, () => {
    if (proc?.exitInfo) throw new Error(`${proc.name} exited (${JSON.stringify(proc.exitInfo)}) while waiting for ${what}`);
    return readJsonLines(file).find(pred);
  }, timeoutMs);
}

/** True if something listens on TCP `port` (any address) in the current namespace. */
export function portInUse(port) {
  const out = execFileSync('ss', ['-Htln', `sport = :${port}`], { encoding: 'utf8' });
  return out.trim().length > 0;
}

// ---------------------------------------------------------------- servers

/** uvicorn (Debian's python3-uvicorn) serving servers/app.py; waits until it listens. */
export async function startUvicorn({ port, logFile, env = {}, netns, host = '127.0.0.1' }) {
  if (!netns && portInUse(port)) throw new Error(`port ${port} is already in use; stop whatever listens there and rerun`);
  const p = startProcess('uvicorn', PYTHON, [
    '-u', '-m', 'uvicorn', 'app:app', '--host', host, '--port', String(port),
    '--timeout-keep-alive', '5', '--log-level', 'trace',
  ], { cwd: SERVERS, env: { PYTHONDONTWRITEBYTECODE: '1', ...env }, stdoutFile: logFile, stderrFile: logFile, netns });
  await waitForLine('uvicorn to listen', logFile, (l) => typeof l.msg === 'string' && l.msg.startsWith('Uvicorn running on'), 15_000, p);
  return p;
}

/** servers/node-server.mjs; waits until it listens. */
export async function startNodeServer({ port, logFile, host = '127.0.0.1', keepAliveTimeout = 5000, netns }) {
  if (!netns && portInUse(port)) throw new Error(`port ${port} is already in use; stop whatever listens there and rerun`);
  const p = startProcess('node-server', process.execPath, [
    path.join(SERVERS, 'node-server.mjs'), '--host', host, '--port', String(port), '--keep-alive-timeout', String(keepAliveTimeout),
  ], { stdoutFile: logFile, stderrFile: logFile, netns });
  await waitForLine('node server to listen', logFile, (l) => l.event === 'listening', 10_000, p);
  return p;
}

// ---------------------------------------------------------------- clients

/** Starts a lab client (clients/<script>); its stdout (JSON lines) goes to logFile. */
export function startClient(script, args, { logFile, stderrFile, netns, env = {} }) {
  return startProcess(`client ${script}`, process.execPath, [path.join(CLIENTS, script), ...args], {
    stdoutFile: logFile, stderrFile, netns, env,
  });
}

/** Waits for a client to exit by itself, at most timeoutMs (then stops it and throws). */
export async function waitExit(p, timeoutMs) {
  const r = await Promise.race([p.exited, delay(timeoutMs).then(() => null)]);
  if (r) return r;
  await stopProcess(p, 'SIGKILL', 500);
  throw new Error(`${p.name} did not finish within ${timeoutMs} ms`);
}

// ---------------------------------------------------------------- capture

/**
 * Starts tcpdump writing `file` and waits until it is capturing (its
 * "listening on" line on stderr, printed after the filter is installed).
 */
export async function startTcpdump({ iface = 'lo', port, file, snaplen, netns }) {
  const args = ['-i', iface, '-U', '--immediate-mode', '-n'];
  if (snaplen) args.push('-s', String(snaplen));
  args.push('-w', file, `tcp port ${port}`);
  const p = startProcess('tcpdump', 'tcpdump', args, { netns });
  await waitFor('tcpdump to listen', () => {
    if (p.exitInfo) throw new Error(`tcpdump exited: ${p.stderrText().trim()}`);
    return /listening on/.test(p.stderrText());
  }, 10_000, 10);
  // The pcap file header is written as the capture starts.
  await waitFor('pcap file header', () => existsSync(file) && statSync(file).size >= 24, 5000, 10);
  return p;
}

/** Waits ~300 ms for the last packets, then stops tcpdump with SIGINT by PID. */
export async function stopTcpdump(p) {
  if (!p) return null;
  await sleep(300);
  await stopProcess(p, 'SIGINT', 3000);
  const text = p.stderrText();
  const captured = /(\d+) packets? captured/.exec(text)?.[1];
  const dropped = /(\d+) packets? dropped by kernel/.exec(text)?.[1];
  return { captured: captured ? Number(captured) : null, droppedByKernel: dropped ? Number(dropped) : null };
}

// ---------------------------------------------------------------- tools

export function has(cmd) {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function run(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
}

/** Runs a command inside a network namespace. */
export function nsRun(ns, cmd, args) {
  return run('ip', ['netns', 'exec', ns, cmd, ...args]);
}
