// Seed 004 (Exchange 2003 SP2, KB905214): with Sender ID filtering on, a race between
// concurrent SMTP sessions and the filter made the whole server stop responding. Here:
// a relay with SPF on (policy reject) whose DNS answers some SPF queries slowly, some
// never, some with garbage bytes or broken records; 1,000 untrusted sessions at once,
// each EHLO + MAIL FROM for one of those domains. Every session gets its proper reply
// within its budget; meanwhile a trusted client's mail (SPF skipped) is accepted and
// delivered with low latency; the relay's event loop never blocks for long; and once the
// storm is over, sockets, timers, DNS queries, SPF flights and the heap are back near
// their baseline.
//
// Three threads: the relay (with its loopback DNS server and delivery peer) in one
// worker, the 1,000 clients and the trusted client in another, the test in the main
// thread. The event-loop delay measured is the relay's own — not the clients', and
// without the async hooks node:test installs in the main thread (they fire for every
// promise and doubled the cost of a check). On a shared, busy machine the wall-clock
// delay also counts time the relay thread waited for a CPU; so each gap between two
// ticks of a 10 ms sampler is also charged with the CPU time the relay thread itself
// used in it (/proc/thread-self/stat), and that figure is what the bound is asserted
// on. Both are reported.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { IntervalHistogram } from 'node:perf_hooks';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { readFileSync } from 'node:fs';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import { scrape, startTestRelay } from '../helpers/relay.ts';
import { startDnsServer } from '../peers/dns-server.ts';
import type { DnsFault, DnsRecord } from '../peers/dns-server.ts';
import { startFaultServer } from '../peers/fault-server.ts';
import { waitFor } from '../peers/wait.ts';

const SESSIONS = 1000;
const CLIENT_IPS = 20; // 127.0.0.2 .. 127.0.0.21, none in relayNetworks
const DNS_TIMEOUT_MS = 1000;
const BUDGET_MS = 2500;
/** Longest a MAIL FROM may wait for its reply: the budget, plus room for 1,000 sessions on a busy 2-core machine. */
const MAIL_REPLY_BOUND_MS = BUDGET_MS + 2500;
const EVENT_LOOP_P99_BOUND_MS = 150;
const EVENT_LOOP_MAX_BOUND_MS = 200;
const TRUSTED_MESSAGES = 10;
/**
 * The trusted client is never held by a check (they take 1-2.5 s here): its median
 * submission stays well below that even on a busy machine (measured 110-380 ms).
 */
const TRUSTED_SUBMIT_MEDIAN_BOUND_MS = 1000;

const D = (s: string): string => `${s}.s4.test`;
const chain = Array.from({ length: 9 }, (_, i) => D(`c${i + 1}`));

// Sender domains and the reply each must get under policy reject (RFC 7208 §8, RFC 7372).
const TEMP = '451 4.7.24 SPF validation error (temporary DNS failure), try again later';
const OK = '250 2.1.0 Accepted';
const EXPECT: Record<string, string> = {
  pass: OK, // ip4 matches
  fail: '550 5.7.23 SPF validation failed',
  soft: OK, // ~all
  nospf: OK, // TXT, but no SPF record: none
  nx: OK, // NXDOMAIN: none
  slow: OK, // answered after 600 ms
  slowinclude: OK, // include: of a name answered after 600 ms
  truncated: OK, // TC over UDP, answered over TCP
  garbage: OK, // ip4:999.0.0.1: permerror, accepted by default
  binary: OK, // bytes outside ASCII in the record: permerror
  toomany: OK, // 11 DNS-querying terms: permerror (RFC 7208 §4.6.4)
  voids: OK, // 3 void lookups: permerror
  chain: TEMP, // 9 includes answered after 900 ms each: the check budget runs out
  never: TEMP, // no answer: DNS timeout
  nevermx: TEMP, // the record's mx lookup never answers
  malformed: TEMP, // bytes that are not a DNS message
  servfail: TEMP,
};
const DOMAIN_KEYS = Object.keys(EXPECT);
// HELO identities are checked too (none fails): one passes, one is slow, one never answers, two are not checked.
const HELOS = [D('mx'), D('slowhelo'), D('neverhelo'), 'client.local', '[127.0.0.2]'];

