/** The hangscope command line: commander commands wiring sources, engine and dashboards. */
import './terminal-env.js';
import { Command, Option } from 'commander';
import { createRequire } from 'node:module';
import { runAnalyze } from './analyze.js';
import { exitWithError, quietEpipe } from './errors.js';

const require = createRequire(import.meta.url);
const pkg = require('../../package.json') as { version: string };

const program = new Command();
program
  .name('hangscope')
  .description('Explains HTTP connection failures (socket hang up, ECONNRESET, 502s) from the packets themselves.')
  .version(pkg.version)
  .showHelpAfterError();

program
  .command('analyze')
  .description('analyze a pcap or pcapng capture (optionally gzip-compressed); "-" reads standard input')
  .argument('<file>', 'capture file, or - for standard input')
  .option('-p, --port <port>', 'only connections whose server port is this (also tells client from server when the handshake was not captured)')
  .addOption(new Option('-f, --format <format>', 'output format').choices(['text', 'json', 'ndjson', 'html']).default('text'))
  .option('-o, --output <file>', 'write the report to this file (created with mode 0600) instead of standard output')
  .option('--slow <seconds>', 'report a first response byte slower than this (slow-first-byte)', '5')
  .option('--show-secrets', 'do not redact Authorization, Cookie, API keys and token-like query parameters')
  .option('--progress', 'show a progress line on standard error even when it is not a terminal')
  .option('--no-progress', 'never show the progress line')
  .option('--no-color', 'no colours in the text report')
  .option('--tui', 'replay the capture in the terminal dashboard (as fast as possible, then it stays on the final state until q)')
  .option('--speed <multiple>', 'with --tui: replay at the recorded speed (1) or a multiple of it')
  .option('--max-connections <n>', 'connections held at once; beyond it the idlest are finished early and counted as connection-evicted (default 250000)')
  .option('--max-buffer <size>', 'out-of-order bytes held per connection direction before the hole is declared a gap, counted as tcp-reassembly-overflow (default 4M)')
  .action(async (file: string, opts) => {
    await runAnalyze(file, opts);
  });

program
  .command('watch')
  .description('capture live traffic (tcpdump or libpcap) and show sockets, exchanges and findings as they happen')
  .option('-i, --interface <name>', 'interface to capture on ("any": all of them; `hangscope interfaces` lists them)', 'any')
  .option('-p, --port <port>', 'only connections whose server port is this (capture filter "tcp port N")')
  .option('--filter <bpf>', 'capture filter (pcap-filter syntax), instead of or on top of --port')
  .addOption(new Option('--source <source>', 'capture through tcpdump, or in-process through libpcap (npm pcap)').choices(['auto', 'tcpdump', 'libpcap']).default('auto'))
  .option('-s, --snaplen <bytes>', 'keep at most this many bytes per frame (default: whole frames; lower it only under heavy load: bodies then lose their framing)')
  .option('-B, --buffer-size <MiB>', 'kernel capture buffer (default 32); raise it if drops are reported under load')
  .option('-w, --write <file>', 'also write every captured packet to this pcap file (mode 0600), flushed packet by packet')
  .option('-d, --duration <seconds>', 'stop after this long')
  .option('-c, --count <packets>', 'stop after this many packets')
  .addOption(new Option('-f, --format <format>', 'tui: the dashboard (default on a terminal); text or ndjson: one line per finished socket and finding, then the summary').choices(['tui', 'text', 'ndjson']))
  .option('-o, --output <file>', 'write lines and the summary to this file (mode 0600) instead of standard output')
  .option('--slow <seconds>', 'report a first response byte slower than this (slow-first-byte)', '5')
  .option('--show-secrets', 'do not redact Authorization, Cookie, API keys and token-like query parameters')
  .option('--no-color', 'no colours in the summary')
  .option('--max-connections <n>', 'connections held at once; beyond it the idlest are finished early and counted as connection-evicted (default 250000)')
  .option('--max-buffer <size>', 'out-of-order bytes held per connection direction before the hole is declared a gap, counted as tcp-reassembly-overflow (default 4M)')
  .option('--attach <url>', "show a running daemon's dashboard (e.g. http://127.0.0.1:9464) instead of capturing; without a terminal, its sockets and findings as lines (--format ndjson or text)")
  .option('--attribute', 'name the process behind each FIN and RST (eBPF through bpftrace: needs root and --port; without it, ss sampling)')
  .option('--ss-interval <ms>', 'sample `ss -tanpi` for the port every this many ms: CLOSE-WAIT sockets and their processes (default with --attribute: only if eBPF cannot run, every 500; 0: never)')
  .action(async (opts) => {
    // React's production build for the dashboard (its development build costs CPU a live capture needs).
    process.env.NODE_ENV ??= 'production';
    const { runWatch } = await import('./watch.js');
    await runWatch(opts);
  });

