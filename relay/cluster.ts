// A relay on several cores (config `workers` > 1; design and guarantees: docs/adr/0007-workers.md).
// node:cluster: the primary holds the SMTP listening socket and hands each new connection
// to the workers in turn (round robin); every worker is a whole relay (startRelayCore) on
// a spool shard of its own, so each shard has exactly one writer and the spool's
// guarantees (ADR 0002) hold per shard unchanged. The primary writes no mail: it starts,
// watches and restarts workers, serves HTTP (/metrics summed over the workers, /readyz,
// /drain, the queue API over every shard) and turns SIGTERM into a drain of every worker.
//
// Shard ownership: the primary forks the worker of shard i only when no live worker has
// it (a replacement only after the 'exit' of the one before), and a worker whose primary
// is gone exits at once ('disconnect'), as a kill -9 would: nothing it acknowledged is lost.
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import type { Logger } from 'pino';
import { AggregatorRegistry, Registry } from 'prom-client';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { RelayConfig } from './config.ts';
import { startHttp, type QueueOps } from './http.ts';
import { createPrimaryMetrics } from './metrics.ts';
import { listenNamed } from './net/listen.ts';
import type { QueueAction, QueueActionResponse, QueueActionResult, QueueFilter, QueueListResponse, QueueMessageDetail, QueueSelection } from './queue/types.ts';
import type { RelayCore } from './service.ts';
import { MessageNotFoundError } from './spool/errors.ts';
import { combineRelayStatus, statusRoute, type RelayStatus } from './status.ts';
import { writeTerminationMessage } from './termination.ts';
import { mailrelayVersion } from './version.ts';
import { planWorkers, restartDelayMs, shardDir, shardIndexOf, workerConfig } from './workers.ts';
import type { WorkerSlot } from './workers.ts';

/** Set in a worker's environment: "<shard index>:<1 accepts mail | 0 delivers only>". */
const WORKER_ENV = 'MAILRELAY_WORKER';
/** The validated config, as JSON: every worker runs exactly what its primary validated. */
const CONFIG_ENV = 'MAILRELAY_WORKER_CONFIG';

type Op = 'ready' | 'metrics' | 'hold' | 'undo' | 'drain' | 'queue' | 'status';
/** A queue API call, run by every worker on its own shard. */
type QueueCall =
  | { m: 'list'; filter: QueueFilter }
  | { m: 'show'; id: string }
  | { m: 'act'; action: QueueAction; selection: QueueSelection };
/** A request to a worker; `drainMs` is the drain's own timeout. */
type ToWorker = { t: 'mr:call'; id: number; op: Op; drainMs?: number; queue?: QueueCall };
type FromWorker =
  | { t: 'mr:started'; smtpPort: number | undefined }
  | { t: 'mr:failed'; error: string }
  | { t: 'mr:result'; id: number; ok: true; value: unknown }
  | { t: 'mr:result'; id: number; ok: false; error: string }
  | { t: 'mr:retired' };

/** How many processes this config runs as: `workers`, plus one per shard a larger setting left behind. */
export function relayProcesses(config: RelayConfig): number {
  return planWorkers(config.workers, shardsOnDisk(config.spool.dir)).length;
}

/** True in a process the primary forked as a worker. */
export function isRelayWorker(): boolean {
  return cluster.isWorker && process.env[WORKER_ENV] !== undefined;
}

/** The shards a previous run left in the spool root (shard 0 is the root itself and always runs). */
function shardsOnDisk(root: string): number[] {
  if (!existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => shardIndexOf(e.name))
    .filter((i): i is number => i !== undefined);
}

const LEARNED_LIMIT = 'mailrelay_learned_recipient_limit';

/**
 * Sums the workers' metrics (and the primary's own) with prom-client's cluster aggregation,
 * each metric by its declared aggregator. A worker's learned recipient limit of 0 means "none
 * learned", not a limit of 0, so it stays out of the minimum while another worker has one.
 */
