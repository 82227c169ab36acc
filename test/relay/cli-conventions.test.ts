// The `mailrelay` command behaves like the Unix tools operators know (issue 13 §8): help on
// stdout with exit 0 for every subcommand, exit 2 for a usage error that names the flag at
// fault, listeners that say which one could not bind, and a drain against a dead URL that
// says what it tried. Each case runs the real CLI as a child process.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { CLI, runCli, runCliInProcess, type CliRun } from '../helpers/cli.ts';

const PACKAGE = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

type Run = CliRun;

/** Runs the CLI; bounded by a timeout so that a command that hangs fails the test. */
const cli = (args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<Run> => runCli(args, { env, timeoutMs });

/** The same CLI in this process (the conventions live in main(); a few cases below also run the real launcher). */
const inProcess = (args: string[]): Promise<Run> => runCliInProcess(args);

function relayConfig(overrides: object = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'mailrelay-cli-'));
  const file = join(dir, 'relay.yaml');
  writeFileSync(file, stringify({
    inbound: { host: '127.0.0.1', port: 0, hostname: 'relay.test', relayNetworks: ['127.0.0.0/8'] },
    spool: { dir: join(dir, 'spool'), fsync: false },
    http: { host: '127.0.0.1', port: 0 },
    log: { level: 'info' },
    ...overrides,
  }));
  return file;
}

async function listening(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port };
}

const SUBCOMMANDS = [
  ['relay'], ['drain'], ['operator'], ['render'], ['config-schema'],
  ['queue'], ['queue', 'list'], ['queue', 'show'], ['queue', 'retry'], ['queue', 'hold'], ['queue', 'release'], ['queue', 'delete'],
];

describe('mailrelay CLI conventions', () => {
  it('--help and -h print usage on stdout and exit 0, for the command and every subcommand', async () => {
    const all = [[], ...SUBCOMMANDS].flatMap((sub) => [[...sub, '--help'], ...(sub.length <= 1 ? [[...sub, '-h']] : [])]);
    const runs: { args: string[]; r: Run }[] = [];
    // The operator writes its help itself (it is a long-running process of its own): run it for real, as the launcher.
    for (const args of all) runs.push({ args, r: args[0] === 'operator' ? await cli(args, { KUBECONFIG: '/nonexistent' }) : await inProcess(args) });
    runs.push({ args: ['--help'], r: await cli(['--help']) });
    for (const { args, r } of runs) {
      assert.equal(r.status, 0, `mailrelay ${args.join(' ')}: exit ${r.status}, stderr: ${r.stderr}`);
      assert.match(r.stdout, /^usage: mailrelay/m, `mailrelay ${args.join(' ')} prints usage on stdout`);
      assert.equal(r.stderr, '', `mailrelay ${args.join(' ')} writes nothing on stderr`);
    }
  });

  it('no arguments, or an unknown subcommand: usage on stderr, exit 2', async () => {
    for (const args of [[], ['frobnicate'], ['queue'], ['queue', 'frobnicate']]) {
      const r = await inProcess(args);
      assert.equal(r.status, 2, `mailrelay ${args.join(' ')}`);
      assert.match(r.stderr, /usage: mailrelay/);
      assert.equal(r.stdout, '');
    }
    const real = await cli([]);
    assert.equal(real.status, 2, 'the launcher passes the exit code on');
    assert.match(real.stderr, /usage: mailrelay/);
  });

  it('--version prints the package version on stdout, exit 0', async () => {
    for (const flag of ['--version', '-V', 'version']) {
      const r = flag === '--version' ? await cli([flag]) : await inProcess([flag]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.trim(), `mailrelay ${PACKAGE.version}`);
    }
  });

  it('a bad flag value names the flag, exit 2', async () => {
    const config = relayConfig();
    const cases: [string[], RegExp][] = [
      [['relay', '--config', config, '--smtp-port', 'abc'], /--smtp-port abc: expected a port number \(0-65535\)/],
      [['relay', '--config', config, '--http-port', '70000'], /--http-port 70000: expected a port number \(0-65535\)/],
      [['relay', '--config', config, '--frobnicate'], /unknown option --frobnicate/],
      [['relay'], /--config: a config file is required/],
      [['drain', '--timeout', 'soon'], /--timeout soon: expected a number of seconds/],
      [['queue', 'list', '--older-than', 'yesterday'], /--older-than yesterday: expected a duration/],
      [['queue', 'list', '--state', 'lost'], /--state lost: expected one of queued, deferred, held/],
      [['queue', 'show'], /queue show: a message id is required/],
    ];
    for (const [args, re] of cases) {
      const r = await inProcess(args);
      assert.equal(r.status, 2, `mailrelay ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re, `mailrelay ${args.join(' ')}`);
      assert.doesNotMatch(r.stderr, /NaN|\n\s+at .*:\d+:\d+\)?\n/, 'no NaN, no stack trace');
    }
  });

  it('EADDRINUSE says which listener could not bind, and where', async () => {
    const { server, port } = await listening();
    try {
      const smtp = await cli(['relay', '--config', relayConfig(), '--smtp-port', String(port)]);
      assert.equal(smtp.status, 1);
      assert.match(smtp.stderr, new RegExp(`SMTP listener: cannot listen on 127\\.0\\.0\\.1:${port}: address already in use`));
      const http = await cli(['relay', '--config', relayConfig(), '--http-port', String(port)]);
      assert.equal(http.status, 1);
      assert.match(http.stderr, new RegExp(`HTTP listener \\(metrics, health, queue API\\): cannot listen on 127\\.0\\.0\\.1:${port}: address already in use`));
    } finally {
      server.close();
    }
  });

  it('drain against a dead URL says what it tried', async () => {
    const { server, port } = await listening();
    await new Promise<void>((r) => server.close(() => r()));
    const r = await inProcess(['drain', '--url', `http://127.0.0.1:${port}`, '--timeout', '2']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`mailrelay drain: POST http://127\\.0\\.0\\.1:${port}/drain failed: connection refused \\(ECONNREFUSED\\)`));
  });

  it('the relay logs its shutdown as JSON, like every other line', async () => {
    const child = spawn(process.execPath, [CLI, 'relay', '--config', relayConfig()], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { err += b.toString(); });
    const deadline = Date.now() + 20_000;
    while (!out.includes('relay started') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => child.once('close', r));
    assert.equal(code, 0, err);
    assert.equal(err, '', 'nothing outside the JSON log');
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as { msg: string; signal?: string });
    assert.ok(lines.some((l) => l.signal === 'SIGTERM' && /draining/.test(l.msg)), out);
    assert.ok(lines.some((l) => l.msg === 'relay started' && (l as { version?: string }).version === PACKAGE.version), 'the start line says the version');
  });
});
