// A private Haraka 3 instance for bench/relay.ts, installed from npm by test/peers/haraka.ts
// into the tool cache (never a dependency of the product). Outbound mode, as Haraka's docs
// describe a relay: the `relay` plugin marks 127.0.0.0/8 as relaying (ACL) and force-routes
// the sink's domain to smtp-sink, so each accepted message goes to Haraka's on-disk outbound
// queue (one FsyncWriteStream'd file per destination domain, fsynced before the 250) and is
// delivered from there. nodes=2 (one worker per core, the cluster mode Haraka recommends for
// throughput), logs at NOTICE, so the only per-message line is the delivery record we count.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HARAKA_VERSION, installHaraka } from '../test/peers/haraka.ts';
import { alive, childPids as childrenOf, freePort, killPid, onCleanup, setGroupNice, sleep, treeCpu, waitExit, waitListening } from './relay-procs.ts';

/** How to run Haraka for the bench. */
export interface HarakaOptions {
  sinkPort: number;
  /** Outbound connections to the sink at most, over all workers (outbound.ini concurrency_max is per worker). */
  concurrency: number;
  /** smtp.ini nodes: worker processes. */
  nodes: number;
  /** Priority of its session's CPU share (Linux autogroup). */
  groupNice?: number;
  keep?: boolean;
}

/** A running Haraka. */
export interface HarakaInstance {
  name: 'haraka';
  dir: string;
  smtpPort: number;
  masterPid: number;
  /** The config files written, for the report. */
  settings: string[];
  /** CPU seconds of the master and its workers (live and reaped). */
  cpu(): { total: number; byName: Map<string, number> };
  /** The master and its workers. */
  pids(): number[];
  /** Recipients Haraka logged as delivered ("delivered file" NOTICE lines, rcpts=ok/fail/bounce). */
  sentRecipients(): number;
  /** Files in the outbound queue directory (queued or being written). */
  queued(): number;
  stop(): Promise<void>;
}

/** Installs (once) and starts Haraka relaying 127.0.0.0/8 to 127.0.0.1:sinkPort for the sink.test domain. */
export async function startHaraka(o: HarakaOptions): Promise<HarakaInstance> {
  const { bin } = await installHaraka();
  const dir = mkdtempSync(join(tmpdir(), 'mailrelay-bench-haraka-'));
  const instance = join(dir, 'instance');
  await new Promise<void>((resolve, reject) => {
    const p = spawn(process.execPath, [bin, '-i', instance], { stdio: 'ignore' });
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`haraka -i exited ${code}`))));
  });
  const smtpPort = await freePort();
  const conf = join(instance, 'config');
  const files: Record<string, string> = {
    'smtp.ini': `listen=127.0.0.1:${smtpPort}\nnodes=${o.nodes}\ngraceful_shutdown=false\n`,
    plugins: 'relay\n',
    'relay.ini': '[relay]\nacl=true\nforce_routing=true\ndest_domains=false\n',
    relay_acl_allow: '127.0.0.0/8\n',
    'relay_dest_domains.ini': `[domains]\nsink.test = { "action": "continue", "nexthop": "127.0.0.1:${o.sinkPort}" }\n`,
    // local_mx_ok: the sink is on loopback, which outbound refuses by default (mail loops).
    'outbound.ini': `enable_tls=false\nlocal_mx_ok=true\nconcurrency_max=${Math.max(1, Math.floor(o.concurrency / o.nodes))}\n`,
    'log.ini': '[main]\nlevel=notice\ntimestamps=false\nformat=default\n',
    me: 'haraka.bench.test\n',
  };
  for (const [name, text] of Object.entries(files)) writeFileSync(join(conf, name), text);
  const queueDir = join(instance, 'queue');

  // A session of its own, as Postfix's master makes itself one (see setGroupNice).
  const proc = spawn(process.execPath, [bin, '-c', instance], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  if (o.groupNice !== undefined) setGroupNice(proc.pid!, o.groupNice);
  // The workers are the master's children; a master killed hard would leave them behind.
  const killAll = (): void => {
    const workers = proc.pid ? childrenOf(proc.pid) : [];
    killPid(proc.pid);
    for (const w of workers) killPid(w);
  };
  const unregister = onCleanup(() => {
    killAll();
    if (!o.keep) rmSync(dir, { recursive: true, force: true });
  });
  let delivered = 0;
  let tail = '';
  let errTail = '';
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (d: string) => {
    const text = tail + d;
    const lines = text.split('\n');
    tail = lines.pop() ?? '';
    for (const l of lines) {
      if (!l.includes('delivered file')) continue;
      const m = /rcpts="?(\d+)\/\d+\/\d+/.exec(l);
      if (m) delivered += Number(m[1]);
    }
    errTail = (errTail + d).slice(-4000);
  });
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d: string) => { errTail = (errTail + d).slice(-4000); });
  try {
    await waitListening(smtpPort, 60_000);
    // Every worker must be up: the master forks them and each one listens through it.
    await sleep(1000);
  } catch (err) {
    killAll();
    unregister();
    if (!o.keep) rmSync(dir, { recursive: true, force: true });
    throw new Error(`Haraka ${HARAKA_VERSION} did not start: ${(err as Error).message}\n${errTail}`);
  }
  return {
    name: 'haraka',
    dir,
    smtpPort,
    masterPid: proc.pid!,
    settings: Object.entries(files).map(([n, t]) => `${n}: ${t.trim().replace(/\n/g, '; ')}`),
    cpu: () => treeCpu(proc.pid!),
    pids: () => [proc.pid!, ...childrenOf(proc.pid!)],
    sentRecipients: () => delivered,
    queued: () => (existsSync(queueDir) ? readdirSync(queueDir).length : 0),
    stop: async () => {
      const workers = childrenOf(proc.pid!);
      killPid(proc.pid, 'SIGTERM');
      if (!(await waitExit(proc, 10_000))) killAll();
      for (let i = 0; i < 50 && workers.some(alive); i++) await sleep(100);
      for (const w of workers) killPid(w);
      unregister();
      if (!o.keep) rmSync(dir, { recursive: true, force: true });
    },
  };
}
