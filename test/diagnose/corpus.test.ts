/**
 * The corpus (../shared/corpus: captures from Zeek, tcpdump and Wireshark) is
 * mostly healthy traffic: no error-severity finding may appear except where
 * the capture really shows a failure. Each one is listed with what the packets
 * show (checked with `tshark -r F -T fields -e frame.number -e tcp.srcport
 * -e tcp.flags.str -e tcp.len`).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { analyze } from '../../lib/index.js';
import { CORPUS, need } from '../capture/helpers.js';

const haveCorpus = need('corpus', 'diagnosis on the corpus');

const REAL_FAILURES: Record<string, { code: string; why: string }[]> = {
  'zeek/http/curl_http_09.pcap': [
    {
      code: 'server-reset',
      why: 'the server answers GET /zeek.html with 51 bytes and no status line (HTTP/0.9, ends only at the close) and then resets the connection instead of closing it: the reply cannot be known complete',
    },
  ],
  'zeek/http/content-length-overflow.pcap': [
    {
      code: 'server-close-mid-response',
      why: 'the 200 announces Content-Length: 2200000000 and the server FINs after 100 body bytes',
    },
  ],
  'zeek/http/261/variant-04-te_cl_desync.pcap': [
    {
      code: 'client-abort-before-response',
      why: 'the client (an LLM-made request-smuggling probe, not real traffic) sends FIN right behind its POST and no response byte ever comes; the rule reports exactly that (and no timeout signature: a 0 ms delay is no timer)',
    },
  ],
};

describe.runIf(haveCorpus)('diagnosis on the corpus', () => {
  const files = haveCorpus
    ? readFileSync(path.join(CORPUS, 'MANIFEST.tsv'), 'utf8')
        .split('\n')
        .slice(1)
        .map((l) => l.split('\t')[0]!)
        .filter(Boolean)
    : [];

  it('error findings only where the capture shows a failure', async () => {
    const got: Record<string, string[]> = {};
    for (const f of files) {
      let report;
      try {
        report = await analyze(path.join(CORPUS, f));
      } catch {
        continue; // not a readable capture: the reader's tests cover it
      }
      const errors = report.findings.filter((x) => x.severity === 'error').map((x) => x.code);
      if (errors.length > 0) got[f] = errors.sort();
    }
    const want = Object.fromEntries(Object.entries(REAL_FAILURES).map(([f, l]) => [f, l.map((x) => x.code).sort()]));
    expect(got).toEqual(want);
  }, 120_000);

  it('a capture that lost the response (miss_end_data) is not judged on timing', async () => {
    // The server's 2902 response bytes are missing (Zeek: missed_bytes 2902); its FIN at 10.04 s says nothing
    // about when the response started, so no slow-first-byte and no server-close finding.
    const r = await analyze(path.join(CORPUS, 'zeek/tcp/miss_end_data.pcap'));
    expect(r.connections[0]!.gapBytes.server).toBe(2902);
    expect(r.findings.map((f) => f.code)).toEqual([]);
  });

  it('one-sided captures do not claim CLOSE-WAIT for a side that is not in them', async () => {
    for (const f of ['zeek/tcp/one-sided-2745.pcap', 'zeek/ssh/ssh.client-side-half-duplex.pcap']) {
      const r = await analyze(path.join(CORPUS, f));
      expect(r.findings.filter((x) => x.code === 'half-close-stuck')).toEqual([]);
    }
  });
});