export function aggregateWorkerMetrics(all: MetricObjectWithValues<MetricValue<string>>[][]): Registry {
  const learned = all.flatMap((m) => m.filter((x) => x.name === LEARNED_LIMIT)).flatMap((x) => x.values);
  const fixed = learned.some((v) => v.value > 0)
    ? all.map((ms) => ms.map((m) => (m.name === LEARNED_LIMIT ? { ...m, values: m.values.filter((v) => v.value > 0) } : m)))
    : all;
  return AggregatorRegistry.aggregate(fixed);
}

interface SlotState {
  slot: WorkerSlot;
  worker: Worker | undefined;
  started: boolean;
  startedAt: number;
  crashes: number;
  retired: boolean;
  restartTimer: NodeJS.Timeout | undefined;
}

/**
 * Runs the primary: forks the workers, serves HTTP, restarts workers that die, drains on
 * SIGTERM/SIGINT. Resolves with the exit code once everything has stopped.
 */
export async function runRelayPrimary(config: RelayConfig, root: Logger = pino({ level: config.log.level })): Promise<number> {
  const log = root.child({ component: 'relay' });
  const slots: SlotState[] = planWorkers(config.workers, shardsOnDisk(config.spool.dir)).map((slot) => ({
    slot, worker: undefined, started: false, startedAt: 0, crashes: 0, retired: false, restartTimer: undefined,
  }));
  const metrics = createPrimaryMetrics();
  const setWorkerGauge = (): void => {
    for (const role of ['accepting', 'retiring'] as const) {
      metrics.workers.set({ role }, slots.filter((s) => s.worker && s.started && !s.retired && (role === 'accepting') === s.slot.accepts).length);
    }
  };
  // Round robin in the primary: long-lived sessions spread evenly, which the kernel's own
  // accept() wake-ups do not do (one worker tends to win most of them).
  // NODE_CLUSTER_SCHED_POLICY=none (Node's own switch) lets the workers accept() themselves.
  if (process.env.NODE_CLUSTER_SCHED_POLICY === undefined) cluster.schedulingPolicy = cluster.SCHED_RR;
  cluster.setupPrimary({ exec: process.argv[1]!, args: process.argv.slice(2) });

  let seq = 0;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  const call = (st: SlotState, op: Op, timeoutMs: number, drainMs?: number, queue?: QueueCall): Promise<unknown> => {
    const w = st.worker;
    if (!w || !w.isConnected()) return Promise.reject(new Error(`worker ${st.slot.index} is not running`));
    const id = ++seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`worker ${st.slot.index} did not answer ${op} within ${timeoutMs} ms`));
      }, timeoutMs);
      pending.set(id, { resolve, reject, timer });
      const failed = (err: Error): void => {
        clearTimeout(timer);
        if (pending.delete(id)) reject(err);
      };
      try {
        // A worker that is exiting (a retired shard's, say) closes its channel: the write
        // fails with EPIPE, reported here instead of as an 'error' event nobody handles.
        w.send({ t: 'mr:call', id, op, drainMs, queue } satisfies ToWorker, undefined, {}, (err: Error | null) => {
          if (err) failed(err);
        });
      } catch (err) {
        // The channel closed under us: the worker is exiting.
        clearTimeout(timer);
        pending.delete(id);
        reject(err);
      }
    });
  };

  let exiting = false;
  let holding = false;
  let smtpPort: number | undefined;
  let startup: { resolve: () => void; reject: (e: Error) => void } | undefined;
  let allExited: (() => void) | undefined;
  const live = (): SlotState[] => slots.filter((s) => s.worker !== undefined);

  const fork = (st: SlotState): void => {
    st.started = false;
    const w = cluster.fork({
      [WORKER_ENV]: `${st.slot.index}:${st.slot.accepts ? 1 : 0}`,
      [CONFIG_ENV]: JSON.stringify(config),
    });
    st.worker = w;
    // Channel errors of a worker on its way out; its 'exit' is what the primary acts on.
    w.on('error', (err: Error) => log.debug({ worker: st.slot.index, err: err.message }, 'relay worker channel error'));
    w.on('message', (m: FromWorker) => {
      if (m.t === 'mr:started') {
        st.started = true;
        st.startedAt = Date.now();
        if (m.smtpPort !== undefined) smtpPort = m.smtpPort;
        setWorkerGauge();
        log.info({ worker: st.slot.index, pid: w.process.pid, accepts: st.slot.accepts }, 'relay worker started');
        if (slots.every((s) => s.started || s.retired)) startup?.resolve();
      } else if (m.t === 'mr:failed') {
        log.error({ worker: st.slot.index, error: m.error }, 'relay worker could not start');
        if (startup) startup.reject(new Error(`worker ${st.slot.index}: ${m.error}`));
      } else if (m.t === 'mr:retired') {
        st.retired = true;
        setWorkerGauge();
        log.info({ worker: st.slot.index }, 'relay worker retired: its shard is delivered and removed');
      } else if (m.t === 'mr:result') {
        const p = pending.get(m.id);
        if (!p) return;
        pending.delete(m.id);
        clearTimeout(p.timer);
        if (m.ok) p.resolve(m.value);
        else p.reject(new Error(m.error));
      }
    });
    w.on('exit', (code, signal) => {
      st.worker = undefined;
      setWorkerGauge();
      if (exiting || st.retired) {
        if (live().length === 0) allExited?.();
        return;
      }
      if (startup) {
        startup.reject(new Error(`worker ${st.slot.index} exited (${signal ?? code}) while starting`));
        return;
      }
      // A crash: the shard is crash-safe (ADR 0002); a new worker recovers it and goes on.
      st.crashes = Date.now() - st.startedAt > 60_000 ? 1 : st.crashes + 1;
      const delay = restartDelayMs(st.crashes);
      metrics.workerRestarts.inc();
      log.error({ worker: st.slot.index, code, signal, restartInMs: delay }, 'relay worker exited unexpectedly; restarting it on its shard');
      st.restartTimer = setTimeout(() => {
        st.restartTimer = undefined;
        if (!exiting) fork(st);
      }, delay);
    });
  };

  const stopAll = async (signal: NodeJS.Signals): Promise<void> => {
    exiting = true;
    for (const s of slots) clearTimeout(s.restartTimer);
    const done = new Promise<void>((resolve) => {
      allExited = resolve;
      if (live().length === 0) resolve();
    });
    for (const s of live()) s.worker?.process.kill(signal);
    await done;
  };

  try {
    await new Promise<void>((resolve, reject) => {
      startup = { resolve, reject };
      const timer = setTimeout(() => reject(new Error('workers did not start within 120 s')), 120_000);
      timer.unref();
      for (const st of slots) fork(st);
    });
  } catch (err) {
    log.error({ err }, 'relay workers failed to start');
    writeTerminationMessage(config.terminationMessagePath, (err as Error).message);
    await stopAll('SIGKILL');
    return 1;
  }
  startup = undefined;

  const primaryRegistry = metrics.registry;
  const readSecret = (file: string): string => readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  let drainPromise: Promise<void> | undefined;
  let finished: (code: number) => void = () => undefined;
  const stopped = new Promise<number>((resolve) => {
    finished = resolve;
  });
  const drainAll = (timeoutMs = config.drain.timeout * 1000): Promise<void> => {
    drainPromise ??= (async () => {
      exiting = true;
      holding = true;
      log.info({ timeoutMs, workers: live().length }, 'draining every worker: refusing new sessions, delivering what is due');
      for (const s of slots) clearTimeout(s.restartTimer);
      const exited = new Promise<void>((resolve) => {
        allExited = resolve;
        if (live().length === 0) resolve();
      });
      await Promise.allSettled(live().map((s) => call(s, 'drain', timeoutMs + 10_000, timeoutMs)));
      // Each worker exits once drained; one that hangs is stopped.
      const hard = setTimeout(() => {
        for (const s of live()) s.worker?.process.kill('SIGKILL');
      }, 15_000);
      await exited;
      clearTimeout(hard);
      await http.close();
      log.info('relay stopped');
    })();
    drainPromise.then(() => finished(0), (err: Error) => {
      log.error({ err }, 'drain failed');
      finished(1);
    });
    return drainPromise;
  };

  const http = await listenNamed('HTTP listener (metrics, health, queue API)', config.http.host, config.http.port, () => startHttp(config.http.host, config.http.port, {
    registry: {
      contentType: Registry.PROMETHEUS_CONTENT_TYPE,
      metrics: async () => {
        const own = await primaryRegistry.getMetricsAsJSON();
        const fromWorkers = await Promise.all(live().map((s) => call(s, 'metrics', 5000).catch(() => undefined)));
        const all = [own, ...fromWorkers.filter((m) => m !== undefined)] as MetricObjectWithValues<MetricValue<string>>[][];
        return aggregateWorkerMetrics(all).metrics();
      },
    },
    live: () => true,
    ready: async () => {
      const reasons: string[] = [];
      if (exiting || holding) reasons.push('draining');
      const accepting = slots.filter((s) => s.slot.accepts);
      const answers = await Promise.all(accepting.map((s) => call(s, 'ready', 2000).then(
        (r) => r as { ok: boolean; reasons: string[] },
        (err: Error) => ({ ok: false, reasons: [err.message] }),
      )));
      for (const a of answers) for (const r of a.reasons) if (!reasons.includes(r)) reasons.push(r);
      return { ok: reasons.length === 0, reasons };
    },
    drain: async (mode) => {
      if (mode === 'exit') {
        void drainAll();
        return true;
      }
      if (mode === 'undo' && exiting) return false;
      holding = mode === 'hold';
      const results = await Promise.allSettled(live().map((s) => call(s, mode, 30_000)));
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason as Error;
      return results.every((r) => r.status === 'fulfilled' && r.value !== false);
    },
    drainToken: config.http.drainTokenFile ? () => readSecret(config.http.drainTokenFile!) : undefined,
    trustLoopback: config.http.trustLoopback,
    queue: shardedQueue((q) => Promise.all(live().map((s) => call(s, 'queue', 60_000, undefined, q)))),
    log: root.child({ component: 'http' }),
    // One document for the pod: every worker's shard, combined (a worker that does not
    // answer fails the call, so the operator never sees a partial queue as the whole).
    routes: [statusRoute(async () => {
      const parts = await Promise.all(live().map((s) => call(s, 'status', 5000) as Promise<RelayStatus>));
      const doc = combineRelayStatus(parts);
      return exiting || holding ? { ...doc, draining: true } : doc;
    })],
  })).catch(async (err: unknown) => {
    await stopAll('SIGKILL');
    throw err;
  });
  holding = existsSync(join(config.spool.dir, 'DRAINING'));
  log.info({ version: mailrelayVersion(), smtp: smtpPort, http: http.port, spool: config.spool.dir, mode: config.delivery.mode, workers: slots.length }, 'relay started');

  const stop = (signal: string): void => {
    log.info({ signal, timeoutSeconds: config.drain.timeout, workers: live().length }, `${signal}: draining (up to ${config.drain.timeout}s)`);
    void drainAll();
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  // Ends after a drain, whether a signal or POST /drain started it.
  return stopped;
}

