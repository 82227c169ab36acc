// Which resources are served: the built-in table plus whatever the stored CRDs
// declare, and the discovery documents (/api, /apis, APIResourceList) built from it.
import { builtinListType, schemaListType } from './listtypes.ts';
import type { ListTypeResolver } from './listtypes.ts';
import type { NameRule } from './validation.ts';
import { apiVersionOf, isObj } from './types.ts';
import type { KubeObject, Obj } from './types.ts';

/** Where a scalable resource keeps its replica counts (paths as in a CRD: ".spec.replicas"). */
export interface ScaleSpec {
  specReplicasPath: string;
  statusReplicasPath: string;
  labelSelectorPath?: string;
  /** Built-in workloads: Scale.status.selector is spec.selector rendered as a string. */
  selectorFromSpec?: boolean;
}

/** One served resource at one group/version. */
export interface ResourceType {
  group: string;
  version: string;
  plural: string;
  singular: string;
  kind: string;
  listKind: string;
  namespaced: boolean;
  shortNames: string[];
  categories: string[];
  /** Has the /status subresource (main-resource writes ignore .status). */
  status: boolean;
  scale?: ScaleSpec;
  nameRule: NameRule;
  builtin: boolean;
  /** Field selector labels supported besides metadata.name/namespace. */
  fieldSelectors: string[];
  /** openAPIV3Schema of this version (custom resources). */
  schema?: Obj;
  /** metadata.name of the CRD that defines it. */
  crdName?: string;
  /** Version objects are stored at (custom resources: the CRD's storage version). */
  storageVersion: string;
  /** Verbs for discovery. */
  verbs: string[];
  /** How lists merge under apply and strategic merge patch. */
  listType: ListTypeResolver;
}

const ALL_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

function builtin(group: string, version: string, plural: string, kind: string, opts: Partial<ResourceType> = {}): ResourceType {
  return {
    group, version, plural, kind,
    singular: kind.toLowerCase(),
    listKind: `${kind}List`,
    namespaced: true,
    shortNames: [],
    categories: [],
    status: false,
    nameRule: 'subdomain',
    builtin: true,
    fieldSelectors: [],
    storageVersion: version,
    verbs: ALL_VERBS,
    listType: builtinListType,
    ...opts,
  };
}

