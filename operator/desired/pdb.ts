// The PodDisruptionBudget: node drains take at most maxUnavailable relays at a time.
// Unhealthy pods may always be evicted (AlwaysAllow): a crash-looping relay must not
// block a node drain, and its spool PVC survives the eviction anyway.
import type { V1PodDisruptionBudget } from '@kubernetes/client-node';
import type { MailRelayInputs } from '../api/inputs.ts';
import { withDefaults, type MailRelay } from '../api/mailrelay.ts';
import { selectorLabels } from './labels.ts';
import { childMeta, type KubeObject } from './meta.ts';
import { childNames } from './names.ts';

/** The PodDisruptionBudget, or undefined when spec.podDisruptionBudget.enabled is false. */
export function buildPodDisruptionBudget(mr: MailRelay, _inputs?: MailRelayInputs): (KubeObject & V1PodDisruptionBudget) | undefined {
  const pdb = withDefaults(mr.spec).podDisruptionBudget;
  if (!pdb.enabled) return undefined;
  return {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: childMeta(mr, childNames(mr).podDisruptionBudget),
    spec: {
      maxUnavailable: pdb.maxUnavailable,
      selector: { matchLabels: selectorLabels(mr) },
      unhealthyPodEvictionPolicy: 'AlwaysAllow',
    },
  };
}
