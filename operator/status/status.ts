// The whole status subresource of a MailRelay, pure: what the controller writes back
// after each reconcile. Counts come from the StatefulSet, conditions from conditions.ts.
import { DEFAULT_REPLICAS, requestedReplicas, withDefaults, type MailRelay, type MailRelaySpecDefaulted, type MailRelayStatus } from '../api/mailrelay.ts';
import type { ScaleDownStatus } from '../desired/scale-down.ts';
import { selectorString } from '../desired/labels.ts';
import { computeConditions, type ConditionObservations } from './conditions.ts';

/** Observations for buildStatus; generation and the replica targets come from the MailRelay itself. */
export type StatusObservations = Omit<ConditionObservations, 'generation' | 'desiredReplicas' | 'maxUnavailable' | 'drainingOrdinals'> & {
  /** computeConfigHash of the applied children (omit when nothing was applied). */
  configHash?: string;
  /** ScalePlan.status, when a scale-down is waiting for pods to drain. */
  scaleDown?: ScaleDownStatus;
  /** The replicas aimed for (the autoscaler's choice); default requestedReplicas(spec). */
  desiredReplicas?: number;
  /** status.queue: the pods' queues, summed. */
  queue?: MailRelayStatus['queue'];
  /** status.autoscaling: the autoscaler's last decision (mode operator). */
  autoscaling?: MailRelayStatus['autoscaling'];
};

function defaultedOrNull(mr: MailRelay): MailRelaySpecDefaulted | null {
  try {
    return withDefaults(mr.spec);
  } catch {
    return null;
  }
}

/** The next status of the MailRelay (a new object; mr.status is only read). */
export function buildStatus(mr: MailRelay, obs: StatusObservations): MailRelayStatus {
  const spec = defaultedOrNull(mr);
  const generation = mr.metadata.generation ?? 0;
  const desiredReplicas = obs.desiredReplicas ?? (spec ? requestedReplicas(spec) : (typeof mr.spec?.replicas === 'number' ? mr.spec.replicas : DEFAULT_REPLICAS));
  const st = obs.statefulSet?.status;
  const status: MailRelayStatus = {
    observedGeneration: generation,
    replicas: st?.replicas ?? 0,
    readyReplicas: st?.readyReplicas ?? 0,
    updatedReplicas: st?.updatedReplicas ?? 0,
    desiredReplicas,
    selector: selectorString(mr),
    conditions: computeConditions(mr.status?.conditions, {
      ...obs,
      generation,
      desiredReplicas,
      maxUnavailable: spec?.podDisruptionBudget.maxUnavailable ?? 1,
      drainingOrdinals: obs.scaleDown?.drainingOrdinals ?? [],
    }),
  };
  // Keep the last applied hash while the spec is invalid: it still describes the running pods.
  const configHash = obs.configHash ?? mr.status?.configHash;
  if (configHash) status.configHash = configHash;
  const sh = spec?.delivery.smarthost;
  if (sh) status.smarthost = `${sh.host}:${sh.port}`;
  if (obs.queue) status.queue = structuredClone(obs.queue);
  if (obs.autoscaling) status.autoscaling = structuredClone(obs.autoscaling);
  if (obs.scaleDown) status.scaleDown = structuredClone(obs.scaleDown);
  return status;
}
