// npm run bench:relay — our relay vs Haraka 3 and Postfix 3.7, side by side in one run on this
// machine. Each MTA takes mail from Postfix's smtp-source on loopback, makes it durable (fsync)
// before replying 250, and relays it to a Postfix smtp-sink of its own:
//   ours     `mailrelay relay` with `workers` = the CPU count (bench/relay-ours.ts)
//   Haraka   3.3.4 from npm, installed into the tool cache by the bench itself (never a
//            dependency of the product), outbound mode, its disk queue, nodes=2 (relay-haraka.ts)
//   Postfix  Debian's, a private relay-only instance (relay-postfix.ts)
// Workloads (issue 12), smtp-source -s 20:
//   a  10,000 × 1 rcpt × 4 KB, sessions reused (-d)
//   b   2,000 × 50 rcpt × 4 KB, sessions reused
//   c   2,000 × 1 rcpt × 100 KB, sessions reused
//   d   5,000 × 1 rcpt × 4 KB, a new connection per message
// A run of one workload on one MTA: fresh MTA + sink, a warm-up batch (5%) relayed end to end,
// then the measured batch. The MTAs take turns going first from run to run. Then, unless
// --no-latency: submission latency (connect -> 250 after the dot, a new connection per message)
// of each MTA at half our median workload-d rate; unless --no-rss: our RSS with 100,000
// messages queued (deliveries held by a destination that never answers).
//
// Reported per run: messages/s end to end (first smtp-source connection -> last message at the
// sink), inbound msgs/s (smtp-source's wall time), CPU s of the MTA's processes (from /proc),
// other tenants' CPU (a shared machine). Every run is verified: smtp-source exits 0 (every
// command got its 2xx/3xx), the sink got exactly the expected transactions, and every recipient
// was delivered (our /metrics; Haraka's and Postfix's delivery log lines).
//
// Usage: npx tsx bench/relay.ts [--runs R] [--quick] [--workloads a,b,c,d] [--sessions 20]
//          [--concurrency 16] [--workers N] [--haraka-nodes 2] [--only ours,haraka,postfix]
//          [--no-latency] [--latency-seconds 20] [--no-rss] [--rss-messages 100000]
//          [--profile DIR] [--nice -10] [--quiet-wait 10] [--timeout 300] [--keep] [--verbose]
//   --quick           counts / 10, 1 run (smoke run)
//   --workers N       our relay processes (default: the CPU count)
//   --profile DIR     run our relay under node --cpu-prof (slower!) and print its hot spots
//   --nice N          priority of the bench's process tree, all MTAs alike (default -10; 0 = leave)
//   --quiet-wait S    before each measurement wait up to S s for other tenants' load to drop
// Needs root (postfix start, smtp-sink -u nobody), Debian's postfix, and the npm registry once
// (Haraka). Loopback only. Takes about 25 minutes with the defaults on a 2-core machine.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { HARAKA_VERSION } from '../test/peers/haraka.ts';
import { formatSummary, summarise } from './cpuprofile.ts';
import { startHaraka, type HarakaInstance } from './relay-haraka.ts';
import { measureLatency, type LatencyResult } from './relay-latency.ts';
import { startOurs, type OursInstance } from './relay-ours.ts';
import { startPostfix, type PostfixInstance } from './relay-postfix.ts';
import { groupNice, machineCpu, onCleanup, procStat, rssBytes, runCleanups, setGroupNice, threadSched, runSmtpSource, sleep, startSink, type SourceRun } from './relay-procs.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string' },
    quick: { type: 'boolean' },
    workloads: { type: 'string' },
    sessions: { type: 'string' },
    concurrency: { type: 'string' },
    workers: { type: 'string' },
    'haraka-nodes': { type: 'string' },
    only: { type: 'string' },
    'no-latency': { type: 'boolean' },
    'latency-seconds': { type: 'string' },
    'no-rss': { type: 'boolean' },
    'rss-messages': { type: 'string' },
    profile: { type: 'string' },
    keep: { type: 'boolean' },
    verbose: { type: 'boolean' },
    timeout: { type: 'string' },
    'quiet-wait': { type: 'string' },
    nice: { type: 'string' },
  },
});

