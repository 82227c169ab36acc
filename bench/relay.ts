// npm run bench:relay — our relay vs Postfix (Debian's, as a private relay-only instance), side by
// side in one run on this machine. Both take mail from Postfix's smtp-source on loopback, make it
// durable (fsync) before replying 250, and relay it to their own Postfix smtp-sink. A run of one
// workload on one MTA: fresh MTA + sink, a warm-up batch (5%) relayed end to end, then the
// measured batch. MTAs alternate which goes first from run to run. Reported per run:
//   messages/s, recipients/s  end to end: first smtp-source connection -> last message at the sink
//   inbound msgs/s            smtp-source's wall time (acceptance rate, 250 after fsync)
//   CPU s                     user+system time of the MTA's processes over the measured batch,
//                             until its queue is empty again (our node process; Postfix's master,
//                             its live daemons and the daemons it reaped, from /proc)
//   other tenants             cores used meanwhile by processes that are not part of the bench
//                             (a shared machine); a run is flagged when they ran and no core was idle
//   main thread (ours)        its time on a CPU and runnable-but-waiting, from schedstat: near 100%
//                             of the run means the single event-loop thread is the bottleneck
// Every run is verified: smtp-source exits 0 (every command got its 2xx/3xx), the sink got
// exactly the expected transactions, and every recipient was delivered (our /metrics; Postfix's
// "status=sent" log lines). The table shows medians and the ratio ours/Postfix of end-to-end msgs/s.
//
// Usage: npx tsx bench/relay.ts [--runs R] [--quick] [--workloads 1,2,3] [--sessions 16]
//          [--concurrency 16] [--no-reuse] [--only ours|postfix] [--profile DIR] [--nice -10]
//          [--quiet-wait 10] [--timeout 300] [--keep] [--verbose]
//   --runs R          runs per workload and MTA (default 3; 1 with --quick)
//   --quick           counts / 10 (smoke run)
//   --sessions N      smtp-source -s (default 16); --concurrency N: outbound connections of both MTAs
//   --no-reuse        smtp-source opens a new connection per message (default: -d, sessions stay open)
//   --profile DIR     run our relay under node --cpu-prof (slower!) and print its hot spots
//   --nice N          priority of the bench's process tree, both MTAs alike (default -10; 0 = leave)
//   --quiet-wait S    before each measurement wait up to S s for other tenants' load to drop
//   --keep            keep the temp dirs (Postfix config, queue and maillog; our spool and config)
//   --verbose         CPU per Postfix daemon, and the settings of both MTAs
// Needs root (postfix start, smtp-sink -u nobody) and Debian's postfix package; loopback only.
// Takes about 8 minutes with the defaults on a 2-core machine.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { formatSummary, summarise } from './cpuprofile.ts';
import { startOurs, type OursInstance } from './relay-ours.ts';
import { startPostfix, type PostfixInstance } from './relay-postfix.ts';
import { machineCpu, procStat, runCleanups, threadSched, runSmtpSource, sleep, startSink, type SourceRun } from './relay-procs.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string' },
    quick: { type: 'boolean' },
    workloads: { type: 'string' },
    sessions: { type: 'string' },
    concurrency: { type: 'string' },
    'no-reuse': { type: 'boolean' },
    only: { type: 'string' },
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
const SESSIONS = Number(values.sessions ?? 16);
const CONCURRENCY = Number(values.concurrency ?? 16);
const REUSE = values['no-reuse'] !== true;
const TIMEOUT_MS = Number(values.timeout ?? 300) * 1000;
const PROFILE_DIR = values.profile ? resolve(values.profile) : undefined;
const VERBOSE = values.verbose === true;
/** Longest wait for other tenants' load to drop below QUIET_CORES before a measurement. */
const QUIET_WAIT_MS = Number(values['quiet-wait'] ?? 10) * 1000;
const QUIET_CORES = 0.25;
/** Scheduling priority for the bench and everything it starts (both MTAs, source, sink): inherited by children. */
const NICE = Number(values.nice ?? -10);
type Mta = 'ours' | 'postfix';
const MTAS: Mta[] = values.only === 'ours' ? ['ours'] : values.only === 'postfix' ? ['postfix'] : ['ours', 'postfix'];

