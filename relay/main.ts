// The `mailrelay` command: one binary for the relay, the operator and their tools.
// Conventions every subcommand follows: -h/--help prints its usage on stdout (exit 0);
// a usage mistake prints a line naming the flag at fault, then the usage, on stderr (exit 2);
// any other failure is one line on stderr (exit 1).
import { pathToFileURL } from 'node:url';
// The relay's modules (./config.ts, ./service.ts, pino) are imported by the commands that use
// them: loading them takes most of a start, and `drain` (every relay pod's preStop hook),
// `queue` and `--help` need none of them (docs/benchmarks.md, "CLI start-up").
import { UsageError, parseFlags, portFlag, secondsFlag } from './cli/args.ts';
import { endpointFrom, relayRequest, RelayRequestError } from './cli/client.ts';
import { QUEUE_USAGE, queueCommand } from './queue/cli.ts';
import { mailrelayVersion } from './version.ts';

/** Where a command writes: stdout and stderr (tests pass their own). */
export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

let configModule: typeof import('./config.ts') | undefined;
async function loadConfigModule(): Promise<typeof import('./config.ts')> {
  configModule ??= await import('./config.ts');
  return configModule;
}

const PROCESS_IO: CliIo = { out: (t) => { process.stdout.write(t); }, err: (t) => { process.stderr.write(t); } };

/** Usage of `mailrelay`. */
export const USAGE = `usage: mailrelay <command> [options]

commands:
  relay --config FILE      run a relay
  drain                    drain a running relay (the preStop hook)
  queue <list|show|retry|hold|release|delete>
                           inspect and change a running relay's queue
  operator                 run the Kubernetes operator
  render -f FILE           print the manifests the operator would create
  config-schema            print the relay config as JSON Schema
  version                  print the version (also --version, -V)

'mailrelay <command> --help' describes each command.
`;

const RELAY_USAGE = `usage: mailrelay relay --config FILE [options]

Runs a relay: SMTP in, durable spool, delivery out; metrics, health, drain and the queue
API over HTTP. SIGTERM or SIGINT drains it (refuse new mail, deliver what is due) and exits.

options:
  -c, --config FILE      the relay config (YAML or JSON; every key in docs/config.md)
      --smtp-port N      override inbound.port
      --http-port N      override http.port
      --spool DIR        override spool.dir
  -h, --help             this text
`;

const DRAIN_USAGE = `usage: mailrelay drain [options]

Asks a running relay to drain (421 to new mail, deliver what is due, then stop) and waits
until it has stopped serving. The relay pods' preStop hook runs it.

options:
      --url URL          the relay's HTTP address (default http://127.0.0.1:9090)
      --timeout SECONDS  how long to wait for the relay to stop (default 120)
      --token-file FILE  the drain token, for a relay that is not on loopback
  -h, --help             this text
`;

const CONFIG_SCHEMA_USAGE = `usage: mailrelay config-schema

Prints the relay config's JSON Schema (every key, type and default; unknown keys are errors).
`;

const VERSION_USAGE = `usage: mailrelay version

Prints the mailrelay version.
`;

