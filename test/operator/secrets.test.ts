// Secrets a MailRelay references: a missing one is reported (Degraded=True, SecretNotFound,
// naming the field) and picked up as soon as it is created, without touching the
// MailRelay; a rotated one changes the config hash, so the relays restart with it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../kube/testutil.ts';
import {
  conditionOf, configHashOf, createMailRelay, eventsFor, getMailRelay, MERGE, metricValue, minimalSpec, startOperatorEnv, stopOperatorEnv, waitForCondition, type TestCluster, type TestOperator,
} from './harness.ts';

const USERS = 'app:$2b$10$/cxA/h56p3p6YJVw6CjvheDflgMtS/3GhGOwXq11WQ9FImT70IvPq\n';

describe('referenced Secrets', () => {
  let cluster: TestCluster;
  let op: TestOperator;
  const ns = 'mail';

  before(async () => {
    ({ cluster, op } = await startOperatorEnv(ns));
  });
  after(() => stopOperatorEnv(cluster, op));

  it('a missing Secret: Degraded=True SecretNotFound naming the field, and no children', async () => {
    await createMailRelay(cluster, ns, 'relay', minimalSpec({ auth: { usersSecretRef: { name: 'relay-users' }, requireTLS: false } }));
    const mr = await waitForCondition(cluster, ns, 'relay', 'Degraded', 'True', 'SecretNotFound');
    assert.match(conditionOf(mr, 'Degraded')?.message ?? '', /spec\.auth\.usersSecretRef\.name: Secret "relay-users" not found/);
    await waitFor('a SecretNotFound warning', async () => (await eventsFor(cluster, ns, 'relay')).some((e) => e.type === 'Warning' && e.reason === 'SecretNotFound'));
    await assert.rejects(cluster.apps.readNamespacedStatefulSet({ name: 'relay', namespace: ns }));
  });

  it('creating the Secret recovers without touching the MailRelay', async () => {
    const generation = (await getMailRelay(cluster, ns, 'relay')).metadata.generation;
    await cluster.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'relay-users' }, stringData: { users: USERS } } });
    const mr = await waitForCondition(cluster, ns, 'relay', 'Degraded', 'False');
    assert.equal(mr.metadata.generation, generation);
    const sts = await cluster.apps.readNamespacedStatefulSet({ name: 'relay', namespace: ns });
    const projected = sts.spec?.template.spec?.volumes?.find((v) => v.name === 'config')?.projected?.sources ?? [];
    assert.ok(projected.some((s) => s.secret?.name === 'relay-users'), 'the users file is mounted from the Secret');
  });

  it('rotating the Secret data changes the config hash (the pods roll); an unrelated key does not', async () => {
    const before = await cluster.apps.readNamespacedStatefulSet({ name: 'relay', namespace: ns });
    const hash = configHashOf(before);
    const reconciles = await metricValue(op.metrics.reconciles);
    await cluster.core.patchNamespacedSecret({ name: 'relay-users', namespace: ns, body: { stringData: { unrelated: 'x' } } }, MERGE);
    // The unrelated change is observed (the Secret event brings a reconcile) but must not roll anything.
    await waitFor('the unrelated key reconciled', async () => (await metricValue(op.metrics.reconciles)) > reconciles);
    const same = await cluster.apps.readNamespacedStatefulSet({ name: 'relay', namespace: ns });
    assert.equal(configHashOf(same), hash);
    assert.equal(same.metadata?.generation, before.metadata?.generation);
    await cluster.core.patchNamespacedSecret({ name: 'relay-users', namespace: ns, body: { stringData: { users: `${USERS}ops:$2b$10$/cxA/h56p3p6YJVw6CjvheDflgMtS/3GhGOwXq11WQ9FImT70IvPq\n` } } }, MERGE);
    const after = await waitFor('a new config hash', async () => {
      const s = await cluster.apps.readNamespacedStatefulSet({ name: 'relay', namespace: ns });
      return configHashOf(s) !== hash ? s : undefined;
    });
    const mr = await waitFor('status follows', async () => {
      const m = await getMailRelay(cluster, ns, 'relay');
      return m.status?.configHash === configHashOf(after) ? m : undefined;
    });
    assert.notEqual(mr.status?.configHash, hash);
    // Exactly one rollout: the StatefulSet generation moved once for the rotation.
    assert.equal(after.metadata?.generation, (before.metadata?.generation ?? 0) + 1);
  });

  it('deleting the Secret degrades again', async () => {
    await cluster.core.deleteNamespacedSecret({ name: 'relay-users', namespace: ns });
    await waitForCondition(cluster, ns, 'relay', 'Degraded', 'True', 'SecretNotFound');
  });
});
