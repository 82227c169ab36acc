// The controller: informers for MailRelays and everything they own or read, a keyed
// work queue feeding Reconciler, and (optionally) leader election deciding whether this
// replica runs the queue at all. Informers run on every replica (warm caches make a
// takeover fast); only the leader reconciles and writes.
//
// Events map to MailRelay keys:
//   MailRelay            itself, unless only its status (or resourceVersion/managedFields) changed:
//                        our own status writes must not wake us up again
//   owned children       the controller ownerReference of kind MailRelay (a deleted child
//                        brings its owner back to re-create it)
//   Secrets              no informer (secrets.ts): the referenced Secrets are read by name and
//                        read again every secretRefreshMs; a changed one queues every MailRelay in
//                        that namespace referencing it, so a rotated password or certificate
//                        changes the config hash and rolls the pods; a deleted drain token brings
//                        its MailRelay back to create it again
//   relay pods, spool PVCs  the MailRelay named by the app.kubernetes.io/instance label
//                        (pods only when they come, go, or change phase or readiness)
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';
import type pino from 'pino';
import { KIND, withDefaults, type MailRelay, type MailRelaySpec } from '../api/mailrelay.ts';
import { referencedSecretKeys, type OperatorMonitoring } from '../api/inputs.ts';
import { Applier } from '../apply/apply.ts';
import { canonicalJson } from '../apply/hash.ts';
import type { KubeObject } from '../desired/meta.ts';
import type { OperatorMetrics } from '../metrics.ts';
import { EventRecorder } from './events.ts';
import { ResilientInformer, type Backoff, type InformerEvent } from './informer.ts';
import { RESOURCES, isApiError, makeClients, type KubeClients, type ResourceKind } from './kube.ts';
import { LeaderElector, type LeaderElectionTiming } from './leader.ts';
import { SecretCache } from './secrets.ts';
import { Reconciler, controllerOf, isReady, objectKey, type Capabilities, type ReconcileCaches } from './reconcile.ts';
import { DRAIN_TOKEN_SECRET_SUFFIX, drainTokenFromSecrets, httpRelayPodClient, type RelayPodClient } from './relay-client.ts';
import { childNames } from '../desired/names.ts';
import { WorkQueue } from './workqueue.ts';

/** Label selecting relay pods and spool PVCs (the StatefulSet's selector labels minus the instance). */
const RELAY_SELECTOR = 'app.kubernetes.io/name=mailrelay,app.kubernetes.io/component=relay';

/** Options of startController. */
export interface ControllerOptions {
  kc: KubeConfig;
  metrics: OperatorMetrics;
  /** Image for unset spec.image fields (the operator's own). */
  defaultImage: string;
  /** Operator-wide monitoring settings (chart values): relay ServiceMonitor labels and relabelings, fleet alerts, runbook links. */
  monitoring?: OperatorMonitoring;
  /** Watch one namespace; undefined watches all. */
  namespace?: string;
  /** This replica's identity (Lease holder, Event reportingInstance, User-Agent). Default hostname + random suffix. */
  identity?: string;
  /** Campaign for this Lease and reconcile only while holding it; undefined reconciles unconditionally. */
  leaderElection?: { namespace: string; name: string } & Partial<LeaderElectionTiming>;
  /** Parallel reconciles (of different MailRelays). Default 2. */
  workers?: number;
  /** Per-MailRelay retry backoff after errors. Default 500 ms to 5 min. */
  retryBackoff?: Backoff;
  /** Informer restart backoff. Default 500 ms to 30 s. */
  informerBackoff?: Backoff;
  /** How long a discovery answer (monitoring.coreos.com) is trusted. Default 30 s. */
  discoveryTtlMs?: number;
  /** Reconcile every MailRelay this often even without events; 0 disables. Default 10 min. */
  resyncMs?: number;
  /** How often the referenced Secrets are read again to notice a rotation. Default 60 s. */
  secretRefreshMs?: number;
  /** Poll interval of a scale-down waiting for pods to drain. Default 15 s. */
  scaleDownPollMs?: number;
  /** How often the relay pods' queues (GET /status) are read while pods run. Default 15 s (ADR 0009). */
  queuePollMs?: number;
  /** Talks to relay pods during a scale-down. Default: HTTP to podIP:9090. */
  relayPods?: RelayPodClient;
  /** Event aggregation (see EventRecorder). */
  events?: { aggregateWindowMs?: number; minIntervalMs?: number };
  log?: pino.Logger;
}

