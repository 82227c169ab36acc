// Server-side apply, approximated honestly: field ownership per manager as sets of
// FieldsV1 paths, conflict detection against other managers, removal of fields a
// manager stopped applying, and a structural merge honouring list types. Also the
// ownership bookkeeping for ordinary updates (operation "Update"). Pure functions.
import { itemKey } from './listtypes.ts';
import type { ListType, ListTypeResolver } from './listtypes.ts';
import { clone, deepEqual, getPath, isObj, nowTimestamp } from './types.ts';
import type { ManagedFieldsEntry, Obj } from './types.ts';

/** A manager's ownership: one managedFields entry, with its fields as a set of encoded paths. */
export interface FieldOwner {
  manager: string;
  operation: 'Apply' | 'Update';
  subresource: string;
  apiVersion: string;
  time: string;
  /** Each element is JSON.stringify of a path like ["f:spec","f:replicas"] or [..., "k:{\"name\":\"a\"}", "."]. */
  fields: Set<string>;
}

/** One field another manager owns with a different value. */
export interface FieldConflict {
  manager: string;
  apiVersion: string;
  /** Human path, e.g. ".spec.template.spec.containers[name="app"].image". */
  field: string;
}

/** Thrown by apply() when conflicts exist and force is false. */
export class ApplyConflictError extends Error {
  /** Carries every conflict found. */
  constructor(readonly conflicts: FieldConflict[]) {
    super(formatConflicts(conflicts));
  }
}

/** The message the real server uses: 'Apply failed with N conflict(s): conflict with "m" using v: .path'. */
export function formatConflicts(conflicts: readonly FieldConflict[]): string {
  const byManager = new Map<string, FieldConflict[]>();
  for (const c of conflicts) {
    const k = `"${c.manager}" using ${c.apiVersion}`;
    byManager.set(k, [...(byManager.get(k) ?? []), c]);
  }
  const n = conflicts.length;
  const head = `Apply failed with ${n} conflict${n === 1 ? '' : 's'}: `;
  if (n === 1 && conflicts[0]) return `${head}conflict with "${conflicts[0].manager}" using ${conflicts[0].apiVersion}: ${conflicts[0].field}`;
  return head + [...byManager].map(([who, cs]) => `conflicts with ${who}:\n${cs.map((c) => `- ${c.field}`).join('\n')}`).join('\n');
}

const SYSTEM_META = new Set(['name', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp',
  'deletionTimestamp', 'deletionGracePeriodSeconds', 'managedFields', 'selfLink', 'generateName']);

/** Leaf paths of an object with their values; markers ('.') stand for keyed list items. */
export function fieldsOf(obj: unknown, resolve: ListTypeResolver): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (!isObj(obj)) return out;
  for (const [k, v] of Object.entries(obj)) {
    if (k === 'apiVersion' || k === 'kind' || v === undefined) continue;
    if (k === 'metadata' && isObj(v)) {
      for (const [mk, mv] of Object.entries(v)) {
        if (SYSTEM_META.has(mk) || mv === undefined) continue;
        walkValue(mv, ['metadata', mk], ['f:metadata', `f:${mk}`], resolve, out);
      }
      continue;
    }
    walkValue(v, [k], [`f:${k}`], resolve, out);
  }
  return out;
}

function walkValue(v: unknown, rpath: string[], prefix: string[], resolve: ListTypeResolver, out: Map<string, unknown>): void {
  if (isObj(v) && Object.keys(v).length > 0) {
    for (const [k, cv] of Object.entries(v)) {
      if (cv === undefined) continue;
      walkValue(cv, [...rpath, k], [...prefix, `f:${k}`], resolve, out);
    }
  } else if (Array.isArray(v)) {
    const lt = resolve(rpath);
    if (lt.type === 'map' && v.every((item) => itemKey(item, lt) !== undefined)) {
      for (const item of v) {
        const ep = [...prefix, `k:${itemKey(item, lt) ?? ''}`];
        out.set(JSON.stringify([...ep, '.']), true);
        walkValue(item, [...rpath, '[]'], ep, resolve, out);
      }
    } else if (lt.type === 'set' && v.every((item) => !isObj(item) && !Array.isArray(item))) {
      for (const item of v) out.set(JSON.stringify([...prefix, `v:${JSON.stringify(item)}`]), item);
    } else {
      out.set(JSON.stringify(prefix), v);
    }
  } else {
    out.set(JSON.stringify(prefix), v);
  }
}

