// Two operator replicas must never both reconcile: only the Lease holder writes. When the
// leader shuts down it releases the Lease and the other takes over at once; when it loses
// the Lease (someone else holds it) it stops writing before that Lease could be taken.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoordinationV1Api } from '@kubernetes/client-node';
import { microTime } from '../../operator/controller/leader.ts';
import { waitFor } from '../kube/testutil.ts';
import {
  createMailRelay, createNamespace, metricValue, minimalSpec, patchMailRelaySpec, startTestCluster, startTestOperator,
  writesSince, type TestCluster, type TestOperator,
} from './harness.ts';

const LEASE = { namespace: 'mail-system', name: 'mailrelay-operator-leader', leaseDurationMs: 1500, renewDeadlineMs: 1000, retryPeriodMs: 150 };
const nonLease = (e: { resource: string }) => e.resource !== 'leases';

describe('leader election', () => {
  let cluster: TestCluster;
  let a: TestOperator;
  let b: TestOperator;
  const ns = 'mail';

  before(async () => {
    cluster = await startTestCluster();
    createNamespace(cluster, ns);
    createNamespace(cluster, 'mail-system');
    a = await startTestOperator(cluster, { identity: 'replica-a', leaderElection: LEASE });
    b = await startTestOperator(cluster, { identity: 'replica-b', leaderElection: LEASE });
  });
  after(async () => {
    await a.stop();
    await b.stop();
    await cluster.close();
  });

  const configHas = (re: RegExp) => waitFor(`relay.yaml matching ${re}`, async () => {
    const cm = await cluster.core.readNamespacedConfigMap({ name: 'relay-config', namespace: ns });
    return re.test(cm.data?.['relay.yaml'] ?? '');
  }, 10_000);

  it('elects exactly one leader, and only the leader writes', async () => {
    await waitFor('a leader', () => a.leading || b.leading, 5000);
    await sleep(LEASE.retryPeriodMs * 3); // a few more election rounds: still exactly one
    assert.equal(Number(a.leading) + Number(b.leading), 1);
    const [leader, follower] = a.leading ? [a, b] : [b, a];
    assert.equal(await metricValue(leader.metrics.leader), 1);
    assert.equal(await metricValue(follower.metrics.leader), 0);

    const from = cluster.server.requestLog.length;
    await createMailRelay(cluster, ns, 'relay', minimalSpec());
    await configHas(/10\.0\.0\.0\/8/);
    await waitFor('status written', async () => writesSince(cluster.server, from, `mailrelay-operator/${leader.identity}`).some((e) => e.subresource === 'status'));
    assert.deepEqual(writesSince(cluster.server, from, `mailrelay-operator/${follower.identity}`).filter(nonLease).map((e) => `${e.verb} ${e.resource}`), [], 'the follower wrote nothing');
    assert.equal(await metricValue(follower.metrics.reconciles), 0);
    const lease = await cluster.kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: LEASE.name, namespace: LEASE.namespace });
    assert.equal(lease.spec?.holderIdentity, leader.identity);
  });

  it('a leader that shuts down releases the Lease; the other takes over without waiting for expiry', async () => {
    const [leader, follower] = a.leading ? [a, b] : [b, a];
    const stoppedAt = Date.now();
    await leader.stop();
    const lease = await cluster.kc.makeApiClient(CoordinationV1Api).readNamespacedLease({ name: LEASE.name, namespace: LEASE.namespace });
    assert.ok(lease.spec?.holderIdentity === '' || lease.spec?.holderIdentity === follower.identity, `released: ${lease.spec?.holderIdentity}`);
    await waitFor('the follower leads', () => follower.leading, 5000);
    assert.ok(Date.now() - stoppedAt < LEASE.leaseDurationMs, 'took over before the lease could have expired');
    const from = cluster.server.requestLog.length;
    await patchMailRelaySpec(cluster, ns, 'relay', { relayNetworks: ['10.9.0.0/16'] });
    await configHas(/10\.9\.0\.0\/16/);
    assert.ok(writesSince(cluster.server, from, `mailrelay-operator/${follower.identity}`).some((e) => e.resource === 'configmaps'));
    assert.deepEqual(writesSince(cluster.server, from, `mailrelay-operator/${leader.identity}`), [], 'the old leader is silent');
  });

  it('a leader that loses its Lease stops reconciling, and resumes when it gets it back', async () => {
    const leader = a.leading ? a : b;
    const leases = cluster.kc.makeApiClient(CoordinationV1Api);
    // Someone else takes the Lease (as after a partition, when it expired unseen). The
    // leader renews every retryPeriod, so the write may lose a race (409): try again.
    const writeLease = (spec: Record<string, unknown>) => waitFor('the Lease written', async () => {
      const current = await leases.readNamespacedLease({ name: LEASE.name, namespace: LEASE.namespace });
      await leases.replaceNamespacedLease({ name: LEASE.name, namespace: LEASE.namespace, body: { ...current, spec: { ...current.spec, ...spec } } });
      return true;
    });
    await writeLease({ holderIdentity: 'intruder', leaseDurationSeconds: 3600, renewTime: microTime(Date.now()) });
    await waitFor('the leader steps down', () => !leader.leading, LEASE.renewDeadlineMs + 2000);
    assert.equal(await metricValue(leader.metrics.leader), 0);
    const from = cluster.server.requestLog.length;
    await patchMailRelaySpec(cluster, ns, 'relay', { relayNetworks: ['10.10.0.0/16'] });
    await sleep(500); // a window in which a replica still reconciling would have written the ConfigMap
    assert.deepEqual(writesSince(cluster.server, from, 'mailrelay-operator/').filter(nonLease).map((e) => `${e.verb} ${e.resource}`), []);

    // The intruder releases it: the replica acquires it and catches up.
    await writeLease({ holderIdentity: '', leaseDurationSeconds: 1 });
    await waitFor('leading again', () => leader.leading, 5000);
    await configHas(/10\.10\.0\.0\/16/);
  });
});