const QUICK = values.quick === true;
const RUNS = Number(values.runs ?? (QUICK ? 1 : 3));
const SESSIONS = Number(values.sessions ?? 20);
const CONCURRENCY = Number(values.concurrency ?? 16);
const WORKERS = Number(values.workers ?? os.cpus().length);
const HARAKA_NODES = Number(values['haraka-nodes'] ?? 2);
const TIMEOUT_MS = Number(values.timeout ?? 300) * 1000;
const PROFILE_DIR = values.profile ? resolve(values.profile) : undefined;
const VERBOSE = values.verbose === true;
const LATENCY = values['no-latency'] !== true;
const LATENCY_SECONDS = Number(values['latency-seconds'] ?? (QUICK ? 5 : 20));
const RSS = values['no-rss'] !== true;
const RSS_MESSAGES = Number(values['rss-messages'] ?? (QUICK ? 10_000 : 100_000));
/** Longest wait for other tenants' load to drop below QUIET_CORES before a measurement. */
const QUIET_WAIT_MS = Number(values['quiet-wait'] ?? 10) * 1000;
const QUIET_CORES = 0.25;
/** Scheduling priority for the bench and everything it starts: inherited by children. */
const NICE = Number(values.nice ?? -10);
const GROUP_NICE = NICE !== 0 ? NICE : undefined;
type Mta = 'ours' | 'haraka' | 'postfix';
const ALL_MTAS: Mta[] = ['ours', 'haraka', 'postfix'];
const MTAS: Mta[] = values.only ? ALL_MTAS.filter((m) => values.only!.split(',').includes(m)) : ALL_MTAS;
const NAME: Record<Mta, string> = { ours: 'mailrelay', haraka: `Haraka ${HARAKA_VERSION}`, postfix: 'Postfix' };

interface Workload { id: string; messages: number; recipients: number; size: number; reuse: boolean }
const scale = QUICK ? 10 : 1;
const ALL: Workload[] = [
  { id: 'a', messages: 10000 / scale, recipients: 1, size: 4096, reuse: true },
  { id: 'b', messages: 2000 / scale, recipients: 50, size: 4096, reuse: true },
  { id: 'c', messages: 2000 / scale, recipients: 1, size: 102400, reuse: true },
  { id: 'd', messages: 5000 / scale, recipients: 1, size: 4096, reuse: false },
];
const WORKLOADS = values.workloads ? ALL.filter((w) => values.workloads!.split(',').includes(w.id)) : ALL;
const label = (w: Workload) => `${w.id}: ${w.messages.toLocaleString('en')} × ${w.recipients} rcpt × ${w.size >= 102400 ? '100 KB' : `${w.size / 1024} KB`}${w.reuse ? '' : ', new connection per message'}`;

/** Recipients per outbound transaction: ours maxRecipientsPerTransaction (100), Postfix's smtp_destination_recipient_limit (50), Haraka all of a domain in one. */
const RCPTS_PER_TX: Record<Mta, number> = { ours: 100, haraka: 1_000_000, postfix: 50 };

interface Sample {
  seconds: number; msgsPerSec: number; rcptsPerSec: number; inboundPerSec: number; cpu: number; cpuByName: Map<string, number>;
  /** Machine CPU used by anything but the MTA, smtp-source, smtp-sink and this process (other tenants), and steal. */
  otherCpu: number; steal: number;
  quietLoad: number;
  /** Cores left idle during the run: when > ~0.15, nobody had to wait for a CPU. */
  idleCores: number;
  /** Our relay only: the busiest of its processes' main (event-loop) threads, time on a CPU and waiting for one. */
  mainRun?: number; mainWait?: number; mainSpan?: number;
}

type Instance = OursInstance | HarakaInstance | PostfixInstance;