const ZONE: DnsRecord[] = [
  { name: D('pass'), type: 'TXT', data: 'v=spf1 ip4:127.0.0.0/8 -all' },
  { name: D('fail'), type: 'TXT', data: 'v=spf1 ip4:192.0.2.1 -all' },
  { name: D('soft'), type: 'TXT', data: 'v=spf1 ~all' },
  { name: D('nospf'), type: 'TXT', data: 'site-verification=0123456789' },
  { name: D('slow'), type: 'TXT', data: 'v=spf1 ip4:127.0.0.0/8 -all' },
  { name: D('slowinclude'), type: 'TXT', data: `v=spf1 include:${D('slow2')} -all` },
  { name: D('slow2'), type: 'TXT', data: 'v=spf1 ip4:127.0.0.0/8 -all' },
  // Seven TXT records of ~100 bytes: too big for a plain UDP answer, so TC, then TCP.
  { name: D('truncated'), type: 'TXT', data: 'v=spf1 ip4:127.0.0.0/8 -all' },
  ...Array.from({ length: 6 }, (_, i): DnsRecord => ({ name: D('truncated'), type: 'TXT', data: `filler-${i}-${'x'.repeat(90)}` })),
  { name: D('garbage'), type: 'TXT', data: 'v=spf1 ip4:999.0.0.1 -all' },
  { name: D('binary'), type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 \u00ff\u00fe -all' },
  { name: D('toomany'), type: 'TXT', data: `v=spf1 ${Array.from({ length: 11 }, (_, i) => `a:h${i}.${D('toomany')}`).join(' ')} -all` },
  ...Array.from({ length: 11 }, (_, i): DnsRecord => ({ name: `h${i}.${D('toomany')}`, type: 'A', data: '192.0.2.9' })),
  { name: D('voids'), type: 'TXT', data: `v=spf1 a:v1.${D('nothing')} a:v2.${D('nothing')} a:v3.${D('nothing')} -all` },
  { name: D('chain'), type: 'TXT', data: `v=spf1 include:${chain[0]} -all` },
  ...chain.map((name, i): DnsRecord => ({ name, type: 'TXT', data: i + 1 < chain.length ? `v=spf1 include:${chain[i + 1]} -all` : 'v=spf1 ip4:127.0.0.0/8 -all' })),
  { name: D('never'), type: 'TXT', data: 'v=spf1 +all' },
  { name: D('nevermx'), type: 'TXT', data: 'v=spf1 mx -all' },
  { name: D('malformed'), type: 'TXT', data: 'v=spf1 +all' },
  { name: D('servfail'), type: 'TXT', data: 'v=spf1 +all' },
  { name: D('mx'), type: 'TXT', data: 'v=spf1 ip4:127.0.0.0/8 -all' },
  { name: D('slowhelo'), type: 'TXT', data: 'v=spf1 ip4:127.0.0.0/8 -all' },
  { name: D('neverhelo'), type: 'TXT', data: 'v=spf1 +all' },
];
const FAULTS: Record<string, DnsFault> = {
  [D('slow')]: { mode: 'slow', ms: 600 },
  [D('slow2')]: { mode: 'slow', ms: 600 },
  [D('truncated')]: { mode: 'truncated' },
  [D('never')]: { mode: 'never' },
  [D('malformed')]: { mode: 'malformed' },
  [D('servfail')]: { mode: 'servfail' },
  [D('slowhelo')]: { mode: 'slow', ms: 700 },
  [D('neverhelo')]: { mode: 'never' },
  ...Object.fromEntries(chain.map((name) => [name, { mode: 'slow', ms: 900 } satisfies DnsFault])),
};

const resources = (): Record<string, number> => {
  const counts: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) counts[r] = (counts[r] ?? 0) + 1;
  return counts;
};

/** What the relay side reports once the storm is over. */
interface Settled {
  resources: Record<string, number>;
  heap: number;
}

// ---------------------------------------------------------------- workers

/** Answers `{id, cmd, args}` requests on `port` with `{id, result}` or `{id, error}`. */
function serve(port: MessagePort, handlers: Record<string, (...args: never[]) => unknown>): void {
  port.on('message', (m: { id: number; cmd: string; args: never[] }) => {
    Promise.resolve()
      .then(() => handlers[m.cmd]!(...m.args))
      .then((result) => port.postMessage({ id: m.id, result }), (err: unknown) => port.postMessage({ id: m.id, error: String(err) }));
  });
}

