// One reconcile of one MailRelay, and the only place where the operator has effects:
//   gather   the MailRelay, its Secrets (as digests), the optional APIs (discovery), the
//            StatefulSet, and for a scale-down the relay pods' spools (ADR 0003)
//   validate validateMailRelay and the builders' own checks; an invalid spec is reported
//            (Degraded=True naming the field, a Warning Event) and NOT retried on a timer:
//            it waits for a change of the MailRelay or of a Secret it references
//   desired  buildDesired, with the StatefulSet replicas the scale-down plan allows
//   apply    the drain-token Secret if missing (created once, never rotated), the
//            scale-down's drain requests and PVC flags (ADR 0003), then
//            server-side apply in APPLY_ORDER (skipping what would not change), then
//            delete the children a spec change turned off
//   status   buildStatus, written through the status subresource only when it changed,
//            plus aggregated Events for what was done and what went wrong.
import { randomBytes } from 'node:crypto';
import { PatchStrategy, setHeaderOptions, type V1Secret } from '@kubernetes/client-node';
import type pino from 'pino';
import { referencedSecretKeys, secretInput, type MailRelayInputs, type SecretInput, type SecretLike } from '../api/inputs.ts';
import {
  API_VERSION, GROUP, InvalidMailRelayError, KIND, PLURAL, VERSION, operatorAutoscales, requestedReplicas, validateMailRelay, withDefaults,
  type MailRelay, type MailRelaySpecDefaulted, type MailRelayStatus, type ValidationProblem,
} from '../api/mailrelay.ts';
import { ApplyError, apiErrorMessage, type Applier } from '../apply/apply.ts';
import { canonicalJson } from '../apply/hash.ts';
import { computeConfigHash } from '../desired/config-hash.ts';
import { buildDesired } from '../desired/index.ts';
import { buildDrainTokenSecret } from '../desired/drain-token.ts';
import type { KubeObject } from '../desired/meta.ts';
import { childNames, spoolClaimName } from '../desired/names.ts';
import { planScaleDown, type ScalePlan, type SpoolObservation } from '../desired/scale-down.ts';
import type { OperatorMetrics } from '../metrics.ts';
import { buildStatus } from '../status/status.ts';
import { PVC_PENDING_AFTER_SECONDS, buildQueueStatus, findHealingProblems, type HealingProblem, type PvcLike } from '../status/healing.ts';
import { decideReplicas, type PodReading } from '../autoscaling/decide.ts';
import type { EventRecorder, EventType } from './events.ts';
import { RESOURCES, isApiError, type KubeClients } from './kube.ts';
import type { RelayPodClient } from './relay-client.ts';

/**
 * ADR 0003: a spool PVC whose pod was removed without proof that the spool was empty
 * (policy Immediate, or the drain timeout) carries this annotation with value
 * SPOOL_UNVERIFIED until its ordinal's pod runs again (or a person deletes the PVC).
 * Annotated PVCs outside the StatefulSet make Degraded=True SpoolNotDrained.
 */
export const SPOOL_STATE_ANNOTATION = 'mailrelay.io/spool-state';
/** Value of SPOOL_STATE_ANNOTATION for a spool that may still hold mail. */
export const SPOOL_UNVERIFIED = 'unverified';

/** Read access to one informer cache. */
export interface Lookup {
  get(namespace: string, name: string): KubeObject | undefined;
  list(namespace?: string): KubeObject[];
}

/** The informer caches a reconcile reads. */
export interface ReconcileCaches {
  mailRelays: Lookup;
  statefulSets: Lookup;
  configMaps: Lookup;
  services: Lookup;
  podDisruptionBudgets: Lookup;
  networkPolicies: Lookup;
  /** Only the referenced Secrets and drain tokens, read by name (controller/secrets.ts). */
  secrets: Lookup & {
    /** Reads the named Secrets of a namespace that are not cached yet. */
    ensure(namespace: string, names: Iterable<string>): Promise<void>;
    /** Caches a Secret the operator created. */
    remember(secret: KubeObject): void;
  };
  pods: Lookup;
  persistentVolumeClaims: Lookup;
}

/** Optional APIs found by discovery. */
export type Capabilities = NonNullable<MailRelayInputs['capabilities']>;