/** Runs this process as a worker: a relay core on its shard, answering the primary. Never returns. */
export async function runRelayWorker(): Promise<never> {
  const [indexText = '0', acceptsText = '1'] = (process.env[WORKER_ENV] ?? '').split(':');
  const index = Number(indexText);
  const accepts = acceptsText === '1';
  const config = JSON.parse(process.env[CONFIG_ENV] ?? '{}') as RelayConfig;
  const root = pino({ level: config.log.level }).child({ worker: index });
  const log = root.child({ component: 'relay' });
  const send = (m: FromWorker): void => {
    if (process.connected) process.send?.(m);
  };
  // The primary decides when to stop (a terminal's Ctrl-C reaches the whole process group).
  process.on('SIGTERM', () => {});
  process.on('SIGINT', () => {});
  // The primary is gone: stop now, as a kill -9 would. The shard is crash-safe and a new
  // primary must find it free.
  process.on('disconnect', () => process.exit(70));

  let core: RelayCore;
  try {
    // Loaded here, not at the top: the primary never runs a relay and stays small without it.
    const { startRelayCore } = await import('./service.ts');
    core = await startRelayCore(workerConfig(config, config.workers), { log: root, shard: { index, accepts } });
  } catch (err) {
    send({ t: 'mr:failed', error: (err as Error).message });
    process.exit(1);
  }
  send({ t: 'mr:started', smtpPort: core.smtpPort });

  process.on('message', (m: ToWorker) => {
    if (m?.t !== 'mr:call') return;
    const reply = (p: Promise<unknown>): void => {
      p.then((value) => send({ t: 'mr:result', id: m.id, ok: true, value }), (err: Error) => send({ t: 'mr:result', id: m.id, ok: false, error: err.message }));
    };
    switch (m.op) {
      case 'ready':
        return reply(Promise.resolve(core.ready()));
      case 'metrics':
        core.refreshGauges();
        return reply(core.metrics.registry.getMetricsAsJSON());
      case 'hold':
        return reply(core.hold(true).then(() => true));
      case 'undo':
        return reply(core.undoHold());
      case 'queue':
        return reply(runQueueCall(core, m.queue!));
      case 'status':
        return reply(core.status());
      case 'drain':
        return reply(core.drain(m.drainMs).then(() => {
          // Answered, then gone: the primary waits for this exit.
          setImmediate(() => process.exit(0));
          return true;
        }));
    }
  });

  if (!accepts) {
    // A shard a larger `workers` setting left: deliver it, then remove it and retire.
    const dir = shardDir(config.spool.dir, index);
    const timer = setInterval(() => {
      if (core.spool.size > 0 || core.scheduler.active > 0) return;
      clearInterval(timer);
      void (async () => {
        await core.close();
        const corrupt = join(dir, 'corrupt');
        if (existsSync(corrupt) && readdirSync(corrupt).length > 0) {
          log.warn({ dir }, 'retired shard keeps its corrupt/ segments for a human; the directory stays');
        } else {
          rmSync(dir, { recursive: true, force: true });
        }
        send({ t: 'mr:retired' });
        setImmediate(() => process.exit(0));
      })();
    }, 1000);
  }
  return new Promise<never>(() => undefined);
}