program
  .command('daemon')
  .description('capture for hours with nobody watching: rotating pcap files, findings as NDJSON, Prometheus /metrics and the dashboard for watch --attach')
  .option('-i, --interface <name>', 'interface to capture on ("any": all of them)', 'any')
  .option('-p, --port <port>', 'only connections whose server port is this (capture filter "tcp port N")')
  .option('--filter <bpf>', 'capture filter (pcap-filter syntax), instead of or on top of --port')
  .addOption(new Option('--source <source>', 'capture through tcpdump, or in-process through libpcap (npm pcap)').choices(['auto', 'tcpdump', 'libpcap']).default('auto'))
  .option('-s, --snaplen <bytes>', 'keep at most this many bytes per frame (default: whole frames)')
  .option('-B, --buffer-size <MiB>', 'kernel capture buffer (default 32); raise it if drops are reported under load')
  .option('--dir <folder>', 'folder of the capture files and the NDJSON file (created with mode 0700)', 'hangscope-captures')
  .option('--prefix <name>', 'capture file names: NAME-<UTC time>-<seq>.pcap (only files named so, made by this run, are ever deleted)', 'hangscope')
  .option('--rotate-size <size>', 'start a new capture file when the current one would grow past this (bytes, or k/M/G)', '100M')
  .option('--rotate-count <n>', 'keep the newest N capture files, delete older ones', '10')
  .option('--ndjson <file>', 'append findings (and with --connections, finished sockets) as NDJSON lines here (mode 0600; default DIR/PREFIX.ndjson)')
  .option('--connections', 'also append every finished socket to the NDJSON file')
  .option('--metrics-listen <host:port>', 'where /metrics, /events and /state are served', '127.0.0.1:9464')
  .option('-d, --duration <seconds>', 'stop after this long')
  .option('--slow <seconds>', 'report a first response byte slower than this (slow-first-byte)', '5')
  .option('--show-secrets', 'do not redact Authorization, Cookie, API keys and token-like query parameters (NDJSON and dashboard)')
  .option('--max-connections <n>', 'connections held at once; beyond it the idlest are finished early and counted as connection-evicted (default 250000)')
  .option('--max-buffer <size>', 'out-of-order bytes held per connection direction before the hole is declared a gap, counted as tcp-reassembly-overflow (default 4M)')
  .option('--attribute', 'name the process behind each FIN and RST (eBPF through bpftrace: needs root and --port; without it, ss sampling)')
  .option('--ss-interval <ms>', 'sample `ss -tanpi` for the port every this many ms: CLOSE-WAIT sockets and their processes (default with --attribute: only if eBPF cannot run, every 500; 0: never)')
  .action(async (opts) => {
    const { runDaemon } = await import('./daemon.js');
    await runDaemon(opts);
  });

program
  .command('interfaces')
  .description('list the interfaces watch can capture on')
  .option('--all', 'also list pseudo-devices that carry no TCP/IP (Bluetooth, netfilter, D-Bus)')
  .action(async (opts) => {
    const { runInterfaces } = await import('./interfaces.js');
    runInterfaces(opts);
  });

quietEpipe();
program.parseAsync(process.argv).catch(exitWithError);
