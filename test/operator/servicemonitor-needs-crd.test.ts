// The ServiceMonitor and PrometheusRule exist only where the Prometheus Operator's CRDs
// do: without them the operator must not fail (creating them would 404), and once they
// are installed the objects appear (the PrometheusRule only where the spec opts in).
// Turning monitoring off deletes them again.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { installPrometheusOperatorCrds } from '../kube/crds.ts';
import { waitFor } from '../kube/testutil.ts';
import {
  createMailRelay, eventsFor, MERGE, minimalSpec, patchMailRelaySpec, startOperatorEnv, stopOperatorEnv, waitForCondition, type TestCluster, type TestOperator,
} from './harness.ts';

describe('ServiceMonitor and PrometheusRule', () => {
  let cluster: TestCluster;
  let op: TestOperator;
  const ns = 'mail';
  const monitoring = (plural: string, name: string) => cluster.server.get('monitoring.coreos.com', 'v1', plural, ns, name);

  before(async () => {
    ({ cluster, op } = await startOperatorEnv(ns));
  });
  after(() => stopOperatorEnv(cluster, op));

  it('without the CRDs: no ServiceMonitor, and no error', async () => {
    await createMailRelay(cluster, ns, 'relay', minimalSpec({ monitoring: { prometheusRule: { enabled: true } } }));
    await waitForCondition(cluster, ns, 'relay', 'Degraded', 'False');
    const log = cluster.server.requestLog.filter((e) => e.group === 'monitoring.coreos.com' && e.resource !== '');
    assert.deepEqual(log.map((e) => `${e.verb} ${e.resource}`), [], 'never even asked for them');
  });

  it('after the CRDs are installed, the next reconcile creates both, owned by the MailRelay', async () => {
    installPrometheusOperatorCrds(cluster.server);
    // A change brings the reconcile (in production the periodic resync does, too).
    await cluster.custom.patchNamespacedCustomObject({ group: 'mailrelay.io', version: 'v1alpha1', plural: 'mailrelays', namespace: ns, name: 'relay', body: { metadata: { labels: { team: 'mail' } } } }, MERGE);
    const sm = await waitFor('the ServiceMonitor', () => monitoring('servicemonitors', 'relay'));
    const pr = await waitFor('the PrometheusRule', () => monitoring('prometheusrules', 'relay'));
    assert.equal(sm.metadata.ownerReferences?.[0]?.kind, 'MailRelay');
    assert.equal(pr.metadata.ownerReferences?.[0]?.kind, 'MailRelay');
    assert.deepEqual((sm.spec as { selector: unknown }).selector, { matchLabels: { 'app.kubernetes.io/component': 'relay', 'app.kubernetes.io/instance': 'relay', 'app.kubernetes.io/name': 'mailrelay', 'mailrelay.io/service': 'headless' } });
  });

  it('a deleted ServiceMonitor comes back with the next reconcile', async () => {
    const uid = monitoring('servicemonitors', 'relay')?.metadata.uid;
    await cluster.custom.deleteNamespacedCustomObject({ group: 'monitoring.coreos.com', version: 'v1', plural: 'servicemonitors', namespace: ns, name: 'relay' });
    await patchMailRelaySpec(cluster, ns, 'relay', { logLevel: 'debug' });
    await waitFor('re-created', () => {
      const o = monitoring('servicemonitors', 'relay');
      return o && o.metadata.uid !== uid;
    });
  });

  it('turning monitoring off deletes them', async () => {
    await patchMailRelaySpec(cluster, ns, 'relay', { monitoring: { serviceMonitor: { enabled: false }, prometheusRule: { enabled: false } } });
    await waitFor('both deleted', () => !monitoring('servicemonitors', 'relay') && !monitoring('prometheusrules', 'relay'));
    await waitFor('a Deleted event', async () => (await eventsFor(cluster, ns, 'relay')).some((e) => e.reason === 'Deleted' && /ServiceMonitor\/relay/.test(e.message ?? '')));
  });
});
