// The labels every child carries, and the subset that selects the relay pods.
// The selector is immutable on a StatefulSet, so it holds only what never changes
// for an instance; `component` keeps room for other pods of the same instance.
import type { MailRelay } from '../api/mailrelay.ts';

/** Value of app.kubernetes.io/managed-by on every child. */
export const MANAGED_BY = 'mailrelay-operator';

/** Labels that select this MailRelay's relay pods (StatefulSet, Services, PDB, NetworkPolicy). */
export function selectorLabels(mr: Pick<MailRelay, 'metadata'>): Record<string, string> {
  return {
    'app.kubernetes.io/component': 'relay',
    'app.kubernetes.io/instance': mr.metadata.name,
    'app.kubernetes.io/name': 'mailrelay',
  };
}

/** The standard labels of every child: the selector labels plus managed-by and part-of. */
export function standardLabels(mr: Pick<MailRelay, 'metadata'>): Record<string, string> {
  return {
    ...selectorLabels(mr),
    'app.kubernetes.io/managed-by': MANAGED_BY,
    'app.kubernetes.io/part-of': 'mailrelay',
  };
}

/** The selector labels as a string label selector (status.selector, for the scale subresource and HPA). */
export function selectorString(mr: Pick<MailRelay, 'metadata'>): string {
  return Object.entries(selectorLabels(mr)).map(([k, v]) => `${k}=${v}`).join(',');
}

/** Returns a copy of the object with its keys sorted (labels and annotations are unordered; sorted output diffs cleanly). */
export function sortedKeys<V>(obj: Readonly<Record<string, V>>): Record<string, V> {
  return Object.fromEntries(Object.entries(obj).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
