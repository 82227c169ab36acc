// A spec change must reach the running relays: the ConfigMap gets the new relay.yaml and
// the pod template's config-hash annotation changes, which is what makes the StatefulSet
// roll its pods (a ConfigMap change alone would not restart anything).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../kube/testutil.ts';
import {
  configHashOf, createMailRelay, eventsFor, getMailRelay, minimalSpec, patchMailRelaySpec, startOperatorEnv, stopOperatorEnv, waitForCondition, type TestCluster, type TestOperator,
} from './harness.ts';

describe('spec change', () => {
  let cluster: TestCluster;
  let op: TestOperator;
  const ns = 'mail';

  before(async () => {
    ({ cluster, op } = await startOperatorEnv(ns));
  });
  after(() => stopOperatorEnv(cluster, op));

  it('updates the ConfigMap and the pod template config hash, and observes the new generation', async () => {
    await createMailRelay(cluster, ns, 'relay', minimalSpec());
    const before = await waitFor('the StatefulSet', () => cluster.apps.readNamespacedStatefulSet({ name: 'relay', namespace: ns }));
    const hashBefore = configHashOf(before);
    assert.match(hashBefore ?? '', /^[0-9a-f]{64}$/);
    const cmBefore = await cluster.core.readNamespacedConfigMap({ name: 'relay-config', namespace: ns });
    await waitForCondition(cluster, ns, 'relay', 'Degraded', 'False');

    const patched = await patchMailRelaySpec(cluster, ns, 'relay', { relayNetworks: ['10.0.0.0/8', '192.168.0.0/16'], maxMessageSize: '10Mi' });
    const after = await waitFor('a new config hash', async () => {
      const s = await cluster.apps.readNamespacedStatefulSet({ name: 'relay', namespace: ns });
      return configHashOf(s) !== hashBefore ? s : undefined;
    });
    const cm = await cluster.core.readNamespacedConfigMap({ name: 'relay-config', namespace: ns });
    assert.notEqual(cm.data?.['relay.yaml'], cmBefore.data?.['relay.yaml']);
    assert.match(cm.data?.['relay.yaml'] ?? '', /192\.168\.0\.0\/16/);
    assert.match(cm.data?.['relay.yaml'] ?? '', /maxMessageSize: 10485760/);
    assert.ok((after.metadata?.generation ?? 0) > (before.metadata?.generation ?? 0), 'the template changed: a new StatefulSet generation (a rollout)');

    const mr = await waitFor('observedGeneration catches up', async () => {
      const m = await getMailRelay(cluster, ns, 'relay');
      return m.status?.observedGeneration === patched.metadata.generation ? m : undefined;
    });
    assert.equal(mr.status?.configHash, configHashOf(after));
    await waitFor('a ConfigChanged event', async () => (await eventsFor(cluster, ns, 'relay')).some((e) => e.reason === 'ConfigChanged'));
  });

  it('scaling changes replicas but not the config hash (no needless rollout)', async () => {
    const before = await cluster.apps.readNamespacedStatefulSet({ name: 'relay', namespace: ns });
    await patchMailRelaySpec(cluster, ns, 'relay', { replicas: 3 });
    const after = await waitFor('3 replicas', async () => {
      const s = await cluster.apps.readNamespacedStatefulSet({ name: 'relay', namespace: ns });
      return s.spec?.replicas === 3 ? s : undefined;
    });
    assert.equal(configHashOf(after), configHashOf(before));
  });
});
