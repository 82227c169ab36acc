// Metadata shared by every child: name, namespace, labels and the ownerReference that
// lets Kubernetes garbage-collect the children with their MailRelay.
import type { V1ObjectMeta, V1OwnerReference } from '@kubernetes/client-node';
import { API_VERSION, KIND, type MailRelay } from '../api/mailrelay.ts';
import { sortedKeys, standardLabels } from './labels.ts';

/** Any Kubernetes object the builders produce. */
export interface KubeObject {
  /** group/version. */
  apiVersion: string;
  /** Kind. */
  kind: string;
  /** Object metadata (name, namespace, labels, ownerReferences). */
  metadata: V1ObjectMeta & { name: string };
  /** The rest (spec, data, ...). */
  [field: string]: unknown;
}

/**
 * The ownerReference to the MailRelay: controller (so only this operator adopts the
 * child) and blockOwnerDeletion (foreground deletion waits for it). Undefined without a
 * uid: an ownerReference with a made-up uid would make the garbage collector delete the
 * child at once, so offline renders carry none.
 */
export function ownerReference(mr: Pick<MailRelay, 'metadata'>): V1OwnerReference | undefined {
  if (!mr.metadata.uid) return undefined;
  return { apiVersion: API_VERSION, kind: KIND, name: mr.metadata.name, uid: mr.metadata.uid, controller: true, blockOwnerDeletion: true };
}

/** Metadata of a child: the standard labels (plus extra), namespace and ownerReference. */
export function childMeta(
  mr: Pick<MailRelay, 'metadata'>,
  name: string,
  extra: { labels?: Readonly<Record<string, string>>; annotations?: Readonly<Record<string, string>> } = {},
): V1ObjectMeta & { name: string } {
  const meta: V1ObjectMeta & { name: string } = { name };
  if (mr.metadata.namespace) meta.namespace = mr.metadata.namespace;
  meta.labels = sortedKeys({ ...(extra.labels ?? {}), ...standardLabels(mr) });
  if (extra.annotations && Object.keys(extra.annotations).length > 0) meta.annotations = sortedKeys(extra.annotations);
  const owner = ownerReference(mr);
  if (owner) meta.ownerReferences = [owner];
  return meta;
}
