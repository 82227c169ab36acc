// npm run soak — a bounded soak test: steady mixed traffic through an in-process relay
// (inbound -> fsync'd spool -> scheduler -> engine) to a fault-injecting peer, then a
// bounded drain and the accounting check: every recipient the relay acknowledged must end
// up delivered at the peer or bounced back to its sender in a DSN that quotes the reply.
//
// Traffic: several nodemailer senders (pooled connections) at a fixed total rate; each
// message carries a unique X-Soak-Token. Recipients by share: healthy, 552 over quota
// (bounces at once), tempfail-once (451, delivered on the retry), slow-50 (each RCPT reply
// 50 ms late), and drop-after-data (the peer hangs up after the body, every time: these
// messages expire after delivery.retry.maxAge and bounce with 4.4.7).
//
// Usage: npx tsx bench/soak.ts [--minutes 3] [--rate 40] [--senders 8] [--drain 120] [--seed 1]
// Exit status 1 if any acknowledged recipient is unaccounted for, delivered twice, or both
// delivered and bounced.
import os from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import nodemailer from 'nodemailer';
import type { SMTPServerDataStream, SMTPServerSession } from 'smtp-server';
import { startFaultServer, type FaultTransaction } from '../test/peers/fault-server.ts';
import { startTestRelay } from '../test/helpers/relay.ts';
import { account, percentile, type AckedMessage, type PeerTransaction } from './soak-accounting.ts';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string' }, rate: { type: 'string' }, senders: { type: 'string' }, drain: { type: 'string' }, seed: { type: 'string' },
  },
});
const MINUTES = Number(values.minutes ?? 3);
const RATE = Number(values.rate ?? 40); // messages per second, all senders together
const SENDERS = Number(values.senders ?? 8);
const DRAIN_S = Number(values.drain ?? 120);
const SEED = Number(values.seed ?? 1);
for (const [k, v] of Object.entries({ MINUTES, RATE, SENDERS, DRAIN_S })) {
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${k.toLowerCase()} must be a positive number`);
}
const SAMPLE_MS = 5000;
const MAX_AGE_S = 30;

/** mulberry32: a small seeded PRNG, so a run's traffic mix can be repeated. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Kind = 'healthy' | 'quota' | 'tempfail' | 'slow' | 'drop';
const SHARE: Array<[Kind, number]> = [['quota', 0.05], ['tempfail', 0.1], ['slow', 0.1], ['healthy', 0.75]];

function recipientsFor(rand: () => number, n: number): { rcpts: string[]; kinds: Kind[] } {
  // The peer drops every transaction with a drop-after-data recipient, so it travels
  // alone: otherwise its healthy co-recipients would expire with it.
  if (rand() < 0.03) return { rcpts: [`drop-after-data-${n}@example.net`], kinds: ['drop'] };
  const count = 1 + (rand() < 0.3 ? 1 : 0) + (rand() < 0.1 ? 1 : 0);
  const rcpts: string[] = [];
  const kinds: Kind[] = [];
  for (let i = 0; i < count; i++) {
    let u = rand();
    let kind: Kind = 'healthy';
    for (const [k, share] of SHARE) {
      if (u < share) { kind = k; break; }
      u -= share;
    }
    kinds.push(kind);
    rcpts.push(kind === 'quota' ? `552-quota-${n}-${i}@example.net`
      : kind === 'tempfail' ? `tempfail-once-${n}-${i}@example.com`
        // Not `slow-50-<n>`: the peer would read a number after "slow-50-" as a reply code.
        : kind === 'slow' ? `slow-50-r${n}-${i}@example.org` : `user-${n}-${i}@example.com`);
  }
  return { rcpts, kinds };
}

function bodyFor(rand: () => number, token: string): string {
  // Mostly 2-8 KB, 2% around 100 KB; dot-lines so stuffing is exercised all the way.
  const kb = rand() < 0.02 ? 100 : 2 + Math.floor(rand() * 7);
  const line = `${'soak payload '.repeat(5)}\r\n`;
  return `.${token} starts with a dot\r\n${line.repeat(Math.ceil((kb * 1024) / line.length))}..\r\n.\r\nend\r\n`;
}

const mb = (n: number) => (n / 1024 / 1024).toFixed(1);
const ms = (n: number) => (Number.isFinite(n) ? `${n.toFixed(0)} ms` : 'n/a');

async function main(): Promise<number> {
  const peer = await startFaultServer({ socketTimeoutMs: 60_000 });
  // When the peer had each message: wrap its onData callback (the data is recorded by then).
  const receivedAt = new WeakMap<FaultTransaction, number>();
  const server = peer.server as unknown as { onData(stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null, msg?: string) => void): void };
  const onData = server.onData.bind(server);
  server.onData = (stream, session, cb) => onData(stream, session, (err, msg) => {
    for (let i = peer.transactions.length - 1, n = 0; i >= 0 && n < 10_000; i--, n++) {
      const tx = peer.transactions[i]!;
      if (tx.connectionId === session.id) {
        if (tx.data !== undefined && !receivedAt.has(tx)) receivedAt.set(tx, Date.now());
        break;
      }
    }
    cb(err, msg);
  });
  const relay = await startTestRelay(peer.port, {
    delivery: { chunking: false, retry: { schedule: [0.5, 1, 2], jitter: 0, maxAge: MAX_AGE_S } },
    log: { level: 'error' },
  });

  // The histogram records whole sampling intervals: the delay is what exceeds the resolution.
  const ELD_RESOLUTION_MS = 10;
  const loopDelay = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
  loopDelay.enable();
  const acked: AckedMessage[] = [];
  const refused = new Map<string, number>();
  const submitMs: number[] = [];
  const kindsSent = new Map<Kind, number>();
  const samples: Array<{ t: number; rss: number; heap: number; queued: number; acked: number; delivered: number }> = [];
  const started = Date.now();
  const loadAtStart = os.loadavg()[0]!;
  const cpuAtStart = process.cpuUsage();
  const sendUntil = started + MINUTES * 60_000;
  // The peer keeps every message and every command line it saw. So that the memory series
  // shows the relay and not the peer's recordings, finished transactions are boiled down to
  // what the accounting needs (the header block; whole DSNs) and the bodies dropped.
  const collected: PeerTransaction[] = [];
  const compacted = new WeakSet<FaultTransaction>();
  let deliveredSoFar = 0;
  const compact = (all: boolean) => {
    for (const tx of peer.transactions) {
      if (compacted.has(tx) || (!all && tx.dataReply === undefined && !tx.dropped)) continue;
      compacted.add(tx);
      const data = tx.data === undefined || tx.from === '' ? tx.data : tx.data.subarray(0, Math.max(0, tx.data.indexOf('\r\n\r\n')) + 2);
      collected.push({ from: tx.from, rcptAccepted: [...tx.rcptAccepted], data: data && Buffer.from(data), dataReply: tx.dataReply, receivedAt: receivedAt.get(tx) });
      if (tx.from !== '' && tx.dataReply?.startsWith('250')) deliveredSoFar += tx.rcptAccepted.length;
      tx.data = undefined;
    }
    for (const c of peer.connections) {
      c.transcript.length = 0;
      c.commands.length = 0;
    }
  };
  const deliveredRcpts = () => deliveredSoFar;
  const sample = () => {
    compact(false);
    const m = process.memoryUsage();
    samples.push({ t: (Date.now() - started) / 1000, rss: m.rss, heap: m.heapUsed, queued: relay.spool.size, acked: acked.length, delivered: deliveredRcpts() });
  };
  sample();
  const sampler = setInterval(sample, SAMPLE_MS);

  console.log(`soak: ${MINUTES} min at ${RATE} msg/s from ${SENDERS} senders, then up to ${DRAIN_S} s to drain (seed ${SEED})`);
  const interval = (SENDERS / RATE) * 1000;
  const maxPerSender = Math.ceil((MINUTES * 60_000) / interval) + 1;
  let seq = 0;
  await Promise.all(Array.from({ length: SENDERS }, async (_, s) => {
    const rand = prng(SEED * 1000 + s);
    const tr = nodemailer.createTransport({ host: '127.0.0.1', port: relay.smtpPort, ignoreTLS: true, pool: true, maxConnections: 1, maxMessages: 200 });
    let next = started + (interval * s) / SENDERS;
    try {
      for (let k = 0; k < maxPerSender && Date.now() < sendUntil; k++) {
        const wait = next - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        next = Math.max(next + interval, Date.now()); // never burst to catch up
        if (Date.now() >= sendUntil) break;
        const n = seq++;
        const token = `soak-${SEED}-${s}-${n}`;
        const from = `sender-${s}@example.com`;
        const { rcpts, kinds } = recipientsFor(rand, n);
        for (const kd of kinds) kindsSent.set(kd, (kindsSent.get(kd) ?? 0) + 1);
        const t0 = performance.now();
        try {
          await tr.sendMail({
            envelope: { from, to: rcpts }, from, to: rcpts, subject: token, headers: { 'X-Soak-Token': token }, text: bodyFor(rand, token),
          });
          submitMs.push(performance.now() - t0);
          acked.push({ token, from, rcpts, ackedAt: Date.now() });
        } catch (err) {
          const why = (err as { responseCode?: number; code?: string }).responseCode ?? (err as { code?: string }).code ?? 'error';
          refused.set(String(why), (refused.get(String(why)) ?? 0) + 1);
        }
      }
    } finally {
      tr.close();
    }
  }));
  const sentAt = Date.now();
  const sendSeconds = (sentAt - started) / 1000;
  console.log(`sending done after ${sendSeconds.toFixed(0)} s: ${acked.length} acknowledged, ${[...refused.values()].reduce((a, b) => a + b, 0)} refused; draining`);

  // Drain: until the spool is empty (every recipient delivered or bounced, DSNs included).
  const drainDeadline = sentAt + DRAIN_S * 1000;
  for (let i = 0; i < DRAIN_S * 20 && relay.spool.size > 0 && Date.now() < drainDeadline; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const drained = relay.spool.size === 0;
  const drainSeconds = (Date.now() - sentAt) / 1000;
  clearInterval(sampler);
  sample();
  loopDelay.disable();

  const dropped = peer.transactions.filter((tx) => tx.dropped).length;
  compact(true);
  const peerTx = collected;
  const a = account(acked, peerTx);
  const lastDelivery = Math.max(...peerTx.filter((tx) => tx.from !== '' && tx.receivedAt !== undefined).map((tx) => tx.receivedAt!));
  const deliveredInSend = peerTx.filter((tx) => tx.from !== '' && tx.dataReply?.startsWith('250') && (tx.receivedAt ?? Infinity) <= sentAt)
    .reduce((n, tx) => n + tx.rcptAccepted.length, 0);
  const dsns = peerTx.filter((tx) => tx.from === '' && tx.dataReply?.startsWith('250')).length;

  console.log('\n=== soak results ===');
  console.log(`command: npx tsx bench/soak.ts --minutes ${MINUTES} --rate ${RATE} --senders ${SENDERS} --drain ${DRAIN_S} --seed ${SEED}`);
  const cpu = process.cpuUsage(cpuAtStart);
  console.log(`node ${process.version}, ${process.platform}/${process.arch}, ${os.cpus().length} CPUs; 1-min load average ${loadAtStart.toFixed(1)} at the start, ${os.loadavg()[0]!.toFixed(1)} at the end`);
  console.log(`CPU used by this process: ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s = ${((cpu.user + cpu.system) / 1e3 / Math.max(1, acked.length)).toFixed(2)} ms per accepted message (relay, peer and senders together)`);
  console.log(`recipients by kind: ${JSON.stringify(Object.fromEntries(kindsSent))}`);
  console.log(`accepted: ${acked.length} messages (${a.acknowledgedRcpts} recipients) in ${sendSeconds.toFixed(0)} s = ${(acked.length / sendSeconds).toFixed(1)} msg/s; refused at submission: ${JSON.stringify(Object.fromEntries(refused))}`);
  console.log(`submission (nodemailer sendMail -> 250): p50 ${ms(percentile(submitMs, 50))}, p99 ${ms(percentile(submitMs, 99))}`);
  console.log(`delivered: ${a.delivered} recipients; ${(deliveredInSend / sendSeconds).toFixed(1)} rcpt/s while sending, ${(a.delivered / ((lastDelivery - started) / 1000)).toFixed(1)} rcpt/s overall (to the last delivery)`);
  console.log(`bounced: ${a.bounced} recipients ${JSON.stringify(a.bouncedByStatus)} in ${dsns} DSNs; ${dropped} transactions dropped by the peer after data`);
  console.log(`latency acceptance -> at the peer (delivered recipients, first copy): p50 ${ms(percentile(a.latenciesMs, 50))}, p99 ${ms(percentile(a.latenciesMs, 99))}, max ${ms(percentile(a.latenciesMs, 100))}${a.negativeLatencies.length ? ` (${a.negativeLatencies.length} at the peer before the sender read its 250, counted as 0)` : ''}`);
  const healthy = (() => {
    // Latency of the recipients that needed no retry: healthy and slow ones in messages without a fault.
    const byToken = new Map(acked.map((m) => [m.token, m]));
    const vals: number[] = [];
    for (const tx of peerTx) {
      if (tx.from === '' || !tx.data || !tx.dataReply?.startsWith('250') || tx.receivedAt === undefined) continue;
      const token = /^X-Soak-Token: (\S+)\r?$/m.exec(tx.data.toString('latin1'))?.[1];
      const m = token ? byToken.get(token) : undefined;
      if (m && m.rcpts.every((r) => /^(?:user|slow)-/.test(r))) vals.push(Math.max(0, tx.receivedAt - m.ackedAt));
    }
    return vals;
  })();
  console.log(`latency, messages with no faulty recipient: p50 ${ms(percentile(healthy, 50))}, p99 ${ms(percentile(healthy, 99))}`);
  const eld = (ns: number) => `${Math.max(0, ns / 1e6 - ELD_RESOLUTION_MS).toFixed(1)} ms`;
  console.log(`event-loop delay (whole process: relay, peer and senders; beyond the ${ELD_RESOLUTION_MS} ms sampling interval): p50 ${eld(loopDelay.percentile(50))}, p99 ${eld(loopDelay.percentile(99))}, max ${eld(loopDelay.max)}`);
  console.log(`drain: ${drained ? 'spool empty' : `NOT drained, ${relay.spool.size} messages left`} ${drainSeconds.toFixed(1)} s after sending stopped`);
  console.log('memory (sampled every 5 s):');
  console.log('   t(s)   rss(MB)  heap(MB)  queued   acked  delivered');
  for (const sm of samples) {
    console.log(`${sm.t.toFixed(0).padStart(7)} ${mb(sm.rss).padStart(9)} ${mb(sm.heap).padStart(9)} ${String(sm.queued).padStart(7)} ${String(sm.acked).padStart(7)} ${String(sm.delivered).padStart(10)}`);
  }
  const problems = [
    ...a.unaccounted.map((x) => `unaccounted: ${x}`),
    ...a.duplicates.map((x) => `delivered more than once: ${x}`),
    ...a.deliveredAndBounced.map((x) => `delivered and bounced: ${x}`),
    ...a.bouncedWithoutReply.filter((x) => !x.endsWith('(4.4.7)')).map((x) => `bounce quotes no reply: ${x}`),
  ];
  console.log(`accounting: ${a.acknowledgedRcpts} acknowledged = ${a.delivered} delivered + ${a.bounced} bounced + ${a.unaccounted.length} unaccounted; ${a.duplicates.length} duplicates`);
  await relay.close();
  await peer.close();
  if (problems.length > 0) {
    console.log(`FAIL: ${problems.length} problems`);
    for (const p of problems.slice(0, 50)) console.log(`  ${p}`);
    return 1;
  }
  console.log('PASS: every acknowledged recipient was delivered once or bounced with a DSN');
  return 0;
}

main().then((code) => process.exit(code), (err: unknown) => {
  console.error(err);
  process.exit(1);
});
