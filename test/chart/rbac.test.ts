// The operator's RBAC: exactly the grants it needs (least privilege), the same whatever
// the values (they only pick cluster or namespace scope), and the matching rules the
// end-to-end test will use to compare them with the operator's real requests.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { helmTemplateObjects } from '../helpers/helm.ts';
import { CHART, opts } from './chart.ts';
import { allows, formatRule, rbacRulesFromChart, requestFromLog, ruleAllows, unusedRules } from './rbac.ts';
import type { RbacRule } from './rbac.ts';

/** The chart's CRDs, read independently of the template's own derivation. */
async function shippedCustomResources(): Promise<{ group: string; plural: string }[]> {
  const out: { group: string; plural: string }[] = [];
  const dir = join(CHART, 'crds');
  for (const f of (await readdir(dir)).filter((n) => /\.ya?ml$/.test(n)).sort()) {
    for (const doc of parseAllDocuments(await readFile(join(dir, f), 'utf8'))) {
      const o = doc.toJS() as { kind?: string; spec?: { group: string; names: { plural: string } } } | null;
      if (o?.kind === 'CustomResourceDefinition' && o.spec) out.push({ group: o.spec.group, plural: o.spec.names.plural });
    }
  }
  return out;
}

const grants = (apiGroup: string, resources: string[], verbs: string[], extra: Partial<RbacRule> = {}): RbacRule[] =>
  resources.flatMap((resource) => verbs.map((verb) => ({ apiGroup, resource, verb, ...extra })));

/**
 * Children: the informers' reads and server-side apply. An apply that creates the object
 * is authorized as create as well as patch (the real apiserver's patch handler), and
 * adopting an orphaned child changes its ownerReferences, which
 * OwnerReferencesPermissionEnforcement allows only with delete; delete also removes
 * what a spec change turns off.
 */
const APPLIED = ['get', 'list', 'watch', 'create', 'patch', 'delete'];
const PRUNED = APPLIED;
const READ = ['get', 'list', 'watch'];

/** What the operator needs, in one table: the chart must grant exactly this. */
async function expectedGrants(namespace: string | undefined): Promise<RbacRule[]> {
  const scope = namespace === undefined ? {} : { namespace };
  const crs = await shippedCustomResources();
  return [
    ...crs.flatMap(({ group, plural }) => [
      ...grants(group, [plural], READ, scope),
      ...grants(group, [`${plural}/status`], ['update'], scope),
      ...grants(group, [`${plural}/finalizers`], ['update'], scope),
    ]),
    ...grants('', ['configmaps', 'services'], APPLIED, scope),
    ...grants('apps', ['statefulsets'], APPLIED, scope),
    ...grants('policy', ['poddisruptionbudgets'], PRUNED, scope),
    ...grants('networking.k8s.io', ['networkpolicies'], PRUNED, scope),
    // The drain-token Secret (ADR 0003 R2) is created once; no Secret is ever changed.
    ...grants('', ['secrets'], ['get', 'create'], scope),
    // The spool-state annotation on spool PVCs a scale-down cannot vouch for (ADR 0003).
    ...grants('', ['persistentvolumeclaims'], [...READ, 'patch'], scope),
    ...grants('', ['pods'], READ, scope),
    ...grants('', ['events'], ['create', 'patch'], scope),
    // No informers for the monitoring kinds (their CRDs may be missing): GETs only.
    ...grants('monitoring.coreos.com', ['servicemonitors', 'prometheusrules'], ['get', 'create', 'patch', 'delete'], scope),
    // KEDA's ScaledObject for autoscaling.mode keda, likewise only when its CRD exists.
    ...grants('keda.sh', ['scaledobjects'], ['get', 'create', 'patch', 'delete'], scope),
    // Leader election, always in the operator's own namespace.
    ...grants('coordination.k8s.io', ['leases'], ['create'], { namespace: 'mail-system' }),
    ...grants('coordination.k8s.io', ['leases'], ['get', 'update', 'patch'], { namespace: 'mail-system', resourceNames: ['mr-mailrelay-operator-leader'] }),
  ];
}

const lines = (rules: RbacRule[]) => rules.map(formatRule).sort();

