// The chart's RBAC against the real authorizer (issue 11 points 1 and 2). The old rules
// (get/list/watch/patch on the children, the fake API server's idea of server-side
// apply) are put back on the installed ClusterRole: the real server then refuses the
// first apply of every child with a 403 for "create", because a PATCH that creates an
// object is also authorized as create. With the chart's rules the same MailRelay gets
// all its children. Adoption after `delete --cascade=orphan` changes ownerReferences,
// which OwnerReferencesPermissionEnforcement allows only with "delete".
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { eventually, startCluster, startOperator, type ClusterEnv, type OperatorProc } from './harness.ts';

const ROLE = 'mailrelay-mailrelay-operator';
type Obj = any; // eslint-disable-line @typescript-eslint/no-explicit-any
const CHILDREN = new Set(['configmaps', 'services', 'statefulsets', 'poddisruptionbudgets', 'networkpolicies']);

describe('the chart RBAC on the real authorizer', { timeout: 600_000 }, () => {
  let env: ClusterEnv;
  let op: OperatorProc | undefined;
  let chartRules: Obj[];
  const setRules = (rules: Obj[]) => env.kubectl(['patch', 'clusterrole', ROLE, '--type=merge', '-p', JSON.stringify({ rules })]);
  const withoutVerbs = (verbs: string[]) => chartRules.map((r) => (r.resources.some((x: string) => CHILDREN.has(x)) ? { ...r, verbs: r.verbs.filter((v: string) => !verbs.includes(v)) } : r));
  const apply = (name: string) => env.kubectl(['apply', '--server-side', '-f', '-'], stringify({
    apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay', metadata: { name, namespace: 'rbac' },
    spec: { replicas: 1, relayNetworks: ['10.0.0.0/8'], networkPolicy: { enabled: true, allowedClients: [{ podSelector: {} }] } },
  }));
  const degraded = (name: string) => {
    const mr = env.getJson(['mailrelay', '-n', 'rbac', name]);
    return mr.status?.conditions?.find((c: Obj) => c.type === 'Degraded' && c.status === 'True');
  };

  before(async () => {
    env = await startCluster();
    env.kubectl(['create', 'namespace', 'rbac']);
    chartRules = env.getJson(['clusterrole', ROLE]).rules;
  });
  after(async () => {
    await op?.stop();
    await env?.close();
  });

  it('without "create" (the old chart), the first apply of a child is forbidden', async () => {
    setRules(withoutVerbs(['create', 'delete']));
    op = startOperator(env, 'operator-0');
    apply('old');
    const c = await eventually('Degraded ApplyFailed', () => degraded('old'), 60_000);
    assert.equal(c.reason, 'ApplyFailed');
    // e.g. 'networkpolicies.networking.k8s.io "old" is forbidden: User "system:serviceaccount:..." cannot create resource ...'
    assert.match(c.message, /403: .* is forbidden: User "system:serviceaccount:mailrelay-system:mailrelay-mailrelay-operator" cannot create resource "(networkpolicies|configmaps|services|statefulsets|poddisruptionbudgets)"/);
    process.stdout.write(`# old chart RBAC: ${c.message}\n`);
    await op.stop();
    op = undefined;
  });

  it('with the chart\'s rules, the same MailRelay gets every child', async () => {
    setRules(chartRules);
    op = startOperator(env, 'operator-1');
    await eventually('Degraded=False', () => {
      const mr = env.getJson(['mailrelay', '-n', 'rbac', 'old']);
      return mr.status?.conditions?.find((c: Obj) => c.type === 'Degraded')?.status === 'False';
    }, 60_000);
    for (const kind of ['statefulset/old', 'configmap/old-config', 'service/old', 'networkpolicy/old', 'poddisruptionbudget/old']) env.kubectl(['get', '-n', 'rbac', kind]);
  });

  it('adopting orphaned children needs "delete" under OwnerReferencesPermissionEnforcement', async () => {
    env.kubectl(['delete', 'mailrelay', '-n', 'rbac', 'old', '--cascade=orphan', '--wait=true']);
    await eventually('orphaned', () => (env.getJson(['statefulset', '-n', 'rbac', 'old']).metadata.ownerReferences ?? []).length === 0, 60_000);
    setRules(withoutVerbs(['delete']));
    apply('old');
    const c = await eventually('Degraded ApplyFailed', () => degraded('old'), 60_000);
    assert.match(c.message, /cannot set an ownerRef on a resource you can't delete/);
    process.stdout.write(`# adoption without delete: ${c.message.slice(0, 400)}\n`);
    setRules(chartRules);
    env.kubectl(['annotate', 'mailrelay', '-n', 'rbac', 'old', 'test/retry=1']);
    const uid = env.getJson(['mailrelay', '-n', 'rbac', 'old']).metadata.uid;
    await eventually('adopted', () => env.getJson(['statefulset', '-n', 'rbac', 'old']).metadata.ownerReferences?.[0]?.uid === uid, 60_000);
  });
});
