// The operator's autoscaler (spec.autoscaling.mode operator), as a pure function the
// reconcile calls with what it read from each relay pod's GET /status. Why it cannot
// flap is docs/adr/0009-autoscaling.md; in short:
//   - up:   the queued messages exceed targetQueuePerReplica x replicas (jump straight to
//           ceil(queued / target)), or the oldest queued message is older than
//           targetOldestAgeSeconds, or a spool is full or unwritable (one pod more each);
//           after scaleUpStabilizationSeconds of being above (0: at once);
//   - down: only when every pod answered, none is still joining or draining, and one pod
//           fewer would still sit at half the targets or less (a dead band between the
//           up and the down thresholds), for scaleDownStabilizationSeconds without a break;
//           one pod per window, and never while a scale-down is still draining (the pod
//           goes through the drain-and-hold path of ADR 0003, desired/scale-down.ts).
// Capacity is the replica count the autoscaler last chose, not the pods that answer: a
// pod that is still starting is counted, so the queue it has not yet taken does not buy
// a second scale-up for the same backlog.
import type { AutoscalingSpec } from '../api/schema.ts';
import type { RelayStatus } from '../../relay/status.ts';

/** Fraction of the targets that one pod fewer must stay within before a scale-down (the dead band). */
export const SCALE_DOWN_FRACTION = 0.5;

/** What the autoscaler read from one relay pod. */
export interface PodReading {
  /** StatefulSet ordinal. */
  ordinal: number;
  /** Its /status document; undefined when it could not be read (not running, no answer, an unknown version). */
  status?: RelayStatus;
}

/** The autoscaler's memory between reconciles, kept in status.autoscaling. */
export interface AutoscaleState {
  /** When it last changed the replicas (RFC 3339). */
  lastScaleTime?: string;
  /** Since when a target has been exceeded without a break. */
  aboveTargetSince?: string;
  /** Since when the queues have stayed within the scale-down band without a break. */
  belowTargetSince?: string;
  /**
   * Messages per second one pod was seen to deliver while it had a backlog (the highest such
   * reading): what a pod can carry. A scale-down must leave enough of them for the inflow.
   */
  podDeliveryRate?: number;
}

/** Inputs of decideReplicas. */
export interface AutoscaleInput {
  /** spec.autoscaling, defaulted. */
  spec: AutoscalingSpec;
  /** The replicas the autoscaler chose last (status.autoscaling.desiredReplicas), else the StatefulSet's, else minReplicas. */
  current: number;
  /** Readings of the relay pods that exist (any ordinal; those at or above `current` are draining away and ignored). */
  pods: readonly PodReading[];
  /** A scale-down is still waiting for pods to drain (status.scaleDown). */
  scaleDownInProgress: boolean;
  /** The previous decision's memory. */
  previous?: AutoscaleState;
  /** The clock. */
  now: Date;
}

/** Why the autoscaler chose what it chose (status.autoscaling.reason, the Event reason). */
export type AutoscaleReason =
  | 'BelowMinReplicas' | 'AboveMaxReplicas'
  | 'QueueAboveTarget' | 'OldestAboveTarget' | 'SpoolFull' | 'SpoolUnwritable'
  | 'AtMaxReplicas' | 'StabilizingUp'
  | 'QueueBelowTarget' | 'StabilizingDown'
  | 'PodsNotReporting' | 'ScaleDownInProgress' | 'InflowAboveCapacity' | 'WithinTarget';

/** The autoscaler's decision. */
export interface AutoscaleDecision {
  /** Replicas wanted now (the scale-down plan then removes pods only once drained). */
  replicas: number;
  reason: AutoscaleReason;
  /** The figures behind the decision, for status and the Event. */
  message: string;
  /** The memory to keep for the next reconcile. */
  state: AutoscaleState;
  /** True when `replicas` differs from `current`. */
  changed: boolean;
}

