// Shared shapes and small JSON helpers for the test Kubernetes API server.
import { randomUUID } from 'node:crypto';

/** A decoded JSON object (a Kubernetes object, a patch, a schema node). */
export type Obj = Record<string, unknown>;

/** metadata.ownerReferences[] as the API server stores it. */
export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

/** metadata.managedFields[] as the API server stores it. */
export interface ManagedFieldsEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion: string;
  time?: string;
  fieldsType: 'FieldsV1';
  fieldsV1: Obj;
  subresource?: string;
}

/** ObjectMeta, with the fields this server reads or writes typed. */
export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
  managedFields?: ManagedFieldsEntry[];
  [key: string]: unknown;
}

/** Any Kubernetes object. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [key: string]: unknown;
}

/** One recorded API request, in RBAC terms, so tests can check a Role covers it. */
export interface RequestLogEntry {
  /** RBAC verb: get, list, watch, create, update, patch, delete, deletecollection. */
  verb: string;
  /** API group, '' for core. */
  group: string;
  version: string;
  /** Plural resource; '' for non-resource URLs such as discovery. */
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  /** Set for non-resource requests (discovery, /version): the URL path. */
  nonResourceURL?: string;
  method: string;
  path: string;
  /** HTTP status code sent (for watches: the initial 200). */
  code: number;
  /** fieldManager query parameter, when sent. */
  fieldManager?: string;
  /** Content-Type of a PATCH. */
  patchType?: string;
  userAgent?: string;
  /** Set on an extra entry for an authorization check a request caused beyond its own verb (see http.ts authorizeSideEffects). */
  authorizedFor?: 'patch-creates' | 'owner-references-changed';
}

/** True for a plain JSON object (not an array, not null). */
export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Deep copy of a JSON value. */
export function clone<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T);
}

/** Structural equality of two JSON values (key order ignored). */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => deepEqual(x, b[i]));
  }
  if (isObj(a)) {
    if (!isObj(b)) return false;
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    if (ka.length !== kb.length) return false;
    return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

/** RFC 3339 timestamp with second precision, as metav1.Time serialises. */
export function nowTimestamp(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** A fresh object UID. */
export function newUid(): string {
  return randomUUID();
}

/** Reads a dotted path ("spec.replicas", leading dot allowed) from an object. */
export function getPath(obj: unknown, path: string): unknown {
  let cur: unknown = obj;
  for (const part of path.replace(/^\./, '').split('.')) {
    if (part === '') continue;
    if (!isObj(cur)) return undefined;
    cur = cur[part];
  }
  return cur;
}

/** Writes a dotted path, creating intermediate objects. */
export function setPath(obj: Obj, path: string, value: unknown): void {
  const parts = path.replace(/^\./, '').split('.').filter((p) => p !== '');
  let cur: Obj = obj;
  for (const part of parts.slice(0, -1)) {
    const next = cur[part];
    if (!isObj(next)) cur[part] = {};
    cur = cur[part] as Obj;
  }
  const last = parts[parts.length - 1];
  if (last !== undefined) cur[last] = value;
}

/** Splits "apps/v1" into group and version ("v1" is the core group ""). */
export function splitApiVersion(apiVersion: string): { group: string; version: string } {
  const i = apiVersion.indexOf('/');
  return i < 0 ? { group: '', version: apiVersion } : { group: apiVersion.slice(0, i), version: apiVersion.slice(i + 1) };
}

/** Joins group and version into an apiVersion string. */
export function apiVersionOf(group: string, version: string): string {
  return group === '' ? version : `${group}/${version}`;
}