/** Renders an encoded path the way SSA conflict messages do. */
export function humanPath(encoded: string): string {
  const els = JSON.parse(encoded) as string[];
  let s = '';
  for (const e of els) {
    if (e === '.') continue;
    if (e.startsWith('f:')) s += `.${e.slice(2)}`;
    else if (e.startsWith('k:')) {
      const key = JSON.parse(e.slice(2)) as Record<string, unknown>;
      s += `[${Object.entries(key).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}]`;
    } else if (e.startsWith('v:')) s += `[${e.slice(2)}]`;
    else if (e.startsWith('i:')) s += `[${e.slice(2)}]`;
  }
  return s;
}

/** Merges an applied configuration into a live object (maps recursively, lists by their list type). */
export function mergeApplied(live: unknown, applied: unknown, resolve: ListTypeResolver, rpath: string[] = []): unknown {
  if (isObj(applied)) {
    const out: Obj = isObj(live) ? clone(live) : {};
    for (const [k, v] of Object.entries(applied)) {
      if (v === undefined) continue;
      if (v === null) { delete out[k]; continue; }
      out[k] = mergeApplied(out[k], v, resolve, [...rpath, k]);
    }
    return out;
  }
  if (Array.isArray(applied)) {
    const lt = resolve(rpath);
    const cur = Array.isArray(live) ? live : [];
    if (lt.type === 'map' && applied.every((i) => itemKey(i, lt) !== undefined) && cur.every((i) => itemKey(i, lt) !== undefined)) {
      const out = cur.map((x) => clone(x));
      for (const item of applied) {
        const key = itemKey(item, lt);
        const idx = out.findIndex((x) => itemKey(x, lt) === key);
        if (idx >= 0) out[idx] = mergeApplied(out[idx], item, resolve, [...rpath, '[]']);
        else out.push(clone(item));
      }
      return out;
    }
    if (lt.type === 'set') {
      const out = cur.map((x) => clone(x));
      for (const item of applied) if (!out.some((x) => deepEqual(x, item))) out.push(clone(item));
      return out;
    }
    return clone(applied);
  }
  return applied;
}

/** Walks to the container holding the last element of an encoded path; undefined if absent. */
function locate(root: Obj, els: string[], resolve: ListTypeResolver):
  { parent: Obj | unknown[]; key: string | number; rpath: string[] } | undefined {
  let cur: unknown = root;
  const rpath: string[] = [];
  for (let i = 0; i < els.length; i++) {
    const e = els[i] ?? '';
    const last = i === els.length - 1;
    if (e.startsWith('f:')) {
      if (!isObj(cur)) return undefined;
      const name = e.slice(2);
      rpath.push(name);
      if (last) return { parent: cur, key: name, rpath };
      cur = cur[name];
    } else if (e.startsWith('k:') || e.startsWith('v:')) {
      if (!Array.isArray(cur)) return undefined;
      const lt: ListType = resolve(rpath);
      let idx: number;
      if (e.startsWith('k:') && lt.type === 'map') idx = cur.findIndex((item) => itemKey(item, lt) === e.slice(2));
      else if (e.startsWith('v:')) idx = cur.findIndex((item) => JSON.stringify(item) === e.slice(2));
      else return undefined;
      if (idx < 0) return undefined;
      rpath.push('[]');
      if (last) return { parent: cur, key: idx, rpath };
      if (els[i + 1] === '.') return { parent: cur, key: idx, rpath };
      cur = cur[idx];
    } else {
      return undefined;
    }
  }
  return undefined;
}