/** Everything a reconcile needs. */
export interface ReconcilerDeps {
  clients: Pick<KubeClients, 'raw' | 'objects' | 'custom' | 'core'>;
  caches: ReconcileCaches;
  applier: Applier;
  events: EventRecorder;
  metrics: OperatorMetrics;
  /** Which optional APIs the cluster serves (discovery, cached by the caller). */
  capabilities: () => Promise<Capabilities>;
  relayPods: RelayPodClient;
  /** The operator's own image, for unset spec.image fields. */
  defaultImage: string;
  /** Operator-wide monitoring settings (relay ServiceMonitor labels and relabelings, fleet alerts). */
  monitoring?: MailRelayInputs['monitoring'];
  /** How often a waiting scale-down looks at the draining pods again (default 15 s, ADR 0003). */
  scaleDownPollMs?: number;
  /** How often the relay pods' GET /status is read again while pods run (queue figures, autoscaling, healing; default 15 s, ADR 0009). */
  queuePollMs?: number;
  now?: () => Date;
  log?: Pick<pino.Logger, 'info' | 'warn' | 'error' | 'debug'>;
}

/** How a reconcile ended: the reconciles{result} label, plus when to look again. */
export interface ReconcileOutcome {
  /** success, error (retried with backoff), invalid (waits for a change), gone (deleted). */
  result: 'success' | 'error' | 'invalid' | 'gone';
  /** Reconcile again after this long even without a change (a scale-down waiting, a deadline). */
  requeueAfterMs?: number;
  /** The error, for result error. */
  error?: Error;
}

/** client-node call options sending a PATCH as a JSON merge patch. */
const MERGE_PATCH = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** Kinds the operator deletes when the spec no longer wants them, in deletion order. */
const OPTIONAL_KINDS = ['ScaledObject', 'PrometheusRule', 'ServiceMonitor', 'PodDisruptionBudget', 'NetworkPolicy'] as const;

const NAME_OF_KIND: Record<string, keyof ReturnType<typeof childNames>> = {
  StatefulSet: 'statefulSet', ConfigMap: 'configMap', PodDisruptionBudget: 'podDisruptionBudget',
  NetworkPolicy: 'networkPolicy', ServiceMonitor: 'serviceMonitor', PrometheusRule: 'prometheusRule', ScaledObject: 'scaledObject',
};

/** The namespace/name key of an object. */
export function objectKey(o: { metadata: { namespace?: string; name?: string } }): string {
  return `${o.metadata.namespace ?? ''}/${o.metadata.name ?? ''}`;
}

/** The controller ownerReference of an object, if any. */
export function controllerOf(o: KubeObject): { kind: string; name: string; uid: string } | undefined {
  return o.metadata.ownerReferences?.find((r) => r.controller === true);
}

/** The StatefulSet ordinal of a pod or spool PVC named <prefix>-<n>; undefined otherwise. */
export function ordinalOf(name: string, prefix: string): number | undefined {
  if (!name.startsWith(`${prefix}-`)) return undefined;
  const rest = name.slice(prefix.length + 1);
  return /^(0|[1-9]\d*)$/.test(rest) ? Number(rest) : undefined;
}

