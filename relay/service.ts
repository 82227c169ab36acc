// One relay: inbound SMTP -> durable spool -> scheduler -> delivery engine, plus
// metrics/health over HTTP and a graceful drain. This is the only place they are wired.
// startRelayCore is everything but HTTP: a one-process relay (startRelay) puts its HTTP
// server on top, a worker of a multi-process relay (relay/cluster.ts) answers its primary.
import { readFileSync } from 'node:fs';
import { constants, existsSync } from 'node:fs';
import { access, writeFile, unlink } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join } from 'node:path';
import pino from 'pino';
import type { RelayConfig } from './config.ts';
import { createRelayMetrics, type RelayMetrics } from './metrics.ts';
import { DeliveryEngine, engineOptionsFromConfig } from './outbound/engine.ts';
import { type MxResolver, makeResolver } from './outbound/mx.ts';
import { MtaStsPolicies } from './mta-sts/index.ts';
import { readCaBundle, withDefaultCas } from './outbound/ca-file.ts';
import { Spool } from './spool/index.ts';
import { mkdirp } from './spool/disk.ts';
import { Scheduler } from './scheduler/scheduler.ts';
import { dkimBodyFor, loadDkimSigner } from './dkim/index.ts';
import { startInbound, type InboundServer, type StartInboundOptions } from './inbound/server.ts';
import { startHttp } from './http.ts';
import { createSpfVerifier } from './spf/index.ts';
import { QueueAdmin } from './queue/admin.ts';
import { listenNamed } from './net/listen.ts';
import { messageIdOf, peekHeader } from './inbound/message-id.ts';
import { mailrelayVersion } from './version.ts';
import { shardDir } from './workers.ts';
import { kindForCode, type SpoolErrorKind } from './spool/errors.ts';
import { RateMeter, buildRelayStatus, statusRoute, type RelayStatus, type SpoolProblem } from './status.ts';

/** Hooks tests use to run a relay deterministically. */
export interface RelayRuntimeOptions {
  /** The root logger; each part logs through a child of it with its own `component`. */
  log?: pino.Logger;
  resolver?: MxResolver;
  clock?: () => number;
  random?: () => number;
  /** Scheduler concurrency (messages in flight). */
  concurrency?: number;
  /** Reverse DNS of inbound clients (Received headers): a resolver, or false to skip it. Default: the system resolver. */
  reverseDns?: StartInboundOptions['reverseDns'];
  /** How long an MTA-STS TXT answer is trusted before it is looked at again (default 5 minutes). */
  mtaStsRecheckMs?: number;
  /** Run as one worker of several (relay/cluster.ts): its spool shard, and whether it takes mail. */
  shard?: { index: number; accepts: boolean };
}

/** A relay without its HTTP server: what a one-process relay and a worker process share. */
export interface RelayCore {
  /** The SMTP port; undefined for a worker that only delivers an old shard. */
  smtpPort: number | undefined;
  metrics: RelayMetrics;
  spool: Spool;
  scheduler: Scheduler;
  engine: DeliveryEngine;
  /** The queue operations on this spool (shard). */
  queue: QueueAdmin;
  /** The inbound listener; undefined when this worker takes no mail. */
  readonly inbound: InboundServer | undefined;
  /** /readyz: not draining, spool writable. */
  ready(): { ok: boolean; reasons: string[] };
  /** Sets the gauges computed on demand (queue depth and age) from the spool. */
  refreshGauges(): void;
  /** The /status document of this process (its spool shard): queue, rates, learned limits, drain and spool state. */
  status(): Promise<RelayStatus>;
  /** Hold drain (ADR 0003 R1): refuse new mail, keep delivering; `persist` writes the marker that survives restarts. */
  hold(persist: boolean): Promise<void>;
  /** Ends a hold; false while an exit drain runs. */
  undoHold(): Promise<boolean>;
  /** Exit drain: refuse new mail, deliver what is due until the timeout, then stop everything. */
  drain(timeoutMs?: number): Promise<void>;
  /** Stops at once (in-flight deliveries are abandoned; the spool keeps them). */
  close(): Promise<void>;
}

