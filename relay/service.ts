// One relay process: inbound SMTP -> durable spool -> scheduler -> delivery engine, plus
// metrics/health over HTTP and a graceful drain. This is the only place they are wired.
import { readFileSync } from 'node:fs';
import { constants, existsSync } from 'node:fs';
import { access, writeFile, unlink, mkdir } from 'node:fs/promises';
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
import { Scheduler } from './scheduler/scheduler.ts';
import { dkimBodyFor, loadDkimSigner } from './dkim/index.ts';
import { startInbound, type InboundServer, type StartInboundOptions } from './inbound/server.ts';
import { startHttp } from './http.ts';
import { createSpfVerifier } from './spf/index.ts';
import { kindForCode, type SpoolErrorKind } from './spool/errors.ts';
import { RateMeter, buildRelayStatus, type RelayStatus, type SpoolProblem } from './status.ts';

/** Hooks tests use to run a relay deterministically. */
export interface RelayRuntimeOptions {
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
}

/** A running relay. */
export interface RelayHandle {
  smtpPort: number;
  httpPort: number;
  metrics: RelayMetrics;
  spool: Spool;
  scheduler: Scheduler;
  engine: DeliveryEngine;
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
    await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK);
  } catch (err) {
    // mkdir -p on a read-only mount reports ENOENT; ask the parent for the real reason.
    let cause = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    try {
      await access(dirname(dir), constants.W_OK);
    } catch (perr) {
      cause = (perr as NodeJS.ErrnoException).code ?? cause;
    }
    const why = cause === 'EROFS' ? 'read-only file system' : cause === 'ENOSPC' ? 'no space left' : cause;
    throw new Error(`spool directory ${dir} is not writable (${why}: ${cause})`);
  }
}