/** CPU time (ms) the calling thread has used: utime + stime of /proc/thread-self/stat, 10 ms ticks. */
function threadCpuMs(): number {
  const fields = readFileSync('/proc/thread-self/stat', 'latin1').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** Event-loop delay of this thread, by wall clock (monitorEventLoopDelay) and charged with this thread's CPU time. */
class LoopMonitor {
  private readonly wall: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });
  private readonly own: number[] = [];
  private readonly timer: NodeJS.Timeout;
  private lastAt = Date.now();
  private lastCpu = threadCpuMs();

  constructor() {
    this.wall.enable();
    this.timer = setInterval(() => {
      const at = Date.now();
      const cpu = threadCpuMs();
      // Of the time since the last tick beyond the 10 ms interval, the part this thread spent running.
      this.own.push(Math.max(0, Math.min(at - this.lastAt - 10, cpu - this.lastCpu)));
      this.lastAt = at;
      this.lastCpu = cpu;
    }, 10);
  }

  stop(): { wall: { p50: number; p99: number; max: number }; own: { p99: number; max: number } } {
    this.wall.disable();
    clearInterval(this.timer);
    const own = [...this.own].sort((a, b) => a - b);
    return {
      wall: { p50: this.wall.percentile(50) / 1e6, p99: this.wall.percentile(99) / 1e6, max: this.wall.max / 1e6 },
      own: { p99: own.length ? pct(own, 0.99) : 0, max: own.at(-1) ?? 0 },
    };
  }
}

/** The relay worker: DNS, delivery peer and relay in this thread, answering the test's requests. */
async function relaySide(port: MessagePort): Promise<void> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const dns = await startDnsServer(ZONE, { faults: FAULTS });
  dns.setFault(D('nevermx'), { mode: 'never' }, 'MX');
  const peer = await startFaultServer({});
  const relay = await startTestRelay(peer.port, {
    inbound: {
      relayNetworks: ['127.0.0.1/32'],
      maxConnections: 2 * SESSIONS,
      maxConnectionsPerIp: 200,
      connectionRatePerIp: 10_000,
      connectionBurstPerIp: 10_000,
      spf: { enabled: true, policy: 'reject', dnsServers: [dns.server], dnsTimeoutMs: DNS_TIMEOUT_MS, checkBudgetMs: BUDGET_MS },
    },
  }, { reverseDns: false }); // loopback only: no PTR queries to the host's resolver
  const spf = relay.inbound.spf!;
  let loop: LoopMonitor | undefined;

  /** Waits until every session, check, flight and query is gone; then the resources and the heap after a GC. */
  const settle = async (base?: Settled): Promise<Settled> => {
    await waitFor(() => relay.inbound.sessions() === 0, 15_000, 'every session to close');
    await waitFor(() => spf.dns.inFlight() === 0 && spf.checker.active() === 0, 10_000, 'SPF checks and flights to end');
    await waitFor(() => (resources().QueryReqWrap ?? 0) === 0, 10_000, 'DNS queries to end');
    if (base) {
      const near = (kind: string, slack: number) => (resources()[kind] ?? 0) <= (base.resources[kind] ?? 0) + slack;
      await waitFor(() => near('TCPSocketWrap', 2), 15_000, `sockets back to baseline: ${JSON.stringify(resources())} vs ${JSON.stringify(base.resources)}`);
      await waitFor(() => near('Timeout', 10), 15_000, `timers back to baseline: ${JSON.stringify(resources())} vs ${JSON.stringify(base.resources)}`);
    }
    gc();
    return { resources: resources(), heap: getHeapStatistics().used_heap_size };
  };

  serve(port, {
    settle: (base?: Settled) => settle(base),
    monitor: () => {
      loop = new LoopMonitor();
    },
    loop: () => loop?.stop(),
    sessions: () => relay.inbound.sessions(),
    delivered: (rcpts: string[]) => rcpts.map((r) => peer.deliveries().get(r) ?? 0),
    deliveries: () => [...peer.deliveries().values()],
    dnsCount: (name: string, type: string) => dns.count(name, type),
    report: async () => ({
      dnsQueries: dns.queries.length,
      dnsStats: spf.dns.stats(),
      cached: spf.dns.cached(),
      spfResults: Object.fromEntries((await relay.metrics.spfResults.get()).values.map((v) => [v.labels.result, v.value])),
    }),
    close: async () => {
      await relay.close();
      await peer.close();
      await dns.close();
    },
  });
  port.postMessage({ ready: { smtp: relay.smtpPort, http: relay.httpPort } });
}

