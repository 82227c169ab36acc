// Condition transitions, pure: (previous conditions, observations, now) -> conditions.
// lastTransitionTime moves only when a condition's status flips, as the Kubernetes API
// conventions require; reason, message and observedGeneration follow every reconcile.
// What Ready, Progressing and Degraded mean is written down in docs/crd.md.
import type { Condition, ValidationProblem } from '../api/mailrelay.ts';
import type { HealingProblem } from './healing.ts';

/** The condition types the operator owns. */
export type ConditionType = 'Ready' | 'Progressing' | 'Degraded';

/** Reasons of Ready. */
export type ReadyReason = 'ReplicasReady' | 'ReplicasNotReady' | 'ScaledToZero' | 'StatefulSetNotFound';
/** Reasons of Progressing. */
export type ProgressingReason = 'Complete' | 'Creating' | 'RollingUpdate' | 'Scaling' | 'DrainingForScaleDown' | 'InvalidSpec' | 'ApplyFailed';
/** Reasons of Degraded. */
export type DegradedReason = 'AsExpected' | 'InvalidSpec' | 'SecretNotFound' | 'ApplyFailed' | 'SpoolNotDrained' | 'ReplicasUnavailable' | HealingProblem['reason'];

/** The StatefulSet fields the conditions read (V1StatefulSet fits). */
export interface ObservedStatefulSet {
  metadata?: { generation?: number };
  spec?: { replicas?: number };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    readyReplicas?: number;
    updatedReplicas?: number;
    currentRevision?: string;
    updateRevision?: string;
  };
}

/** Everything the conditions are computed from. */
export interface ConditionObservations {
  /** metadata.generation of the MailRelay. */
  generation: number;
  /** validateMailRelay's result, or InvalidMailRelayError.problems from buildDesired. */
  problems: readonly ValidationProblem[];
  /** The error of the last apply of the children, if it failed. */
  applyError?: string;
  /** The StatefulSet as read back; undefined if it does not exist. */
  statefulSet?: ObservedStatefulSet;
  /** spec.replicas (defaulted). */
  desiredReplicas: number;
  /** spec.podDisruptionBudget.maxUnavailable (defaulted): Ready tolerates this many missing pods. */
  maxUnavailable: number;
  /** Ordinals the StatefulSet keeps only until they have drained (ScalePlan.status.drainingOrdinals). */
  drainingOrdinals?: readonly number[];
  /** Spool PVCs removed from the StatefulSet without proof they were empty (ADR 0003). */
  undrainedSpools?: readonly string[];
  /** What healing.ts found wrong with the pods and their spools (spool full or unwritable, PVC Pending, crash loop). */
  healing?: readonly HealingProblem[];
  /** How long Progressing may stay True with pods missing before Degraded says so (seconds, default 600). */
  progressDeadlineSeconds?: number;
  /** The clock. */
  now: Date;
}

type Next = Pick<Condition, 'type' | 'status' | 'reason' | 'message'>;

/** Conditions the operator owns, in the order they are listed. */
export const CONDITION_TYPES: readonly ConditionType[] = ['Ready', 'Progressing', 'Degraded'];

const MAX_MESSAGE = 32768;

/** RFC 3339 at second precision, as metav1.Time serializes. */
export function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * Merges one condition into a list: a new copy, lastTransitionTime kept unless the
 * status changed. Conditions of other types are kept as they are.
 */
export function setCondition(conditions: readonly Condition[], next: Next, generation: number, now: Date): Condition[] {
  const prev = conditions.find((c) => c.type === next.type);
  const message = next.message.length > MAX_MESSAGE ? `${next.message.slice(0, MAX_MESSAGE - 3)}...` : next.message;
  const merged: Condition = {
    type: next.type,
    status: next.status,
    observedGeneration: generation,
    lastTransitionTime: prev && prev.status === next.status ? prev.lastTransitionTime : rfc3339(now),
    reason: next.reason,
    message,
  };
  return prev ? conditions.map((c) => (c.type === next.type ? merged : { ...c })) : [...conditions.map((c) => ({ ...c })), merged];
}

function describeProblems(problems: readonly ValidationProblem[]): string {
  return problems.map((p) => `${p.field}: ${p.message}`).join('; ');
}

function readyCondition(obs: ConditionObservations): Next {
  const sts = obs.statefulSet;
  if (!sts) {
    const why = obs.problems.length > 0 ? 'the spec is invalid (see Degraded)' : obs.applyError ? 'applying it failed (see Degraded)' : 'it is being created';
    return { type: 'Ready', status: 'False', reason: 'StatefulSetNotFound', message: `no relay StatefulSet yet: ${why}` };
  }
  if (obs.desiredReplicas === 0) return { type: 'Ready', status: 'False', reason: 'ScaledToZero', message: 'spec.replicas is 0: no relay takes mail' };
  const ready = sts.status?.readyReplicas ?? 0;
  const needed = Math.max(1, obs.desiredReplicas - obs.maxUnavailable);
  const counts = `${ready}/${obs.desiredReplicas} relay pods ready`;
  return ready >= needed
    ? { type: 'Ready', status: 'True', reason: 'ReplicasReady', message: `${counts} (at least ${needed} needed)` }
    : { type: 'Ready', status: 'False', reason: 'ReplicasNotReady', message: `${counts}, fewer than the ${needed} the disruption budget allows` };
}

