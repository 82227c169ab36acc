// Watches end and history is compacted in every real cluster: an informer whose
// resourceVersion is too old gets 410 Gone and must relist, and a change made after that
// must still be reconciled.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../kube/testutil.ts';
import {
  createMailRelay, metricValue, minimalSpec, patchMailRelaySpec, startOperatorEnv, stopOperatorEnv, type TestCluster, type TestOperator,
} from './harness.ts';

describe('watch expiry', () => {
  let cluster: TestCluster;
  let op: TestOperator;
  const ns = 'mail';

  before(async () => {
    ({ cluster, op } = await startOperatorEnv(ns));
    await createMailRelay(cluster, ns, 'relay', minimalSpec());
    await waitFor('children', () => cluster.core.readNamespacedConfigMap({ name: 'relay-config', namespace: ns }));
  });
  after(() => stopOperatorEnv(cluster, op));

  const configHas = (text: RegExp) => waitFor(`relay.yaml matching ${text}`, async () => {
    const cm = await cluster.core.readNamespacedConfigMap({ name: 'relay-config', namespace: ns });
    return text.test(cm.data?.['relay.yaml'] ?? '');
  });

  it('compaction with the watches still open: the next change is reconciled', async () => {
    cluster.server.compact();
    await patchMailRelaySpec(cluster, ns, 'relay', { relayNetworks: ['10.1.0.0/16'] });
    await configHas(/10\.1\.0\.0\/16/);
  });

  it('compaction, then the watches end: the informers get 410, relist, and the next change is reconciled', async () => {
    // Move the revision on, so every informer's resourceVersion is behind the compaction point.
    cluster.server.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'unrelated', namespace: 'default' } });
    cluster.server.compact();
    const from = cluster.server.requestLog.length;
    const restarts = await metricValue(op.metrics.watchRestarts);
    cluster.server.endWatches();
    await waitFor('the MailRelay informer relists', () => cluster.server.requestLog.slice(from).some((e) => e.verb === 'list' && e.resource === 'mailrelays'), 10_000);
    await patchMailRelaySpec(cluster, ns, 'relay', { relayNetworks: ['10.2.0.0/16'] });
    await configHas(/10\.2\.0\.0\/16/);
    assert.equal(await metricValue(op.metrics.watchRestarts), restarts, '410 is a relist, not a restart');
  });
});