async function delivered(inst: Instance): Promise<number> {
  return inst.name === 'ours' ? inst.metric('mailrelay_recipients_total', { outcome: 'delivered' }) : inst.sentRecipients();
}

/** Waits until the MTA's queue is empty (everything delivered and cleaned up). */
async function quiesce(inst: Instance, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const q = inst.name === 'ours' ? await inst.metric('mailrelay_queue_messages') : inst.queued();
    if (q === 0) return;
    if (Date.now() > deadline) throw new Error(`${inst.name}: ${q} messages still queued after ${timeoutMs} ms`);
    await sleep(inst.name === 'ours' ? 100 : 50);
  }
}

/** Polls until the delivered-recipient count reaches want (Postfix logs asynchronously via postlogd). */
async function waitDelivered(inst: Instance, want: number, timeoutMs = 20_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let n = await delivered(inst);
  while (n < want && Date.now() < deadline) {
    await sleep(200);
    n = await delivered(inst);
  }
  return n;
}

/** Waits (bounded) until the cores busy outside the bench, over a 1 s window, drop below QUIET_CORES. */
async function waitQuiet(ours: () => number): Promise<number> {
  const deadline = Date.now() + QUIET_WAIT_MS;
  let load = Infinity;
  let told = false;
  for (;;) {
    const m0 = machineCpu();
    const o0 = ours();
    const t0 = performance.now();
    await sleep(1000);
    load = (machineCpu().busy - m0.busy - (ours() - o0)) / ((performance.now() - t0) / 1000);
    if (load < QUIET_CORES || Date.now() > deadline) break;
    if (!told) {
      process.stderr.write(`  (waiting up to ${QUIET_WAIT_MS / 1000} s for other load to settle: ${load.toFixed(2)} cores busy outside the bench)\n`);
      told = true;
    }
  }
  return load;
}

const disturbed = (s: Sample): boolean => s.otherCpu / s.seconds > QUIET_CORES && s.idleCores < 0.15;

const errors: string[] = [];
const settingsSeen: Partial<Record<Mta, unknown>> = {};

async function start(mta: Mta, sinkPort: number, profDir?: string): Promise<Instance> {
  if (mta === 'ours') {
    const o = await startOurs({ sinkPort, concurrency: CONCURRENCY, workers: WORKERS, cpuProfDir: profDir, keep: values.keep, groupNice: GROUP_NICE });
    settingsSeen.ours = o.settings;
    return o;
  }
  if (mta === 'haraka') {
    const h = await startHaraka({ sinkPort, concurrency: CONCURRENCY, nodes: HARAKA_NODES, keep: values.keep, groupNice: GROUP_NICE });
    settingsSeen.haraka = h.settings;
    return h;
  }
  const p = await startPostfix({ sinkPort, concurrency: CONCURRENCY, keep: values.keep, groupNice: GROUP_NICE });
  settingsSeen.postfix = p.settings;
  return p;
}

/** Main-thread scheduler stats summed over our processes, and the busiest one. */
function mainThreads(inst: OursInstance): Map<number, { run: number; wait: number }> {
  const out = new Map<number, { run: number; wait: number }>();
  for (const pid of inst.pids()) {
    const s = threadSched(pid);
    if (s) out.set(pid, s);
  }
  return out;
}

