// Scenarios a-d, k, l: the incident client. axios GET /files (timeout 5000,
// Node's default global agent) then node-fetch POST /exec (no timeout, also
// the global agent), as the incident's client did.
//
//   node incident.mjs --base http://127.0.0.1:8000 [--no-files] [--seconds 8] [--heartbeat]
//                     [--axios-timeout 5000] [--agent global|shared-keepalive]
//
// --agent shared-keepalive: both libraries get one new http.Agent({keepAlive: true})
// (no `timeout` option) instead of http.globalAgent.
import { log, track } from './instrument.mjs';
import http from 'node:http';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import axios from 'axios';
import fetch from 'node-fetch';

const require = createRequire(import.meta.url);
const { values: opts } = parseArgs({
  options: {
    base: { type: 'string', default: 'http://127.0.0.1:8000' },
    'no-files': { type: 'boolean', default: false },
    seconds: { type: 'string', default: '8' },
    heartbeat: { type: 'boolean', default: false },
    'axios-timeout': { type: 'string', default: '5000' },
    agent: { type: 'string', default: 'global' },
  },
});
const agent = opts.agent === 'shared-keepalive' ? new http.Agent({ keepAlive: true }) : undefined;
const usedAgent = agent ?? http.globalAgent;

log({
  event: 'client-start',
  script: 'incident.mjs',
  node: process.version,
  axios: require('axios/package.json').version,
  followRedirects: require('follow-redirects/package.json').version,
  nodeFetch: require('node-fetch/package.json').version,
  agent: {
    which: opts.agent,
    keepAlive: usedAgent.keepAlive,
    timeout: usedAgent.options.timeout ?? null,
    scheduling: usedAgent.scheduling,
  },
  opts,
});

if (!opts['no-files']) {
  const target = '/files/abc?detail=summary';
  await track('axios', 'GET', target, async () => {
    const res = await axios.get(opts.base + target, { timeout: Number(opts['axios-timeout']), ...(agent ? { httpAgent: agent } : {}) });
    return { status: res.status };
  });
}

const target = opts.heartbeat ? '/exec?heartbeat=1' : '/exec';
await track('node-fetch', 'POST', target, async () => {
  const res = await fetch(opts.base + target, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ seconds: Number(opts.seconds) }),
    ...(agent ? { agent } : {}),
  });
  const body = await res.json();
  return { status: res.status, body };
});

// Let socket close events reach the log, then leave.
setTimeout(() => { log({ event: 'client-exit' }); process.exit(0); }, 300);