/** A worker's answer to one queue API call on its shard; a message it does not hold is `{ notFound: true }`. */
async function runQueueCall(core: RelayCore, q: QueueCall): Promise<unknown> {
  switch (q.m) {
    case 'list': return core.queue.list(q.filter);
    case 'act': return core.queue.act(q.action, q.selection);
    case 'show':
      try {
        return await core.queue.show(q.id);
      } catch (err) {
        if (err instanceof MessageNotFoundError) return { notFound: true };
        throw err;
      }
  }
}

/**
 * The queue API of a multi-process relay: every call goes to every worker (each holds the
 * messages of its own shard; ids are unique across shards) and the answers are merged as
 * one relay's would be: lists oldest first with the counts summed, an id's outcome from
 * the shard that holds it.
 */
export function shardedQueue(each: (q: QueueCall) => Promise<unknown[]>): QueueOps {
  return {
    async list(filter: QueueFilter): Promise<QueueListResponse> {
      const answers = await each({ m: 'list', filter }) as QueueListResponse[];
      const limit = Math.max(1, filter.limit ?? Number.MAX_SAFE_INTEGER);
      const messages = answers.flatMap((a) => a.messages).sort((a, b) => a.receivedAt.localeCompare(b.receivedAt) || a.id.localeCompare(b.id));
      const counts = { queued: 0, deferred: 0, held: 0 };
      for (const a of answers) for (const k of Object.keys(counts) as (keyof typeof counts)[]) counts[k] += a.counts[k];
      return { messages: messages.slice(0, limit), counts, truncated: answers.some((a) => a.truncated) || messages.length > limit };
    },
    async show(id: string): Promise<QueueMessageDetail> {
      const answers = await each({ m: 'show', id }) as (QueueMessageDetail | { notFound: true })[];
      const found = answers.find((a): a is QueueMessageDetail => !('notFound' in a));
      if (!found) throw new MessageNotFoundError(id);
      return found;
    },
    async act(action: QueueAction, selection: QueueSelection): Promise<QueueActionResponse> {
      const answers = await each({ m: 'act', action, selection }) as QueueActionResponse[];
      // An id named in the selection is not_found on every shard but the one that holds it.
      const byId = new Map<string, QueueActionResult>();
      for (const r of answers.flatMap((a) => a.results)) {
        const had = byId.get(r.id);
        if (!had || had.result === 'not_found') byId.set(r.id, r);
      }
      return { action, results: [...byId.values()] };
    },
  };
}
