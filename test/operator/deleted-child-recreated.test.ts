// A child deleted behind the operator's back (kubectl delete, a cleanup script) comes
// back: the delete event maps to its owner through the ownerReference.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../kube/testutil.ts';
import {
  createMailRelay, MERGE, minimalSpec, startOperatorEnv, stopOperatorEnv, type TestCluster, type TestOperator,
} from './harness.ts';

describe('deleted or edited child', () => {
  let cluster: TestCluster;
  let op: TestOperator;
  const ns = 'mail';

  before(async () => {
    ({ cluster, op } = await startOperatorEnv(ns));
    await createMailRelay(cluster, ns, 'relay', minimalSpec({ networkPolicy: { enabled: true } }));
    await waitFor('children', () => cluster.apps.readNamespacedStatefulSet({ name: 'relay', namespace: ns }));
  });
  after(() => stopOperatorEnv(cluster, op));

  for (const [kind, del, read] of [
    ['ConfigMap', () => cluster.core.deleteNamespacedConfigMap({ name: 'relay-config', namespace: ns }), () => cluster.core.readNamespacedConfigMap({ name: 'relay-config', namespace: ns })],
    ['StatefulSet', () => cluster.apps.deleteNamespacedStatefulSet({ name: 'relay', namespace: ns }), () => cluster.apps.readNamespacedStatefulSet({ name: 'relay', namespace: ns })],
    ['Service', () => cluster.core.deleteNamespacedService({ name: 'relay', namespace: ns }), () => cluster.core.readNamespacedService({ name: 'relay', namespace: ns })],
  ] as const) {
    it(`re-creates a deleted ${kind}`, async () => {
      const old = await read();
      await del();
      const back = await waitFor(`the ${kind} back`, async () => {
        try {
          const o = await read();
          return o.metadata?.uid !== old.metadata?.uid ? o : undefined;
        } catch {
          return undefined;
        }
      });
      assert.equal(back.metadata?.ownerReferences?.[0]?.kind, 'MailRelay');
    });
  }

  it('puts back a field someone edited (drift), although the applied hash is unchanged', async () => {
    await cluster.core.patchNamespacedConfigMap({ name: 'relay-config', namespace: ns, body: { data: { 'relay.yaml': 'edited by hand\n' } } }, MERGE);
    // Any event for the owner brings a reconcile; the ConfigMap's own update event is one.
    const cm = await waitFor('relay.yaml restored', async () => {
      const c = await cluster.core.readNamespacedConfigMap({ name: 'relay-config', namespace: ns });
      return c.data?.['relay.yaml'] !== 'edited by hand\n' ? c : undefined;
    });
    assert.match(cm.data?.['relay.yaml'] ?? '', /^# Rendered by mailrelay-operator/);
  });
});
