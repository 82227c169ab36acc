// The operator's permissions as the chart grants them, flattened into single
// (apiGroup, resource, verb) grants with their scope, so a test can compare them with the
// requests the operator really makes against the test API server: every request must be
// allowed (else the operator breaks in a real cluster), and every grant should be used
// (else it is more privilege than needed).
import type { KubeObject } from '../helpers/helm.ts';

/** One flattened grant. */
export interface RbacRule {
  /** API group; "" is the core group. */
  apiGroup: string;
  /** Resource, with a subresource after a slash ("mailrelays/status"). */
  resource: string;
  verb: string;
  /** The only object names this grant covers; undefined for all. */
  resourceNames?: string[];
  /** The namespace a Role grants in; undefined for a ClusterRole bound cluster-wide. */
  namespace?: string;
}

/** A request the operator makes, as an API server's audit or request log records it. */
export interface RbacRequest {
  group: string;
  /** Resource, with a subresource after a slash ("mailrelays/status"). */
  resource: string;
  verb: string;
  /** Namespace of a namespaced request; undefined for a cluster-scoped one or an all-namespaces list/watch. */
  namespace?: string;
  /** Object name, for requests on one object. */
  name?: string;
}

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

interface Binding {
  roleRef: { kind: string; name: string };
  subjects?: { kind: string; name: string; namespace?: string }[];
}

function compareRules(a: RbacRule, b: RbacRule): number {
  const key = (r: RbacRule) => [r.namespace ?? '', r.apiGroup, r.resource, r.verb, (r.resourceNames ?? []).join(',')].join('\0');
  return key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;
}

/**
 * The rules granted to the chart's ServiceAccount(s), from the rendered objects: each
 * ClusterRole/Role reached through a binding whose subject is a ServiceAccount the chart
 * creates (or, with serviceAccount.create=false, any ServiceAccount subject), flattened,
 * deduplicated and sorted. A ClusterRole bound by a RoleBinding is scoped to that namespace.
 */
export function rbacRulesFromChart(objects: readonly KubeObject[]): RbacRule[] {
  const accounts = new Set(objects.filter((o) => o.kind === 'ServiceAccount').map((o) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`));
  const isOurs = (s: { kind: string; name: string; namespace?: string }) =>
    s.kind === 'ServiceAccount' && (accounts.size === 0 || accounts.has(`${s.namespace ?? ''}/${s.name}`));
  const roles = new Map(objects.filter((o) => o.kind === 'Role' || o.kind === 'ClusterRole')
    .map((o) => [`${o.kind}/${o.kind === 'Role' ? `${o.metadata.namespace ?? ''}/` : ''}${o.metadata.name}`, o]));
  const out = new Map<string, RbacRule>();
  for (const b of objects.filter((o) => o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding')) {
    const binding = b as unknown as KubeObject & Binding;
    if (!(binding.subjects ?? []).some(isOurs)) continue;
    const ref = binding.roleRef.kind === 'Role' ? `Role/${b.metadata.namespace ?? ''}/${binding.roleRef.name}` : `ClusterRole/${binding.roleRef.name}`;
    const role = roles.get(ref);
    if (!role) throw new Error(`${b.kind}/${b.metadata.name} refers to ${ref}, which the chart does not render`);
    const namespace = b.kind === 'RoleBinding' ? b.metadata.namespace : undefined;
    for (const rule of (role.rules as PolicyRule[] | undefined) ?? []) {
      if (rule.nonResourceURLs?.length) throw new Error(`${ref} grants nonResourceURLs, which the operator does not need`);
      for (const apiGroup of rule.apiGroups ?? []) {
        for (const resource of rule.resources ?? []) {
          for (const verb of rule.verbs ?? []) {
            const r: RbacRule = { apiGroup, resource, verb };
            if (rule.resourceNames?.length) r.resourceNames = [...rule.resourceNames].sort();
            if (namespace !== undefined) r.namespace = namespace;
            out.set(JSON.stringify(r), r);
          }
        }
      }
    }
  }
  return [...out.values()].sort(compareRules);
}

/** Whether one grant covers a request, with RBAC's matching: "*" wildcards, resourceNames, Role namespaces. */
export function ruleAllows(rule: RbacRule, req: RbacRequest): boolean {
  if (rule.apiGroup !== '*' && rule.apiGroup !== req.group) return false;
  if (rule.resource !== '*' && rule.resource !== req.resource) return false;
  if (rule.verb !== '*' && rule.verb !== req.verb) return false;
  // A Role grants only inside its namespace; an all-namespaces list/watch needs a ClusterRole.
  if (rule.namespace !== undefined && rule.namespace !== req.namespace) return false;
  // resourceNames never cover create (the name is not part of the authorization request) nor unnamed collection requests.
  if (rule.resourceNames && (req.verb === 'create' || req.name === undefined || !rule.resourceNames.includes(req.name))) return false;
  return true;
}

/** Whether the rules allow a request. */
export function allows(rules: readonly RbacRule[], req: RbacRequest): boolean {
  return rules.some((r) => ruleAllows(r, req));
}

/** Grants no request used: candidates for removal (least privilege). */
export function unusedRules(rules: readonly RbacRule[], requests: readonly RbacRequest[]): RbacRule[] {
  return rules.filter((r) => !requests.some((req) => ruleAllows(r, req)));
}

/** One line per grant, for readable assertion messages. */
export function formatRule(r: RbacRule): string {
  const scope = r.namespace === undefined ? 'cluster' : `ns/${r.namespace}`;
  const names = r.resourceNames ? ` [${r.resourceNames.join(',')}]` : '';
  return `${scope} ${r.apiGroup || 'core'} ${r.resource} ${r.verb}${names}`;
}

/** The fields of an API server request log entry (test/kube's RequestLogEntry) that authorization looks at. */
export interface LoggedRequest {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  nonResourceURL?: string;
}

/**
 * The RBAC request a logged API request needs, or null for a non-resource URL (discovery,
 * /version), which every authenticated user may read through system:discovery.
 */
export function requestFromLog(e: LoggedRequest): RbacRequest | null {
  if (e.nonResourceURL !== undefined || e.resource === '') return null;
  const req: RbacRequest = { group: e.group, resource: e.subresource ? `${e.resource}/${e.subresource}` : e.resource, verb: e.verb };
  if (e.namespace !== undefined) req.namespace = e.namespace;
  if (e.name !== undefined) req.name = e.name;
  return req;
}
