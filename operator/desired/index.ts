// buildDesired: every child of a MailRelay, in the order the controller applies them.
// NetworkPolicy first, so pods never run unprotected; the ConfigMap and Services before
// the StatefulSet whose pods mount and join them; monitoring last.
import type { MailRelayInputs } from '../api/inputs.ts';
import { InvalidMailRelayError, validateMailRelay, type MailRelay } from '../api/mailrelay.ts';
import { buildConfigMap } from './configmap.ts';
import type { KubeObject } from './meta.ts';
import { buildNetworkPolicy } from './networkpolicy.ts';
import { buildPodDisruptionBudget } from './pdb.ts';
import { buildPrometheusRule } from './prometheusrule.ts';
import { buildClientService, buildHeadlessService } from './service.ts';
import { buildServiceMonitor } from './servicemonitor.ts';
import { buildStatefulSet } from './statefulset.ts';
import { buildScaledObject } from './scaledobject.ts';

export type { KubeObject } from './meta.ts';

/** Kinds in apply order (deletion goes the other way). */
export const APPLY_ORDER = ['NetworkPolicy', 'ConfigMap', 'Service', 'PodDisruptionBudget', 'StatefulSet', 'ServiceMonitor', 'PrometheusRule', 'ScaledObject'] as const;

/**
 * Every child of the MailRelay, each with a controller ownerReference (when the
 * MailRelay has a uid), in apply order. Throws InvalidMailRelayError listing every
 * problem if validateMailRelay finds any or the relay's config schema rejects the
 * rendered config. Pure: same inputs, same output; the input is never modified.
 */
export function buildDesired(mr: MailRelay, inputs: MailRelayInputs): KubeObject[] {
  const problems = validateMailRelay(mr, inputs);
  if (problems.length > 0) throw new InvalidMailRelayError(problems);
  const objects = [
    buildNetworkPolicy(mr, inputs),
    buildConfigMap(mr, inputs),
    buildHeadlessService(mr, inputs),
    buildClientService(mr, inputs),
    buildPodDisruptionBudget(mr, inputs),
    buildStatefulSet(mr, inputs),
    buildServiceMonitor(mr, inputs),
    buildPrometheusRule(mr, inputs),
    buildScaledObject(mr, inputs),
  ];
  return objects.filter((o): o is KubeObject => o !== undefined);
}
