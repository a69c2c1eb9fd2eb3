#!/usr/bin/env node
/**
 * Real HTTP traffic full of secrets, on loopback: a Node http client sends
 * credentials in headers (Authorization, Proxy-Authorization, Cookie,
 * X-Api-Key, X-Auth-Token, X-Amz-Security-Token, X-Csrf-Token,
 * X-Functions-Key) and in query strings (token, api_key, signature, sig,
 * password, accessToken, X-Amz-Credential, a Referer URL with a session
 * value); a Node http server answers with Set-Cookie and a redirect whose
 * Location carries an OAuth code. The last request (POST /exec?key=...) is
 * answered too late: the client gives up after 1 s and destroys the socket,
 * so findings name that request (their summaries and evidence carry the
 * target, which must be redacted too).
 *
 * As a program it makes the committed fixture (needs root and tcpdump):
 *   node test/security/secrets-traffic.mjs test/security/fixtures/secrets.pcap
 * writes the capture and, beside it, secrets.json (every secret value sent).
 * The test imports startServer / runClient / makeSecrets to make fresh traffic.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { tcpdumpListening } from '../tcpdump.mjs';

/** One secret per place it is sent; values are random, long and unlike anything else in the output. */
export function makeSecrets() {
  const names = [
    'authorization', 'proxyAuthorization', 'cookie', 'xApiKey', 'xAuthToken', 'xAmzSecurityToken', 'xCsrfToken', 'xFunctionsKey',
    'qToken', 'qApiKey', 'qSignature', 'qSig', 'qPassword', 'qAccessToken', 'qAmzCredential', 'refererSession',
    'setCookieSession', 'setCookieRefresh', 'locationCode', 'execKey',
  ];
  const s = {};
  for (const n of names) s[n] = `S${randomBytes(12).toString('hex')}`;
  return s;
}

/** The server: /login redirects with a code and sets cookies; /files answers; /exec answers after `execDelayMs`. */
export function startServer(secrets, execDelayMs = 3000) {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url.startsWith('/login')) {
        res.writeHead(302, {
          Location: `/callback?code=${secrets.locationCode}&state=ok`,
          'Set-Cookie': [`session=${secrets.setCookieSession}; HttpOnly; Path=/`, `refresh=${secrets.setCookieRefresh}; Secure`],
          'Content-Length': '0',
        });
        res.end();
      } else if (req.url.startsWith('/exec')) {
        const t = setTimeout(() => {
          if (!res.destroyed) res.end('done\n');
        }, execDelayMs);
        res.on('close', () => clearTimeout(t));
      } else {
        const body = 'summary\n';
        res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': String(body.length) });
        res.end(body);
      }
    });
  });
  server.keepAliveTimeout = 20_000;
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: server.address().port })));
}

function request(agent, port, method, path, headers, timeoutMs) {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode }));
    });
    if (timeoutMs) req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ error: e.message }));
    req.end(method === 'POST' ? '{"cmd":"true"}' : undefined);
  });
}

/** The client: three requests on one keep-alive socket, then one it gives up on. */
export async function runClient(port, secrets) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const auth = {
    Authorization: `Bearer ${secrets.authorization}`,
    'Proxy-Authorization': `Basic ${secrets.proxyAuthorization}`,
    Cookie: `sid=${secrets.cookie}; theme=dark`,
    'X-Api-Key': secrets.xApiKey,
    'X-Auth-Token': secrets.xAuthToken,
    'X-Amz-Security-Token': secrets.xAmzSecurityToken,
    'X-Functions-Key': secrets.xFunctionsKey,
    'User-Agent': 'secrets-client/1',
  };
  const log = [];
  log.push(await request(agent, port, 'GET', '/login?user=alice', { 'User-Agent': 'secrets-client/1' }));
  log.push(
    await request(
      agent,
      port,
      'GET',
      `/files/abc?detail=summary&token=${secrets.qToken}&api_key=${secrets.qApiKey}&signature=${secrets.qSignature}` +
        `&sig=${secrets.qSig}&password=${secrets.qPassword}&accessToken=${secrets.qAccessToken}&X-Amz-Credential=${secrets.qAmzCredential}`,
      { ...auth, Referer: `https://app.example/view?session=${secrets.refererSession}&tab=2` },
    ),
  );
  log.push(await request(agent, port, 'POST', `/exec?key=${secrets.execKey}`, { ...auth, 'X-Csrf-Token': secrets.xCsrfToken, 'Content-Type': 'application/json' }, 1000));
  agent.destroy();
  return log;
}

/** tcpdump on lo for one port, until stop() (SIGTERM by PID). */
export async function startTcpdump(file, port) {
  const { td, stderr } = await tcpdumpListening('tcpdump', ['-i', 'lo', '-s', '0', '-U', '--immediate-mode', '-w', file, `tcp port ${port}`]);
  return {
    stop: async () => {
      await new Promise((r) => setTimeout(r, 300)); // let the last packets reach the file
      const done = new Promise((r) => td.on('exit', r));
      td.kill('SIGTERM');
      await done;
      return stderr();
    },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = process.argv[2];
  if (!out) {
    console.error('usage: secrets-traffic.mjs OUT.pcap');
    process.exit(2);
  }
  const secrets = makeSecrets();
  const { server, port } = await startServer(secrets);
  const td = await startTcpdump(out, port);
  const log = await runClient(port, secrets);
  await new Promise((r) => setTimeout(r, 2500)); // the server's late answer to the abandoned /exec meets a closed socket
  await td.stop();
  server.close();
  server.closeAllConnections();
  writeFileSync(out.replace(/\.pcap$/, '.json'), `${JSON.stringify({ port, secrets, client: log }, null, 2)}\n`);
  console.log(JSON.stringify({ port, client: log }));
}