/** A running relay. */
export interface RelayHandle {
  smtpPort: number;
  httpPort: number;
  metrics: RelayMetrics;
  spool: Spool;
  scheduler: Scheduler;
  engine: DeliveryEngine;
  /** The queue operations behind the queue API. */
  queue: QueueAdmin;
  /** The current inbound listener (sessions, SPF cache and checks in flight). */
  readonly inbound: InboundServer;
  /** The /status document (queue, rates, learned limits, drain and spool state) as of now. */
  status(): Promise<RelayStatus>;
  /** Starts the drain: 421 to new sessions, deliver what is due, then stop. Resolves when stopped. */
  drain(timeoutMs?: number): Promise<void>;
  /** Stops at once (in-flight deliveries are abandoned; the spool keeps them). */
  close(): Promise<void>;
}

/** Creates the spool directory, or fails with a message that names the directory and the cause. */
async function prepareSpoolDir(dir: string): Promise<void> {
  try {
    await mkdirp(dir);
    await access(dir, constants.W_OK);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    // A parent that exists but takes no new entries (e.g. /proc) answers ENOENT: name it.
    if (e.code === 'ENOENT' && e.path !== undefined) {
      throw new Error(`spool directory ${dir} is not writable (cannot create ${e.path}: ENOENT)`);
    }
    // mkdir -p on a read-only mount reports ENOENT; ask the parent for the real reason.
    let cause = e.code ?? e.message;
    try {
      await access(dirname(dir), constants.W_OK);
    } catch (perr) {
      cause = (perr as NodeJS.ErrnoException).code ?? cause;
    }
    const why = cause === 'EROFS' ? 'read-only file system' : cause === 'ENOSPC' ? 'no space left' : cause;
    throw new Error(`spool directory ${dir} is not writable (${why}: ${cause})`);
  }
}

/** Starts a relay from a validated config: the core, and HTTP on top. */
export async function startRelay(config: RelayConfig, rt: RelayRuntimeOptions = {}): Promise<RelayHandle> {
  // One `component` per line: the root has none, each part adds its own (a child's bindings
  // are appended, so a component on the root too would put the key twice in every line).
  const root = rt.log ?? pino({ level: config.log.level });
  const log = root.child({ component: 'relay' });
  const core = await startRelayCore(config, { ...rt, log: root });
  let drainPromise: Promise<void> | undefined;
  const drain = (timeoutMs?: number): Promise<void> => {
    drainPromise ??= core.drain(timeoutMs).then(() => http.close());
    return drainPromise;
  };
  const http = await listenNamed('HTTP listener (metrics, health, queue API)', config.http.host, config.http.port, () => startHttp(config.http.host, config.http.port, {
    registry: core.metrics.registry,
    beforeScrape: () => core.refreshGauges(),
    live: () => true,
    ready: () => core.ready(),
    drain: (mode) => (mode === 'hold' ? core.hold(true).then(() => true) : mode === 'undo' ? core.undoHold() : (void drain(), Promise.resolve(true))),
    drainToken: config.http.drainTokenFile ? () => readSecret(config.http.drainTokenFile!) : undefined,
    trustLoopback: config.http.trustLoopback,
    queue: core.queue,
    log: root.child({ component: 'http' }),
    routes: [statusRoute(() => core.status())],
  })).catch(async (err: unknown) => {
    await core.close().catch(() => undefined);
    throw err;
  });
  log.info({ version: mailrelayVersion(), smtp: core.smtpPort, http: http.port, spool: config.spool.dir, mode: config.delivery.mode, queued: core.spool.size }, 'relay started');
  let closed = false;
  return {
    smtpPort: core.smtpPort!, httpPort: http.port, metrics: core.metrics, spool: core.spool, scheduler: core.scheduler, engine: core.engine, queue: core.queue,
    // A getter, as the handle has always had it.
    get inbound() {
      return core.inbound!;
    },
    drain,
    status: () => core.status(),
    close: async () => {
      if (closed) return;
      closed = true;
      await core.close();
      await http.close();
    },
  };
}

