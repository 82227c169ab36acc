// Our relay for bench/relay.ts, as a child process (`node bin/mailrelay.mjs relay --config FILE`)
// so that its CPU time can be read from /proc apart from the bench's own.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { scrape, testRelayConfig } from '../test/helpers/relay.ts';
import { childPids, freePort, killPid, onCleanup, setGroupNice, sleep, treeCpu, waitExit, waitListening } from './relay-procs.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface OursOptions {
  sinkPort: number;
  /** delivery.concurrencyPerDestination */
  concurrency: number;
  /** Relay processes (config `workers`). */
  workers: number;
  /** Priority of its session's CPU share (Linux autogroup), as every MTA of the bench gets. */
  groupNice?: number;
  /** Write a V8 CPU profile (node --cpu-prof) into this directory when the relay exits. */
  cpuProfDir?: string;
  keep?: boolean;
}

export interface OursInstance {
  name: 'ours';
  dir: string;
  smtpPort: number;
  httpPort: number;
  pid: number;
  /** The relay's processes: the primary and its workers (just the one with workers: 1). */
  pids(): number[];
  /** The config overrides on top of test/helpers/relay.ts's testRelayConfig, for the report. */
  settings: Record<string, unknown>;
  cpu(): { total: number; byName: Map<string, number> };
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  stop(): Promise<void>;
}

/** The relay settings the bench uses (fsync on, PIPELINING and CHUNKING on, quiet logs). */
export function oursOverrides(concurrency: number, workers: number): Record<string, unknown> {
  return {
    workers,
    // Generous session limits: smtp-source -d keeps 16 sessions for a whole workload (W2: 125
    // messages x 54 commands each), and Postfix's smtpd has no command cap either.
    inbound: { hostname: 'relay.bench.test', maxConnections: 2000, maxConnectionsPerIp: 2000, maxCommandsPerSession: 10_000_000 },
    spool: { fsync: true },
    delivery: {
      pipelining: true,
      chunking: true,
      concurrencyPerDestination: concurrency,
      maxMessagesPerConnection: 10000,
      timeouts: { connect: 30, greeting: 60, command: 60, dataInit: 60, dataBlock: 60, dataTerm: 60, idle: 30 },
    },
    drain: { timeout: 10 },
    log: { level: 'warn' },
  };
}

export async function startOurs(o: OursOptions): Promise<OursInstance> {
  const dir = mkdtempSync(join(tmpdir(), 'mailrelay-bench-ours-'));
  const settings = oursOverrides(o.concurrency, o.workers);
  const ports = { smtp: await freePort(), http: await freePort() };
  const config = testRelayConfig(o.sinkPort, { ...settings, inbound: { ...(settings.inbound as object), port: ports.smtp }, http: { host: '127.0.0.1', port: ports.http } }, join(dir, 'spool'));
  const configFile = join(dir, 'relay.json');
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const nodeArgs = o.cpuProfDir ? ['--cpu-prof', '--cpu-prof-dir', o.cpuProfDir] : [];
  // A session of its own, as Postfix's master makes itself one (see setGroupNice).
  const proc = spawn(process.execPath, [...nodeArgs, join(ROOT, 'bin/mailrelay.mjs'), 'relay', '--config', configFile], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
  });
  if (o.groupNice !== undefined) setGroupNice(proc.pid!, o.groupNice);
  const unregister = onCleanup(() => {
    for (const c of childPids(proc.pid!)) killPid(c);
    killPid(proc.pid);
    if (!o.keep) rmSync(dir, { recursive: true, force: true });
  });
  let out = '';
  let err = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d: string) => { if (err.length < 20000) err += d; });
  // log.level is warn, so there is no "relay started" line: pick the ports, wait for them.
  let exited = false;
  proc.once('exit', () => { exited = true; });
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (d: string) => { out = (out + d).slice(-20000); });
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (exited) throw new Error('exited at start');
      try {
        if ((await fetch(`http://127.0.0.1:${ports.http}/readyz`)).ok) break;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error('not ready after 60 s');
      await sleep(100);
    }
    await waitListening(ports.smtp);
  } catch (e) {
    for (const c of childPids(proc.pid!)) killPid(c);
    killPid(proc.pid);
    unregister();
    if (!o.keep) rmSync(dir, { recursive: true, force: true });
    throw new Error(`relay did not start (${(e as Error).message}): ${out.slice(-2000)} ${err.slice(-3000)}`);
  }

  return {
    name: 'ours',
    dir,
    smtpPort: ports.smtp,
    httpPort: ports.http,
    pid: proc.pid!,
    settings,
    cpu: () => treeCpu(proc.pid!),
    pids: () => [proc.pid!, ...childPids(proc.pid!)],
    metric: (name, labels = {}) => scrape(ports.http, name, labels),
    stop: async () => {
      const workers = childPids(proc.pid!);
      killPid(proc.pid, 'SIGTERM'); // graceful drain, so --cpu-prof gets written
      if (!(await waitExit(proc, 20_000))) killPid(proc.pid);
      for (const w of workers) killPid(w);
      unregister();
      if (out.includes('"level":50') || out.includes('"level":60')) process.stderr.write(`relay logged errors:\n${out.slice(-3000)}\n`);
      if (!o.keep) rmSync(dir, { recursive: true, force: true });
    },
  };
}