/** Removes the field or list item at an encoded path, then prunes maps this left empty. */
export function removeField(root: Obj, encoded: string, resolve: ListTypeResolver): void {
  const els = JSON.parse(encoded) as string[];
  const loc = locate(root, els, resolve);
  if (!loc) return;
  if (Array.isArray(loc.parent)) loc.parent.splice(loc.key as number, 1);
  else delete loc.parent[loc.key as string];
  // Prune now-empty parent maps (not top-level fields, which keep their {}).
  for (let n = els.length - 1; n >= 2; n--) {
    const prefix = els.slice(0, n);
    if (!prefix.every((x) => x.startsWith('f:'))) break;
    const v = getPath(root, prefix.map((x) => x.slice(2)).join('.'));
    if (isObj(v) && Object.keys(v).length === 0) {
      const p = locate(root, prefix, resolve);
      if (p && !Array.isArray(p.parent)) delete p.parent[p.key as string];
    } else {
      break;
    }
  }
}

/** Inputs of one apply. */
export interface ApplyInput {
  /** The live object, or undefined when the apply creates it. */
  live: Obj | undefined;
  /** The applied configuration, already limited to the fields this endpoint may set. */
  applied: Obj;
  owners: readonly FieldOwner[];
  manager: string;
  subresource: string;
  apiVersion: string;
  force: boolean;
  resolve: ListTypeResolver;
}

/** The merged object and the new ownership. */
export interface ApplyOutput {
  object: Obj;
  owners: FieldOwner[];
}

/** Runs one server-side apply; throws ApplyConflictError on conflicts unless force. */
export function apply(input: ApplyInput): ApplyOutput {
  const { resolve, manager, subresource } = input;
  const live = input.live ?? {};
  const appliedFields = fieldsOf(input.applied, resolve);
  const liveFields = fieldsOf(live, resolve);
  const owners = input.owners.map((o) => ({ ...o, fields: new Set(o.fields) }));
  const isMine = (o: FieldOwner) => o.manager === manager && o.operation === 'Apply' && o.subresource === subresource;

  const conflicts: FieldConflict[] = [];
  for (const o of owners) {
    if (isMine(o)) continue;
    for (const p of appliedFields.keys()) {
      if (!o.fields.has(p) || !liveFields.has(p)) continue;
      if (deepEqual(liveFields.get(p), appliedFields.get(p))) continue;
      if (input.force) o.fields.delete(p);
      else conflicts.push({ manager: o.manager, apiVersion: o.apiVersion, field: humanPath(p) });
    }
  }
  if (conflicts.length > 0) throw new ApplyConflictError(conflicts);

  // Fields this manager applied before but not now, owned by nobody else, are removed.
  const mine = owners.find(isMine);
  const othersOwn = (p: string) => owners.some((o) => !isMine(o) && o.fields.has(p));
  const result = clone(live);
  if (mine) {
    const gone = [...mine.fields].filter((p) => !appliedFields.has(p) && !othersOwn(p));
    // Deepest first, so items go after their own leaves.
    gone.sort((a, b) => (JSON.parse(b) as string[]).length - (JSON.parse(a) as string[]).length);
    for (const p of gone) {
      const els = JSON.parse(p) as string[];
      if (els[els.length - 1] === '.') {
        const itemPrefix = JSON.stringify(els.slice(0, -1)).slice(0, -1);
        const sharedItem = owners.some((o) => !isMine(o) && [...o.fields].some((f) => f.startsWith(itemPrefix)));
        if (sharedItem || appliedFields.has(p)) continue;
      }
      removeField(result, p, resolve);
    }
  }
  const merged = mergeApplied(result, input.applied, resolve) as Obj;

  const now = nowTimestamp();
  const newSet = new Set(appliedFields.keys());
  let next = owners.filter((o) => o.fields.size > 0 || isMine(o));
  if (mine) {
    next = next.map((o) => (isMine(o) ? { ...o, fields: newSet, apiVersion: input.apiVersion, time: setsEqual(o.fields, newSet) ? o.time : now } : o));
  } else {
    next.push({ manager, operation: 'Apply', subresource, apiVersion: input.apiVersion, time: now, fields: newSet });
  }
  next = next.filter((o) => o.fields.size > 0 || isMine(o));
  return { object: merged, owners: next };
}

