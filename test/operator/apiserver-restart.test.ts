// An API server restart cuts every watch with a connection error, which stops a
// client-node informer for good. The operator must restart its informers (with backoff,
// counted in watchRestarts) and reconcile what changes once the server is back.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../kube/testutil.ts';
import {
  createMailRelay, metricValue, minimalSpec, patchMailRelaySpec, startOperatorEnv, stopOperatorEnv, type TestCluster, type TestOperator,
} from './harness.ts';

describe('API server restart', () => {
  let cluster: TestCluster;
  let op: TestOperator;
  const ns = 'mail';

  before(async () => {
    ({ cluster, op } = await startOperatorEnv(ns, { leaderElection: { namespace: 'default', name: 'mailrelay-operator-leader', leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 200 } }));
    await waitFor('leading', () => op.leading);
    await createMailRelay(cluster, ns, 'relay', minimalSpec());
    await waitFor('children', () => cluster.core.readNamespacedConfigMap({ name: 'relay-config', namespace: ns }));
  });
  after(() => stopOperatorEnv(cluster, op));

  it('restarts the informers and reconciles changes made after the restart (and during it)', async () => {
    await cluster.server.stop();
    await waitFor('the informers notice', async () => (await metricValue(op.metrics.watchRestarts, { kind: 'MailRelay' })) > 0, 10_000);
    // A change while this API server is down (as through another replica of it): written to the store directly.
    const rt = cluster.server.resourceType('mailrelay.io', 'v1alpha1', 'mailrelays');
    cluster.server.core.patch(rt, ns, 'relay', '', 'application/merge-patch+json', JSON.stringify({ spec: { maxMessageSize: '7Mi' } }), { fieldManager: 'kubectl' });
    await cluster.server.start();
    const configHas = (re: RegExp) => waitFor(`relay.yaml matching ${re}`, async () => {
      const cm = await cluster.core.readNamespacedConfigMap({ name: 'relay-config', namespace: ns });
      return re.test(cm.data?.['relay.yaml'] ?? '');
    }, 15_000);
    await configHas(/maxMessageSize: 7340032/);
    await patchMailRelaySpec(cluster, ns, 'relay', { relayNetworks: ['172.16.0.0/12'] });
    await configHas(/172\.16\.0\.0\/12/);
    assert.ok(await metricValue(op.metrics.watchRestarts) >= 1);
    await waitFor('leading again (the lease was renewed or re-acquired)', () => op.leading, 10_000);
  });
});
