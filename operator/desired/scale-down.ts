// The scale-down plan (docs/adr/0003-scale-down-without-stranding-mail.md), as a pure
// function the controller calls each reconcile. spec.replicas is what the user (or an
// HPA, through the scale subresource) asks for; the StatefulSet only shrinks past an
// ordinal once that pod is draining and its spool is observed empty. Removing a pod is
// the one step that can strand mail, so it is the step that waits for proof.
import { parseDuration } from '../api/duration.ts';
import type { MailRelaySpecDefaulted } from '../api/mailrelay.ts';

/** What the controller observed of one relay pod that exists and is not terminating. */
export interface SpoolObservation {
  /** StatefulSet ordinal of the pod. */
  ordinal: number;
  /** Messages in its spool (sum of mailrelay_queue_messages over states); undefined when unknown (not scraped). */
  queuedMessages?: number;
  /** mailrelay_draining is 1: the relay refuses new mail and is delivering its queue. */
  draining: boolean;
}

/** status.scaleDown: a scale-down waiting for pods to drain. */
export interface ScaleDownStatus {
  /** When the wait began (RFC 3339); the timeout counts from here. */
  startedAt: string;
  /** Ordinals the StatefulSet keeps only until they are drained. */
  drainingOrdinals: number[];
  /** Messages still on those pods, when every one of them is known. */
  queuedMessages?: number;
}

/** What the controller should do now. */
export interface ScalePlan {
  /** replicas for the StatefulSet (inputs.statefulSetReplicas). */
  statefulSetReplicas: number;
  /** Ordinals to start draining (POST /drain, hold mode): above spec.replicas and not draining yet. */
  drain: number[];
  /** Ordinals to stop draining (DELETE /drain): draining but wanted again after a scale-up. */
  undrain: number[];
  /** Ordinals removed without proof of an empty spool (policy Immediate, or the timeout): flag their PVCs. */
  unverified: number[];
  /** status.scaleDown to write; undefined when no scale-down is waiting. */
  status?: ScaleDownStatus;
}

/** Inputs of planScaleDown. */
export interface ScalePlanInput {
  /** The replicas wanted now (spec.replicas, or the autoscaler's choice) and the defaulted scaleDown. */
  spec: { replicas: number } & Pick<MailRelaySpecDefaulted, 'scaleDown'>;
  /** StatefulSet spec.replicas now; undefined if it does not exist yet. */
  currentReplicas?: number;
  /** The relay pods (see SpoolObservation). */
  observations: readonly SpoolObservation[];
  /** status.scaleDown from the previous reconcile. */
  previous?: Pick<ScaleDownStatus, 'startedAt'>;
  /** The clock. */
  now: Date;
}

const rfc3339 = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');
const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);

/** Plans the StatefulSet's replicas so that no pod is removed while its spool may hold mail. */
export function planScaleDown(input: ScalePlanInput): ScalePlan {
  const target = input.spec.replicas;
  const current = input.currentReplicas ?? target;
  const obs = new Map(input.observations.map((o) => [o.ordinal, o]));
  const undrain = input.observations.filter((o) => o.draining && o.ordinal < target).map((o) => o.ordinal).sort((a, b) => a - b);
  const provenEmpty = (o: number) => obs.get(o)?.draining === true && obs.get(o)?.queuedMessages === 0;
  if (target >= current) return { statefulSetReplicas: target, drain: [], undrain, unverified: [] };
  if (input.spec.scaleDown.policy === 'Immediate') {
    return { statefulSetReplicas: target, drain: [], undrain, unverified: range(target, current).filter((o) => !provenEmpty(o)) };
  }
  // Pods go from the highest ordinal down; stop at the first one that may hold mail.
  let keep = current;
  while (keep > target && provenEmpty(keep - 1)) keep--;
  if (keep === target) return { statefulSetReplicas: target, drain: [], undrain, unverified: [] };
  const waiting = range(target, keep);
  const startedAt = input.previous?.startedAt ?? rfc3339(input.now);
  const timeout = input.spec.scaleDown.timeout === undefined ? undefined : parseDuration(input.spec.scaleDown.timeout);
  if (timeout !== undefined && timeout !== null && input.now.getTime() - Date.parse(startedAt) >= timeout * 1000) {
    return { statefulSetReplicas: target, drain: [], undrain, unverified: waiting.filter((o) => !provenEmpty(o)) };
  }
  const counts = waiting.map((o) => obs.get(o)?.queuedMessages);
  const status: ScaleDownStatus = { startedAt, drainingOrdinals: waiting };
  if (counts.every((c) => c !== undefined)) status.queuedMessages = counts.reduce((a: number, c) => a + (c ?? 0), 0);
  return {
    statefulSetReplicas: keep,
    drain: waiting.filter((o) => obs.get(o)?.draining !== true),
    undrain,
    unverified: [],
    status,
  };
}