/** The queue figures of the pods that serve (ordinal below `current`, answering, not draining). */
export interface QueueFigures {
  /** Queued (due or in delivery) messages, summed. */
  queued: number;
  /** Deferred messages, summed (not a reason to scale: a retry waits for the destination, not for a pod). */
  deferred: number;
  /** Age of the oldest queued message on any serving pod, seconds; null when none. */
  oldestQueuedAgeSeconds: number | null;
  /** Serving pods (answered, not draining). */
  serving: number;
  /** Pods below `current` that did not answer or are still draining (joining after a hold). */
  notServing: number[];
  /** Messages accepted per second by the serving pods (their 60 s window), summed. */
  acceptedPerSecond: number;
  /** The highest delivery rate of a serving pod with a backlog (queued >= backlog), or null. */
  backloggedDeliveryRate: number | null;
  /** Serving pods whose spool is full / unwritable. */
  spoolFull: number[];
  spoolUnwritable: number[];
}

const rfc3339 = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');
const since = (t: string | undefined, now: Date) => (t === undefined ? 0 : (now.getTime() - Date.parse(t)) / 1000);

/** Sums the readings of the serving pods. Pure. */
export function queueFigures(current: number, pods: readonly PodReading[], backlog = Infinity): QueueFigures {
  const f: QueueFigures = { queued: 0, deferred: 0, oldestQueuedAgeSeconds: null, serving: 0, notServing: [], acceptedPerSecond: 0, backloggedDeliveryRate: null, spoolFull: [], spoolUnwritable: [] };
  const byOrdinal = new Map(pods.map((p) => [p.ordinal, p]));
  for (let o = 0; o < current; o++) {
    const s = byOrdinal.get(o)?.status;
    if (!s || s.draining) {
      f.notServing.push(o);
      continue;
    }
    f.serving++;
    f.queued += s.queue.queued;
    f.deferred += s.queue.deferred;
    f.acceptedPerSecond += s.delivery.acceptedPerSecond;
    if (s.queue.queued >= backlog) f.backloggedDeliveryRate = Math.max(f.backloggedDeliveryRate ?? 0, s.delivery.deliveredPerSecond);
    const age = s.queue.oldestQueuedAgeSeconds;
    if (age !== null && (f.oldestQueuedAgeSeconds === null || age > f.oldestQueuedAgeSeconds)) f.oldestQueuedAgeSeconds = age;
    if (s.spool.problem === 'full') f.spoolFull.push(o);
    if (s.spool.problem === 'unwritable') f.spoolUnwritable.push(o);
  }
  return f;
}

