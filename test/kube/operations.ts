// The API server's object semantics, independent of HTTP: create, read, list,
// replace, the patch formats and server-side apply, delete with finalizers and
// propagation, status and scale subresources, generation, managedFields, no-op
// detection, CRD-driven serving, namespace lifecycle and garbage collection.
import { ApplyConflictError, apply, managedFieldsFromOwners, ownersEqual, ownersFromManagedFields, recordUpdate } from './apply.ts';
import type { FieldOwner } from './apply.ts';
import { IpAllocator, defaultBuiltin } from './defaults.ts';
import { canonicalizeBuiltin } from './canonical.ts';
import { PatchError, jsonPatch, mergePatch, strategicMergePatch } from './patch.ts';
import { Registry } from './registry.ts';
import type { ResourceType } from './registry.ts';
import { labelSelectorToString, matchFields, matchLabels, parseFieldSelector, parseLabelSelector } from './selectors.ts';
import type { FieldRequirement, LabelRequirement } from './selectors.ts';
import {
  ApiError, alreadyExists, badRequest, conflict, deletedStatus, failure, forbidden, invalid, notFound, staleConflict, unsupportedMediaType,
} from './status.ts';
import type { Status, StatusCause } from './status.ts';
import { Store, grKey } from './store.ts';
import { apiVersionOf, clone, deepEqual, getPath, isObj, newUid, nowTimestamp, setPath } from './types.ts';
import type { KubeObject, Obj, OwnerReference } from './types.ts';
import { validateBuiltin, validateCustomResource, validateMeta } from './validation.ts';
import { parse as parseYaml } from 'yaml';

/** Options of one write request. */
export interface WriteOptions {
  dryRun?: boolean;
  /** fieldManager query parameter. */
  fieldManager?: string;
  /** User-Agent, the default manager name for non-apply writes. */
  userAgent?: string;
  /** fieldValidation: Ignore, Warn (default) or Strict. */
  fieldValidation?: string;
  /** force query parameter as sent ('true'/'false'), undefined when absent. */
  force?: string;
}

/** What a write answers: the object (or Status), HTTP code and Warning texts. */
export interface WriteResult {
  object: KubeObject | Status | Obj;
  code: number;
  warnings: string[];
}

/** Query of a list or watch. */
export interface ListQuery {
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
}

/** Options of a delete. */
export interface DeleteOptions {
  propagationPolicy?: string;
  orphanDependents?: boolean;
  preconditions?: { resourceVersion?: string; uid?: string };
  dryRun?: boolean;
}

/** Parsed selectors, ready to match objects. */
export interface Selectors {
  labels: LabelRequirement[];
  fields: FieldRequirement[];
}

const APPLY = 'application/apply-patch+yaml';
const MERGE = 'application/merge-patch+json';
const JSONPATCH = 'application/json-patch+json';
const STRATEGIC = 'application/strategic-merge-patch+json';
const SUFFIX = 'bcdfghjklmnpqrstvwxz2456789';

const DEFAULT_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease'];

function patchOptionsInvalid(field: string, reason: string, message: string): ApiError {
  const e = invalid('meta.k8s.io', 'PatchOptions', '', [{ reason, message, field }]);
  return e;
}

/** Object semantics of the API server over a Store and a Registry. */
export class ApiCore {
  readonly store: Store;
  readonly registry = new Registry();
  private readonly ips = new IpAllocator();
  private gcScheduled = false;
  private readonly gcEnabled: boolean;
  /** Called when a CRD stops being served (watches on its resources end). */
  onResourceRemoved: (group: string, plural: string) => void = () => {};

