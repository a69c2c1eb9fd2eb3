/** The hangscope command line: commander commands wiring sources, engine and dashboards. */
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
  .action(async (file: string, opts) => {
    await runAnalyze(file, opts);
  });

quietEpipe();
program.parseAsync(process.argv).catch(exitWithError);
