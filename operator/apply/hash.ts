// The applied-hash: one digest of everything the operator applies to a child, stored on
// the child as an annotation. Equal digest on the live object (plus the live object still
// holding every applied field, see compare.ts) means the PATCH would change nothing, so
// it is skipped: no write, no watch event, no wake-up of the StatefulSet controller.
import { createHash } from 'node:crypto';
import type { KubeObject } from '../desired/meta.ts';

/** Annotation carrying the sha256 of the applied object (without this annotation). */
export const APPLIED_HASH_ANNOTATION = 'mailrelay.io/applied-hash';

/** JSON with object keys sorted at every level, so equal objects give equal text whatever their key order. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

function withoutHashAnnotation(obj: KubeObject): KubeObject {
  const annotations = { ...(obj.metadata.annotations ?? {}) };
  delete annotations[APPLIED_HASH_ANNOTATION];
  const metadata = { ...obj.metadata };
  if (Object.keys(annotations).length > 0) metadata.annotations = annotations;
  else delete metadata.annotations;
  return { ...obj, metadata };
}

/** sha256 (hex) of the object as it would be applied, ignoring any applied-hash annotation it already carries. */
export function appliedHash(obj: KubeObject): string {
  return createHash('sha256').update(canonicalJson(withoutHashAnnotation(obj))).digest('hex');
}

/** A copy of the object with the applied-hash annotation set; the input is not modified. */
export function withAppliedHash(obj: KubeObject): KubeObject {
  const hash = appliedHash(obj);
  return { ...obj, metadata: { ...obj.metadata, annotations: { ...(obj.metadata.annotations ?? {}), [APPLIED_HASH_ANNOTATION]: hash } } };
}