interface Workload { id: number; messages: number; recipients: number; size: number }
const scale = QUICK ? 10 : 1;
const ALL: Workload[] = [
  { id: 1, messages: 10000 / scale, recipients: 1, size: 4096 },
  { id: 2, messages: 2000 / scale, recipients: 50, size: 4096 },
  { id: 3, messages: 2000 / scale, recipients: 1, size: 102400 },
];
const WORKLOADS = values.workloads ? ALL.filter((w) => values.workloads!.split(',').map(Number).includes(w.id)) : ALL;
const label = (w: Workload) => `${w.id}: ${w.messages.toLocaleString('en')} × ${w.recipients} rcpt × ${w.size >= 102400 ? '100 KB' : `${w.size / 1024} KB`}`;

/** Recipients per outbound transaction: our maxRecipientsPerTransaction (100), Postfix's smtp_destination_recipient_limit (50). */
const RCPTS_PER_TX: Record<Mta, number> = { ours: 100, postfix: 50 };

interface Sample {
  seconds: number; msgsPerSec: number; rcptsPerSec: number; inboundPerSec: number; cpu: number; cpuByName: Map<string, number>;
  /** Machine CPU used by anything but the MTA, smtp-source, smtp-sink and this process (other tenants), and steal. */
  otherCpu: number; steal: number;
  /** Other tenants' load (cores) just before the run. */
  quietLoad: number;
  /** Cores left idle during the run: when > ~0.15, nobody had to wait for a CPU. */
  idleCores: number;
  /** Our relay only: its main (event-loop) thread's time on a CPU and waiting for one, over the run. */
  mainRun?: number; mainWait?: number; mainSpan?: number;
}

type Instance = OursInstance | PostfixInstance;

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

/**
 * This machine may be shared: waits (bounded) until the cores busy outside the bench, over a
 * 1 s window, drop below QUIET_CORES. Returns that load (what was seen last, on timeout).
 */
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

/** Other tenants took CPU while the machine had none to spare: the MTA may have waited for a core. */
const disturbed = (s: Sample): boolean => s.otherCpu / s.seconds > QUIET_CORES && s.idleCores < 0.15;

const errors: string[] = [];
const settingsSeen: { ours?: Record<string, unknown>; postfix?: string[] } = {};

