// A spec the CRD admits but the operator cannot run (a bad CIDR: CEL cannot check it)
// must be reported where the user looks (Degraded=True naming the field, a Warning
// Event), must not touch the running relays, and must not be retried in a loop: it waits
// for the next change of the MailRelay.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { waitFor } from '../kube/testutil.ts';
import {
  conditionOf, createMailRelay, eventsFor, metricValue, minimalSpec, patchMailRelaySpec, startOperatorEnv, stopOperatorEnv, waitForCondition, writesSince, type TestCluster, type TestOperator,
} from './harness.ts';

const reconcileCount = async (op: TestOperator) => metricValue(op.metrics.reconciles);

describe('invalid spec', () => {
  let cluster: TestCluster;
  let op: TestOperator;
  const ns = 'mail';

  before(async () => {
    ({ cluster, op } = await startOperatorEnv(ns));
  });
  after(() => stopOperatorEnv(cluster, op));

  it('a bad CIDR: Degraded=True naming the field, a Warning Event, the running relays untouched', async () => {
    await createMailRelay(cluster, ns, 'relay', minimalSpec());
    const valid = await waitForCondition(cluster, ns, 'relay', 'Degraded', 'False');
    const cmBefore = await cluster.core.readNamespacedConfigMap({ name: 'relay-config', namespace: ns });

    const patched = await patchMailRelaySpec(cluster, ns, 'relay', { relayNetworks: ['10.0.0.0/8', '10.0.0.300/8'] });
    const mr = await waitForCondition(cluster, ns, 'relay', 'Degraded', 'True', 'InvalidSpec');
    const degraded = conditionOf(mr, 'Degraded');
    assert.match(degraded?.message ?? '', /spec\.relayNetworks\[1\]: not a valid CIDR/);
    assert.equal(conditionOf(mr, 'Progressing')?.reason, 'InvalidSpec');
    assert.equal(mr.status?.observedGeneration, patched.metadata.generation);
    assert.equal(mr.status?.configHash, valid.status?.configHash, 'status keeps the hash of what still runs');
    const events = await waitFor('a Warning event', async () => {
      const list = await eventsFor(cluster, ns, 'relay');
      return list.some((e) => e.type === 'Warning' && e.reason === 'InvalidSpec') ? list : undefined;
    });
    assert.match(events.find((e) => e.reason === 'InvalidSpec')?.message ?? '', /spec\.relayNetworks\[1\]/);
    const cm = await cluster.core.readNamespacedConfigMap({ name: 'relay-config', namespace: ns });
    assert.equal(cm.data?.['relay.yaml'], cmBefore.data?.['relay.yaml'], 'the running config is left alone');
    assert.ok(await metricValue(op.metrics.reconciles, { result: 'invalid' }) >= 1);
  });

  it('is not retried on a timer: over a window, no reconciles and no writes', async () => {
    // Let the status write's own echo settle, then watch a window several backoffs long.
    await waitFor('the queue idle', () => op.queue.idle);
    await sleep(200);
    const reconciles = await reconcileCount(op);
    const log = cluster.server.requestLog.length;
    await sleep(1500); // 30x the 50 ms retry backoff of the test operator: a retry loop would show
    const during = (await reconcileCount(op)) - reconciles;
    assert.ok(during <= 1, `${during} reconciles in 1.5 s of an unchanged invalid spec`);
    assert.deepEqual(writesSince(cluster.server, log).map((e) => `${e.verb} ${e.resource}`), []);
  });

  it('a MailRelay invalid from the start gets no children, only its status', async () => {
    await createMailRelay(cluster, ns, 'broken', minimalSpec({ relayNetworks: ['not-a-network'] }));
    const mr = await waitForCondition(cluster, ns, 'broken', 'Degraded', 'True', 'InvalidSpec');
    assert.match(conditionOf(mr, 'Degraded')?.message ?? '', /spec\.relayNetworks\[0\]/);
    assert.equal(conditionOf(mr, 'Ready')?.reason, 'StatefulSetNotFound');
    await assert.rejects(cluster.apps.readNamespacedStatefulSet({ name: 'broken', namespace: ns }));
  });

  it('fixing the spec recovers: Degraded=False and a Recovered event', async () => {
    await patchMailRelaySpec(cluster, ns, 'relay', { relayNetworks: ['10.0.0.0/8', '10.0.3.0/24'] });
    await waitForCondition(cluster, ns, 'relay', 'Degraded', 'False', 'AsExpected');
    const cm = await cluster.core.readNamespacedConfigMap({ name: 'relay-config', namespace: ns });
    assert.match(cm.data?.['relay.yaml'] ?? '', /10\.0\.3\.0\/24/);
    await waitFor('Recovered', async () => (await eventsFor(cluster, ns, 'relay')).some((e) => e.reason === 'Recovered'));
  });
});