/** Ownership after an ordinary write: the updater takes the fields it changed, others lose them. */
export function recordUpdate(owners: readonly FieldOwner[], manager: string, subresource: string, apiVersion: string,
  oldObj: unknown, newObj: unknown, resolve: ListTypeResolver): FieldOwner[] {
  const oldF = fieldsOf(oldObj, resolve);
  const newF = fieldsOf(newObj, resolve);
  const changed = new Set<string>();
  const removed = new Set<string>();
  for (const [p, v] of newF) if (!oldF.has(p) || !deepEqual(oldF.get(p), v)) changed.add(p);
  for (const p of oldF.keys()) if (!newF.has(p)) removed.add(p);
  const next = owners.map((o) => ({ ...o, fields: new Set(o.fields) }));
  for (const o of next) {
    for (const p of changed) o.fields.delete(p);
    for (const p of removed) o.fields.delete(p);
  }
  if (changed.size > 0) {
    const now = nowTimestamp();
    const mine = next.find((o) => o.manager === manager && o.operation === 'Update' && o.subresource === subresource);
    if (mine) { for (const p of changed) mine.fields.add(p); mine.time = now; mine.apiVersion = apiVersion; }
    else next.push({ manager, operation: 'Update', subresource, apiVersion, time: now, fields: changed });
  }
  return next.filter((o) => o.fields.size > 0);
}

function setsEqual(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  return a.size === b.size && [...a].every((x) => b.has(x));
}

/** True when two ownership lists are the same apart from timestamps. */
export function ownersEqual(a: readonly FieldOwner[], b: readonly FieldOwner[]): boolean {
  return a.length === b.length && a.every((o, i) => {
    const p = b[i];
    return p !== undefined && o.manager === p.manager && o.operation === p.operation && o.subresource === p.subresource
      && o.apiVersion === p.apiVersion && setsEqual(o.fields, p.fields);
  });
}

/** Decodes metadata.managedFields into owners. */
export function ownersFromManagedFields(entries: readonly ManagedFieldsEntry[] | undefined): FieldOwner[] {
  return (entries ?? []).map((e) => ({
    manager: e.manager,
    operation: e.operation,
    subresource: e.subresource ?? '',
    apiVersion: e.apiVersion,
    time: e.time ?? nowTimestamp(),
    fields: treeToPaths(e.fieldsV1),
  }));
}

/** Encodes owners as metadata.managedFields (FieldsV1 tries). */
export function managedFieldsFromOwners(owners: readonly FieldOwner[]): ManagedFieldsEntry[] {
  return owners.map((o) => {
    const e: ManagedFieldsEntry = { manager: o.manager, operation: o.operation, apiVersion: o.apiVersion, time: o.time, fieldsType: 'FieldsV1', fieldsV1: pathsToTree(o.fields) };
    if (o.subresource) e.subresource = o.subresource;
    return e;
  });
}

/** Builds a FieldsV1 trie from encoded paths. */
export function pathsToTree(paths: Iterable<string>): Obj {
  const root: Obj = {};
  for (const p of paths) {
    let node = root;
    for (const el of JSON.parse(p) as string[]) {
      if (!isObj(node[el])) node[el] = {};
      node = node[el] as Obj;
    }
  }
  return root;
}

/** Flattens a FieldsV1 trie into encoded paths (empty nodes are leaves, "." marks an item). */
export function treeToPaths(tree: unknown, prefix: string[] = [], out: Set<string> = new Set()): Set<string> {
  if (!isObj(tree)) return out;
  for (const [k, v] of Object.entries(tree)) {
    const p = [...prefix, k];
    if (isObj(v) && Object.keys(v).length > 0) treeToPaths(v, p, out);
    else out.add(JSON.stringify(p));
  }
  return out;
}