/** A raw SMTP client session: reads replies line by line, with deadlines. */
class Session {
  private buf = '';
  private waiting: (() => void) | undefined;
  private closed = false;
  private constructor(readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => {
      this.buf += d.toString('latin1');
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  static open(port: number, localAddress: string, timeoutMs: number): Promise<Session> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1', localAddress });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connect from ${localAddress} timed out`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve(new Session(socket));
      });
      socket.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
  }

  private wake(): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.();
  }

  /** The next complete reply (multi-line replies joined), or throws at the deadline or on close. */
  async reply(timeoutMs: number): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < 10_000; i++) {
      const m = /^(?:\d{3}-[^\r\n]*\r\n)*\d{3}(?: [^\r\n]*)?\r\n/.exec(this.buf);
      if (m) {
        this.buf = this.buf.slice(m[0].length);
        return m[0].trimEnd();
      }
      if (this.closed) throw new Error(`closed; got ${JSON.stringify(this.buf)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${timeoutMs} ms; got ${JSON.stringify(this.buf)}`);
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.waiting = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
    throw new Error('too many partial reads');
  }

  async command(line: string, timeoutMs: number): Promise<string> {
    this.socket.write(`${line}\r\n`);
    return this.reply(timeoutMs);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

interface Outcome {
  domain: string;
  reply: string;
  mailMs: number;
}

interface Trusted {
  rcpt: string;
  sentAt: number;
  submitMs: number;
  reply: string;
}

/** One untrusted session: EHLO, MAIL FROM for domain number i, QUIT. */
async function runSession(s: Session, i: number): Promise<Outcome> {
  const domain = DOMAIN_KEYS[i % DOMAIN_KEYS.length]!;
  const ehlo = await s.command(`EHLO ${HELOS[i % HELOS.length]}`, MAIL_REPLY_BOUND_MS);
  if (!/^250[ -]/.test(ehlo)) throw new Error(`EHLO: ${ehlo}`);
  const t0 = Date.now();
  const reply = await s.command(`MAIL FROM:<user${i}@${D(domain)}>`, MAIL_REPLY_BOUND_MS + 5000);
  const mailMs = Date.now() - t0;
  const bye = await s.command('QUIT', 5000);
  if (bye !== '221 2.0.0 Bye') throw new Error(`QUIT: ${bye}`);
  s.destroy();
  return { domain, reply, mailMs };
}

/** One message of the trusted client (127.0.0.1, in relayNetworks), on a connection of its own. */
async function submitTrusted(port: number, i: number): Promise<Trusted> {
  const rcpt = `trusted${i}@example.org`;
  const sentAt = Date.now();
  const c = await Session.open(port, '127.0.0.1', 10_000);
  try {
    await c.reply(10_000);
    await c.command('EHLO app.relay.test', 10_000);
    await c.command('MAIL FROM:<app@relay.test>', 10_000);
    await c.command(`RCPT TO:<${rcpt}>`, 10_000);
    await c.command('DATA', 10_000);
    const reply = await c.command(`Subject: trusted ${i}\r\n\r\nhello\r\n.`, 10_000);
    return { rcpt, sentAt, submitMs: Date.now() - sentAt, reply };
  } finally {
    c.destroy();
  }
}

const ipOf = (i: number): string => `127.0.0.${2 + (i % CLIENT_IPS)}`;

/** The clients worker: opens the sessions, then runs them all at once with the trusted client alongside. */
function clientsSide(port: MessagePort, smtp: number): void {
  let sessions: Session[] = [];
  serve(port, {
    warm: async (n: number) => {
      const warm = await Promise.all(Array.from({ length: n }, (_, i) => Session.open(smtp, ipOf(i), 5000)));
      await Promise.all(warm.map(async (s, i) => {
        await s.reply(5000);
        return runSession(s, i);
      }));
      await submitTrusted(smtp, 99);
    },
    open: async () => {
      // Connected in batches (the listen backlog is 511), then all greeted.
      for (let b = 0; b < SESSIONS; b += 100) {
        sessions.push(...await Promise.all(Array.from({ length: Math.min(100, SESSIONS - b) }, (_, k) => Session.open(smtp, ipOf(b + k), 10_000))));
      }
      return Promise.all(sessions.map((s) => s.reply(10_000)));
    },
    go: async () => {
      const goAt = Date.now();
      const storm = Promise.all(sessions.map((s, i) => runSession(s, i)));
      sessions = [];
      const trusted: Trusted[] = [];
      for (let i = 0; i < TRUSTED_MESSAGES; i++) trusted.push(await submitTrusted(smtp, i));
      return { goAt, outcomes: await storm, trusted, stormMs: Date.now() - goAt };
    },
  });
  port.postMessage({ ready: {} });
}

// ---------------------------------------------------------------- test (main thread)

/** A worker running this file in `role`, driven by requests with deadlines. */
class Peer<R> {
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private constructor(readonly worker: Worker, readonly ready: R) {
    worker.on('message', (m: { id: number; result?: unknown; error?: string }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.error !== undefined) p.reject(new Error(`worker: ${m.error}`));
      else p.resolve(m.result);
    });
    worker.on('error', (e) => {
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    });
  }

  /** Starts this file again as a worker (with tsx's loader) in `role` and waits for it to be ready. */
  static async start<R>(role: string, data: Record<string, unknown> = {}): Promise<Peer<R>> {
    const boot = `import('tsx/esm/api').then((api) => { api.register(); return import(${JSON.stringify(import.meta.url)}); })`;
    const worker = new Worker(boot, { eval: true, workerData: { role, ...data } });
    const ready = await new Promise<R>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${role} worker did not start within 30 s`)), 30_000);
      worker.once('message', (m: { ready: R }) => {
        clearTimeout(timer);
        resolve(m.ready);
      });
      worker.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
    return new Peer<R>(worker, ready);
  }

  call<T>(cmd: string, ...args: unknown[]): Promise<T> {
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`worker: ${cmd} got no answer within 60 s`));
      }, 60_000);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.worker.postMessage({ id, cmd, args });
    });
  }
}

const mib = (n: number): number => Math.round((n / 1024 / 1024) * 10) / 10;
function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

const role = (workerData as { role?: string } | null)?.role;
if (!isMainThread && parentPort && role === 'relay') {
  await relaySide(parentPort);
} else if (!isMainThread && parentPort && role === 'clients') {
  clientsSide(parentPort, (workerData as { smtp: number }).smtp);
} else {
  test('seed 004: 1,000 SPF-checked sessions against slow, silent and garbled DNS never stall the relay', { timeout: 90_000 }, async (t) => {
    const testStarted = Date.now();
    const relay = await Peer.start<{ smtp: number; http: number }>('relay');
    t.after(async () => {
      await relay.call('close').catch(() => undefined);
      await relay.worker.terminate();
    });
    const clients = await Peer.start('clients', { smtp: relay.ready.smtp });
    t.after(() => clients.worker.terminate());

    // Warm-up: load mailauth and friends, fill code caches, so the baseline is a fair one.
    await clients.call('warm', 20);
    const baseline = await relay.call<Settled>('settle');

    await relay.call('monitor');
    const opened = Date.now();
    const greetings = await clients.call<string[]>('open');
    assert.ok(greetings.length === SESSIONS && greetings.every((g) => g.startsWith('220 ')), 'every session greeted');
    await waitFor(async () => (await relay.call<number>('sessions')) === SESSIONS, 10_000, 'all sessions counted', 20);
    const allOpenMs = Date.now() - opened;

    // Go: every session's EHLO + MAIL at once, and the trusted client's mail meanwhile; its
    // deliveries are watched from here, and /metrics is scraped in the thick of it.
    const rcpts = Array.from({ length: TRUSTED_MESSAGES }, (_, i) => `trusted${i}@example.org`);
    const deliveredAt = new Map<string, number>();
    const run = clients.call<{ goAt: number; outcomes: Outcome[]; trusted: Trusted[]; stormMs: number }>('go');
    const s0 = Date.now();
    await scrape(relay.ready.http, 'mailrelay_inbound_sessions');
    const scrapeMs = Date.now() - s0;
    await waitFor(async () => {
      const got = await relay.call<number[]>('delivered', rcpts);
      got.forEach((n, k) => {
        if (n === 1 && !deliveredAt.has(rcpts[k]!)) deliveredAt.set(rcpts[k]!, Date.now());
      });
      return deliveredAt.size === TRUSTED_MESSAGES;
    }, 45_000, 'every trusted message delivered', 10);
    const { goAt, outcomes, trusted, stormMs } = await run;
    const loop = await relay.call<ReturnType<LoopMonitor['stop']>>('loop');

    // Every session got the reply its domain calls for, within its bound.
    const wrong = outcomes.filter((o) => o.reply !== EXPECT[o.domain]);
    assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} sessions got the wrong reply`);
    const mailMs = outcomes.map((o) => o.mailMs).sort((a, b) => a - b);
    assert.ok(mailMs.at(-1)! <= MAIL_REPLY_BOUND_MS, `slowest MAIL reply took ${mailMs.at(-1)} ms`);
    const byReply: Record<string, number> = {};
    for (const o of outcomes) byReply[o.reply.slice(0, 10)] = (byReply[o.reply.slice(0, 10)] ?? 0) + 1;

    // The trusted client was served while the checks waited on DNS, and its mail delivered once.
    for (const m of trusted) assert.match(m.reply, /^250 2\.0\.0 Ok: queued as /);
    const submit = trusted.map((m) => m.submitMs).sort((a, b) => a - b);
    assert.ok(pct(submit, 0.5) <= TRUSTED_SUBMIT_MEDIAN_BOUND_MS && submit.at(-1)! <= MAIL_REPLY_BOUND_MS, `trusted submissions took ${submit.join(', ')} ms`);
    const deliveryMs = trusted.map((m) => deliveredAt.get(m.rcpt)! - m.sentAt).sort((a, b) => a - b);
    assert.deepEqual((await relay.call<number[]>('deliveries')).filter((n) => n !== 1), [], 'each trusted message delivered once');

    // The relay's event loop never blocked for long: bounded by its own CPU time in each
    // gap; by the wall clock (which includes waiting for a CPU), never near a stall.
    assert.ok(loop.own.p99 <= EVENT_LOOP_P99_BOUND_MS, `event loop delay (own CPU) p99 ${loop.own.p99} ms`);
    assert.ok(loop.own.max <= EVENT_LOOP_MAX_BOUND_MS, `event loop delay (own CPU) max ${loop.own.max} ms`);
    assert.ok(loop.wall.max <= MAIL_REPLY_BOUND_MS, `event loop delay (wall clock) max ${loop.wall.max.toFixed(0)} ms`);

    // Single-flight: the ~60 sessions of one domain shared their lookups.
    for (const [name, most] of [[D('pass'), 2], [D('slow'), 2], [D('never'), 4]] as const) {
      const n = await relay.call<number>('dnsCount', name, 'TXT');
      assert.ok(n <= most, `${name}: ${n} TXT queries`);
    }

    // No leaks: every session, check, flight, query, socket and timer of the storm is gone.
    const after = await relay.call<Settled>('settle', baseline);
    const heapGrowth = after.heap - baseline.heap;
    assert.ok(heapGrowth < 32 * 1024 * 1024, `heap grew by ${mib(heapGrowth)} MiB`);
    const spf = await relay.call<{ dnsQueries: number; dnsStats: unknown; cached: number; spfResults: Record<string, number> }>('report');
    assert.ok(spf.cached <= 200, `${spf.cached} cache entries`);

    const report = {
      sessions: SESSIONS,
      allOpenMs,
      stormMs,
      mailReplyMs: { p50: pct(mailMs, 0.5), p99: pct(mailMs, 0.99), max: mailMs.at(-1) },
      replies: byReply,
      eventLoopDelayMs: {
        wall: { p50: +loop.wall.p50.toFixed(1), p99: +loop.wall.p99.toFixed(1), max: +loop.wall.max.toFixed(1) },
        ownCpu: loop.own,
      },
      trustedSubmitMs: { p50: pct(submit, 0.5), max: submit.at(-1), firstAfterGo: trusted[0]!.sentAt - goAt },
      trustedDeliveryMs: { p50: pct(deliveryMs, 0.5), max: deliveryMs.at(-1) },
      metricsScrapeMs: scrapeMs,
      ...spf,
      resources: { baseline: baseline.resources, after: after.resources },
      heapGrowthMiB: mib(heapGrowth),
      totalMs: Date.now() - testStarted,
    };
    t.diagnostic(`seed-004: ${JSON.stringify(report)}`);
  });
}
