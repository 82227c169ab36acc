// The request log checked against RBAC rules: what a later chart test will do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AppsV1Api, CoreV1Api, KubernetesObjectApi, PatchStrategy } from '@kubernetes/client-node';
import { startApiServer } from './apiserver.ts';
import { ruleAllows, uncoveredRequests } from './rbac.ts';
import type { PolicyRule } from './rbac.ts';
import type { RequestLogEntry } from './types.ts';

const entry = (e: Partial<RequestLogEntry>): RequestLogEntry => ({ verb: 'get', group: '', version: 'v1', resource: 'configmaps', method: 'GET', path: '/', code: 200, ...e });

test('ruleAllows matches groups, resources, subresources, wildcards and resourceNames like the authorizer', () => {
  const r: PolicyRule = { apiGroups: ['apps'], resources: ['statefulsets', 'statefulsets/status'], verbs: ['get', 'patch'] };
  assert.equal(ruleAllows(r, entry({ group: 'apps', resource: 'statefulsets', verb: 'patch' })), true);
  assert.equal(ruleAllows(r, entry({ group: 'apps', resource: 'statefulsets', subresource: 'status', verb: 'patch' })), true);
  assert.equal(ruleAllows(r, entry({ group: 'apps', resource: 'statefulsets', subresource: 'scale', verb: 'patch' })), false);
  assert.equal(ruleAllows(r, entry({ group: '', resource: 'statefulsets', verb: 'get' })), false);
  assert.equal(ruleAllows({ apiGroups: ['*'], resources: ['*/scale'], verbs: ['*'] }, entry({ group: 'x', resource: 'y', subresource: 'scale', verb: 'update' })), true);
  const named: PolicyRule = { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['mailrelay-operator'], verbs: ['get', 'update', 'create'] };
  assert.equal(ruleAllows(named, entry({ group: 'coordination.k8s.io', resource: 'leases', name: 'mailrelay-operator', verb: 'update' })), true);
  assert.equal(ruleAllows(named, entry({ group: 'coordination.k8s.io', resource: 'leases', verb: 'create' })), false, 'create cannot be limited by name');
});

test('uncoveredRequests lists the calls a role would refuse, from a real client session', async () => {
  const server = await startApiServer();
  try {
    const kc = server.kubeConfig();
    await kc.makeApiClient(CoreV1Api).listNamespacedConfigMap({ namespace: 'default' });
    await kc.makeApiClient(AppsV1Api).listStatefulSetForAllNamespaces();
    // KubernetesObjectApi also reads discovery (/api/v1), which the default discovery role covers.
    await KubernetesObjectApi.makeApiClient(kc).patch({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'relay', namespace: 'default' }, spec: { ports: [{ port: 25 }] } },
      undefined, undefined, 'mailrelay', true, PatchStrategy.ServerSideApply);
    const role: PolicyRule[] = [
      { apiGroups: [''], resources: ['configmaps', 'services'], verbs: ['get', 'list', 'watch', 'create', 'patch'] },
    ];
    assert.deepEqual(uncoveredRequests(server.requestLog, role), ['list apps/statefulsets']);
    // An apply that creates the object is authorized as create too, as the real apiserver does.
    const patchOnly: PolicyRule[] = [{ apiGroups: [''], resources: ['configmaps', 'services'], verbs: ['get', 'list', 'watch', 'patch'] }];
    assert.deepEqual(uncoveredRequests(server.requestLog, patchOnly), ['create core/services (relay)', 'list apps/statefulsets']);
    assert.deepEqual(uncoveredRequests(server.requestLog, [...role, { apiGroups: ['apps'], resources: ['statefulsets'], verbs: ['list'] }]), []);
    assert.ok(uncoveredRequests(server.requestLog, role, false).includes('get /api/v1'));
  } finally {
    await server.close();
  }
});