/** A secret from a mounted file, without its trailing newline. */
const readSecret = (file: string): string => readFileSync(file, 'utf8').replace(/\r?\n$/, '');

/** Starts everything but HTTP: the spool (this worker's shard of it), engine, scheduler and, unless it only delivers, inbound. */
export async function startRelayCore(config: RelayConfig, rt: RelayRuntimeOptions = {}): Promise<RelayCore> {
  const root = rt.log ?? pino({ level: config.log.level });
  const log = root.child({ component: 'relay' });
  const shard = rt.shard ?? { index: 0, accepts: true };
  const spoolDir = shardDir(config.spool.dir, shard.index);
  const hostname = config.inbound.hostname ?? os.hostname();
  // DKIM (RFC 6376): signed once per message before its first attempt; a bad key fails here, at start,
  // before anything is opened.
  const dkim = config.delivery.dkim ? loadDkimSigner(config.delivery.dkim) : undefined;
  if (dkim) log.info({ domain: dkim.domain, selector: dkim.selector, algorithm: dkim.algorithm, dnsRecord: dkim.dnsRecord }, 'DKIM signing on');
  const metrics = createRelayMetrics();
  await prepareSpoolDir(spoolDir);
  const spool = await Spool.open(spoolDir, { fsync: config.spool.fsync, log: root.child({ component: 'spool' }), clock: rt.clock });
  // Whatever started is stopped again if a later step fails (a port in use, say).
  const started: Array<() => Promise<void>> = [() => spool.close()];
  const undoStart = async (err: unknown): Promise<never> => {
    for (const stop of started.reverse()) await stop().catch(() => undefined);
    throw err;
  };
  const auth = config.delivery.smarthost?.auth;
  const smarthostCredentials = auth
    ? { username: auth.username ?? readSecret(auth.usernameFile!), password: readSecret(auth.passwordFile) }
    : undefined;
  // Trust anchors are read once, at start: a missing or empty CA file fails here, naming it.
  const sh = config.delivery.smarthost;
  const smarthostCa = config.delivery.mode === 'smarthost' && sh?.caFile ? readCaBundle(sh.caFile, 'delivery.smarthost.caFile') : undefined;
  const mxCa = config.delivery.extraCaFile ? withDefaultCas(readCaBundle(config.delivery.extraCaFile, 'delivery.extraCaFile')) : undefined;
  if (config.delivery.mode === 'smarthost' && sh?.insecureSkipVerify) {
    log.warn({ smarthost: sh.host, tls: sh.tls, credentials: sh.auth !== undefined },
      'delivery.smarthost.insecureSkipVerify is on: the smarthost certificate is NOT verified; anyone who can intercept the connection can read the mail and the credentials');
  }
  // MX lookups and MTA-STS share one resolver (delivery.dnsServers, or the system's).
  const mxResolver = config.delivery.mode === 'mx'
    ? rt.resolver ?? makeResolver(config.delivery.dnsServers, Math.min(config.delivery.timeouts.connect * 1000, 10_000))
    : rt.resolver;
  const sts = config.delivery.mode === 'mx' && config.delivery.mtaSts.enabled
    ? await MtaStsPolicies.open({
      resolver: mxResolver!, port: config.delivery.mtaSts.port, fetchTimeoutMs: config.delivery.mtaSts.fetchTimeout * 1000,
      cacheSize: config.delivery.mtaSts.cacheSize, file: join(spoolDir, 'mta-sts-policies.json'),
      ...(mxCa ? { ca: mxCa } : {}), ...(rt.mtaStsRecheckMs !== undefined ? { recheckMs: rt.mtaStsRecheckMs } : {}),
      metrics, log, clock: rt.clock,
    })
    : undefined;
  const engine = new DeliveryEngine({
    ...engineOptionsFromConfig(config.delivery, {
      heloName: hostname, smarthostCredentials, metrics, log: root.child({ component: 'outbound' }), resolver: mxResolver,
      ...(smarthostCa !== undefined ? { smarthostCa } : {}), ...(mxCa ? { mxCa } : {}), ...(sts ? { mtaSts: sts } : {}),
    }),
    random: rt.random,
  });
  const scheduler = new Scheduler({
    bodyFor: dkim ? dkimBodyFor(dkim, (id) => spool.openBody(id), { onUnsigned: (id, reason) => log.warn({ queueId: id, reason }, 'sent without DKIM') }) : undefined,
    spool, engine, hostname, metrics, log: root.child({ component: 'delivery' }), clock: rt.clock, random: rt.random,
    retry: config.delivery.retry,
    dsnFrom: config.dsn.from,
    delayNotice: { enabled: config.dsn.delayNotice, afterSeconds: config.dsn.delayAfter },
    concurrency: rt.concurrency ?? 64,
  });

  let draining = false;
  let closed = false;
  // Why the spool takes no writes, from the last failed accept or probe; undefined while it does.
  let spoolProblem: { problem: SpoolProblem; message: string } | undefined;
  const problemOf = (kind: SpoolErrorKind): SpoolProblem => (kind === 'no_space' ? 'full' : 'unwritable');
  let lastProbe = 0;
  const probeSpool = () => {
    const now = Date.now();
    if (now - lastProbe < 5000) return;
    lastProbe = now;
    const f = join(spoolDir, '.ready-probe');
    writeFile(f, 'ok').then(() => unlink(f)).then(() => { spoolProblem = undefined; }, (err: NodeJS.ErrnoException) => {
      spoolProblem = { problem: problemOf(kindForCode(err.code)), message: `spool probe write failed: ${err.code ?? err.message}` };
    });
  };

  // One SPF cache for the process, made before the listener that uses it.
  const spf = config.inbound.spf.enabled ? createSpfVerifier(config.inbound.spf, { hostname }) : undefined;
  const listen = (port: number) => listenNamed('SMTP listener', config.inbound.host, port, () => startInbound({
    config: { ...config.inbound, port },
    hostname,
    spf,
    reverseDns: rt.reverseDns,
    metrics,
    log: root,
    sink: {
      accept: async (envelope, body) => {
        try {
          // The Message-ID rides with the message into every delivery log line.
          const peeked = await peekHeader(body, config.inbound.maxHeaderSize);
          const messageId = messageIdOf(peeked.header);
          const m = await spool.accept(messageId === undefined ? envelope : { ...envelope, messageId }, peeked.body);
          spoolProblem = undefined;
          scheduler.kick();
          return { id: m.id };
        } catch (err) {
          // A full or read-only spool makes the pod unready at once, so the Service sends
          // new sessions to a sibling until the probe sees the spool writable again.
          const kind = (err as { kind?: string }).kind;
          if (kind === 'no_space' || kind === 'read_only') {
            spoolProblem = { problem: problemOf(kind), message: (err as Error).message };
            lastProbe = Date.now();
          }
          throw err;
        }
      },
    },
  }));
  const inbound = shard.accepts ? await listen(config.inbound.port).catch(undoStart) : undefined;
  if (inbound) started.push(() => inbound.close());
  const smtpPort = inbound?.port;

  // Hold mode (ADR 0003, R1): refuse new mail and keep delivering on the normal schedule,
  // without exiting, across restarts (a marker file on the spool volume), until undone.
  // One marker in the spool root, for every worker of the relay.
  const marker = join(config.spool.dir, 'DRAINING');
  const startHold = async (persist: boolean) => {
    if (persist) await writeFile(marker, `${new Date().toISOString()}\n`);
    if (!draining) log.info({ queued: spool.size }, 'drain (hold): refusing new mail, delivering the queue');
    draining = true;
    metrics.draining.set(1);
    inbound?.stopAccepting();
  };
  const endHold = async (): Promise<boolean> => {
    if (drainPromise || closed) return false; // an exit drain can't be undone
    await unlink(marker).catch(() => undefined);
    if (!draining) return true;
    // The same listener takes mail again: closing it and listening anew left a moment with
    // the port closed, and with several workers sharing it, a bind race (EADDRINUSE).
    inbound?.resumeAccepting();
    draining = false;
    metrics.draining.set(0);
    log.info('drain (hold) undone: accepting mail again');
    return true;
  };
  if (existsSync(marker)) await startHold(false);

  let drainPromise: Promise<void> | null = null;
  const drain = (timeoutMs = config.drain.timeout * 1000): Promise<void> => {
    drainPromise ??= (async () => {
      draining = true;
      metrics.draining.set(1);
      log.info({ timeoutMs }, 'draining: refusing new sessions, delivering what is due');
      inbound?.stopAccepting();
      const deadline = Date.now() + timeoutMs;
      // Keep delivering until nothing is due or the grace period is nearly spent; what is
      // deferred stays on the (retained) spool volume for the next pod with this ordinal.
      while (Date.now() < deadline - 1000) {
        const due = spool.due((rt.clock ?? Date.now)(), 1).length;
        if (due === 0 && scheduler.active === 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const finished = await scheduler.stop(Math.max(1000, deadline - Date.now()));
      log.info({ finished, queued: spool.stats().messages }, 'drain complete');
      await shutdown();
    })();
    return drainPromise;
  };

  // Rates for /status: the delivered and accepted counters, sampled every second.
  const deliveredRate = new RateMeter();
  const acceptedRate = new RateMeter();
  const counterSum = async (c: { get(): Promise<{ values: { value: number; labels: object }[] }> }, label: string, value: string) =>
    (await c.get()).values.filter((v) => (v.labels as Record<string, unknown>)[label] === value).reduce((a, v) => a + v.value, 0);
  const sampleRates = async () => {
    const at = Date.now();
    deliveredRate.sample(await counterSum(metrics.recipients, 'outcome', 'delivered'), at);
    acceptedRate.sample(await counterSum(metrics.inboundMessages, 'result', 'accepted'), at);
  };
  const rateTimer = setInterval(() => { void sampleRates(); }, 1000);
  rateTimer.unref();
  const status = async (): Promise<RelayStatus> => {
    await sampleRates();
    return buildRelayStatus({
      now: Date.now(),
      spool: spool.stats(),
      inFlight: scheduler.active,
      learnedLimits: engine.learnedLimits(),
      rates: { delivered: deliveredRate.perSecond(), accepted: acceptedRate.perSecond(), windowSeconds: deliveredRate.windowSeconds },
      draining,
      ...(spoolProblem ? { spoolProblem } : {}),
    });
  };

  const queue = new QueueAdmin(spool, scheduler, rt.clock);
  const shutdown = async () => {
    if (closed) return;
    closed = true;
    clearInterval(rateTimer);
    await inbound?.close();
    await scheduler.stop(0);
    await engine.close();
    await sts?.close();
    await spool.close();
  };

  scheduler.start();
  return {
    smtpPort, metrics, spool, scheduler, engine, queue,
    get inbound() {
      return inbound;
    },
    ready: () => {
      probeSpool();
      const reasons = [...(draining ? ['draining'] : []), ...(spoolProblem === undefined ? [] : [spoolProblem.problem === 'full' ? 'spool full' : 'spool not writable'])];
      return { ok: reasons.length === 0, reasons };
    },
    refreshGauges: () => {
      const st = spool.stats();
      metrics.queueMessages.set({ state: 'queued' }, st.byState.queued);
      metrics.queueMessages.set({ state: 'deferred' }, st.byState.deferred);
      metrics.queueOldestAge.set(st.oldestReceivedAt === undefined ? 0 : Math.max(0, (Date.now() - st.oldestReceivedAt) / 1000));
      metrics.queueOldestQueuedAge.set(st.oldestQueuedReceivedAt === undefined ? 0 : Math.max(0, (Date.now() - st.oldestQueuedReceivedAt) / 1000));
    },
    status,
    hold: startHold,
    undoHold: endHold,
    drain,
    close: shutdown,
  };
}