async function measure(mta: Mta, w: Workload, run: number): Promise<Sample> {
  const sink = await startSink();
  let inst: Instance | undefined;
  try {
    const profDir = PROFILE_DIR ? join(PROFILE_DIR, `w${w.id}-run${run + 1}`) : undefined;
    if (profDir) mkdirSync(profDir, { recursive: true });
    inst = mta === 'ours'
      ? await startOurs({ sinkPort: sink.port, concurrency: CONCURRENCY, cpuProfDir: profDir, keep: values.keep })
      : await startPostfix({ sinkPort: sink.port, concurrency: CONCURRENCY, keep: values.keep });
    if (inst.name === 'ours') settingsSeen.ours = inst.settings;
    else settingsSeen.postfix = inst.settings;
    const txPerMsg = Math.ceil(w.recipients / RCPTS_PER_TX[mta]);
    const src = (messages: number): SourceRun => ({ messages, recipients: w.recipients, size: w.size, sessions: SESSIONS, reuse: REUSE });

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
    const sched0 = inst.name === 'ours' ? threadSched(inst.pid) : null;
    const base = sink.messages();
    const t0 = performance.now();
    const [srcSecs, tDone] = await Promise.all([
      runSmtpSource(inst.smtpPort, src(w.messages), TIMEOUT_MS),
      sink.waitFor(base + w.messages * txPerMsg, TIMEOUT_MS),
    ]);
    await quiesce(inst);
    const cpu1 = inst.cpu();
    const sched1 = inst.name === 'ours' ? threadSched(inst.pid) : null;
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

    const cpuByName = new Map<string, number>();
    for (const [k, v] of cpu1.byName) cpuByName.set(k, v - (cpu0.byName.get(k) ?? 0));
    return {
      seconds, msgsPerSec: w.messages / seconds, rcptsPerSec: want / seconds, inboundPerSec: w.messages / srcSecs,
      cpu: cpu1.total - cpu0.total, cpuByName,
      otherCpu: Math.max(0, m1.busy - m0.busy - (cpu1.total - cpu0.total) - (h1 - h0)) * (seconds / mSecs), steal: m1.steal - m0.steal, quietLoad,
      idleCores: Math.max(0, os.cpus().length - (m1.busy - m0.busy) / mSecs),
      ...(sched0 && sched1 ? { mainRun: sched1.run - sched0.run, mainWait: sched1.wait - sched0.wait, mainSpan: mSecs } : {}),
    };
  } finally {
    if (inst) await inst.stop();
    await sink.stop();
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

async function main(): Promise<void> {
  // On a shared machine other tenants' processes would take CPU from whichever MTA runs; a
  // higher priority for the bench's own process tree (both MTAs alike) keeps that out.
  let niceNote = '';
  if (NICE !== 0) {
    try {
      os.setPriority(0, NICE);
      niceNote = `, nice ${NICE} for both MTAs`;
    } catch (err) {
      process.stderr.write(`bench:relay: could not set nice ${NICE} (${(err as Error).message}); running at normal priority\n`);
    }
  }
  const results = new Map<string, Sample[]>(); // key `${workload}:${mta}`
  const t0 = Date.now();
  const srcFlags = `smtp-source ${REUSE ? '-d ' : ''}-s ${SESSIONS} -m N -l SIZE -r RCPTS`;
  process.stderr.write(`bench:relay: ${RUNS} run(s), workloads ${WORKLOADS.map((w) => w.id).join(',')}, ${srcFlags}, ${os.cpus().length} CPUs, load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}${niceNote}\n`);
  for (let run = 0; run < RUNS; run++) {
    for (const w of WORKLOADS) {
      // Alternate which MTA goes first, so drift (page cache, thermal, neighbours) hits both.
      const order = run % 2 === 0 ? MTAS : [...MTAS].reverse();
      for (const mta of order) {
        const s = await measure(mta, w, run);
        const key = `${w.id}:${mta}`;
        results.set(key, [...(results.get(key) ?? []), s]);
        process.stderr.write(`  run ${run + 1} workload ${w.id} ${mta.padEnd(7)} ${fmt(s.msgsPerSec).padStart(6)} msg/s  ${fmt(s.rcptsPerSec).padStart(7)} rcpt/s  inbound ${fmt(s.inboundPerSec).padStart(6)} msg/s  ${s.seconds.toFixed(2)} s  CPU ${s.cpu.toFixed(2)} s  other tenants ${(s.otherCpu / s.seconds).toFixed(2)} cores${s.steal > 0.05 ? `, steal ${s.steal.toFixed(1)} s` : ''}  idle ${s.idleCores.toFixed(2)} cores${disturbed(s) ? '  DISTURBED' : ''}\n`);
        if (s.mainRun !== undefined && s.mainWait !== undefined) {
          const span = s.mainSpan ?? s.seconds;
          process.stderr.write(`      main thread: on CPU ${s.mainRun.toFixed(2)} s + waiting for a CPU ${s.mainWait.toFixed(2)} s = ${(((s.mainRun + s.mainWait) / span) * 100).toFixed(0)}% of the run\n`);
        }
        if (VERBOSE) {
          const parts = [...s.cpuByName.entries()].filter(([, v]) => v > 0.005).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v.toFixed(2)}`);
          process.stderr.write(`      CPU by process: ${parts.join(', ')}\n`);
        }
      }
    }
  }

  const out: string[] = [];
  out.push('');
  out.push(`Relay benchmark: our relay vs Postfix ${postfixVersion()}, node ${process.version}, ${os.cpus().length} CPUs, median of ${RUNS} run(s)${QUICK ? ' (--quick: counts / 10)' : ''}, ${((Date.now() - t0) / 1000).toFixed(0)} s total.`);
  out.push(`Driver: ${srcFlags} -> MTA (250 only after fsync) -> smtp-sink (one per MTA run); ${CONCURRENCY} outbound connections max on both${niceNote}.`);
  out.push('msgs/s and rcpts/s: end to end (first smtp-source connect -> last message at the sink); inbound: smtp-source wall time; CPU: the MTA\'s processes only;');
  out.push('other tenants: average cores busy with processes outside this bench during the run (from /proc/stat); they only matter when no core was left idle.');
  out.push('');
  out.push('| workload | MTA | msgs/s | rcpts/s | inbound msgs/s | CPU s | CPU ms/msg | other tenants (cores) | ratio ours/Postfix (msgs/s) |');
  out.push('|---|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const w of WORKLOADS) {
    const med = (mta: Mta) => {
      const xs = results.get(`${w.id}:${mta}`);
      if (!xs) return undefined;
      return {
        msgs: median(xs.map((s) => s.msgsPerSec)), rcpts: median(xs.map((s) => s.rcptsPerSec)),
        inbound: median(xs.map((s) => s.inboundPerSec)), cpu: median(xs.map((s) => s.cpu)),
        other: median(xs.map((s) => s.otherCpu / s.seconds)),
      };
    };
    const ours = med('ours');
    const pf = med('postfix');
    for (const [mta, m] of [['ours', ours], ['postfix', pf]] as const) {
      if (!m) continue;
      const ratio = mta === 'ours' && ours && pf ? `**${(ours.msgs / pf.msgs).toFixed(2)}×**` : '';
      out.push(`| ${label(w)} | ${mta === 'ours' ? 'mailrelay' : 'Postfix'} | ${fmt(m.msgs)} | ${fmt(m.rcpts)} | ${fmt(m.inbound)} | ${fmt(m.cpu, 2)} | ${fmt((m.cpu * 1000) / w.messages, 2)} | ${fmt(m.other, 2)} | ${ratio} |`);
    }
  }
  if (RUNS > 1) {
    out.push('');
    out.push('Per run, end-to-end msgs/s:');
    for (const w of WORKLOADS) {
      for (const mta of MTAS) out.push(`  workload ${w.id} ${mta.padEnd(7)}: ${(results.get(`${w.id}:${mta}`) ?? []).map((s) => fmt(s.msgsPerSec)).join(', ')}`);
    }
  }
  if (VERBOSE) {
    out.push('');
    if (settingsSeen.postfix) out.push(`Postfix main.cf (private instance):\n  ${settingsSeen.postfix.join('\n  ')}`);
    if (settingsSeen.ours) out.push(`mailrelay config overrides on test/helpers/relay.ts testRelayConfig: ${JSON.stringify(settingsSeen.ours)}`);
  }
  const all = [...results.values()].flat();
  const nDisturbed = all.filter(disturbed).length;
  if (nDisturbed) out.push(`\n${nDisturbed} of ${all.length} runs had no idle CPU while other tenants' processes used more than ${QUIET_CORES} cores: treat those figures with care.`);
  if (errors.length) {
    out.push('');
    out.push('VERIFICATION FAILURES:');
    for (const e of errors) out.push(`  ${e}`);
  }
  console.log(out.join('\n'));

  if (PROFILE_DIR) {
    // One profile per thread: the relay's main thread, and tsx's module-loader worker (idle
    // after start-up). Show the busiest, which is the main thread.
    for (const d of readdirSync(PROFILE_DIR).sort()) {
      const files = readdirSync(join(PROFILE_DIR, d)).filter((x) => x.endsWith('.cpuprofile')).map((f) => join(PROFILE_DIR, d, f));
      const busiest = files.map((f) => ({ f, s: summarise(f, 1) })).sort((a, b) => (b.s.totalMs - b.s.idleMs) - (a.s.totalMs - a.s.idleMs))[0];
      if (busiest) console.log(`\n### ${d} (main thread; whole process life: start-up, warm-up and the measured batch)\n${formatSummary(busiest.f, 20)}`);
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