/** Decides the replicas (see the file comment). Pure; never returns a value outside [minReplicas, maxReplicas]. */
export function decideReplicas(input: AutoscaleInput): AutoscaleDecision {
  const { spec, now, previous = {} } = input;
  const { minReplicas: min, maxReplicas: max, targetQueuePerReplica: target, targetOldestAgeSeconds: oldestTarget } = spec;
  const current = input.current;
  const stamp = rfc3339(now);
  const scaled = (replicas: number, reason: AutoscaleReason, message: string): AutoscaleDecision =>
    ({ replicas, reason, message, state: { lastScaleTime: stamp }, changed: replicas !== current });
  if (current < min) return scaled(min, 'BelowMinReplicas', `${current} relay pods, below minReplicas ${min}`);
  if (current > max) return scaled(max, 'AboveMaxReplicas', `${current} relay pods, above maxReplicas ${max}`);

  // A pod with half a target's worth queued is delivering as fast as it can: its rate is a pod's capacity.
  const f = queueFigures(current, input.pods, Math.max(1, SCALE_DOWN_FRACTION * target));
  const podRate = Math.max(previous.podDeliveryRate ?? 0, f.backloggedDeliveryRate ?? 0) || undefined;
  const withRate = (d: AutoscaleDecision): AutoscaleDecision => (podRate === undefined ? d : { ...d, state: { ...d.state, podDeliveryRate: Math.round(podRate * 100) / 100 } });
  const oldest = f.oldestQueuedAgeSeconds;
  const figures = `${f.queued} queued (${f.deferred} deferred) on ${f.serving}/${current} serving pods, target ${target} per pod; oldest queued ${oldest === null ? 'none' : `${Math.round(oldest)} s`}, target ${oldestTarget} s`;
  const keep = (reason: AutoscaleReason, message: string, state: AutoscaleState): AutoscaleDecision => {
    const s: AutoscaleState = {};
    if (previous.lastScaleTime) s.lastScaleTime = previous.lastScaleTime;
    if (state.aboveTargetSince) s.aboveTargetSince = state.aboveTargetSince;
    if (state.belowTargetSince) s.belowTargetSince = state.belowTargetSince;
    return { replicas: current, reason, message, state: s, changed: false };
  };

  // Up. The queue target sizes the step (like an HPA's ceil(value / target)); the age and
  // spool signals say only "more", so they add one pod, and only once every pod already
  // chosen serves: until then the last step has not taken effect.
  let want = current;
  let reason: AutoscaleReason | undefined;
  if (f.queued > target * current) {
    want = Math.ceil(f.queued / target);
    reason = 'QueueAboveTarget';
  }
  const allServing = f.notServing.length === 0;
  const stepSignal: AutoscaleReason | undefined = f.spoolFull.length > 0 ? 'SpoolFull' : f.spoolUnwritable.length > 0 ? 'SpoolUnwritable'
    : oldest !== null && oldest > oldestTarget ? 'OldestAboveTarget' : undefined;
  if (stepSignal && reason === undefined) reason = stepSignal;
  if (stepSignal && allServing) want = Math.max(want, current + 1);
  if (reason !== undefined) {
    const detail = reason === 'SpoolFull' ? `; spool full on pods ${f.spoolFull.join(', ')}`
      : reason === 'SpoolUnwritable' ? `; spool unwritable on pods ${f.spoolUnwritable.join(', ')}` : '';
    const aboveSince = previous.aboveTargetSince ?? stamp;
    if (want <= current) return withRate(keep(reason, `${figures}${detail}; waiting for the ${f.notServing.length} pods not serving yet`, { aboveTargetSince: aboveSince }));
    if (current >= max) return withRate(keep('AtMaxReplicas', `${figures}${detail}; already at maxReplicas ${max}`, { aboveTargetSince: aboveSince }));
    const waited = since(aboveSince, now);
    if (waited < spec.scaleUpStabilizationSeconds) {
      return withRate(keep('StabilizingUp', `${figures}${detail}; above target for ${Math.floor(waited)} of ${spec.scaleUpStabilizationSeconds} s`, { aboveTargetSince: aboveSince }));
    }
    const to = Math.min(max, want);
    return withRate(scaled(to, reason, `${figures}${detail}; ${current} -> ${to} relay pods`));
  }

  // Down: one pod fewer must stay within the dead band, on complete information only.
  if (current <= min) return withRate(keep('WithinTarget', figures, {}));
  if (input.scaleDownInProgress) return withRate(keep('ScaleDownInProgress', `${figures}; a scale-down is still draining`, {}));
  if (!allServing) return withRate(keep('PodsNotReporting', `${figures}; pods ${f.notServing.join(', ')} not serving: no scale-down on partial figures`, {}));
  const fewer = current - 1;
  const fits = f.queued <= SCALE_DOWN_FRACTION * target * fewer && (oldest === null || oldest <= SCALE_DOWN_FRACTION * oldestTarget);
  if (!fits) return withRate(keep('WithinTarget', figures, {}));
  // A short queue on n pods says nothing about n - 1 while mail keeps arriving: the pods keep
  // it short. One pod fewer must carry the inflow at half of what a pod was seen to deliver.
  if (podRate !== undefined && f.acceptedPerSecond > SCALE_DOWN_FRACTION * podRate * fewer) {
    return withRate(keep('InflowAboveCapacity', `${figures}; ${Math.round(f.acceptedPerSecond)} messages/s arriving, more than half of what ${fewer} pods deliver (${Math.round(podRate)}/s each)`, {}));
  }
  const belowSince = previous.belowTargetSince ?? stamp;
  const waited = since(belowSince, now);
  if (waited < spec.scaleDownStabilizationSeconds) {
    return withRate(keep('StabilizingDown', `${figures}; ${fewer} pods would do for ${Math.floor(waited)} of ${spec.scaleDownStabilizationSeconds} s`, { belowTargetSince: belowSince }));
  }
  return withRate(scaled(fewer, 'QueueBelowTarget', `${figures}; ${current} -> ${fewer} relay pods (the removed pod drains first)`));
}
