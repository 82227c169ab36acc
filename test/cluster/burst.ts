// A burst of mail into a MailRelay on the real control plane, run by the simulated kubelet,
// delivered to Postfix's smtp-sink that accepts only a limited rate: the scenario of
// issue 14 (test/cluster/autoscale.test.ts) and of `npm run bench:autoscale`.
//   - the sender plays the Service: it spreads its sessions round robin over the relay
//     pods that are Ready (a hold drain makes a pod unready; a 4xx moves the message on);
//   - every recipient is unique (r<i>@example.net) and counted as acknowledged only on a
//     250 reply; the sink's dump files are counted at the end, one by one.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import nodemailer, { type Transporter } from 'nodemailer';
import { stringify } from 'yaml';
import type { SmtpSink } from '../peers/postfix.ts';
import { Spool } from '../../relay/spool/index.ts';
import type { ClusterEnv } from './harness.ts';

type Obj = any; // eslint-disable-line @typescript-eslint/no-explicit-any
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The rate limit of the next hop: smtp-sink delays a DATA reply by a random multiple of 1 s with odds 5 (mean 50 ms). */
export const SINK_DELAYS = [{ command: 'data', seconds: 1, odds: 5 }];

/** A MailRelay spec relaying to the sink; `autoscaling` or a fixed `replicas`. */
export function burstRelaySpec(sinkPort: number, scaling: { autoscaling: object } | { replicas: number }): object {
  return {
    ...scaling,
    relayNetworks: ['127.0.0.0/8'],
    // Five connections per pod to the rate-limited next hop: what one pod can push through.
    delivery: { mode: 'smarthost', smarthost: { host: '127.0.0.1', port: sinkPort, tls: 'none' }, concurrencyPerDestination: 5, retry: { schedule: ['1s'], maxAge: '1h' } },
    drainTimeout: '5s',
    podDisruptionBudget: { enabled: false },
  };
}

/** Applies a MailRelay with kubectl apply --server-side. */
export function applyRelay(env: ClusterEnv, ns: string, name: string, spec: object): void {
  env.kubectl(['apply', '--server-side', '-f', '-'], stringify({ apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay', metadata: { name, namespace: ns }, spec }));
}

/** What a burst observed. */
export interface BurstResult {
  /** Recipients that got a 250. */
  acknowledged: Set<string>;
  /** ms from the first message sent to the last one acknowledged. */
  sendMs: number;
  /** Sends that were refused or failed and went to another pod. */
  retries: number;
}

/** Sends `total` messages at up to `ratePerSecond` over `sessions` parallel senders, to the Ready pods of `relay`. */
export async function sendBurst(env: ClusterEnv, ns: string, relay: string, opts: { total: number; ratePerSecond: number; sessions?: number; timeoutMs: number }): Promise<BurstResult> {
  const acknowledged = new Set<string>();
  const transports = new Map<string, Transporter>();
  const transport = (ip: string) => {
    let t = transports.get(ip);
    if (!t) {
      t = nodemailer.createTransport({ host: ip, port: 2525, secure: false, ignoreTLS: true, pool: true, maxConnections: 4, maxMessages: Infinity, connectionTimeout: 5000, socketTimeout: 30_000 });
      transports.set(ip, t);
    }
    return t;
  };
  const prefix = `${ns}/${relay}-`;
  // The Ready pods, looked at every 200 ms (a Service's endpoints lag the same way).
  let seen: { at: number; ips: string[] } = { at: 0, ips: [] };
  const ready = () => {
    if (Date.now() - seen.at > 200) {
      seen = { at: Date.now(), ips: (env.kubelet?.pods() ?? []).filter((p) => `${p.namespace}/${p.name}`.startsWith(prefix) && p.ready).map((p) => p.podIP).sort() };
    }
    return seen.ips;
  };
  let next = 0;
  let turn = 0;
  let retries = 0;
  let lastError = '';
  const started = Date.now();
  const deadline = started + opts.timeoutMs;
  const sender = async () => {
    for (;;) {
      const i = next++;
      if (i >= opts.total) return;
      const due = started + (i * 1000) / opts.ratePerSecond;
      if (due > Date.now()) await sleep(due - Date.now());
      const rcpt = `r${i}@example.net`;
      for (;;) {
        if (Date.now() > deadline) throw new Error(`burst: ${acknowledged.size}/${opts.total} acknowledged before the deadline (${retries} retries; last error: ${lastError})`);
        const ips = ready();
        const ip = ips[turn++ % Math.max(1, ips.length)];
        if (!ip) {
          await sleep(100);
          continue;
        }
        try {
          const info = await transport(ip).sendMail({ from: 'burst@example.com', to: rcpt, subject: `burst ${i}`, text: `message ${i}\n` });
          if (/^250 /.test(info.response ?? '')) {
            acknowledged.add(rcpt);
            break;
          }
        } catch (err) {
          // A draining pod answers 421, a removed one refuses the connection: try another.
          lastError = (err as Error).message;
        }
        retries++;
        await sleep(50);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: opts.sessions ?? 16 }, sender));
  } finally {
    for (const t of transports.values()) t.close();
  }
  return { acknowledged, sendMs: Date.now() - started, retries };
}

/** Waits until the sink has `n` messages (its -c counter), or throws after `timeoutMs`. */
export async function waitForSink(sink: SmtpSink, n: number, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  await sink.waitForCounters((c) => c.messages >= n, timeoutMs);
  return Date.now() - t0;
}

/** Recipients at the sink and how often each arrived (parsing every dump file). */
export function sinkRecipientCounts(sink: SmtpSink): Map<string, number> {
  const counts = new Map<string, number>();
  for (const m of sink.messages()) for (const r of m.rcpts) counts.set(r, (counts.get(r) ?? 0) + 1);
  return counts;
}

/** Messages left in a spool PVC's directory on the simulated node (the kubelet keeps PVC data there). */
export async function spoolMessagesOnNode(env: ClusterEnv, ns: string, claim: string): Promise<number> {
  const root = join(env.cp.dir, 'kubelet', 'pvc', ns, claim);
  let total = 0;
  // One spool, or one shard per worker (spool/<n>): count every spool directory found.
  const dirs = [root, ...readdirSync(root, { withFileTypes: true }).filter((d) => d.isDirectory() && /^shard-[1-9]\d*$/.test(d.name)).map((d) => join(root, d.name))];
  for (const dir of dirs) {
    if (!readdirSync(dir).includes('log')) continue;
    const spool = await Spool.open(dir, { fsync: false });
    total += spool.size;
    await spool.close();
  }
  return total;
}

/** The MailRelay as JSON. */
export function getRelay(env: ClusterEnv, ns: string, name: string): Obj {
  return env.getJson(['mailrelay', '-n', ns, name]);
}