/** Starts a relay from a validated config. */
export async function startRelay(config: RelayConfig, rt: RelayRuntimeOptions = {}): Promise<RelayHandle> {
  const log = rt.log ?? pino({ level: config.log.level, base: { component: 'relay' } });
  const hostname = config.inbound.hostname ?? os.hostname();
  // DKIM (RFC 6376): signed once per message before its first attempt; a bad key fails here, at start,
  // before anything is opened.
  const dkim = config.delivery.dkim ? loadDkimSigner(config.delivery.dkim) : undefined;
  if (dkim) log.info({ domain: dkim.domain, selector: dkim.selector, algorithm: dkim.algorithm, dnsRecord: dkim.dnsRecord }, 'DKIM signing on');
  const metrics = createRelayMetrics();
  await prepareSpoolDir(config.spool.dir);
  const spool = await Spool.open(config.spool.dir, { fsync: config.spool.fsync, log, clock: rt.clock });
  const auth = config.delivery.smarthost?.auth;
  const readSecret = (file: string) => readFileSync(file, 'utf8').replace(/\r?\n$/, '');
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
      cacheSize: config.delivery.mtaSts.cacheSize, file: join(config.spool.dir, 'mta-sts-policies.json'),
      ...(mxCa ? { ca: mxCa } : {}), ...(rt.mtaStsRecheckMs !== undefined ? { recheckMs: rt.mtaStsRecheckMs } : {}),
      metrics, log, clock: rt.clock,
    })
    : undefined;
  const engine = new DeliveryEngine({
    ...engineOptionsFromConfig(config.delivery, {
      heloName: hostname, smarthostCredentials, metrics, log, resolver: mxResolver,
      ...(smarthostCa !== undefined ? { smarthostCa } : {}), ...(mxCa ? { mxCa } : {}), ...(sts ? { mtaSts: sts } : {}),
    }),
    random: rt.random,
  });
  const scheduler = new Scheduler({
    bodyFor: dkim ? dkimBodyFor(dkim, (id) => spool.openBody(id), { onUnsigned: (id, reason) => log.warn({ id, reason }, 'sent without DKIM') }) : undefined,
    spool, engine, hostname, metrics, log, clock: rt.clock, random: rt.random,
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
    const f = join(config.spool.dir, '.ready-probe');
    writeFile(f, 'ok').then(() => unlink(f)).then(() => { spoolProblem = undefined; }, (err: NodeJS.ErrnoException) => {
      spoolProblem = { problem: problemOf(kindForCode(err.code)), message: `spool probe write failed: ${err.code ?? err.message}` };
    });
  };

  // One SPF cache for the process: it outlives a listener replaced by a hold drain.
  const spf = config.inbound.spf.enabled ? createSpfVerifier(config.inbound.spf, { hostname }) : undefined;
  const listen = (port: number) => startInbound({
    config: { ...config.inbound, port },
    hostname,
    spf,
    reverseDns: rt.reverseDns,
    metrics,
    log,
    sink: {
      accept: async (envelope, body) => {
        try {
          const m = await spool.accept(envelope, body);
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
  });
  let inbound = await listen(config.inbound.port);
  const smtpPort = inbound.port;

  // Hold mode (ADR 0003, R1): refuse new mail and keep delivering on the normal schedule,
  // without exiting, across restarts (a marker file on the spool volume), until undone.
  const marker = join(config.spool.dir, 'DRAINING');
  const startHold = async (persist: boolean) => {
    if (persist) await writeFile(marker, `${new Date().toISOString()}\n`);
    if (!draining) log.info({ queued: spool.size }, 'drain (hold): refusing new mail, delivering the queue');
    draining = true;
    metrics.draining.set(1);
    inbound.stopAccepting();
  };
  const endHold = async (): Promise<boolean> => {
    if (drainPromise || closed) return false; // an exit drain can't be undone
    await unlink(marker).catch(() => undefined);
    if (!draining) return true;
    // The listener cannot un-refuse: start a fresh one on the same port.
    await inbound.close();
    inbound = await listen(smtpPort);
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
      inbound.stopAccepting();
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

  const http = await startHttp(config.http.host, config.http.port, {
    registry: metrics.registry,
    beforeScrape: () => {
      const s = spool.stats();
      metrics.queueMessages.set({ state: 'queued' }, s.byState.queued);
      metrics.queueMessages.set({ state: 'deferred' }, s.byState.deferred);
      metrics.queueOldestAge.set(s.oldestReceivedAt === undefined ? 0 : Math.max(0, (Date.now() - s.oldestReceivedAt) / 1000));
      metrics.queueOldestQueuedAge.set(s.oldestQueuedReceivedAt === undefined ? 0 : Math.max(0, (Date.now() - s.oldestQueuedReceivedAt) / 1000));
    },
    status,
    live: () => true,
    ready: () => {
      probeSpool();
      const reasons = [...(draining ? ['draining'] : []), ...(spoolProblem === undefined ? [] : [spoolProblem.problem === 'full' ? 'spool full' : 'spool not writable'])];
      return { ok: reasons.length === 0, reasons };
    },
    drain: (mode) => (mode === 'hold' ? startHold(true).then(() => true) : mode === 'undo' ? endHold() : (void drain(), Promise.resolve(true))),
    drainToken: config.http.drainTokenFile ? () => readSecret(config.http.drainTokenFile!) : undefined,
  });

  const shutdown = async () => {
    if (closed) return;
    closed = true;
    clearInterval(rateTimer);
    await inbound.close();
    await scheduler.stop(0);
    await engine.close();
    await sts?.close();
    await spool.close();
    await http.close();
  };

  scheduler.start();
  log.info({ smtp: smtpPort, http: http.port, spool: config.spool.dir, mode: config.delivery.mode, queued: spool.size }, 'relay started');
  return {
    smtpPort, httpPort: http.port, metrics, spool, scheduler, engine,
    // A getter: a hold drain replaces the listener.
    get inbound() {
      return inbound;
    },
    drain,
    status,
    close: shutdown,
  };
}