  /** `historySize` bounds the watch window; `gc` turns the garbage collector on. */
  constructor(opts: { historySize?: number; gc?: boolean } = {}) {
    this.store = new Store(opts.historySize ?? 1000);
    this.gcEnabled = opts.gc ?? true;
    const nsType = this.builtin('', 'namespaces');
    for (const name of DEFAULT_NAMESPACES) this.create(nsType, undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name } }, { fieldManager: 'kube-apiserver' });
  }

  /** The built-in resource type for group/plural. */
  builtin(group: string, plural: string): ResourceType {
    const rt = this.registry.findAnyVersion(group, plural);
    if (!rt) throw new Error(`no resource ${group}/${plural}`);
    return rt;
  }

  /** The object as served at rt's version (apiVersion/kind set). */
  present(rt: ResourceType, obj: KubeObject): KubeObject {
    const { apiVersion: _a, kind: _k, metadata, ...rest } = clone(obj);
    return { apiVersion: apiVersionOf(rt.group, rt.version), kind: rt.kind, metadata, ...rest };
  }

  private gr(rt: ResourceType): string {
    return grKey(rt.group, rt.plural);
  }

  /** GET one object. */
  get(rt: ResourceType, ns: string | undefined, name: string): KubeObject {
    const o = this.store.get(this.gr(rt), rt.namespaced ? ns : undefined, name);
    if (!o) throw notFound(rt.group, rt.plural, name);
    return this.present(rt, o);
  }

  /** Parses label/field selectors for rt (400 on bad syntax or unsupported field labels). */
  selectors(rt: ResourceType, q: ListQuery): Selectors {
    return {
      labels: q.labelSelector ? parseLabelSelector(q.labelSelector) : [],
      fields: q.fieldSelector ? parseFieldSelector(q.fieldSelector, rt.fieldSelectors) : [],
    };
  }

  /** True when an object matches the selectors. */
  matches(sel: Selectors, obj: KubeObject): boolean {
    return matchLabels(sel.labels, obj.metadata.labels) && matchFields(sel.fields, obj);
  }

  /** GET a collection (one namespace or all), with selectors and limit/continue paging. */
  list(rt: ResourceType, ns: string | undefined, q: ListQuery): Obj {
    const sel = this.selectors(rt, q);
    let items = this.store.list(this.gr(rt), rt.namespaced ? ns : undefined).filter((o) => this.matches(sel, o));
    const meta: Obj = { resourceVersion: String(this.store.currentRevision) };
    if (q.continue) {
      let after: string;
      try { after = String((JSON.parse(Buffer.from(q.continue, 'base64url').toString()) as { k: string }).k); } catch {
        throw badRequest('continue key is not valid: illegal base64 data');
      }
      items = items.filter((o) => `${o.metadata.namespace ?? ''}/${o.metadata.name ?? ''}` > after);
    }
    if (q.limit !== undefined && q.limit > 0 && items.length > q.limit) {
      const remaining = items.length - q.limit;
      items = items.slice(0, q.limit);
      const last = items[items.length - 1];
      meta.continue = Buffer.from(JSON.stringify({ k: `${last?.metadata.namespace ?? ''}/${last?.metadata.name ?? ''}` })).toString('base64url');
      meta.remainingItemCount = remaining;
    }
    // Typed (built-in) lists carry no apiVersion/kind on items; unstructured (CR) lists do.
    const shown = items.map((o) => {
      const p = this.present(rt, o);
      if (!rt.builtin) return p;
      const { apiVersion: _a, kind: _k, ...rest } = p;
      return rest;
    });
    return { kind: rt.listKind, apiVersion: apiVersionOf(rt.group, rt.version), metadata: meta, items: shown };
  }

  // ------------------------------------------------------------------ create

  /** POST: creates an object (201), or 409 AlreadyExists / 422 Invalid / 404 namespace. */
  create(rt: ResourceType, ns: string | undefined, body: unknown, opts: WriteOptions, owners?: FieldOwner[]): WriteResult {
    if (!isObj(body)) throw badRequest('the object provided is unrecognized (must be of type ' + rt.kind + ')');
    const obj = clone(body) as KubeObject;
    if (!isObj(obj.metadata)) obj.metadata = {};
    this.checkTypeMeta(rt, obj);
    const m = obj.metadata;
    if (rt.namespaced) {
      if (m.namespace && ns && m.namespace !== ns) throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      m.namespace = ns ?? m.namespace;
      if (!m.namespace) throw badRequest('the server could not find the requested resource');
    } else {
      delete m.namespace;
    }
    if ((m.name ?? '') === '' && m.generateName) {
      let suffix = '';
      for (let i = 0; i < 5; i++) suffix += SUFFIX[Math.floor(Math.random() * SUFFIX.length)];
      m.name = `${m.generateName}${suffix}`;
    }
    if (m.resourceVersion) throw new ApiError(failure(500, 'InternalError', 'Internal error occurred: resourceVersion should not be set on objects to be created'));
    if (rt.namespaced) this.checkNamespaceWritable(rt, m.namespace ?? '', m.name ?? '');
    for (const k of ['uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generation', 'managedFields', 'selfLink']) delete m[k];
    if (rt.status) delete obj.status;
    m.uid = newUid();
    m.creationTimestamp = nowTimestamp();
    return this.finishWrite(rt, undefined, obj, '', opts, owners);
  }

  private checkTypeMeta(rt: ResourceType, obj: KubeObject): void {
    const want = apiVersionOf(rt.group, rt.version);
    if (obj.apiVersion !== undefined && obj.apiVersion !== '' && obj.apiVersion !== want) {
      throw badRequest(`the API version in the data (${obj.apiVersion}) does not match the expected API version (${want})`);
    }
    if (obj.kind !== undefined && obj.kind !== '' && obj.kind !== rt.kind) {
      throw badRequest(`the kind in the data (${obj.kind}) does not match the expected kind (${rt.kind})`);
    }
    obj.apiVersion = want;
    obj.kind = rt.kind;
  }

  private checkNamespaceWritable(rt: ResourceType, ns: string, name: string): void {
    const nsObj = this.store.get('/namespaces', undefined, ns);
    if (!nsObj) throw notFound('', 'namespaces', ns);
    if (nsObj.metadata.deletionTimestamp) {
      throw forbidden(rt.group, rt.plural, name, `unable to create new content in namespace ${ns} because it is being terminated`);
    }
  }

  private managerName(opts: WriteOptions): string {
    if (opts.fieldManager) return opts.fieldManager;
    const ua = opts.userAgent ?? 'unknown';
    return ua.split('/')[0] || 'unknown';
  }

  /**
   * The common tail of every write: status/metadata carry-over, defaults or pruning,
   * validation, generation, managedFields, no-op detection, finalizer completion, commit.
   */
  private finishWrite(rt: ResourceType, old: KubeObject | undefined, input: KubeObject, sub: string, opts: WriteOptions, applyOwners?: FieldOwner[]): WriteResult {
    const creating = old === undefined;
    let next = clone(input);
    const warnings: string[] = [];
    this.checkTypeMeta(rt, next);
    if (old) {
      if (sub === 'status') {
        // Only .status changes through /status.
        const status = next.status;
        next = clone(old);
        next.apiVersion = apiVersionOf(rt.group, rt.version);
        next.kind = rt.kind;
        if (status === undefined) delete next.status; else next.status = status;
      } else {
        const m = next.metadata;
        for (const k of ['uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'name', 'namespace', 'generation'] as const) {
          if (old.metadata[k] === undefined) delete m[k]; else m[k] = old.metadata[k] as never;
        }
        if (rt.status) { if (old.status === undefined) delete next.status; else next.status = clone(old.status); }
        const oldFin = new Set(old.metadata.finalizers ?? []);
        const added = (m.finalizers ?? []).filter((f) => !oldFin.has(f));
        if (old.metadata.deletionTimestamp && added.length > 0) {
          throw invalid(rt.group, rt.kind, m.name ?? '', [{ reason: 'FieldValueForbidden', field: 'metadata.finalizers', message: `Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{${added.map((f) => JSON.stringify(f)).join(', ')}}` }]);
        }
      }
    }
    const name = next.metadata.name ?? '';

    // Defaults and pruning, then validation.
    let causes: StatusCause[] = validateMeta(next, rt.nameRule);
    if (rt.builtin) {
      defaultBuiltin(rt.group, rt.kind, next, old, this.ips);
      canonicalizeBuiltin(next);
      if (causes.length === 0) causes = validateBuiltin(rt.group, rt.kind, next, old);
    } else {
      const check = validateCustomResource(next, rt.schema, old);
      if (causes.length === 0) causes = check.causes;
      if (check.unknownFields.length > 0) {
        if (opts.fieldValidation === 'Strict') {
          throw badRequest(`strict decoding error: ${check.unknownFields.map((f) => `unknown field "${f}"`).join(', ')}`);
        }
        if (opts.fieldValidation !== 'Ignore') for (const f of check.unknownFields) warnings.push(`unknown field "${f}"`);
      }
    }
    if (causes.length > 0) throw invalid(rt.group, rt.kind, name, causes);
    if (rt.group === 'apiextensions.k8s.io' && rt.plural === 'customresourcedefinitions') this.crdStatus(next, old);

    // generation: bumps when anything but metadata (and status, with a status subresource) changes.
    if (creating) next.metadata.generation = 1;
    else {
      const body = (o: KubeObject) => {
        const { metadata: _m, apiVersion: _a, kind: _k, ...rest } = o;
        if (rt.status) delete rest.status;
        return rest;
      };
      next.metadata.generation = (old.metadata.generation ?? 1) + (deepEqual(body(old), body(next)) ? 0 : 1);
    }

    // managedFields
    const oldOwners = ownersFromManagedFields(old?.metadata.managedFields);
    const owners = applyOwners ?? recordUpdate(oldOwners, this.managerName(opts), sub, apiVersionOf(rt.group, rt.version),
      old ? this.withoutManaged(old) : {}, this.withoutManaged(next), rt.listType);
    if (owners.length > 0) next.metadata.managedFields = managedFieldsFromOwners(owners);
    else delete next.metadata.managedFields;

    const gr = this.gr(rt);
    if (old) {
      // Real API servers do not write no-ops: same object, same ownership → same resourceVersion.
      const a = this.withoutManaged(old);
      const b = this.withoutManaged(next);
      delete a.metadata.resourceVersion;
      delete b.metadata.resourceVersion;
      if (deepEqual(a, b) && ownersEqual(oldOwners, owners)) return { object: this.present(rt, old), code: 200, warnings };
      next.metadata.resourceVersion = old.metadata.resourceVersion;
      if (opts.dryRun) return { object: this.present(rt, next), code: 200, warnings };
      if (next.metadata.deletionTimestamp && (next.metadata.finalizers ?? []).length === 0) {
        const gone = this.store.remove(gr, next.metadata.namespace, name);
        if (gone) this.afterRemove(rt, gone);
        this.scheduleGc();
        return { object: this.present(rt, next), code: 200, warnings };
      }
      const stored = this.store.update(gr, next);
      this.afterWrite(rt, stored);
      return { object: this.present(rt, stored), code: 200, warnings };
    }
    if (this.store.get(gr, next.metadata.namespace, name)) throw alreadyExists(rt.group, rt.plural, name);
    if (opts.dryRun) return { object: this.present(rt, next), code: 201, warnings };
    const stored = this.store.create(gr, next);
    this.afterWrite(rt, stored);
    return { object: this.present(rt, stored), code: 201, warnings };
  }

  private withoutManaged(o: KubeObject): KubeObject {
    const c = clone(o);
    delete c.metadata.managedFields;
    return c;
  }

  private crdStatus(crd: KubeObject, old: KubeObject | undefined): void {
    const spec = isObj(crd.spec) ? crd.spec : {};
    const oldStatus = old && isObj(old.status) ? old.status : {};
    const storage = (Array.isArray(spec.versions) ? spec.versions.filter(isObj) : []).find((v) => v.storage === true);
    const stored = new Set<string>(Array.isArray(oldStatus.storedVersions) ? oldStatus.storedVersions.map(String) : []);
    if (storage) stored.add(String(storage.name));
    const prevConds = Array.isArray(oldStatus.conditions) ? oldStatus.conditions.filter(isObj) : [];
    const cond = (type: string, reason: string, message: string) => ({
      type, status: 'True', reason, message,
      lastTransitionTime: String(prevConds.find((c) => c.type === type)?.lastTransitionTime ?? nowTimestamp()),
    });
    crd.status = {
      acceptedNames: clone(spec.names),
      conditions: [cond('NamesAccepted', 'NoConflicts', 'no conflicts found'), cond('Established', 'InitialNamesAccepted', 'the initial names have been accepted')],
      storedVersions: [...stored],
    };
  }

  private afterWrite(rt: ResourceType, stored: KubeObject): void {
    if (rt.group === 'apiextensions.k8s.io' && rt.plural === 'customresourcedefinitions') this.registry.setCrd(stored);
    this.scheduleGc();
  }

  private afterRemove(rt: ResourceType, gone: KubeObject): void {
    if (rt.group === 'apiextensions.k8s.io' && rt.plural === 'customresourcedefinitions') {
      const spec = isObj(gone.spec) ? gone.spec : {};
      const group = String(spec.group ?? '');
      const plural = String(isObj(spec.names) ? spec.names.plural : '');
      const gr = grKey(group, plural);
      for (const o of this.store.list(gr)) this.store.remove(gr, o.metadata.namespace, o.metadata.name ?? '');
      this.registry.removeCrd(gone.metadata.name ?? '');
      this.onResourceRemoved(group, plural);
    }
  }

  // ------------------------------------------------------------------ update and patch

  /** PUT: replaces an object (or its status/scale). */
  replace(rt: ResourceType, ns: string | undefined, name: string, sub: string, body: unknown, opts: WriteOptions): WriteResult {
    const old = this.get(rt, ns, name);
    if (!isObj(body) || !isObj(body.metadata)) throw badRequest('the object provided is unrecognized: metadata is required');
    if (sub === 'scale') return this.writeScale(rt, old, body, opts);
    const obj = clone(body) as KubeObject;
    this.checkTypeMeta(rt, obj);
    if (obj.metadata.name !== name) throw badRequest(`the name of the object (${String(obj.metadata.name)}) does not match the name on the URL (${name})`);
    if (rt.namespaced && obj.metadata.namespace && obj.metadata.namespace !== ns) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    }
    const rv = obj.metadata.resourceVersion;
    if (!rv) {
      if (!rt.builtin) {
        throw invalid(rt.group, rt.kind, name, [{ reason: 'FieldValueInvalid', field: 'metadata.resourceVersion', message: 'Invalid value: 0x0: must be specified for an update' }]);
      }
    } else if (rv !== old.metadata.resourceVersion) {
      throw staleConflict(rt.group, rt.plural, name);
    }
    if (obj.metadata.uid && obj.metadata.uid !== old.metadata.uid) {
      throw conflict(rt.group, rt.plural, name, `Precondition failed: UID in precondition: ${obj.metadata.uid}, UID in object meta: ${String(old.metadata.uid)}`);
    }
    obj.metadata.managedFields = old.metadata.managedFields;
    return this.finishWrite(rt, old, obj, sub, opts);
  }

  /** PATCH in any of the four formats, on the object or its status/scale. */
  patch(rt: ResourceType, ns: string | undefined, name: string, sub: string, contentType: string, raw: string, opts: WriteOptions): WriteResult {
    const ct = contentType.split(';')[0]?.trim().toLowerCase() ?? '';
    if (ct === APPLY) return this.applyPatch(rt, ns, name, sub, raw, opts);
    if (opts.force !== undefined) throw patchOptionsInvalid('force', 'FieldValueForbidden', 'Forbidden: may not be specified for non-apply patch');
    if (![MERGE, JSONPATCH, STRATEGIC].includes(ct) || (ct === STRATEGIC && !rt.builtin)) {
      throw unsupportedMediaType(`the body of the request was in an unknown format - accepted media types include: ${rt.builtin ? `${JSONPATCH}, ${MERGE}, ${STRATEGIC}, ${APPLY}` : `${JSONPATCH}, ${MERGE}, ${APPLY}`}`);
    }
    let body: unknown;
    try { body = JSON.parse(raw); } catch (e) { throw badRequest(`error decoding patch: ${(e as Error).message}`); }
    const old = this.get(rt, ns, name);
    const base: unknown = sub === 'scale' ? this.scaleOf(rt, old) : old;
    let patched: unknown;
    try {
      if (ct === JSONPATCH) patched = jsonPatch(base, body);
      else if (ct === MERGE) { if (!isObj(body)) throw new PatchError('merge patch must be a JSON object', 400); patched = mergePatch(base, body); }
      else patched = strategicMergePatch(base, body, rt.listType);
    } catch (e) {
      if (e instanceof PatchError) {
        if (e.code === 400) throw badRequest(e.message);
        throw new ApiError(failure(422, 'Invalid', `the server rejected our request due to an error in our request: ${e.message}`));
      }
      throw e;
    }
    if (!isObj(patched) || !isObj(patched.metadata)) throw badRequest('the patched object is not a Kubernetes object');
    if (sub === 'scale') return this.writeScale(rt, old, patched, opts);
    const obj = patched as KubeObject;
    if (obj.metadata.resourceVersion && obj.metadata.resourceVersion !== old.metadata.resourceVersion) throw staleConflict(rt.group, rt.plural, name);
    if (obj.metadata.name !== name) throw badRequest(`the name of the object (${String(obj.metadata.name)}) does not match the name on the URL (${name})`);
    obj.metadata.managedFields = old.metadata.managedFields;
    return this.finishWrite(rt, old, obj, sub, opts);
  }

  private applyPatch(rt: ResourceType, ns: string | undefined, name: string, sub: string, raw: string, opts: WriteOptions): WriteResult {
    if (!opts.fieldManager) throw patchOptionsInvalid('fieldManager', 'FieldValueRequired', 'Required value: is required for apply patch');
    let body: unknown;
    try { body = parseYaml(raw); } catch (e) { throw badRequest(`error decoding YAML: ${(e as Error).message}`); }
    if (!isObj(body)) throw badRequest('the body of an apply patch must be an object');
    if (!body.apiVersion || !body.kind) throw badRequest(`Object 'Kind' is missing in '${raw.slice(0, 200)}'`);
    const applied = clone(body) as KubeObject;
    if (!isObj(applied.metadata)) applied.metadata = {};
    this.checkTypeMeta(rt, applied);
    const m = applied.metadata;
    if (m.name !== undefined && m.name !== name) throw badRequest(`the name of the object (${String(m.name)}) does not match the name on the URL (${name})`);
    if (rt.namespaced && m.namespace && m.namespace !== ns) throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    if (Array.isArray(m.managedFields) && m.managedFields.length > 0) throw badRequest('metadata.managedFields must be nil');
    m.name = name;
    if (rt.namespaced) m.namespace = ns; else delete m.namespace;
    const force = opts.force === 'true';
    const old = this.store.get(this.gr(rt), rt.namespaced ? ns : undefined, name);
    if (m.resourceVersion && m.resourceVersion !== old?.metadata.resourceVersion) throw staleConflict(rt.group, rt.plural, name);
    if (m.uid && old && m.uid !== old.metadata.uid) throw conflict(rt.group, rt.plural, name, `Precondition failed: UID in precondition: ${m.uid}, UID in object meta: ${String(old.metadata.uid)}`);
    for (const k of ['resourceVersion', 'uid', 'creationTimestamp', 'generation', 'managedFields', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'selfLink']) delete m[k];
    if (sub === 'scale') {
      if (!old) throw notFound(rt.group, rt.plural, name);
      const replicas = getPath(applied, 'spec.replicas');
      return this.writeScale(rt, this.present(rt, old), { ...this.scaleOf(rt, this.present(rt, old)), spec: { replicas } }, opts);
    }
    let config: KubeObject = applied;
    if (rt.status) {
      if (sub === 'status') {
        config = { apiVersion: applied.apiVersion, kind: applied.kind, metadata: { name, ...(rt.namespaced ? { namespace: ns } : {}) } };
        if (applied.status !== undefined) config.status = applied.status;
      } else {
        delete config.status;
      }
    }
    const apiVersion = apiVersionOf(rt.group, rt.version);
    const run = (live: KubeObject | undefined, owners: FieldOwner[]) => {
      try {
        return apply({ live: live, applied: config, owners, manager: opts.fieldManager ?? '', subresource: sub, apiVersion, force, resolve: rt.listType });
      } catch (e) {
        if (e instanceof ApplyConflictError) {
          throw new ApiError(failure(409, 'Conflict', e.message, {
            causes: e.conflicts.map((c) => ({ reason: 'FieldManagerConflict', message: `conflict with "${c.manager}" using ${c.apiVersion}`, field: c.field })),
          }));
        }
        throw e;
      }
    };
    if (!old) {
      if (sub !== '') throw notFound(rt.group, rt.plural, name);
      const out = run(undefined, []);
      return this.create(rt, ns, out.object, opts, out.owners);
    }
    const live = this.present(rt, old);
    delete live.metadata.managedFields;
    const out = run(live, ownersFromManagedFields(old.metadata.managedFields));
    return this.finishWrite(rt, this.present(rt, old), out.object as KubeObject, sub, opts, out.owners);
  }

  // ------------------------------------------------------------------ scale

  /** The autoscaling/v1 Scale view of a scalable object. */
  scaleOf(rt: ResourceType, obj: KubeObject): KubeObject {
    if (!rt.scale) throw notFound(rt.group, `${rt.plural}/scale`, obj.metadata.name ?? '');
    const status: Obj = { replicas: Number(getPath(obj, rt.scale.statusReplicasPath) ?? 0) };
    if (rt.scale.selectorFromSpec) status.selector = labelSelectorToString(getPath(obj, 'spec.selector'));
    else if (rt.scale.labelSelectorPath) {
      const sel = getPath(obj, rt.scale.labelSelectorPath);
      if (typeof sel === 'string') status.selector = sel;
    }
    const m = obj.metadata;
    return {
      kind: 'Scale', apiVersion: 'autoscaling/v1',
      metadata: { name: m.name, namespace: m.namespace, uid: m.uid, resourceVersion: m.resourceVersion, creationTimestamp: m.creationTimestamp },
      spec: { replicas: Number(getPath(obj, rt.scale.specReplicasPath) ?? 0) },
      status,
    };
  }

  private writeScale(rt: ResourceType, old: KubeObject, scale: Obj, opts: WriteOptions): WriteResult {
    if (!rt.scale) throw notFound(rt.group, `${rt.plural}/scale`, old.metadata.name ?? '');
    const meta = isObj(scale.metadata) ? scale.metadata : {};
    const name = old.metadata.name ?? '';
    if (meta.resourceVersion && meta.resourceVersion !== old.metadata.resourceVersion) throw staleConflict(rt.group, rt.plural, name);
    const replicas = isObj(scale.spec) ? scale.spec.replicas : undefined;
    if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0) {
      throw invalid('autoscaling', 'Scale', name, [{ reason: 'FieldValueInvalid', field: 'spec.replicas', message: `Invalid value: ${JSON.stringify(replicas ?? null)}: must be greater than or equal to 0` }]);
    }
    const next = clone(old);
    setPath(next, rt.scale.specReplicasPath, replicas);
    const res = this.finishWrite(rt, old, next, 'scale', opts);
    return { ...res, object: this.scaleOf(rt, res.object as KubeObject) };
  }

  // ------------------------------------------------------------------ delete and GC

  /** DELETE one object: immediate (Status), or pending on finalizers (the object). */
  delete(rt: ResourceType, ns: string | undefined, name: string, opts: DeleteOptions): WriteResult {
    const old = this.get(rt, ns, name);
    const pre = opts.preconditions;
    if (pre?.resourceVersion && pre.resourceVersion !== old.metadata.resourceVersion) {
      throw conflict(rt.group, rt.plural, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${String(old.metadata.resourceVersion)}`);
    }
    if (pre?.uid && pre.uid !== old.metadata.uid) {
      throw conflict(rt.group, rt.plural, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${String(old.metadata.uid)}`);
    }
    const policy = opts.propagationPolicy ?? (opts.orphanDependents === true ? 'Orphan' : opts.orphanDependents === false ? 'Background' : 'Background');
    if (!['Orphan', 'Background', 'Foreground'].includes(policy)) {
      throw invalid('meta.k8s.io', 'DeleteOptions', '', [{ reason: 'FieldValueNotSupported', field: 'propagationPolicy', message: `Unsupported value: ${JSON.stringify(policy)}: supported values: "Foreground", "Background", "Orphan", "nil"` }]);
    }
    if (opts.dryRun) return { object: this.present(rt, old), code: 200, warnings: [] };
    return this.deleteObject(rt, old, policy);
  }

  private dependentsOf(uid: string): Array<{ rt: ResourceType; obj: KubeObject }> {
    const out: Array<{ rt: ResourceType; obj: KubeObject }> = [];
    for (const gr of this.store.groupResources()) {
      const rt = this.rtOf(gr);
      if (!rt) continue;
      for (const o of this.store.list(gr)) if ((o.metadata.ownerReferences ?? []).some((r) => r.uid === uid)) out.push({ rt, obj: o });
    }
    return out;
  }

  private rtOf(gr: string): ResourceType | undefined {
    const i = gr.indexOf('/');
    return this.registry.findAnyVersion(gr.slice(0, i), gr.slice(i + 1));
  }

  private deleteObject(rt: ResourceType, old: KubeObject, policy: string): WriteResult {
    const gr = this.gr(rt);
    const name = old.metadata.name ?? '';
    const uid = old.metadata.uid ?? '';
    if (policy === 'Orphan') {
      for (const d of this.dependentsOf(uid)) {
        const next = clone(d.obj);
        next.metadata.ownerReferences = (next.metadata.ownerReferences ?? []).filter((r) => r.uid !== uid);
        if (next.metadata.ownerReferences.length === 0) delete next.metadata.ownerReferences;
        this.store.update(this.gr(d.rt), next);
      }
    }
    const isNamespace = rt.group === '' && rt.plural === 'namespaces';
    const finalizers = [...(old.metadata.finalizers ?? [])];
    const foreground = policy === 'Foreground' && this.dependentsOf(uid).length > 0;
    if (foreground && !finalizers.includes('foregroundDeletion')) finalizers.push('foregroundDeletion');
    if (isNamespace || finalizers.length > 0) {
      if (old.metadata.deletionTimestamp && deepEqual(finalizers, old.metadata.finalizers ?? [])) return { object: old, code: 200, warnings: [] };
      const next = clone(old);
      next.metadata.deletionTimestamp = old.metadata.deletionTimestamp ?? nowTimestamp();
      next.metadata.deletionGracePeriodSeconds = 0;
      if (finalizers.length > 0) next.metadata.finalizers = finalizers;
      if (!old.metadata.deletionTimestamp) next.metadata.generation = (old.metadata.generation ?? 1) + (isNamespace ? 0 : 1);
      if (isNamespace) next.status = { ...(isObj(next.status) ? next.status : {}), phase: 'Terminating' };
      const stored = this.store.update(gr, next);
      this.scheduleGc();
      return { object: this.present(rt, stored), code: 200, warnings: [] };
    }
    const gone = this.store.remove(gr, old.metadata.namespace, name);
    if (gone) this.afterRemove(rt, gone);
    this.scheduleGc();
    return { object: deletedStatus(rt.group, rt.plural, name, uid), code: 200, warnings: [] };
  }

  /** DELETE a collection (deletecollection): deletes every match; answers with the list of what it deleted. */
  deleteCollection(rt: ResourceType, ns: string | undefined, q: ListQuery, opts: DeleteOptions): WriteResult {
    const sel = this.selectors(rt, q);
    const victims = this.store.list(this.gr(rt), rt.namespaced ? ns : undefined).filter((o) => this.matches(sel, o));
    const items: KubeObject[] = [];
    for (const v of victims) {
      if (!opts.dryRun) this.deleteObject(rt, v, opts.propagationPolicy ?? 'Background');
      items.push(this.present(rt, v));
    }
    return { object: { kind: rt.listKind, apiVersion: apiVersionOf(rt.group, rt.version), metadata: { resourceVersion: String(this.store.currentRevision) }, items }, code: 200, warnings: [] };
  }

  /** Queues a garbage-collection pass (background cascading deletion, namespace cleanup). */
  scheduleGc(): void {
    if (!this.gcEnabled || this.gcScheduled) return;
    this.gcScheduled = true;
    setImmediate(() => {
      this.gcScheduled = false;
      this.gcPass();
    });
  }

  /** One garbage-collector pass over every object; queues another if it changed anything. */
  gcPass(): void {
    let changed = false;
    const uids = new Set<string>();
    const all: Array<{ rt: ResourceType; obj: KubeObject }> = [];
    for (const gr of this.store.groupResources()) {
      const rt = this.rtOf(gr);
      if (!rt) continue;
      for (const o of this.store.list(gr)) { all.push({ rt, obj: o }); if (o.metadata.uid) uids.add(o.metadata.uid); }
    }
    for (const { rt, obj } of all) {
      const cur = this.store.get(this.gr(rt), obj.metadata.namespace, obj.metadata.name ?? '');
      if (!cur || cur.metadata.uid !== obj.metadata.uid) continue;
      const m = cur.metadata;
      if (rt.group === '' && rt.plural === 'namespaces' && m.deletionTimestamp) {
        const contents = all.filter((x) => x.rt.namespaced && x.obj.metadata.namespace === m.name);
        const alive = contents.filter((x) => this.store.get(this.gr(x.rt), x.obj.metadata.namespace, x.obj.metadata.name ?? ''));
        for (const x of alive) {
          const live = this.store.get(this.gr(x.rt), x.obj.metadata.namespace, x.obj.metadata.name ?? '');
          if (live && !live.metadata.deletionTimestamp) { this.deleteObject(x.rt, live, 'Background'); changed = true; }
        }
        if (alive.length === 0) { this.store.remove(this.gr(rt), undefined, m.name ?? ''); changed = true; }
        continue;
      }
      if (m.deletionTimestamp && (m.finalizers ?? []).includes('foregroundDeletion')) {
        const deps = this.dependentsOf(m.uid ?? '');
        for (const d of deps) if (!d.obj.metadata.deletionTimestamp) { this.deleteObject(d.rt, d.obj, 'Foreground'); changed = true; }
        if (deps.length === 0) { this.removeFinalizer(rt, cur, 'foregroundDeletion'); changed = true; }
        continue;
      }
      const refs: OwnerReference[] = m.ownerReferences ?? [];
      if (refs.length > 0 && !m.deletionTimestamp) {
        const present = refs.filter((r) => uids.has(r.uid) && this.ownerStillThere(r));
        if (present.length === 0) { this.deleteObject(rt, cur, 'Background'); changed = true; }
        else if (present.length < refs.length) {
          const next = clone(cur);
          next.metadata.ownerReferences = present;
          this.store.update(this.gr(rt), next);
          changed = true;
        }
      }
    }
    if (changed) this.scheduleGc();
  }

  private ownerStillThere(ref: OwnerReference): boolean {
    for (const gr of this.store.groupResources()) {
      for (const o of this.store.list(gr)) if (o.metadata.uid === ref.uid) return true;
    }
    return false;
  }

  private removeFinalizer(rt: ResourceType, obj: KubeObject, finalizer: string): void {
    const next = clone(obj);
    next.metadata.finalizers = (next.metadata.finalizers ?? []).filter((f) => f !== finalizer);
    if (next.metadata.finalizers.length === 0) {
      const gone = this.store.remove(this.gr(rt), next.metadata.namespace, next.metadata.name ?? '');
      if (gone) this.afterRemove(rt, gone);
    } else {
      this.store.update(this.gr(rt), next);
    }
  }
}