describe('operator RBAC', () => {
  it('grants exactly what the operator needs, cluster-wide by default', async () => {
    const rules = rbacRulesFromChart(await helmTemplateObjects(CHART, opts()));
    assert.deepEqual(lines(rules), lines(await expectedGrants(undefined)));
  });

  it('grants the same rules in the watched namespace only, with watchNamespace', async () => {
    const objects = await helmTemplateObjects(CHART, opts({ values: [{ watchNamespace: 'mail' }] }));
    assert.equal(objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding').length, 0, 'no cluster-wide grant');
    assert.deepEqual(lines(rbacRulesFromChart(objects)), lines(await expectedGrants('mail')));
  });

  it('keeps the rules values-independent: the same list under every setting', async () => {
    const render = async (values: object) => {
      const objects = await helmTemplateObjects(CHART, opts({ values: [values] }));
      return objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role').map((o) => JSON.stringify((o as unknown as { rules: unknown }).rules));
    };
    const base = await render({});
    assert.deepEqual(await render({ monitoring: { serviceMonitor: { enabled: true }, prometheusRule: { enabled: true } }, replicaCount: 1, leaderElection: { enabled: false } }), base);
    assert.deepEqual(await render({ serviceAccount: { name: 'other' }, fullnameOverride: 'mr-mailrelay-operator' }), base);
  });

  it('grants no wildcard, no Secret changes (create only) and nothing that escalates', async () => {
    const rules = rbacRulesFromChart(await helmTemplateObjects(CHART, opts()));
    for (const r of rules) {
      assert.ok(r.apiGroup !== '*' && r.resource !== '*' && r.verb !== '*', `wildcard: ${formatRule(r)}`);
      assert.ok(!['escalate', 'bind', 'impersonate', 'deletecollection'].includes(r.verb), `dangerous verb: ${formatRule(r)}`);
      assert.ok(!(r.apiGroup === 'rbac.authorization.k8s.io' || r.apiGroup === 'apiextensions.k8s.io'), `no RBAC or CRD access: ${formatRule(r)}`);
      // Secrets: read, and create the drain token; never update, patch or delete one (no rotation, no tampering).
      if (r.resource === 'secrets') assert.ok(['get', 'create'].includes(r.verb), `secrets are read by name and created only (no list/watch of every Secret): ${formatRule(r)}`);
      if (r.resource === 'pods') assert.ok(READ.includes(r.verb), `pods are read only: ${formatRule(r)}`);
      // PVCs: read, and patch the spool-state annotation; never delete one (a spool may hold mail).
      if (r.resource === 'persistentvolumeclaims') assert.ok([...READ, 'patch'].includes(r.verb), `PVCs are read and annotated only: ${formatRule(r)}`);
      assert.ok(!r.resource.startsWith('pods/'), `no exec, log or eviction: ${formatRule(r)}`);
    }
  });

  it('creates no RBAC when rbac.create is false', async () => {
    const objects = await helmTemplateObjects(CHART, opts({ values: [{ rbac: { create: false } }] }));
    assert.deepEqual(rbacRulesFromChart(objects), []);
    assert.equal(objects.filter((o) => o.apiVersion.startsWith('rbac.authorization.k8s.io/')).length, 0);
  });

  it('binds the roles to the chart ServiceAccount only', async () => {
    const objects = await helmTemplateObjects(CHART, opts());
    for (const b of objects.filter((o) => o.kind.endsWith('Binding'))) {
      assert.deepEqual((b as unknown as { subjects: unknown }).subjects, [{ kind: 'ServiceAccount', name: 'mr-mailrelay-operator', namespace: 'mail-system' }]);
    }
  });
});

describe('rbac helpers', () => {
  const cluster: RbacRule = { apiGroup: 'apps', resource: 'statefulsets', verb: 'patch' };
  const inNs: RbacRule = { apiGroup: '', resource: 'configmaps', verb: 'get', namespace: 'mail' };
  const named: RbacRule = { apiGroup: 'coordination.k8s.io', resource: 'leases', verb: 'update', namespace: 'ops', resourceNames: ['leader'] };

  it('matches group, resource and verb exactly, and a ClusterRole grant in every namespace', () => {
    assert.ok(ruleAllows(cluster, { group: 'apps', resource: 'statefulsets', verb: 'patch', namespace: 'a', name: 'x' }));
    assert.ok(ruleAllows(cluster, { group: 'apps', resource: 'statefulsets', verb: 'patch' }));
    assert.ok(!ruleAllows(cluster, { group: 'apps', resource: 'statefulsets', verb: 'update', namespace: 'a' }));
    assert.ok(!ruleAllows(cluster, { group: '', resource: 'statefulsets', verb: 'patch', namespace: 'a' }));
    assert.ok(!ruleAllows(cluster, { group: 'apps', resource: 'statefulsets/scale', verb: 'patch', namespace: 'a' }), 'a subresource needs its own grant');
  });

  it('limits a Role grant to its namespace, so an all-namespaces watch needs a ClusterRole', () => {
    assert.ok(ruleAllows(inNs, { group: '', resource: 'configmaps', verb: 'get', namespace: 'mail', name: 'x' }));
    assert.ok(!ruleAllows(inNs, { group: '', resource: 'configmaps', verb: 'get', namespace: 'other', name: 'x' }));
    assert.ok(!ruleAllows({ ...inNs, verb: 'watch' }, { group: '', resource: 'configmaps', verb: 'watch' }));
  });

  it('limits resourceNames grants to named requests, never create', () => {
    assert.ok(ruleAllows(named, { group: 'coordination.k8s.io', resource: 'leases', verb: 'update', namespace: 'ops', name: 'leader' }));
    assert.ok(!ruleAllows(named, { group: 'coordination.k8s.io', resource: 'leases', verb: 'update', namespace: 'ops', name: 'other' }));
    assert.ok(!ruleAllows({ ...named, verb: 'create' }, { group: 'coordination.k8s.io', resource: 'leases', verb: 'create', namespace: 'ops', name: 'leader' }));
  });

  it('finds unused grants and converts request log entries', () => {
    const reqs = [
      requestFromLog({ verb: 'get', group: '', resource: 'configmaps', namespace: 'mail', name: 'x' }),
      requestFromLog({ verb: 'patch', group: 'apps', resource: 'statefulsets', subresource: undefined, namespace: 'mail', name: 'r' }),
      requestFromLog({ verb: 'get', group: '', resource: '', nonResourceURL: '/apis' }),
    ];
    assert.equal(reqs[2], null, 'discovery needs no RBAC');
    const real = reqs.filter((r) => r !== null);
    assert.deepEqual(unusedRules([cluster, inNs, named], real), [named]);
    assert.ok(allows([cluster, inNs], { group: 'apps', resource: 'statefulsets', verb: 'patch', namespace: 'mail' }));
    assert.deepEqual(requestFromLog({ verb: 'patch', group: 'x.example', resource: 'mailrelays', subresource: 'status', namespace: 'n', name: 'a' }),
      { group: 'x.example', resource: 'mailrelays/status', verb: 'patch', namespace: 'n', name: 'a' });
  });
});