const WORKLOAD_SCALE: ScaleSpec = { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', selectorFromSpec: true };

/** The built-in resources this server serves. */
export const BUILTIN_RESOURCES: readonly ResourceType[] = [
  builtin('', 'v1', 'namespaces', 'Namespace', { namespaced: false, shortNames: ['ns'], status: true, nameRule: 'label', fieldSelectors: ['status.phase'], verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'] }),
  builtin('', 'v1', 'configmaps', 'ConfigMap', { shortNames: ['cm'] }),
  builtin('', 'v1', 'secrets', 'Secret', { fieldSelectors: ['type'] }),
  builtin('', 'v1', 'services', 'Service', { shortNames: ['svc'], status: true, nameRule: 'dns1035', categories: ['all'], verbs: ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'] }),
  builtin('', 'v1', 'serviceaccounts', 'ServiceAccount', { shortNames: ['sa'] }),
  builtin('', 'v1', 'pods', 'Pod', { shortNames: ['po'], status: true, categories: ['all'], fieldSelectors: ['spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName', 'spec.serviceAccountName', 'spec.hostNetwork', 'status.phase', 'status.podIP', 'status.nominatedNodeName'] }),
  builtin('', 'v1', 'persistentvolumeclaims', 'PersistentVolumeClaim', { shortNames: ['pvc'], status: true }),
  builtin('', 'v1', 'events', 'Event', { shortNames: ['ev'], fieldSelectors: ['involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name', 'involvedObject.uid', 'involvedObject.apiVersion', 'involvedObject.resourceVersion', 'involvedObject.fieldPath', 'reason', 'reportingComponent', 'source', 'type'] }),
  builtin('apps', 'v1', 'statefulsets', 'StatefulSet', { shortNames: ['sts'], status: true, scale: WORKLOAD_SCALE, categories: ['all'] }),
  builtin('apps', 'v1', 'deployments', 'Deployment', { shortNames: ['deploy'], status: true, scale: WORKLOAD_SCALE, categories: ['all'] }),
  builtin('policy', 'v1', 'poddisruptionbudgets', 'PodDisruptionBudget', { shortNames: ['pdb'], status: true }),
  builtin('networking.k8s.io', 'v1', 'networkpolicies', 'NetworkPolicy', { shortNames: ['netpol'] }),
  builtin('coordination.k8s.io', 'v1', 'leases', 'Lease'),
  builtin('events.k8s.io', 'v1', 'events', 'Event', { shortNames: ['ev'], fieldSelectors: ['regarding.kind', 'regarding.namespace', 'regarding.name', 'regarding.uid', 'reason', 'reportingController', 'type'] }),
  builtin('apiextensions.k8s.io', 'v1', 'customresourcedefinitions', 'CustomResourceDefinition', { namespaced: false, shortNames: ['crd', 'crds'], status: true, categories: ['api-extensions'] }),
];

/** Kubernetes version ordering: GA > beta > alpha, higher numbers first (v2 > v1 > v1beta2 > v1beta1 > v1alpha1). */
export function compareVersions(a: string, b: string): number {
  const parse = (v: string) => {
    const m = /^v(\d+)(?:(alpha|beta)(\d+))?$/.exec(v);
    if (!m) return [0, 0, 0, v] as const;
    const stage = m[2] === undefined ? 3 : m[2] === 'beta' ? 2 : 1;
    return [1, stage, Number(m[1]), Number(m[3] ?? 0)] as const;
  };
  const pa = parse(a);
  const pb = parse(b);
  if (pa[0] !== pb[0]) return pb[0] - pa[0];
  if (pa[0] === 0) return a.localeCompare(b);
  if (pa[1] !== pb[1]) return pb[1] - pa[1];
  if (pa[2] !== pb[2]) return pb[2] - pa[2];
  return pb[3] - pa[3];
}

/** Turns a stored CustomResourceDefinition into the resource types it serves (one per served version). */
export function resourcesFromCrd(crd: KubeObject): ResourceType[] {
  const spec = isObj(crd.spec) ? crd.spec : {};
  const names = isObj(spec.names) ? spec.names : {};
  const group = String(spec.group ?? '');
  const versions = Array.isArray(spec.versions) ? spec.versions.filter(isObj) : [];
  const storage = versions.find((v) => v.storage === true);
  const out: ResourceType[] = [];
  for (const v of versions) {
    if (v.served !== true) continue;
    const sub = isObj(v.subresources) ? v.subresources : {};
    const schema = isObj(v.schema) && isObj(v.schema.openAPIV3Schema) ? v.schema.openAPIV3Schema : undefined;
    const scale = isObj(sub.scale) ? sub.scale : undefined;
    const selectable = Array.isArray(v.selectableFields) ? v.selectableFields.filter(isObj).map((f) => String(f.jsonPath ?? '').replace(/^\./, '')) : [];
    const kind = String(names.kind ?? '');
    const rt: ResourceType = {
      group,
      version: String(v.name),
      plural: String(names.plural ?? ''),
      singular: String(names.singular ?? kind.toLowerCase()),
      kind,
      listKind: String(names.listKind ?? `${kind}List`),
      namespaced: spec.scope !== 'Cluster',
      shortNames: Array.isArray(names.shortNames) ? names.shortNames.map(String) : [],
      categories: Array.isArray(names.categories) ? names.categories.map(String) : [],
      status: isObj(sub.status),
      nameRule: 'subdomain',
      builtin: false,
      fieldSelectors: selectable,
      crdName: crd.metadata.name,
      storageVersion: String(storage?.name ?? v.name),
      verbs: ALL_VERBS,
      listType: schemaListType(schema),
    };
    if (schema) rt.schema = schema;
    if (scale) {
      rt.scale = { specReplicasPath: String(scale.specReplicasPath ?? '.spec.replicas'), statusReplicasPath: String(scale.statusReplicasPath ?? '.status.replicas') };
      if (typeof scale.labelSelectorPath === 'string') rt.scale.labelSelectorPath = scale.labelSelectorPath;
    }
    out.push(rt);
  }
  return out;
}

/** The set of served resources, changing as CRDs come and go. */
export class Registry {
  private readonly crdResources = new Map<string, ResourceType[]>();

  /** Serves (or re-serves) what a CRD declares. */
  setCrd(crd: KubeObject): void {
    this.crdResources.set(crd.metadata.name ?? '', resourcesFromCrd(crd));
  }

  /** Stops serving a CRD's resources. */
  removeCrd(name: string): void {
    this.crdResources.delete(name);
  }

  /** Every served resource type. */
  all(): ResourceType[] {
    return [...BUILTIN_RESOURCES, ...[...this.crdResources.values()].flat()];
  }

  /** The resource type at group/version/plural, if served. */
  find(group: string, version: string, plural: string): ResourceType | undefined {
    return this.all().find((r) => r.group === group && r.version === version && r.plural === plural);
  }

  /** Any served version of group/plural (for storage-level operations such as GC). */
  findAnyVersion(group: string, plural: string): ResourceType | undefined {
    return this.all().find((r) => r.group === group && r.plural === plural && r.version === r.storageVersion)
      ?? this.all().find((r) => r.group === group && r.plural === plural);
  }

  /** The resource type serving apiVersion+kind (ownerReferences), if any. */
  findByKind(apiVersion: string, kind: string): ResourceType | undefined {
    return this.all().find((r) => apiVersionOf(r.group, r.version) === apiVersion && r.kind === kind);
  }

  /** Served versions of a group, preferred first. */
  versionsOf(group: string): string[] {
    return [...new Set(this.all().filter((r) => r.group === group).map((r) => r.version))].sort(compareVersions);
  }

  /** Served groups other than core, in the order built-ins first then CRD groups by name. */
  groups(): string[] {
    const seen: string[] = [];
    for (const r of this.all()) if (r.group !== '' && !seen.includes(r.group)) seen.push(r.group);
    return seen;
  }

  /** GET /api. */
  apiVersions(serverAddress: string): Obj {
    return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
  }

  /** One APIGroup document. */
  apiGroup(group: string): Obj | undefined {
    const versions = this.versionsOf(group);
    if (versions.length === 0) return undefined;
    const vs = versions.map((v) => ({ groupVersion: `${group}/${v}`, version: v }));
    return { kind: 'APIGroup', apiVersion: 'v1', name: group, versions: vs, preferredVersion: vs[0] };
  }

  /** GET /apis. */
  apiGroupList(): Obj {
    const groups = this.groups().map((g) => {
      const { kind: _k, apiVersion: _a, ...rest } = this.apiGroup(g) ?? {};
      return rest;
    });
    return { kind: 'APIGroupList', apiVersion: 'v1', groups };
  }

  /** GET /api/v1 or /apis/{group}/{version}; undefined when that group/version is not served. */
  apiResourceList(group: string, version: string): Obj | undefined {
    const rts = this.all().filter((r) => r.group === group && r.version === version);
    if (rts.length === 0) return undefined;
    const resources: Obj[] = [];
    for (const r of rts) {
      const main: Obj = { name: r.plural, singularName: r.singular, namespaced: r.namespaced, kind: r.kind, verbs: r.verbs };
      if (r.shortNames.length > 0) main.shortNames = r.shortNames;
      if (r.categories.length > 0) main.categories = r.categories;
      resources.push(main);
      if (r.status) resources.push({ name: `${r.plural}/status`, singularName: '', namespaced: r.namespaced, kind: r.kind, verbs: ['get', 'patch', 'update'] });
      if (r.scale) resources.push({ name: `${r.plural}/scale`, singularName: '', namespaced: r.namespaced, group: 'autoscaling', version: 'v1', kind: 'Scale', verbs: ['get', 'patch', 'update'] });
    }
    return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: apiVersionOf(group, version), resources };
  }
}