/** A running controller. */
export interface Controller {
  /** This replica's identity. */
  readonly identity: string;
  /** The API clients (all with this replica's User-Agent). */
  readonly clients: KubeClients;
  /** True once every informer has listed successfully. */
  readonly synced: boolean;
  /** True while this replica reconciles (it is the leader, or leader election is off). */
  readonly leading: boolean;
  /** The work queue (tests read its depth). */
  readonly queue: WorkQueue;
  /** Queues one MailRelay key (namespace/name). */
  enqueue(key: string): void;
  /** Stops reconciling, releases the Lease, stops the informers. */
  stop(): Promise<void>;
}

/** A discovery probe for KEDA's keda.sh/v1alpha1 ScaledObject, cached for ttlMs; the last answer is kept when discovery fails. */
export function kedaCapability(clients: Pick<KubeClients, 'raw'>, ttlMs: number): () => Promise<boolean> {
  let cached: { at: number; value: boolean } | undefined;
  return async () => {
    if (cached && Date.now() - cached.at < ttlMs) return cached.value;
    let value: boolean;
    try {
      const list = await clients.raw.getJson<{ resources?: { name: string }[] }>('/apis/keda.sh/v1alpha1');
      value = (list.resources ?? []).some((r) => r.name === 'scaledobjects');
    } catch (err) {
      if (isApiError(err, 404)) value = false;
      else if (cached) return cached.value;
      else throw err;
    }
    cached = { at: Date.now(), value };
    return value;
  };
}

/** A discovery probe for the monitoring.coreos.com/v1 kinds, cached for ttlMs; the last answer is kept when discovery fails. */
export function monitoringCapabilities(clients: Pick<KubeClients, 'raw'>, ttlMs: number): () => Promise<Capabilities> {
  let cached: { at: number; value: Capabilities } | undefined;
  return async () => {
    if (cached && Date.now() - cached.at < ttlMs) return cached.value;
    let value: Capabilities;
    try {
      const list = await clients.raw.getJson<{ resources?: { name: string }[] }>('/apis/monitoring.coreos.com/v1');
      const names = new Set((list.resources ?? []).map((r) => r.name));
      value = { serviceMonitor: names.has('servicemonitors'), prometheusRule: names.has('prometheusrules') };
    } catch (err) {
      if (isApiError(err, 404)) value = { serviceMonitor: false, prometheusRule: false };
      else if (cached) return cached.value;
      else throw err;
    }
    cached = { at: Date.now(), value };
    return value;
  };
}

/** Names of the Secrets a MailRelay references (none when its spec does not parse). */
export function referencedSecretNames(spec: MailRelaySpec | undefined): Set<string> {
  try {
    return new Set(referencedSecretKeys(withDefaults(spec ?? {})).map((r) => r.name));
  } catch {
    return new Set();
  }
}

/** True when an update changed nothing but status, resourceVersion or managedFields (our own status writes). */
export function statusOnlyChange(old: KubeObject | undefined, now: KubeObject): boolean {
  if (!old) return false;
  const strip = (o: KubeObject) => {
    const { resourceVersion: _rv, managedFields: _mf, ...metadata } = o.metadata;
    const { status: _s, ...rest } = o;
    return canonicalJson({ ...rest, metadata });
  };
  return strip(old) === strip(now);
}