async function measure(mta: Mta, w: Workload, run: number): Promise<Sample> {
  const sink = await startSink();
  let inst: Instance | undefined;
  try {
    const profDir = PROFILE_DIR && mta === 'ours' ? join(PROFILE_DIR, `w${w.id}-run${run + 1}`) : undefined;
    if (profDir) mkdirSync(profDir, { recursive: true });
    inst = await start(mta, sink.port, profDir);
    const txPerMsg = Math.ceil(w.recipients / RCPTS_PER_TX[mta]);
    const src = (messages: number): SourceRun => ({ messages, recipients: w.recipients, size: w.size, sessions: SESSIONS, reuse: w.reuse });

    // Warm-up: JIT, process pools, connection caches. Relayed completely before measuring.
    const warm = Math.max(20, Math.round(w.messages / 20));
    await runSmtpSource(inst.smtpPort, src(warm), TIMEOUT_MS);
    await sink.waitFor(warm * txPerMsg, TIMEOUT_MS);
    await quiesce(inst);
    const delivered0 = await waitDelivered(inst, warm * w.recipients);
    await sleep(300);
    const harness = () => {
      const me = procStat(process.pid);
      return (me ? me.self + me.children : 0) + (procStat(sink.pid)?.self ?? 0); // children: the reaped smtp-source
    };
    const mtaNow = inst;
    const quietLoad = await waitQuiet(() => harness() + mtaNow.cpu().total);
    const m0 = machineCpu();
    const h0 = harness();
    const cpu0 = inst.cpu();
    const sched0 = inst.name === 'ours' ? mainThreads(inst) : null;
    const base = sink.messages();
    const t0 = performance.now();
    const [srcSecs, tDone] = await Promise.all([
      runSmtpSource(inst.smtpPort, src(w.messages), TIMEOUT_MS),
      sink.waitFor(base + w.messages * txPerMsg, TIMEOUT_MS),
    ]);
    await quiesce(inst);
    const cpu1 = inst.cpu();
    const sched1 = inst.name === 'ours' ? mainThreads(inst) : null;
    const h1 = harness();
    const m1 = machineCpu();
    const mSecs = (performance.now() - t0) / 1000;
    const seconds = (tDone - t0) / 1000;

    const want = w.messages * w.recipients;
    const got = (await waitDelivered(inst, delivered0 + want)) - delivered0;
    if (got !== want) errors.push(`${mta} workload ${w.id} run ${run + 1}: ${got} recipients delivered, expected ${want}`);
    if (inst.name === 'ours') {
      const accepted = await inst.metric('mailrelay_inbound_messages_total', { result: 'accepted' });
      if (accepted !== warm + w.messages) errors.push(`ours workload ${w.id} run ${run + 1}: ${accepted} messages accepted, expected ${warm + w.messages}`);
    }
    const extra = sink.messages() - base - w.messages * txPerMsg;
    if (extra !== 0) errors.push(`${mta} workload ${w.id} run ${run + 1}: sink got ${extra} transactions more than expected`);

    let busiest: { run: number; wait: number } | undefined;
    if (sched0 && sched1) {
      for (const [pid, s1] of sched1) {
        const s0 = sched0.get(pid);
        if (!s0) continue;
        const d = { run: s1.run - s0.run, wait: s1.wait - s0.wait };
        if (!busiest || d.run > busiest.run) busiest = d;
      }
    }
    const cpuByName = new Map<string, number>();
    for (const [k, v] of cpu1.byName) cpuByName.set(k, v - (cpu0.byName.get(k) ?? 0));
    return {
      seconds, msgsPerSec: w.messages / seconds, rcptsPerSec: want / seconds, inboundPerSec: w.messages / srcSecs,
      cpu: cpu1.total - cpu0.total, cpuByName,
      otherCpu: Math.max(0, m1.busy - m0.busy - (cpu1.total - cpu0.total) - (h1 - h0)) * (seconds / mSecs), steal: m1.steal - m0.steal, quietLoad,
      idleCores: Math.max(0, os.cpus().length - (m1.busy - m0.busy) / mSecs),
      ...(busiest ? { mainRun: busiest.run, mainWait: busiest.wait, mainSpan: mSecs } : {}),
    };
  } finally {
    if (inst) await inst.stop();
    await sink.stop();
  }
}

/** Submission latency of one MTA at `rate` msgs/s (fresh MTA and sink, a short warm-up first). */
async function latencyOf(mta: Mta, rate: number): Promise<LatencyResult> {
  const sink = await startSink();
  let inst: Instance | undefined;
  try {
    inst = await start(mta, sink.port);
    await measureLatency(inst.smtpPort, { rate, seconds: 2, size: 4096 });
    await quiesce(inst);
    return await measureLatency(inst.smtpPort, { rate, seconds: LATENCY_SECONDS, size: 4096 });
  } finally {
    if (inst) await inst.stop();
    await sink.stop();
  }
}