const isRunning = (pod: KubeObject | undefined) => (pod?.status as { phase?: string } | undefined)?.phase === 'Running';
/** The pod's Ready condition is True. */
export const isReady = (pod: KubeObject | undefined) =>
  (pod?.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
const describe = (problems: readonly ValidationProblem[]) => problems.map((p) => `${p.field}: ${p.message}`).join('; ');
const isSecretProblem = (p: ValidationProblem) => p.reason === 'SecretNotFound' || p.reason === 'SecretKeyMissing';
const conditionStatus = (s: MailRelayStatus | undefined, type: string) => s?.conditions?.find((c) => c.type === type)?.status;

/** A status write lost a race with a spec change: reconcile again at once. */
class SpecChangedError extends Error {}

/** Reconciles MailRelays (see the file comment); keeps the relays{ready} gauge. */
export class Reconciler {
  private readonly ready = new Map<string, string>();
  /**
   * The last status written per MailRelay, with the resourceVersion it was decided on.
   * The MailRelay informer lags behind our own status writes; a reconcile that still sees
   * that copy would compute the same status again and PUT it with a stale resourceVersion
   * (a 409). Same copy, same status: nothing to write.
   */
  private readonly written = new Map<string, { before: string; status: string }>();
  /**
   * Spool flags written but maybe not yet in the PVC informer's cache, by namespace/claim:
   * the value written and the resourceVersion of the copy it was written over. While the
   * cache still shows that copy, our write wins; any other copy is newer and wins. Without
   * this a reconcile running between our PATCH and its watch event would report the old
   * flags, and Degraded would flap.
   */
  private readonly pendingFlags = new Map<string, { flagged: boolean; before: string }>();
  private readonly now: () => Date;

  /** Builds a reconciler over the given clients and caches. */
  constructor(private readonly deps: ReconcilerDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  /** Reconciles the MailRelay with key namespace/name; never throws (errors are the 'error' outcome). */
  async reconcile(key: string, signal?: AbortSignal): Promise<ReconcileOutcome> {
    const stop = this.deps.metrics.reconcileDuration.startTimer();
    let outcome: ReconcileOutcome;
    try {
      outcome = await this.run(key, signal);
    } catch (err) {
      if (err instanceof SpecChangedError) outcome = { result: 'success', requeueAfterMs: 0 };
      else outcome = { result: 'error', error: err instanceof Error ? err : new Error(String(err)) };
    }
    stop();
    if (outcome.result !== 'gone') this.deps.metrics.reconciles.inc({ result: outcome.result });
    if (outcome.error && !signal?.aborted) this.deps.log?.warn({ key, err: outcome.error.message }, 'reconcile failed');
    return outcome;
  }

  /** Forgets every MailRelay's readiness (this replica stopped reconciling: its gauge must not double-count). */
  reset(): void {
    this.ready.clear();
    this.deps.metrics.relays.reset();
  }

  /** Forgets a deleted MailRelay (gauge, Event aggregation). */
  forget(key: string): void {
    this.ready.delete(key);
    this.written.delete(key);
    this.updateGauge();
    const [ns = '', name = ''] = key.split('/');
    this.deps.events.forget(ns, name);
  }

  private updateGauge(): void {
    const counts: Record<string, number> = { True: 0, False: 0, Unknown: 0 };
    for (const s of this.ready.values()) counts[s] = (counts[s] ?? 0) + 1;
    for (const [ready, n] of Object.entries(counts)) this.deps.metrics.relays.set({ ready }, n);
  }

  private async run(key: string, signal?: AbortSignal): Promise<ReconcileOutcome> {
    const [namespace = '', name = ''] = key.split('/');
    const mr = this.deps.caches.mailRelays.get(namespace, name) as unknown as MailRelay | undefined;
    if (!mr || (mr.metadata as { deletionTimestamp?: string }).deletionTimestamp) {
      // The garbage collector deletes the children through their ownerReferences.
      this.forget(key);
      return { result: 'gone' };
    }
    const { caches, log } = this.deps;
    const now = this.now();
    const events: [EventType, string, string][] = [];
    const event = (type: EventType, reason: string, message: string) => events.push([type, reason, message]);

    // gather
    const names = childNames(mr);
    let spec: MailRelaySpecDefaulted | undefined;
    try {
      spec = withDefaults(mr.spec);
    } catch {
      // validateMailRelay below names what is wrong.
    }
    await caches.secrets.ensure(namespace, [...(spec ? referencedSecretKeys(spec).map((r) => r.name) : []), names.drainTokenSecret]);
    const secrets = this.gatherSecrets(mr, spec);
    const capabilities = await this.deps.capabilities();
    const inputs: MailRelayInputs = { secrets, defaultImage: this.deps.defaultImage, capabilities };
    if (this.deps.monitoring) inputs.monitoring = this.deps.monitoring;
    const liveSts = caches.statefulSets.get(namespace, names.statefulSet);
    const sts = liveSts && controllerOf(liveSts)?.uid === mr.metadata.uid ? liveSts : undefined;

    // validate
    let problems = validateMailRelay(mr, inputs);
    let plan: ScalePlan | undefined;
    let desired: KubeObject[] = [];
    let queue: MailRelayStatus['queue'];
    let autoscaling: MailRelayStatus['autoscaling'];
    let healing: HealingProblem[] = [];
    let podsRunning = false;
    let wantedReplicas: number | undefined;
    let claimDueMs: number | undefined;
    if (problems.length === 0 && spec) {
      // The pods' queues (ADR 0009): status.queue, the autoscaler's input, the healing conditions.
      const pods = this.relayPods(mr);
      const readings = await this.readPods(pods);
      podsRunning = readings.some((r) => r.running);
      queue = buildQueueStatus(readings, now);
      const spoolPrefix = `spool-${names.statefulSet}`;
      const claims = caches.persistentVolumeClaims.list(namespace).filter((c) => ordinalOf(c.metadata.name, spoolPrefix) !== undefined) as unknown as PvcLike[];
      healing = findHealingProblems({ readings, now, pods: [...pods.values()], claims });
      // A Pending claim is looked at again when it would be reported.
      for (const c of claims) {
        if (c.status?.phase !== 'Pending' || !c.metadata.creationTimestamp) continue;
        const due = Date.parse(c.metadata.creationTimestamp) + PVC_PENDING_AFTER_SECONDS * 1000 + 1000 - now.getTime();
        if (due > 0) claimDueMs = Math.min(claimDueMs ?? due, due);
      }
      let wanted = requestedReplicas(spec);
      if (spec.autoscaling && operatorAutoscales(spec)) {
        const previous = mr.status?.autoscaling;
        const current = previous?.desiredReplicas ?? (sts?.spec as { replicas?: number } | undefined)?.replicas ?? spec.autoscaling.minReplicas;
        const decision = decideReplicas({ spec: spec.autoscaling, current, pods: readings, scaleDownInProgress: mr.status?.scaleDown !== undefined, previous, now });
        wanted = decision.replicas;
        autoscaling = { currentReplicas: current, desiredReplicas: wanted, reason: decision.reason, message: decision.message, ...decision.state };
        if (decision.changed) {
          event('Normal', wanted > current ? 'ScaledUp' : 'ScaledDown', `autoscaling ${current} -> ${wanted} relay pods (${decision.reason}): ${decision.message}`);
          this.deps.log?.info({ key, from: current, to: wanted, reason: decision.reason }, 'autoscaling');
        }
      }
      wantedReplicas = wanted;
      plan = planScaleDown({
        spec: { replicas: wanted, scaleDown: spec.scaleDown }, currentReplicas: (sts?.spec as { replicas?: number } | undefined)?.replicas,
        observations: await this.observeSpools(mr, wanted, sts), previous: mr.status?.scaleDown, now,
      });
      inputs.statefulSetReplicas = plan.statefulSetReplicas;
      try {
        desired = buildDesired(mr, inputs);
      } catch (err) {
        if (!(err instanceof InvalidMailRelayError)) throw err;
        problems = [...err.problems];
      }
    }

    // apply
    let applyError: string | undefined;
    /** Every failure was the API server refusing the object itself (422): retrying cannot help. */
    let onlyRejected = false;
    let stsNow = sts;
    if (problems.length === 0) {
      const applied: string[] = [];
      const failures: unknown[] = [];
      try {
        // ADR 0003 steps 3 and 5 come before the apply: the PVCs a shrink cannot vouch for
        // are flagged BEFORE the StatefulSet shrinks, so a failed flag (no RBAC, an outage)
        // stops the shrink (ApplyFailed) instead of removing a pod silently.
        await this.ensureDrainToken(mr, signal);
        if (plan) await this.actOnPlan(mr, plan, event, signal);
        // One child the API server refuses must not hold back its siblings: each is applied
        // on its own. Only the StatefulSet waits for its ConfigMap, so pods never roll to a
        // config hash whose config was not written.
        let configMapFailed = false;
        for (const obj of desired) {
          if (obj.kind === 'StatefulSet' && configMapFailed) continue;
          try {
            const live = await this.live(obj.kind, namespace, obj.metadata.name, capabilities);
            const owner = live && controllerOf(live);
            if (owner && owner.uid !== mr.metadata.uid) throw new Error(`${obj.kind} ${namespace}/${obj.metadata.name} exists and is controlled by ${owner.kind} ${owner.name}; not taking it over`);
            const r = await this.deps.applier.apply(obj, live, { signal, fresh: obj.kind === 'ServiceMonitor' || obj.kind === 'PrometheusRule' || obj.kind === 'ScaledObject' });
            if (r.outcome === 'applied') applied.push(`${obj.kind}/${obj.metadata.name}`);
            if (obj.kind === 'StatefulSet') stsNow = r.object;
          } catch (err) {
            if (signal?.aborted) throw err;
            failures.push(err);
            if (obj.kind === 'ConfigMap') configMapFailed = true;
          }
        }
        const deleted = await this.pruneOptional(mr, desired, capabilities, signal);
        if (deleted.length > 0) event('Normal', 'Deleted', `deleted ${deleted.join(', ')} (no longer in the spec)`);
      } catch (err) {
        if (signal?.aborted) throw err;
        failures.push(err);
      }
      if (failures.length > 0) {
        applyError = failures.map((err) => (err instanceof ApplyError ? err.message : apiErrorMessage(err))).join('; ');
        onlyRejected = failures.every((err) => err instanceof ApplyError && err.code === 422);
      }
      if (applied.length > 0) event('Normal', 'Applied', `applied ${applied.join(', ')}`);
    }

    // Flagged spools outside the StatefulSet as it now is.
    const undrainedSpools = this.flaggedSpools(mr, (stsNow?.spec as { replicas?: number } | undefined)?.replicas ?? 0);

    // status
    const configHash = problems.length === 0 && !applyError ? computeConfigHash(mr, inputs) : undefined;
    const obs = {
      problems, applyError, statefulSet: stsNow as never, configHash, scaleDown: plan?.status, undrainedSpools, now, healing,
      ...(wantedReplicas !== undefined ? { desiredReplicas: wantedReplicas } : {}),
      ...(queue ? { queue } : {}), ...(autoscaling ? { autoscaling } : {}),
    };
    const status = await this.writeStatus(mr, obs, signal);

    // events
    const before = mr.status;
    if (configHash && before?.configHash && before.configHash !== configHash) {
      event('Normal', 'ConfigChanged', `relay config or referenced Secrets changed (config hash ${before.configHash.slice(0, 12)} -> ${configHash.slice(0, 12)}): the relay pods roll`);
    }
    if (problems.length > 0) {
      event('Warning', problems.every(isSecretProblem) ? 'SecretNotFound' : 'InvalidSpec', describe(problems));
    }
    if (applyError) event('Warning', 'ApplyFailed', applyError);
    if (before?.scaleDown && !status.scaleDown && plan) event('Normal', 'ScaleDownComplete', `scaled down to ${plan.statefulSetReplicas} relay pods`);
    if (conditionStatus(before, 'Degraded') === 'True' && conditionStatus(status, 'Degraded') === 'False') event('Normal', 'Recovered', 'no longer degraded');
    // A healing problem gets one Warning when it appears (the condition keeps saying it).
    const degradedBefore = before?.conditions?.find((c) => c.type === 'Degraded');
    for (const h of healing) {
      const known = degradedBefore?.status === 'True' && (degradedBefore.reason === h.reason || degradedBefore.message.includes(`${h.reason}:`));
      if (!known) event('Warning', h.reason, h.message);
    }
    const involved = { name, namespace, uid: mr.metadata.uid ?? '' };
    for (const [type, reason, message] of events) {
      if (signal?.aborted) break;
      await this.deps.events.record(involved, type, reason, message);
    }

    this.ready.set(key, conditionStatus(status, 'Ready') ?? 'Unknown');
    this.updateGauge();
    log?.debug({ key, problems: problems.length, applyError }, 'reconciled');

    if (problems.length > 0) return { result: 'invalid' };
    // A child the API server rejects as invalid (422) is rejected again on every retry: it
    // is reported (Degraded ApplyFailed naming the object and field) and waits, like an
    // invalid spec, for a change of the MailRelay or its Secrets.
    if (applyError && onlyRejected) return { result: 'invalid' };
    if (applyError) return { result: 'error', error: new Error(applyError) };
    return { result: 'success', ...this.requeueAfter(status, plan, podsRunning, claimDueMs) };
  }

  /** When to look again without a change: while a scale-down waits, and at the Progressing deadline. */
  private requeueAfter(status: MailRelayStatus, plan: ScalePlan | undefined, podsRunning: boolean, claimDueMs: number | undefined): { requeueAfterMs?: number } {
    const waits: number[] = [];
    if (plan?.status) waits.push(this.deps.scaleDownPollMs ?? 15_000);
    // The queues change without any Kubernetes event: read them again (ADR 0009).
    if (podsRunning) waits.push(this.deps.queuePollMs ?? 15_000);
    // A spool PVC Pending is reported once it has been Pending for PVC_PENDING_AFTER_SECONDS.
    if (claimDueMs !== undefined) waits.push(claimDueMs);
    const progressing = status.conditions?.find((c) => c.type === 'Progressing');
    if (progressing?.status === 'True' && progressing.reason !== 'DrainingForScaleDown') {
      // computeConditions flags ReplicasUnavailable 600 s after Progressing became True.
      const due = Date.parse(progressing.lastTransitionTime) + 601_000 - this.now().getTime();
      if (due > 0) waits.push(due);
    }
    return waits.length > 0 ? { requeueAfterMs: Math.min(...waits) } : {};
  }

  private gatherSecrets(mr: MailRelay, spec: MailRelaySpecDefaulted | undefined): Record<string, SecretInput> {
    const out: Record<string, SecretInput> = {};
    if (!spec) return out;
    const refs = referencedSecretKeys(spec);
    for (const name of new Set(refs.map((r) => r.name))) {
      const secret = this.deps.caches.secrets.get(mr.metadata.namespace ?? '', name);
      if (secret) out[name] = secretInput(secret as SecretLike, refs.filter((r) => r.name === name && r.reveal).map((r) => r.key));
    }
    return out;
  }

  /**
   * Creates the MailRelay's drain-token Secret (ADR 0003 R2) when the Secret cache does
   * not have it: 32 random bytes, base64url, owned by the MailRelay so it goes with it.
   * An existing Secret of that name is never touched (no rotation: the pods' token files
   * and the operator's must agree); a 409 means it exists and the cache has not seen it yet.
   */
  private async ensureDrainToken(mr: MailRelay, signal?: AbortSignal): Promise<void> {
    const namespace = mr.metadata.namespace ?? '';
    const name = childNames(mr).drainTokenSecret;
    if (!mr.metadata.uid || this.deps.caches.secrets.get(namespace, name)) return;
    signal?.throwIfAborted();
    const body = buildDrainTokenSecret(mr, randomBytes(32).toString('base64url')) as V1Secret;
    try {
      const created = await this.deps.clients.core.createNamespacedSecret({ namespace, body });
      this.deps.caches.secrets.remember({
        apiVersion: 'v1', kind: 'Secret', data: created.data,
        metadata: { name, namespace, ...(created.metadata?.resourceVersion ? { resourceVersion: created.metadata.resourceVersion } : {}) },
      });
      this.deps.log?.debug({ key: objectKey(mr), secret: name }, 'created the drain-token Secret');
    } catch (err) {
      if (!isApiError(err, 409)) throw err;
    }
  }

  /** The live child: from the informer caches, or a GET for the monitoring kinds (no informer: their CRDs may not exist). */
  private async live(kind: string, namespace: string, name: string, caps: Capabilities): Promise<KubeObject | undefined> {
    const c = this.deps.caches;
    switch (kind) {
      case 'StatefulSet': return c.statefulSets.get(namespace, name);
      case 'ConfigMap': return c.configMaps.get(namespace, name);
      case 'Service': return c.services.get(namespace, name);
      case 'PodDisruptionBudget': return c.podDisruptionBudgets.get(namespace, name);
      case 'NetworkPolicy': return c.networkPolicies.get(namespace, name);
      case 'ServiceMonitor':
        return caps.serviceMonitor ? this.deps.clients.raw.getRaw(RESOURCES.ServiceMonitor, namespace, name) : undefined;
      case 'PrometheusRule':
        return caps.prometheusRule ? this.deps.clients.raw.getRaw(RESOURCES.PrometheusRule, namespace, name) : undefined;
      case 'ScaledObject':
        return caps.scaledObject ? this.deps.clients.raw.getRaw(RESOURCES.ScaledObject, namespace, name) : undefined;
      default: throw new Error(`no live lookup for kind ${kind}`);
    }
  }

  /** Deletes the optional children this MailRelay controls that the spec no longer wants; returns what was deleted. */
  private async pruneOptional(mr: MailRelay, desired: readonly KubeObject[], caps: Capabilities, signal?: AbortSignal): Promise<string[]> {
    const wanted = new Set(desired.map((o) => o.kind));
    const deleted: string[] = [];
    for (const kind of OPTIONAL_KINDS) {
      if (wanted.has(kind)) continue;
      if ((kind === 'ServiceMonitor' && !caps.serviceMonitor) || (kind === 'PrometheusRule' && !caps.prometheusRule) || (kind === 'ScaledObject' && !caps.scaledObject)) continue;
      const name = childNames(mr)[NAME_OF_KIND[kind] as keyof ReturnType<typeof childNames>];
      const live = await this.live(kind, mr.metadata.namespace ?? '', name, caps);
      if (!live || controllerOf(live)?.uid !== mr.metadata.uid || live.metadata.deletionTimestamp) continue;
      signal?.throwIfAborted();
      try {
        await this.deps.clients.objects.delete({ apiVersion: live.apiVersion, kind, metadata: { name, namespace: mr.metadata.namespace ?? '' } });
        deleted.push(`${kind}/${name}`);
      } catch (err) {
        if (!isApiError(err, 404)) throw err;
      }
    }
    return deleted;
  }

  /**
   * Every relay pod's GET /status, over the drain channel (ADR 0003 R2, ADR 0009): a pod
   * that is not running, or does not answer, is a reading without a status.
   */
  private async readPods(pods: Map<number, KubeObject>): Promise<(PodReading & { name: string; running: boolean })[]> {
    return Promise.all([...pods].sort(([a], [b]) => a - b).map(async ([ordinal, pod]) => {
      const running = isRunning(pod);
      const base = { ordinal, name: pod.metadata.name, running };
      if (!running) return base;
      try {
        return { ...base, status: await this.deps.relayPods.status(pod) };
      } catch (err) {
        this.deps.log?.debug({ pod: pod.metadata.name, err: (err as Error).message }, 'relay /status not read');
        return base;
      }
    }));
  }

  /** The relay pods of this MailRelay, by ordinal (terminating pods excluded). */
  private relayPods(mr: MailRelay): Map<number, KubeObject> {
    const prefix = childNames(mr).statefulSet;
    const out = new Map<number, KubeObject>();
    for (const pod of this.deps.caches.pods.list(mr.metadata.namespace ?? '')) {
      const ord = ordinalOf(pod.metadata.name, prefix);
      if (ord === undefined || pod.metadata.deletionTimestamp) continue;
      if (controllerOf(pod)?.kind !== undefined && controllerOf(pod)?.kind !== 'StatefulSet') continue;
      out.set(ord, pod);
    }
    return out;
  }

  /**
   * Observations for planScaleDown: the pods a scale-down would remove (ordinals at or
   * above spec.replicas, up to the StatefulSet's replicas), the ones draining from an
   * earlier plan, and running pods below spec.replicas that are not Ready. The last are
   * how a hold ends after a scale-up: the relay keeps its hold across restarts (a marker
   * on the spool), so a pod that comes back for an ordinal the StatefulSet grew to again
   * would refuse mail for ever unless it is seen draining and told to stop (undrain).
   * An ordinal with neither a pod nor a spool PVC holds no mail at all.
   */
  private async observeSpools(mr: MailRelay, wanted: number, sts: KubeObject | undefined): Promise<SpoolObservation[]> {
    const current = (sts?.spec as { replicas?: number } | undefined)?.replicas ?? wanted;
    const pods = this.relayPods(mr);
    const observe = new Set<number>(mr.status?.scaleDown?.drainingOrdinals ?? []);
    for (let o = wanted; o < current; o++) observe.add(o);
    for (const [ord, pod] of pods) if (ord < wanted && isRunning(pod) && !isReady(pod)) observe.add(ord);
    const out: SpoolObservation[] = [];
    await Promise.all([...observe].map(async (ord) => {
      const pod = pods.get(ord);
      if (pod) {
        // ADR 0003: only a running pod can be asked; any other counts as holding mail.
        if (isRunning(pod)) out.push(await this.deps.relayPods.observe(pod, ord));
      } else if (ord >= wanted && !this.deps.caches.persistentVolumeClaims.get(mr.metadata.namespace ?? '', spoolClaimName(mr, ord))) {
        out.push({ ordinal: ord, draining: true, queuedMessages: 0 });
      }
    }));
    return out.sort((a, b) => a.ordinal - b.ordinal);
  }

  /** Sends the drain/undrain requests of the plan and flags or unflags spool PVCs (ADR 0003 steps 3 and 5). */
  private async actOnPlan(mr: MailRelay, plan: ScalePlan, event: (t: EventType, r: string, m: string) => void, signal?: AbortSignal): Promise<void> {
    const pods = this.relayPods(mr);
    const failures: string[] = [];
    const call = async (ords: number[], what: 'drain' | 'undrain') => {
      for (const ord of ords) {
        const pod = pods.get(ord);
        if (!pod || !isRunning(pod)) continue;
        signal?.throwIfAborted();
        try {
          await this.deps.relayPods[what](pod);
        } catch (err) {
          failures.push(`${what} ${pod.metadata.name}: ${(err as Error).message}`);
        }
      }
    };
    await call(plan.drain, 'drain');
    await call(plan.undrain, 'undrain');
    const podNames = (ords: number[]) => ords.map((o) => `${childNames(mr).statefulSet}-${o}`).join(', ');
    if (plan.drain.length > 0) event('Normal', 'ScaleDownDraining', `asked pods ${podNames(plan.drain)} to deliver their queues before they are removed`);
    if (plan.undrain.length > 0) event('Normal', 'ScaleDownCancelled', `pods ${podNames(plan.undrain)} are wanted again: stopped their drain`);
    if (failures.length > 0) event('Warning', 'DrainRequestFailed', failures.join('; '));

    const ns = mr.metadata.namespace ?? '';
    const flagged: string[] = [];
    for (const ord of plan.unverified) {
      const claim = spoolClaimName(mr, ord);
      const pvc = this.deps.caches.persistentVolumeClaims.get(ns, claim);
      if (!pvc || this.isFlagged(pvc)) continue;
      signal?.throwIfAborted();
      await this.annotateClaim(pvc, SPOOL_UNVERIFIED);
      flagged.push(claim);
    }
    if (flagged.length > 0) {
      event('Warning', 'SpoolNotDrained', `removed relay pods without proof that their spools were empty; PVCs ${flagged.join(', ')} are kept (annotated ${SPOOL_STATE_ANNOTATION}=${SPOOL_UNVERIFIED}) and may hold mail: scale up to cover them, or check and delete them`);
    }
    // ADR 0003: the flag goes once that ordinal's pod runs again; the relay there delivers the spool.
    const prefix = `spool-${childNames(mr).statefulSet}`;
    for (const pvc of this.deps.caches.persistentVolumeClaims.list(ns)) {
      if (!this.isFlagged(pvc)) continue;
      const ord = ordinalOf(pvc.metadata.name, prefix);
      if (ord === undefined || ord >= plan.statefulSetReplicas || !isRunning(pods.get(ord))) continue;
      signal?.throwIfAborted();
      await this.annotateClaim(pvc, null);
    }
  }

  /** Whether a spool PVC is flagged: our own latest write if the cache has not caught up with it, else the cache. */
  private isFlagged(pvc: KubeObject): boolean {
    const key = objectKey(pvc);
    const cached = pvc.metadata.annotations?.[SPOOL_STATE_ANNOTATION] === SPOOL_UNVERIFIED;
    const pending = this.pendingFlags.get(key);
    if (pending === undefined) return cached;
    if (pending.before === (pvc.metadata.resourceVersion ?? '')) return pending.flagged;
    this.pendingFlags.delete(key);
    return cached;
  }

  /** Spool PVCs of this MailRelay flagged unverified with an ordinal at or above `replicas` (outside the StatefulSet). */
  private flaggedSpools(mr: MailRelay, replicas: number): string[] {
    const prefix = `spool-${childNames(mr).statefulSet}`;
    return this.deps.caches.persistentVolumeClaims.list(mr.metadata.namespace ?? '')
      .filter((p) => this.isFlagged(p) && (ordinalOf(p.metadata.name, prefix) ?? -1) >= replicas)
      .map((p) => p.metadata.name)
      .sort();
  }

  private async annotateClaim(pvc: KubeObject, value: string | null): Promise<void> {
    const { name, namespace = '' } = pvc.metadata;
    await this.deps.clients.core.patchNamespacedPersistentVolumeClaim(
      { name, namespace, body: { metadata: { annotations: { [SPOOL_STATE_ANNOTATION]: value } } } },
      MERGE_PATCH,
    );
    this.pendingFlags.set(objectKey(pvc), { flagged: value !== null, before: pvc.metadata.resourceVersion ?? '' });
  }

  /**
   * Writes status through the status subresource when it differs from what the MailRelay
   * shows. A PUT carries the resourceVersion; on a conflict the MailRelay is read afresh
   * and, if its spec did not change meanwhile, the write is tried once more.
   */
  private async writeStatus(mr: MailRelay, obs: Parameters<typeof buildStatus>[1], signal?: AbortSignal): Promise<MailRelayStatus> {
    const key = objectKey(mr);
    let current = mr;
    for (let attempt = 0; ; attempt++) {
      const status = buildStatus(current, obs);
      const json = canonicalJson(status);
      if (json === canonicalJson(current.status ?? {})) return status;
      const last = this.written.get(key);
      if (last && last.before === current.metadata.resourceVersion && last.status === json) return status;
      this.deps.log?.debug({ key: objectKey(mr), from: current.status, to: status }, 'status changed');
      signal?.throwIfAborted();
      try {
        await this.deps.clients.custom.replaceNamespacedCustomObjectStatus({
          group: GROUP, version: VERSION, plural: PLURAL, namespace: mr.metadata.namespace ?? '', name: mr.metadata.name,
          body: { ...current, apiVersion: API_VERSION, kind: KIND, status },
        });
        this.written.set(key, { before: current.metadata.resourceVersion ?? '', status: json });
        return status;
      } catch (err) {
        if (!isApiError(err, 409) || attempt > 0) throw err;
        const fresh = await this.deps.clients.raw.getRaw(RESOURCES.MailRelay, mr.metadata.namespace ?? '', mr.metadata.name) as unknown as MailRelay | undefined;
        if (!fresh || fresh.metadata.generation !== mr.metadata.generation) throw new SpecChangedError('the MailRelay changed during the reconcile');
        current = fresh;
      }
    }
  }
}
