// The `mailrelay` command: one binary for the relay, the operator and their tools.
//   mailrelay relay --config FILE [--smtp-port N] [--http-port N] [--spool DIR]
//   mailrelay drain [--url http://127.0.0.1:9090] [--timeout SECONDS]
//   mailrelay operator            (see operator/main.ts)
//   mailrelay render -f mailrelay.yaml
//   mailrelay config-schema       (the relay config as JSON Schema)
import { existsSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ConfigError, loadRelayConfig, parseRelayConfig, relayConfigJsonSchema } from './config.ts';
import { startRelay } from './service.ts';

const USAGE = `usage: mailrelay <relay|drain|operator|render|config-schema> [options]
  relay --config FILE [--smtp-port N] [--http-port N] [--spool DIR]   run a relay
  drain [--url URL] [--timeout SECONDS]                                drain a running relay (preStop hook)
  operator                                                             run the Kubernetes operator
  render -f FILE                                                       print the manifests the operator would create
  config-schema                                                        print the relay config JSON Schema`;

/** Runs the relay until SIGTERM/SIGINT, which start a graceful drain. */
async function relayCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: 'string', short: 'c' }, 'smtp-port': { type: 'string' }, 'http-port': { type: 'string' }, spool: { type: 'string' } },
  });
  if (!values.config) throw new ConfigError([{ path: '--config', message: 'a config file is required' }]);
  const base = await loadRelayConfig(values.config);
  const config = parseRelayConfig({
    ...base,
    inbound: { ...base.inbound, ...(values['smtp-port'] ? { port: Number(values['smtp-port']) } : {}) },
    http: { ...base.http, ...(values['http-port'] ? { port: Number(values['http-port']) } : {}) },
    spool: { ...base.spool, ...(values.spool ? { dir: values.spool } : {}) },
  });
  let relay: Awaited<ReturnType<typeof startRelay>>;
  try {
    relay = await startRelay(config);
  } catch (err) {
    writeTerminationMessage(config.terminationMessagePath, (err as Error).message);
    throw err;
  }
  const stop = (signal: string) => {
    process.stderr.write(`mailrelay: ${signal}: draining (up to ${config.drain.timeout}s)\n`);
    relay.drain().then(() => process.exit(0), (err: Error) => {
      process.stderr.write(`mailrelay: drain failed: ${err.message}\n`);
      process.exit(1);
    });
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  return await new Promise<number>(() => undefined); // runs until a signal ends the process
}

/**
 * Writes why the relay cannot run to the container's termination message file, where the
 * kubelet reads it into the pod status (lastState.terminated.message) and the operator
 * into its RelayCrashLooping condition. Only a file that exists: Kubernetes creates it for
 * the container; outside a pod there is none, and nothing is created. At most 4 KiB, the
 * kubelet's own limit.
 */
export function writeTerminationMessage(path: string, message: string): void {
  try {
    if (existsSync(path)) writeFileSync(path, Buffer.from(message).subarray(0, 4096));
  } catch {
    // The message is also on stderr; the file is a courtesy.
  }
}

/** Asks a running relay to drain and waits until it has stopped serving (or the timeout). */
async function drainCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { url: { type: 'string' }, timeout: { type: 'string' } } });
  const url = values.url ?? 'http://127.0.0.1:9090';
  const deadline = Date.now() + Number(values.timeout ?? 120) * 1000;
  const res = await fetch(`${url}/drain`, { method: 'POST' });
  if (res.status !== 202) {
    process.stderr.write(`mailrelay drain: ${url}/drain answered ${res.status}\n`);
    return 1;
  }
  while (Date.now() < deadline) {
    try {
      await fetch(`${url}/healthz`);
    } catch {
      return 0; // the relay stopped serving: drained
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  process.stderr.write('mailrelay drain: timed out waiting for the relay to stop\n');
  return 1;
}

/** Entry point: dispatches the subcommand; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'relay': return await relayCommand(rest);
      case 'drain': return await drainCommand(rest);
      case 'operator': {
        const { operatorCommand } = await import('../operator/main.ts');
        return await operatorCommand(rest);
      }
      case 'render': {
        const { renderCommand, RenderError } = await import('../operator/render.ts');
        try {
          process.stdout.write(await renderCommand(rest));
          return 0;
        } catch (err) {
          if (!(err instanceof RenderError)) throw err;
          process.stderr.write(`mailrelay render: ${err.message}\n`);
          return err.exitCode;
        }
      }
      case 'config-schema':
        process.stdout.write(`${JSON.stringify(relayConfigJsonSchema(), null, 2)}\n`);
        return 0;
      default:
        process.stderr.write(`${USAGE}\n`);
        return cmd === undefined || cmd === '--help' || cmd === '-h' ? 0 : 2;
    }
  } catch (err) {
    process.stderr.write(`mailrelay ${cmd}: ${(err as Error).message}\n`);
    return err instanceof ConfigError ? 2 : 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (err: Error) => {
    process.stderr.write(`${err.stack ?? err.message}\n`);
    process.exit(1);
  });
}