function progressingCondition(obs: ConditionObservations): Next {
  if (obs.problems.length > 0) return { type: 'Progressing', status: 'False', reason: 'InvalidSpec', message: 'changes are not applied until the spec is fixed (see Degraded); running relays are left as they are' };
  if (obs.applyError) return { type: 'Progressing', status: 'False', reason: 'ApplyFailed', message: 'applying the children failed (see Degraded)' };
  const sts = obs.statefulSet;
  if (!sts) return { type: 'Progressing', status: 'True', reason: 'Creating', message: 'creating the relay StatefulSet' };
  const st = sts.status ?? {};
  const specReplicas = sts.spec?.replicas ?? obs.desiredReplicas;
  if (obs.drainingOrdinals && obs.drainingOrdinals.length > 0) {
    return { type: 'Progressing', status: 'True', reason: 'DrainingForScaleDown', message: `waiting for pods ${obs.drainingOrdinals.join(', ')} to deliver their queues before removing them` };
  }
  if ((st.observedGeneration ?? 0) < (sts.metadata?.generation ?? 0) || (st.updateRevision !== undefined && st.currentRevision !== st.updateRevision) || (st.updatedReplicas ?? 0) < (st.replicas ?? 0)) {
    return { type: 'Progressing', status: 'True', reason: 'RollingUpdate', message: `${st.updatedReplicas ?? 0}/${st.replicas ?? 0} relay pods updated` };
  }
  if ((st.replicas ?? 0) !== specReplicas || (st.readyReplicas ?? 0) < specReplicas) {
    return { type: 'Progressing', status: 'True', reason: 'Scaling', message: `${st.readyReplicas ?? 0}/${specReplicas} relay pods ready` };
  }
  return { type: 'Progressing', status: 'False', reason: 'Complete', message: `${specReplicas} relay pods ready and up to date` };
}

function degradedCondition(obs: ConditionObservations, previous: readonly Condition[]): Next {
  const found: { reason: DegradedReason; message: string }[] = [];
  const secretProblems = obs.problems.filter((p) => p.reason === 'SecretNotFound' || p.reason === 'SecretKeyMissing');
  if (obs.problems.length > secretProblems.length) found.push({ reason: 'InvalidSpec', message: describeProblems(obs.problems) });
  else if (secretProblems.length > 0) found.push({ reason: 'SecretNotFound', message: describeProblems(secretProblems) });
  if (obs.applyError) found.push({ reason: 'ApplyFailed', message: obs.applyError });
  if (obs.undrainedSpools && obs.undrainedSpools.length > 0) {
    found.push({ reason: 'SpoolNotDrained', message: `PVCs ${obs.undrainedSpools.join(', ')} were removed from the StatefulSet without being drained and may hold mail: scale up to cover them, or check and delete them (docs/adr/0003)` });
  }
  for (const h of obs.healing ?? []) found.push(h);
  const progressing = previous.find((c) => c.type === 'Progressing');
  const deadline = (obs.progressDeadlineSeconds ?? 600) * 1000;
  const ready = obs.statefulSet?.status?.readyReplicas ?? 0;
  if (obs.statefulSet && progressing?.status === 'True' && progressing.reason !== 'DrainingForScaleDown' && ready < obs.desiredReplicas
    && obs.now.getTime() - Date.parse(progressing.lastTransitionTime) > deadline) {
    found.push({ reason: 'ReplicasUnavailable', message: `only ${ready}/${obs.desiredReplicas} relay pods ready after ${Math.round(deadline / 1000)}s; check the pods' events and logs` });
  }
  const [first, ...rest] = found;
  if (!first) return { type: 'Degraded', status: 'False', reason: 'AsExpected', message: 'no problems' };
  return { type: 'Degraded', status: 'True', reason: first.reason, message: [first.message, ...rest.map((r) => `also ${r.reason}: ${r.message}`)].join('; ') };
}

/**
 * The next conditions: Ready, Progressing and Degraded recomputed from the
 * observations, any other condition types carried over unchanged. Never modifies
 * `previous`.
 */
export function computeConditions(previous: readonly Condition[] | undefined, obs: ConditionObservations): Condition[] {
  const prev = previous ?? [];
  let out: Condition[] = prev.map((c) => ({ ...c }));
  for (const next of [readyCondition(obs), progressingCondition(obs), degradedCondition(obs, prev)]) {
    out = setCondition(out, next, obs.generation, obs.now);
  }
  const rank = (t: string) => {
    const i = CONDITION_TYPES.indexOf(t as ConditionType);
    return i < 0 ? CONDITION_TYPES.length : i;
  };
  return out.map((c, i) => ({ c, i })).sort((a, b) => rank(a.c.type) - rank(b.c.type) || a.i - b.i).map(({ c }) => c);
}
