// Checks recorded API requests against RBAC PolicyRules, the way the authorizer
// matches them, so a test can assert that a Role/ClusterRole (e.g. the Helm
// chart's) allows every call the operator really made.
import type { RequestLogEntry } from './types.ts';

/** An rbac.authorization.k8s.io/v1 PolicyRule. */
export interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs: string[];
  nonResourceURLs?: string[];
}

function resourceMatches(rule: PolicyRule, resource: string, subresource: string | undefined): boolean {
  const full = subresource ? `${resource}/${subresource}` : resource;
  return (rule.resources ?? []).some((r) => r === '*' || r === full || (subresource !== undefined && r === `*/${subresource}`));
}

/** True when one rule allows the request (resource rules for resource requests, nonResourceURLs otherwise). */
export function ruleAllows(rule: PolicyRule, req: RequestLogEntry): boolean {
  if (!rule.verbs.includes('*') && !rule.verbs.includes(req.verb)) return false;
  if (req.nonResourceURL !== undefined) {
    return (rule.nonResourceURLs ?? []).some((u) => u === '*' || u === req.nonResourceURL || (u.endsWith('*') && req.nonResourceURL?.startsWith(u.slice(0, -1))));
  }
  const groups = rule.apiGroups ?? [];
  if (!groups.includes('*') && !groups.includes(req.group)) return false;
  if (!resourceMatches(rule, req.resource, req.subresource)) return false;
  const names = rule.resourceNames ?? [];
  if (names.length === 0) return true;
  // resourceNames cannot authorize create or collection requests (the name is not known then).
  return req.name !== undefined && req.verb !== 'create' && names.includes(req.name);
}

/** Discovery and health endpoints every authenticated user may read (system:discovery, system:public-info-viewer). */
export const DISCOVERY_RULES: readonly PolicyRule[] = [
  { verbs: ['get'], nonResourceURLs: ['/api', '/api/*', '/apis', '/apis/*', '/openapi', '/openapi/*', '/version', '/version/', '/healthz', '/livez', '/readyz'] },
];

/**
 * The requests no rule allows, deduplicated as "verb group/resource[/sub]"; `includeDiscovery`
 * adds the default discovery roles every authenticated user has (true by default).
 */
export function uncoveredRequests(log: readonly RequestLogEntry[], rules: readonly PolicyRule[], includeDiscovery = true): string[] {
  const all = includeDiscovery ? [...rules, ...DISCOVERY_RULES] : rules;
  const out = new Set<string>();
  for (const req of log) {
    if (all.some((r) => ruleAllows(r, req))) continue;
    out.add(req.nonResourceURL !== undefined
      ? `${req.verb} ${req.nonResourceURL}`
      : `${req.verb} ${req.group === '' ? 'core' : req.group}/${req.resource}${req.subresource ? `/${req.subresource}` : ''}${req.name && req.verb !== 'list' ? ` (${req.name})` : ''}`);
  }
  return [...out].sort();
}