/** A destination that accepts connections and never says a word: deliveries hang until their greeting timeout. */
async function blackHole(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  return {
    port: (srv.address() as net.AddressInfo).port,
    close: () => new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      srv.close(() => r());
    }),
  };
}

/** Our RSS (all processes) with `messages` 4 KB messages queued and none delivered. */
async function rssWithQueue(messages: number): Promise<{ rss: number; perProcess: number[]; queued: number; fillSeconds: number }> {
  const hole = await blackHole();
  let inst: OursInstance | undefined;
  try {
    inst = await startOurs({ sinkPort: hole.port, concurrency: CONCURRENCY, workers: WORKERS, keep: values.keep, groupNice: GROUP_NICE });
    const t0 = performance.now();
    await runSmtpSource(inst.smtpPort, { messages, recipients: 1, size: 4096, sessions: SESSIONS, reuse: true }, 30 * 60_000);
    const fillSeconds = (performance.now() - t0) / 1000;
    await sleep(2000);
    const perProcess = inst.pids().map(rssBytes);
    const queued = await inst.metric('mailrelay_queue_messages');
    return { rss: perProcess.reduce((a, b) => a + b, 0), perProcess, queued, fillSeconds };
  } finally {
    if (inst) await inst.stop();
    await hole.close();
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

function fmt(n: number, digits = 0): string {
  return Number.isFinite(n) ? n.toLocaleString('en', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : '-';
}

function postfixVersion(): string {
  try {
    return execFileSync('/usr/sbin/postconf', ['-d', '-h', 'mail_version'], { encoding: 'utf8', timeout: 10_000 }).trim();
  } catch {
    return '?';
  }
}

const load = (): string => os.loadavg().map((x) => x.toFixed(2)).join(' ');

async function main(): Promise<void> {
  let niceNote = '';
  if (NICE !== 0) {
    try {
      os.setPriority(0, NICE);
      // Each MTA runs in a session of its own (Linux autogroup, see setGroupNice); this one
      // holds the bench, smtp-source and smtp-sink.
      // Our session is the caller's shell's too: put its priority back when done.
      const before = groupNice(process.pid);
      const groups = setGroupNice(process.pid, NICE);
      if (groups && before !== undefined) onCleanup(() => setGroupNice(process.pid, before));
      niceNote = `, nice ${NICE} for every MTA${groups ? ' and for each MTA\'s session (autogroup)' : ''}`;
    } catch (err) {
      process.stderr.write(`bench:relay: could not set nice ${NICE} (${(err as Error).message}); running at normal priority\n`);
    }
  }
  const results = new Map<string, Sample[]>(); // key `${workload}:${mta}`
  const t0 = Date.now();
  const loadAtStart = load();
  process.stderr.write(`bench:relay: ${RUNS} run(s), workloads ${WORKLOADS.map((w) => w.id).join(',')}, MTAs ${MTAS.join(',')}, -s ${SESSIONS}, ${os.cpus().length} CPUs, load average ${loadAtStart}${niceNote}\n`);
  for (let run = 0; run < RUNS; run++) {
    for (const w of WORKLOADS) {
      // Rotate which MTA goes first, so drift (page cache, neighbours) hits all alike.
      const order = MTAS.map((_, i) => MTAS[(i + run) % MTAS.length]!);
      for (const mta of order) {
        const s = await measure(mta, w, run);
        const key = `${w.id}:${mta}`;
        results.set(key, [...(results.get(key) ?? []), s]);
        process.stderr.write(`  run ${run + 1} workload ${w.id} ${mta.padEnd(7)} ${fmt(s.msgsPerSec).padStart(6)} msg/s  ${fmt(s.rcptsPerSec).padStart(7)} rcpt/s  inbound ${fmt(s.inboundPerSec).padStart(6)} msg/s  ${s.seconds.toFixed(2)} s  CPU ${s.cpu.toFixed(2)} s  other tenants ${(s.otherCpu / s.seconds).toFixed(2)} cores${s.steal > 0.05 ? `, steal ${s.steal.toFixed(1)} s` : ''}  idle ${s.idleCores.toFixed(2)} cores  load ${load()}${disturbed(s) ? '  DISTURBED' : ''}\n`);
        if (s.mainRun !== undefined && s.mainWait !== undefined) {
          const span = s.mainSpan ?? s.seconds;
          process.stderr.write(`      busiest main thread: on CPU ${s.mainRun.toFixed(2)} s + waiting for a CPU ${s.mainWait.toFixed(2)} s = ${(((s.mainRun + s.mainWait) / span) * 100).toFixed(0)}% of the run\n`);
        }
        if (VERBOSE) {
          const parts = [...s.cpuByName.entries()].filter(([, v]) => v > 0.005).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v.toFixed(2)}`);
          process.stderr.write(`      CPU by process: ${parts.join(', ')}\n`);
        }
      }
    }
  }

  const med = (w: Workload, mta: Mta) => {
    const xs = results.get(`${w.id}:${mta}`);
    if (!xs) return undefined;
    return {
      msgs: median(xs.map((s) => s.msgsPerSec)), rcpts: median(xs.map((s) => s.rcptsPerSec)),
      inbound: median(xs.map((s) => s.inboundPerSec)), cpu: median(xs.map((s) => s.cpu)),
      other: median(xs.map((s) => s.otherCpu / s.seconds)),
    };
  };

  const out: string[] = [];
  out.push('');
  out.push(`Relay benchmark: mailrelay (workers ${WORKERS}) vs Haraka ${HARAKA_VERSION} (outbound, nodes=${HARAKA_NODES}) vs Postfix ${postfixVersion()}, node ${process.version}, ${os.cpus().length} CPUs, median of ${RUNS} run(s)${QUICK ? ' (--quick: counts / 10)' : ''}.`);
  out.push(`Load average (1/5/15 min) at the start: ${loadAtStart}; at the end: ${load()}; ${((Date.now() - t0) / 1000).toFixed(0)} s in all.`);
  out.push(`Driver: smtp-source [-d] -s ${SESSIONS} -> MTA (250 only after fsync) -> smtp-sink (one per MTA run); ${CONCURRENCY} outbound connections at most for each MTA${niceNote}.`);
  out.push('msgs/s: end to end (first smtp-source connect -> last message at the sink); inbound: smtp-source wall time; CPU: the MTA\'s processes only;');
  out.push('other tenants: average cores busy with processes outside this bench during the run (from /proc/stat).');
  out.push('');
  out.push('| workload | ours msgs/s | Haraka msgs/s | Postfix msgs/s | ours / best peer | ours CPU ms/msg | Haraka CPU ms/msg | Postfix CPU ms/msg | other tenants (cores, median) |');
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const w of WORKLOADS) {
    const o = med(w, 'ours');
    const h = med(w, 'haraka');
    const p = med(w, 'postfix');
    const best = Math.max(h?.msgs ?? 0, p?.msgs ?? 0);
    const ratio = o && best > 0 ? `**${(o.msgs / best).toFixed(2)}×**` : '';
    const cpuMs = (m: ReturnType<typeof med>) => (m ? fmt((m.cpu * 1000) / w.messages, 2) : '');
    const others = Math.max(o?.other ?? 0, h?.other ?? 0, p?.other ?? 0);
    out.push(`| ${label(w)} | ${o ? fmt(o.msgs) : ''} | ${h ? fmt(h.msgs) : ''} | ${p ? fmt(p.msgs) : ''} | ${ratio} | ${cpuMs(o)} | ${cpuMs(h)} | ${cpuMs(p)} | ${fmt(others, 2)} |`);
  }
  if (RUNS > 1) {
    out.push('');
    out.push('Per run, end-to-end msgs/s:');
    for (const w of WORKLOADS) {
      for (const mta of MTAS) out.push(`  workload ${w.id} ${mta.padEnd(7)}: ${(results.get(`${w.id}:${mta}`) ?? []).map((s) => fmt(s.msgsPerSec)).join(', ')}`);
    }
  }
  console.log(out.join('\n'));

  if (LATENCY) {
    const wd = ALL.find((w) => w.id === 'd')!;
    const oursD = med(wd, 'ours')?.msgs;
    const rate = Math.max(1, Math.round((oursD ?? 200) / 2));
    process.stderr.write(`latency: ${rate} msgs/s (half of our workload-d median${oursD ? '' : ', assumed 400'}), ${LATENCY_SECONDS} s each\n`);
    const lines = ['', `Submission latency, connect -> 250 after the dot, a new connection per message, 1 rcpt × 4 KB, ${rate} msgs/s offered (half our workload-d rate) for ${LATENCY_SECONDS} s, open loop:`, '',
      '| MTA | p50 ms | p99 ms | max ms | messages ok | failed | not started (200 in flight) |', '|---|---:|---:|---:|---:|---:|---:|'];
    for (const mta of MTAS) {
      const r = await latencyOf(mta, rate);
      lines.push(`| ${NAME[mta]} | ${fmt(r.p50, 1)} | ${fmt(r.p99, 1)} | ${fmt(r.max, 1)} | ${r.ok} | ${r.failed} | ${r.skipped} |`);
      process.stderr.write(`  latency ${mta}: p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms (${r.ok} ok, ${r.failed} failed, ${r.skipped} skipped)  load ${load()}\n`);
    }
    console.log(lines.join('\n'));
  }

  if (RSS && MTAS.includes('ours')) {
    process.stderr.write(`rss: filling our relay with ${RSS_MESSAGES} messages (deliveries held by a silent destination)\n`);
    const r = await rssWithQueue(RSS_MESSAGES);
    console.log(`\nMemory: ${fmt(r.queued)} messages queued (1 rcpt × 4 KB, filled in ${r.fillSeconds.toFixed(0)} s): RSS ${fmt(r.rss / 1024 / 1024, 1)} MiB in all `
      + `(${r.perProcess.map((b) => fmt(b / 1024 / 1024, 1)).join(' + ')} MiB: primary, then workers).`);
  }

  if (VERBOSE) {
    console.log('');
    for (const m of MTAS) console.log(`${NAME[m]} settings: ${JSON.stringify(settingsSeen[m])}`);
  }
  const all = [...results.values()].flat();
  const nDisturbed = all.filter(disturbed).length;
  if (nDisturbed) console.log(`\n${nDisturbed} of ${all.length} runs had no idle CPU while other tenants' processes used more than ${QUIET_CORES} cores: treat those figures with care.`);
  if (errors.length) {
    console.log('\nVERIFICATION FAILURES:');
    for (const e of errors) console.log(`  ${e}`);
  }

  if (PROFILE_DIR) {
    // One profile per process (primary and workers) and thread: show the busiest.
    for (const d of readdirSync(PROFILE_DIR).sort()) {
      const files = readdirSync(join(PROFILE_DIR, d)).filter((x) => x.endsWith('.cpuprofile')).map((f) => join(PROFILE_DIR, d, f));
      const ranked = files.map((f) => ({ f, s: summarise(f, 1) })).sort((a, b) => (b.s.totalMs - b.s.idleMs) - (a.s.totalMs - a.s.idleMs));
      if (ranked[0]) console.log(`\n### ${d} (the busiest of ${files.length} profiles: a worker's main thread; whole process life)\n${formatSummary(ranked[0].f, 25)}`);
    }
  }
  if (errors.length) process.exitCode = 1;
}

main().then(() => {
  runCleanups();
  process.exit(process.exitCode ?? 0);
}, (err: Error) => {
  console.error(err);
  runCleanups();
  process.exit(1);
});
