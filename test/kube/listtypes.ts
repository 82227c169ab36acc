// How each list in an object merges: atomic (replaced whole), set (of scalars) or map
// (items identified by key fields). Built-in kinds use the well-known merge keys of
// their Go types; custom resources follow x-kubernetes-list-type in the CRD schema.
import { getPath, isObj } from './types.ts';
import type { Obj } from './types.ts';

/** How a list merges. `keys` may be dotted ("metadata.name"); `defaults` fill absent key fields. */
export type ListType =
  | { type: 'atomic' }
  | { type: 'set' }
  | { type: 'map'; keys: string[]; defaults?: Record<string, unknown> };

/**
 * Decides the list type of the list at `path`: field names from the object root,
 * with '[]' for each step into a list item (e.g. spec.template.spec.containers[].ports).
 */
export type ListTypeResolver = (path: readonly string[]) => ListType;

const ATOMIC: ListType = { type: 'atomic' };
const BY_NAME: ListType = { type: 'map', keys: ['name'] };
const CONTAINER_LISTS = new Set(['containers', 'initContainers', 'ephemeralContainers']);

/** The merge keys of built-in Kubernetes types, by field name and context. */
export const builtinListType: ListTypeResolver = (path) => {
  const name = path[path.length - 1] ?? '';
  if (path.length === 2 && path[0] === 'metadata') {
    if (name === 'ownerReferences') return { type: 'map', keys: ['uid'] };
    if (name === 'finalizers') return { type: 'set' };
    return ATOMIC;
  }
  switch (name) {
    case 'containers': case 'initContainers': case 'ephemeralContainers':
    case 'volumes': case 'env': case 'imagePullSecrets': case 'resourceClaims':
      return BY_NAME;
    case 'volumeClaimTemplates':
      return { type: 'map', keys: ['metadata.name'] };
    case 'ports':
      return path.some((p) => CONTAINER_LISTS.has(p))
        ? { type: 'map', keys: ['containerPort', 'protocol'], defaults: { protocol: 'TCP' } }
        : { type: 'map', keys: ['port', 'protocol'], defaults: { protocol: 'TCP' } };
    case 'volumeMounts': return { type: 'map', keys: ['mountPath'] };
    case 'volumeDevices': return { type: 'map', keys: ['devicePath'] };
    case 'conditions': return { type: 'map', keys: ['type'] };
    case 'hostAliases': return { type: 'map', keys: ['ip'] };
    case 'topologySpreadConstraints': return { type: 'map', keys: ['topologyKey', 'whenUnsatisfiable'] };
    default: return ATOMIC;
  }
};

/** Finds the schema node at a resolver path ('[]' steps into items). */
export function schemaAt(schema: Obj | undefined, path: readonly string[]): Obj | undefined {
  let cur: Obj | undefined = schema;
  for (const step of path) {
    if (!cur) return undefined;
    if (step === '[]') {
      cur = isObj(cur.items) ? cur.items : undefined;
    } else {
      const props = isObj(cur.properties) ? cur.properties : undefined;
      const p = props?.[step];
      if (isObj(p)) cur = p;
      else if (isObj(cur.additionalProperties)) cur = cur.additionalProperties;
      else return undefined;
    }
  }
  return cur;
}

/** A resolver reading x-kubernetes-list-type / x-kubernetes-list-map-keys from a CRD openAPIV3Schema. */
export function schemaListType(schema: Obj | undefined): ListTypeResolver {
  return (path) => {
    if (path.length === 2 && path[0] === 'metadata') return builtinListType(path);
    const node = schemaAt(schema, path);
    if (!node) return ATOMIC;
    const lt = node['x-kubernetes-list-type'];
    if (lt === 'set') return { type: 'set' };
    if (lt === 'map' && Array.isArray(node['x-kubernetes-list-map-keys'])) {
      const keys = node['x-kubernetes-list-map-keys'].map(String);
      const defaults: Record<string, unknown> = {};
      const itemProps = isObj(node.items) && isObj(node.items.properties) ? node.items.properties : {};
      for (const k of keys) {
        const p = itemProps[k];
        if (isObj(p) && p.default !== undefined) defaults[k] = p.default;
      }
      return { type: 'map', keys, defaults };
    }
    return ATOMIC;
  };
}

/** The key of a map-list item as a canonical JSON object string, or undefined if a key field is missing. */
export function itemKey(item: unknown, lt: Extract<ListType, { type: 'map' }>): string | undefined {
  if (!isObj(item)) return undefined;
  const key: Record<string, unknown> = {};
  for (const k of [...lt.keys].sort()) {
    let v = k.includes('.') ? getPath(item, k) : item[k];
    if (v === undefined) v = lt.defaults?.[k];
    if (v === undefined) return undefined;
    key[k] = v;
  }
  return JSON.stringify(key);
}
