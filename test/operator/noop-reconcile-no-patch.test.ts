// A reconcile that finds nothing to change must write nothing: no PATCH of any child,
// no status PUT, no Event. Otherwise every resync and every child event costs a round of
// writes, each of which wakes other controllers (and us) again.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GROUP, PLURAL, VERSION } from '../../operator/api/mailrelay.ts';
import { waitFor } from '../kube/testutil.ts';
import {
  createMailRelay, MERGE, metricValue, minimalSpec, setStatefulSetStatus, startOperatorEnv, stopOperatorEnv, waitForCondition, writesSince, type TestCluster, type TestOperator,
} from './harness.ts';

describe('no-op reconcile', () => {
  let cluster: TestCluster;
  let op: TestOperator;
  const ns = 'mail';

  before(async () => {
    ({ cluster, op } = await startOperatorEnv(ns));
  });
  after(() => stopOperatorEnv(cluster, op));

  it('issues no PATCH, no status write and no Event when nothing changed', async () => {
    await createMailRelay(cluster, ns, 'relay', minimalSpec({ networkPolicy: { enabled: true } }));
    await waitFor('the StatefulSet', () => cluster.apps.readNamespacedStatefulSet({ name: 'relay', namespace: ns }));
    await setStatefulSetStatus(cluster, ns, 'relay', 1);
    await waitForCondition(cluster, ns, 'relay', 'Ready', 'True');
    await waitFor('the queue idle', () => op.queue.idle);

    const from = cluster.server.requestLog.length;
    const reconciles = await metricValue(op.metrics.reconciles, { result: 'success' });
    const unchanged = await metricValue(op.metrics.writes, { result: 'unchanged' });
    // A metadata-only change of the MailRelay brings a reconcile (status-only changes do not).
    await cluster.custom.patchNamespacedCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, namespace: ns, name: 'relay', body: { metadata: { annotations: { touched: 'yes' } } } }, MERGE);
    op.enqueue(`${ns}/relay`);
    await waitFor('a reconcile', async () => (await metricValue(op.metrics.reconciles, { result: 'success' })) > reconciles);
    await waitFor('the queue idle', () => op.queue.idle);

    const ours = writesSince(cluster.server, from, 'mailrelay-operator/');
    assert.deepEqual(ours.map((e) => `${e.verb} ${e.resource}${e.subresource ? `/${e.subresource}` : ''} ${e.name ?? ''}`), []);
    const children = 6; // NetworkPolicy, ConfigMap, 2 Services, PDB, StatefulSet
    assert.ok((await metricValue(op.metrics.writes, { result: 'unchanged' })) - unchanged >= children, 'every child was compared and skipped');
  });
});