/** Starts informers, the work queue and (optionally) leader election. Resolves once the informers are started (not necessarily synced). */
export async function startController(opts: ControllerOptions): Promise<Controller> {
  const identity = opts.identity ?? `${process.env.POD_NAME ?? hostname()}_${randomBytes(4).toString('hex')}`;
  const log = opts.log;
  const clients = makeClients(opts.kc, `mailrelay-operator/${identity}`);
  const metrics = opts.metrics;
  const informerOf = (resource: ResourceKind, labelSelector?: string) => new ResilientInformer({
    kc: opts.kc, raw: clients.raw, resource, namespace: opts.namespace, labelSelector, metrics,
    ...(opts.informerBackoff ? { backoff: opts.informerBackoff } : {}),
    onError: (err, ms) => log?.warn({ kind: resource.kind, err: (err as Error)?.message ?? String(err), restartInMs: ms }, 'watch failed; restarting'),
  });
  const informers = {
    mailRelays: informerOf(RESOURCES.MailRelay),
    statefulSets: informerOf(RESOURCES.StatefulSet),
    configMaps: informerOf(RESOURCES.ConfigMap),
    services: informerOf(RESOURCES.Service),
    podDisruptionBudgets: informerOf(RESOURCES.PodDisruptionBudget),
    networkPolicies: informerOf(RESOURCES.NetworkPolicy),
    pods: informerOf(RESOURCES.Pod, RELAY_SELECTOR),
    persistentVolumeClaims: informerOf(RESOURCES.PersistentVolumeClaim, RELAY_SELECTOR),
  } satisfies Record<Exclude<keyof ReconcileCaches, 'secrets'>, ResilientInformer>;
  const all = Object.values(informers);
  // Declared before the queue exists; onChange only runs from refresh(), after start.
  let onSecretChange: (namespace: string, name: string) => void = () => undefined;
  const secrets = new SecretCache({
    raw: clients.raw,
    onChange: (ns, name) => onSecretChange(ns, name),
    onError: (err, ns, name) => log?.warn({ secret: `${ns}/${name}`, err: (err as Error)?.message }, 'reading a referenced Secret failed'),
  });

  const events = new EventRecorder({
    api: clients.core, instance: identity, ...opts.events,
    onError: (err) => log?.warn({ err: (err as Error)?.message }, 'writing an Event failed'),
  });
  const applier = new Applier(clients.objects, metrics);
  const reconciler = new Reconciler({
    clients, caches: { ...informers, secrets }, applier, events, metrics,
    capabilities: (() => {
      const monitoring = monitoringCapabilities(clients, opts.discoveryTtlMs ?? 30_000);
      const keda = kedaCapability(clients, opts.discoveryTtlMs ?? 30_000);
      return async () => ({ ...await monitoring(), scaledObject: await keda() });
    })(),
    relayPods: opts.relayPods ?? httpRelayPodClient({ token: drainTokenFromSecrets(secrets) }),
    defaultImage: opts.defaultImage,
    ...(opts.monitoring ? { monitoring: opts.monitoring } : {}),
    ...(opts.scaleDownPollMs !== undefined ? { scaleDownPollMs: opts.scaleDownPollMs } : {}),
    ...(opts.queuePollMs !== undefined ? { queuePollMs: opts.queuePollMs } : {}),
    ...(log ? { log } : {}),
  });
  const queue = new WorkQueue({
    workers: opts.workers ?? 2,
    baseDelayMs: opts.retryBackoff?.initialMs ?? 500,
    maxDelayMs: opts.retryBackoff?.maxMs ?? 300_000,
    onDepth: (d) => metrics.workqueueDepth.set(d),
    onError: (key, err) => log?.error({ key, err: (err as Error)?.message }, 'reconcile threw'),
    process: async (key, signal) => {
      const out = await reconciler.reconcile(key, signal);
      if (out.result === 'error') return { kind: 'retry' };
      if (out.result === 'gone') queue.forget(key);
      // invalid: no timer; the next change of the MailRelay or its Secrets brings it back.
      return out.requeueAfterMs !== undefined ? { kind: 'done', requeueAfterMs: out.requeueAfterMs } : { kind: 'done' };
    },
  });

  // Event -> key mapping.
  informers.mailRelays.onEvent((e: InformerEvent) => {
    if (e.type === 'update' && statusOnlyChange(e.old, e.object)) return;
    queue.add(objectKey(e.object));
  });
  const toOwner = (e: InformerEvent) => {
    if (e.type === 'delete') applier.forget(e.object);
    const owner = controllerOf(e.object);
    if (owner?.kind === KIND) queue.add(`${e.object.metadata.namespace ?? ''}/${owner.name}`);
  };
  for (const inf of [informers.statefulSets, informers.configMaps, informers.services, informers.podDisruptionBudgets, informers.networkPolicies]) inf.onEvent(toOwner);
  onSecretChange = (ns, name) => {
    // A changed or deleted drain token: its MailRelay creates it again if it is gone.
    if (name.endsWith(DRAIN_TOKEN_SECRET_SUFFIX)) {
      const owner = name.slice(0, -DRAIN_TOKEN_SECRET_SUFFIX.length);
      if (informers.mailRelays.get(ns, owner)) queue.add(`${ns}/${owner}`);
    }
    for (const mr of informers.mailRelays.list(ns) as unknown as MailRelay[]) {
      if (referencedSecretNames(mr.spec).has(name)) queue.add(objectKey(mr));
    }
  };
  /** namespace/name of every Secret the cached MailRelays use (referenced ones and drain tokens). */
  const wantedSecrets = () => {
    const out = new Set<string>();
    for (const mr of informers.mailRelays.list() as unknown as MailRelay[]) {
      const ns = mr.metadata.namespace ?? '';
      for (const name of referencedSecretNames(mr.spec)) out.add(`${ns}/${name}`);
      out.add(`${ns}/${childNames(mr).drainTokenSecret}`);
    }
    return out;
  };
  // Pods: only when one appears, goes, or changes phase or readiness (a relay in hold is
  // not Ready; the scale-down logic looks at such pods).
  informers.pods.onEvent((e) => {
    if (e.type === 'update' && e.old && isReady(e.old) === isReady(e.object)
      && (e.old.status as { phase?: string } | undefined)?.phase === (e.object.status as { phase?: string } | undefined)?.phase) return;
    const instance = e.object.metadata.labels?.['app.kubernetes.io/instance'];
    if (instance && informers.mailRelays.get(e.object.metadata.namespace ?? '', instance)) queue.add(`${e.object.metadata.namespace ?? ''}/${instance}`);
  });
  informers.persistentVolumeClaims.onEvent((e) => {
    const instance = e.object.metadata.labels?.['app.kubernetes.io/instance'];
    if (instance && informers.mailRelays.get(e.object.metadata.namespace ?? '', instance)) queue.add(`${e.object.metadata.namespace ?? ''}/${instance}`);
  });

  let leading = false;
  let resync: NodeJS.Timeout | undefined;
  let secretRefresh: NodeJS.Timeout | undefined;
  let refreshing = false;
  let generation = 0;
  const startWorking = async () => {
    const mine = ++generation;
    await Promise.all(all.map((i) => i.waitForSync()));
    if (mine !== generation) return; // leadership was lost while waiting
    leading = true;
    metrics.leader.set(1);
    queue.start();
    for (const mr of informers.mailRelays.list()) queue.add(objectKey(mr));
    if ((opts.resyncMs ?? 600_000) > 0) {
      resync = setInterval(() => { for (const mr of informers.mailRelays.list()) queue.add(objectKey(mr)); }, opts.resyncMs ?? 600_000);
      resync.unref();
    }
    secretRefresh = setInterval(() => {
      if (refreshing) return;
      refreshing = true;
      void secrets.refresh(wantedSecrets()).finally(() => { refreshing = false; });
    }, opts.secretRefreshMs ?? 60_000);
    secretRefresh.unref();
    log?.info({ identity }, 'reconciling');
  };
  const stopWorking = async () => {
    generation++;
    leading = false;
    metrics.leader.set(0);
    if (resync) clearInterval(resync);
    resync = undefined;
    if (secretRefresh) clearInterval(secretRefresh);
    secretRefresh = undefined;
    await queue.stop();
    reconciler.reset();
  };

  metrics.leader.set(0);
  await Promise.all(all.map((i) => i.start()));
  let elector: LeaderElector | undefined;
  if (opts.leaderElection) {
    const le = opts.leaderElection;
    elector = new LeaderElector({
      api: clients.coordination, namespace: le.namespace, name: le.name, identity,
      ...(le.leaseDurationMs !== undefined ? { leaseDurationMs: le.leaseDurationMs } : {}),
      ...(le.renewDeadlineMs !== undefined ? { renewDeadlineMs: le.renewDeadlineMs } : {}),
      ...(le.retryPeriodMs !== undefined ? { retryPeriodMs: le.retryPeriodMs } : {}),
      onStartedLeading: () => {
        log?.info({ identity, lease: `${le.namespace}/${le.name}` }, 'became leader');
        void startWorking();
      },
      onStoppedLeading: async () => {
        log?.warn({ identity }, 'stopped leading: reconciling stops now');
        await stopWorking();
      },
      onError: (err) => log?.warn({ err: (err as Error)?.message }, 'leader election: API error'),
    });
    elector.run();
  } else {
    void startWorking();
  }

  return {
    identity,
    clients,
    queue,
    get synced() { return all.every((i) => i.synced); },
    get leading() { return leading; },
    enqueue: (key) => queue.add(key),
    async stop() {
      if (elector) await elector.stop();
      await stopWorking();
      await Promise.all(all.map((i) => i.stop()));
    },
  };
}
