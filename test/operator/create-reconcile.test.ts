// The basic loop: a MailRelay applied with kubectl becomes its children (each owned by
// it, so deleting the MailRelay deletes them), and its status reports what the operator
// saw: observedGeneration, the conditions, Ready once the pods are.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../kube/testutil.ts';
import {
  conditionOf, createMailRelay, eventsFor, getMailRelay, metricValue, minimalSpec, setStatefulSetStatus, startOperatorEnv, stopOperatorEnv, waitForCondition, type TestCluster, type TestOperator,
} from './harness.ts';

describe('create a MailRelay', () => {
  let cluster: TestCluster;
  let op: TestOperator;
  const ns = 'mail';

  before(async () => {
    ({ cluster, op } = await startOperatorEnv(ns));
  });
  after(() => stopOperatorEnv(cluster, op));

  it('creates every child with a controller ownerReference, and reports status', async () => {
    const mr = await createMailRelay(cluster, ns, 'relay', minimalSpec({ replicas: 2 }));
    const uid = mr.metadata.uid;
    const sts = await waitFor('the StatefulSet', () => cluster.apps.readNamespacedStatefulSet({ name: 'relay', namespace: ns }));
    const cm = await cluster.core.readNamespacedConfigMap({ name: 'relay-config', namespace: ns });
    const svc = await cluster.core.readNamespacedService({ name: 'relay', namespace: ns });
    const headless = await cluster.core.readNamespacedService({ name: 'relay-headless', namespace: ns });
    for (const child of [sts, cm, svc, headless]) {
      const owner = child.metadata?.ownerReferences?.[0];
      assert.equal(owner?.uid, uid, `${child.metadata?.name} is owned by the MailRelay`);
      assert.equal(owner?.controller, true);
      assert.equal(owner?.kind, 'MailRelay');
      assert.ok(child.metadata?.annotations?.['mailrelay.io/applied-hash'], 'carries the applied hash');
      assert.ok(child.metadata?.managedFields?.some((m) => m.manager === 'mailrelay-operator' && m.operation === 'Apply'), 'server-side applied by the operator');
    }
    assert.equal(sts.spec?.replicas, 2);
    assert.match(cm.data?.['relay.yaml'] ?? '', /relayNetworks:\n\s+- 10\.0\.0\.0\/8/);

    const pending = await waitForCondition(cluster, ns, 'relay', 'Ready', 'False');
    assert.equal(pending.status?.observedGeneration, pending.metadata.generation);
    assert.equal(conditionOf(pending, 'Degraded')?.status, 'False');
    assert.equal(conditionOf(pending, 'Progressing')?.status, 'True');
    assert.equal(pending.status?.selector, 'app.kubernetes.io/component=relay,app.kubernetes.io/instance=relay,app.kubernetes.io/name=mailrelay');
    assert.match(pending.status?.configHash ?? '', /^[0-9a-f]{64}$/);

    await setStatefulSetStatus(cluster, ns, 'relay', 2);
    const ready = await waitForCondition(cluster, ns, 'relay', 'Ready', 'True', 'ReplicasReady');
    assert.equal(ready.status?.readyReplicas, 2);
    assert.equal(conditionOf(ready, 'Progressing')?.reason, 'Complete');
    await waitFor('relays{ready=True} = 1', async () => (await metricValue(op.metrics.relays, { ready: 'True' })) === 1);
    assert.ok(await metricValue(op.metrics.reconciles, { result: 'success' }) >= 2);
    assert.ok(await metricValue(op.metrics.writes, { result: 'applied' }) >= 5);

    const events = await eventsFor(cluster, ns, 'relay');
    assert.ok(events.some((e) => e.type === 'Normal' && e.reason === 'Applied' && /StatefulSet\/relay/.test(e.message ?? '')), JSON.stringify(events));
  });

  it('deleting the MailRelay lets the garbage collector remove the children', async () => {
    await cluster.custom.deleteNamespacedCustomObject({ group: 'mailrelay.io', version: 'v1alpha1', namespace: ns, plural: 'mailrelays', name: 'relay' });
    await waitFor('children gone', async () => (await cluster.apps.listNamespacedStatefulSet({ namespace: ns })).items.length === 0
      && (await cluster.core.listNamespacedConfigMap({ namespace: ns })).items.every((c) => c.metadata?.name !== 'relay-config'));
    await waitFor('relays gauge drops it', async () => (await metricValue(op.metrics.relays)) === 0);
    await assert.rejects(getMailRelay(cluster, ns, 'relay'));
  });
});