/** Runs the relay until SIGTERM/SIGINT, which start a graceful drain. */
async function relayCommand(argv: string[], io: CliIo): Promise<number> {
  const p = parseFlags(argv, { config: { type: 'string', short: 'c' }, 'smtp-port': { type: 'string' }, 'http-port': { type: 'string' }, spool: { type: 'string' } });
  if (p.help) return (io.out(RELAY_USAGE), 0);
  // A worker forked by the primary of a multi-process relay: it runs the config the primary validated.
  const { isRelayWorker, relayProcesses, runRelayPrimary, runRelayWorker } = await import('./cluster.ts');
  if (isRelayWorker()) return runRelayWorker();
  const v = p.values;
  if (!v.config) throw new UsageError('--config: a config file is required');
  const smtpPort = portFlag('smtp-port', v['smtp-port']);
  const httpPort = portFlag('http-port', v['http-port']);
  const { loadRelayConfig, parseRelayConfig } = await loadConfigModule();
  const base = await loadRelayConfig(String(v.config));
  const config = parseRelayConfig({
    ...base,
    inbound: { ...base.inbound, ...(smtpPort !== undefined ? { port: smtpPort } : {}) },
    http: { ...base.http, ...(httpPort !== undefined ? { port: httpPort } : {}) },
    spool: { ...base.spool, ...(v.spool ? { dir: String(v.spool) } : {}) },
  });
  const [{ default: pino }, { startRelay }] = await Promise.all([import('pino'), import('./service.ts')]);
  const log = pino({ level: config.log.level });
  // Several workers, or shards a larger `workers` setting left that must still be delivered.
  if (relayProcesses(config) > 1) return runRelayPrimary(config, log);
  let relay: Awaited<ReturnType<typeof startRelay>>;
  try {
    relay = await startRelay(config, { log });
  } catch (err) {
    // A damaged or unwritable spool, a bad key: said where the kubelet and the operator look.
    const { writeTerminationMessage } = await import('./termination.ts');
    writeTerminationMessage(config.terminationMessagePath, (err as Error).message);
    throw err;
  }
  const main = log.child({ component: 'relay' });
  const stop = (signal: string) => {
    main.info({ signal, timeoutSeconds: config.drain.timeout }, `${signal}: draining (up to ${config.drain.timeout}s)`);
    relay.drain().then(() => {
      main.info({ signal }, 'stopped');
      log.flush();
      process.exit(0);
    }, (err: Error) => {
      main.error({ signal, err: err.message }, 'drain failed');
      log.flush();
      process.exit(1);
    });
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  // Runs until a signal ends the process, or until a drain asked over HTTP (the preStop
  // hook) has closed the relay: then nothing is left to run, and the exit is a clean one
  // (rather than node's 13 for a top-level await that never settled).
  return await new Promise<number>((resolve) => process.once('beforeExit', () => {
    main.info({}, 'stopped');
    log.flush();
    resolve(0);
  }));
}

/** Asks a running relay to drain and waits until it has stopped serving (or the timeout). */
async function drainCommand(argv: string[], io: CliIo): Promise<number> {
  const p = parseFlags(argv, { url: { type: 'string' }, timeout: { type: 'string' }, 'token-file': { type: 'string' } });
  if (p.help) return (io.out(DRAIN_USAGE), 0);
  const timeout = secondsFlag('timeout', p.values.timeout, 120);
  const ep = endpointFrom(p.values.url ?? 'http://127.0.0.1:9090', p.values['token-file'], {});
  const deadline = Date.now() + timeout * 1000;
  const res = await relayRequest(ep, 'POST', '/drain', undefined, timeout * 1000);
  if (res.status !== 202) {
    io.err(`mailrelay drain: POST ${ep.url}/drain answered ${res.status}: ${String(res.body).trim()}\n`);
    return 1;
  }
  // Bounded by the deadline.
  while (Date.now() < deadline) {
    try {
      await fetch(`${ep.url}/healthz`, { signal: AbortSignal.timeout(5000) });
    } catch {
      return 0; // the relay stopped serving: drained
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  io.err(`mailrelay drain: ${ep.url} still serving after ${timeout}s\n`);
  return 1;
}

function printUsageError(io: CliIo, label: string, err: UsageError, usage: string | undefined): number {
  io.err(`mailrelay ${label}: ${err.message}\n${usage === undefined ? '' : `\n${usage}`}`);
  return 2;
}

/** Entry point: dispatches the subcommand; returns the exit code. */
export async function main(argv: string[], io: CliIo = PROCESS_IO): Promise<number> {
  const [cmd, ...rest] = argv;
  const usageOf: Record<string, string | undefined> = {
    relay: RELAY_USAGE, drain: DRAIN_USAGE, queue: QUEUE_USAGE[''], 'config-schema': CONFIG_SCHEMA_USAGE, version: VERSION_USAGE,
  };
  try {
    switch (cmd) {
      case undefined:
        io.err(USAGE);
        return 2;
      case '-h': case '--help': case 'help':
        io.out(USAGE);
        return 0;
      case '-V': case '--version': case 'version':
        if (cmd === 'version' && (rest.includes('-h') || rest.includes('--help'))) return (io.out(VERSION_USAGE), 0);
        io.out(`mailrelay ${mailrelayVersion()}\n`);
        return 0;
      case 'relay': return await relayCommand(rest, io);
      case 'drain': return await drainCommand(rest, io);
      case 'queue': return await queueCommand(rest, io.out);
      case 'operator': {
        const { operatorCommand } = await import('../operator/main.ts');
        return await operatorCommand(rest);
      }
      case 'render': {
        const { renderCommand, RenderError } = await import('../operator/render.ts');
        try {
          io.out(await renderCommand(rest));
          return 0;
        } catch (err) {
          if (!(err instanceof RenderError)) throw err;
          io.err(`mailrelay render: ${err.message}\n`);
          return err.exitCode;
        }
      }
      case 'config-schema': {
        const p = parseFlags(rest, {});
        if (p.help) return (io.out(CONFIG_SCHEMA_USAGE), 0);
        const { relayConfigJsonSchema } = await loadConfigModule();
        io.out(`${JSON.stringify(relayConfigJsonSchema(), null, 2)}\n`);
        return 0;
      }
      default:
        io.err(`mailrelay: unknown command ${cmd}\n\n${USAGE}`);
        return 2;
    }
  } catch (err) {
    if (err instanceof UsageError) {
      // `queue show` errors are about `queue show`: name it, and print its usage.
      const sub = cmd === 'queue' && rest[0] !== undefined && QUEUE_USAGE[rest[0]] !== undefined && rest[0] !== '' ? rest[0] : undefined;
      return printUsageError(io, sub ? `queue ${sub}` : cmd ?? '', err, sub ? QUEUE_USAGE[sub] : usageOf[cmd ?? '']);
    }
    // Only the config module throws ConfigError: when it was never loaded, this is not one.
    if (configModule && err instanceof configModule.ConfigError) {
      io.err(`mailrelay ${cmd}: ${err.message}\n`);
      return 2;
    }
    if (err instanceof RelayRequestError) {
      io.err(`mailrelay ${cmd}: ${err.message}\n`);
      return 1;
    }
    io.err(`mailrelay ${cmd}: ${(err as Error).message}\n`);
    return 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (err: Error) => {
    process.stderr.write(`${err.stack ?? err.message}\n`);
    process.exit(1);
  });
}
