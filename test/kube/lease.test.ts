// coordination.k8s.io/v1 Leases behave like any resource (409 on a stale
// resourceVersion), which is all leader election needs. client-node 2.x ships no
// LeaderElection, so a minimal client-go style elector exercises the protocol.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiException, CoordinationV1Api } from '@kubernetes/client-node';
import type { V1Lease } from '@kubernetes/client-node';
import { startApiServer } from './apiserver.ts';
import type { ApiServer } from './apiserver.ts';
import { apiFailure, waitFor } from './testutil.ts';

/** One try of client-go's tryAcquireOrRenew against the lease; true when `me` holds it afterwards. */
async function tryAcquireOrRenew(api: CoordinationV1Api, name: string, me: string, durationSeconds: number): Promise<boolean> {
  const now = new Date();
  let lease: V1Lease;
  try {
    lease = await api.readNamespacedLease({ name, namespace: 'default' });
  } catch (e) {
    if (!(e instanceof ApiException) || e.code !== 404) throw e;
    try {
      await api.createNamespacedLease({ namespace: 'default', body: { metadata: { name }, spec: { holderIdentity: me, leaseDurationSeconds: durationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0 } } });
      return true;
    } catch (ce) {
      if (ce instanceof ApiException && ce.code === 409) return false;
      throw ce;
    }
  }
  const spec = lease.spec ?? {};
  // client-node 2.x has no model for V1MicroTime: renewTime arrives as the wire string, not a Date.
  const renewed = spec.renewTime ? new Date(spec.renewTime).getTime() : undefined;
  const expired = renewed === undefined || renewed + (spec.leaseDurationSeconds ?? durationSeconds) * 1000 < now.getTime();
  if (spec.holderIdentity !== me && !expired) return false;
  const takeover = spec.holderIdentity !== me;
  try {
    await api.replaceNamespacedLease({ name, namespace: 'default', body: { ...lease, spec: {
      ...spec, holderIdentity: me, renewTime: now, leaseDurationSeconds: durationSeconds,
      ...(takeover ? { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 } : {}),
    } } });
    return true;
  } catch (e) {
    if (e instanceof ApiException && e.code === 409) return false;
    throw e;
  }
}

describe('leases', () => {
  let server: ApiServer;
  let api: CoordinationV1Api;

  before(async () => {
    server = await startApiServer();
    api = server.kubeConfig().makeApiClient(CoordinationV1Api);
  });
  after(async () => { await server.close(); });

  test('lease CRUD with optimistic concurrency: a stale resourceVersion gets 409', async () => {
    const now = new Date();
    const created = await api.createNamespacedLease({ namespace: 'default', body: { metadata: { name: 'crud' }, spec: { holderIdentity: 'a', leaseDurationSeconds: 15, renewTime: now } } });
    assert.equal(created.spec?.holderIdentity, 'a');
    assert.equal(new Date(created.spec?.renewTime as unknown as string).getTime(), now.getTime(), 'renewTime round-trips');
    const renewed = await api.replaceNamespacedLease({ name: 'crud', namespace: 'default', body: { ...created, spec: { ...created.spec, renewTime: new Date(now.getTime() + 1000) } } });
    assert.ok(Number(renewed.metadata?.resourceVersion) > Number(created.metadata?.resourceVersion));
    const stale = await apiFailure(api.replaceNamespacedLease({ name: 'crud', namespace: 'default', body: { ...created, spec: { ...created.spec, holderIdentity: 'b' } } }));
    assert.equal(stale.code, 409);
    assert.equal(stale.status.reason, 'Conflict');
    assert.equal(stale.status.message, 'Operation cannot be fulfilled on leases.coordination.k8s.io "crud": the object has been modified; please apply your changes to the latest version and try again');
    const bad = await apiFailure(api.createNamespacedLease({ namespace: 'default', body: { metadata: { name: 'bad' }, spec: { leaseDurationSeconds: 'long' as unknown as number } } }));
    assert.equal(bad.code, 422);
    assert.match(String(bad.status.message), /^Lease\.coordination\.k8s\.io "bad" is invalid: spec\.leaseDurationSeconds/);
  });

  test('leader election: racing candidates elect exactly one; another takes over once the lease expires', async () => {
    const rounds = await Promise.all(['a', 'b', 'c'].map((id) => tryAcquireOrRenew(api, 'mailrelay-operator', id, 1)));
    assert.equal(rounds.filter(Boolean).length, 1, `exactly one leader: ${rounds.join(',')}`);
    const leader = ['a', 'b', 'c'][rounds.indexOf(true)] ?? '';
    assert.equal((await api.readNamespacedLease({ name: 'mailrelay-operator', namespace: 'default' })).spec?.holderIdentity, leader);
    assert.equal(await tryAcquireOrRenew(api, 'mailrelay-operator', leader, 1), true, 'the leader renews');
    const other = leader === 'a' ? 'b' : 'a';
    assert.equal(await tryAcquireOrRenew(api, 'mailrelay-operator', other, 1), false, 'others cannot take a live lease');

    // The leader stops renewing; the other candidate keeps trying until the lease expires.
    await waitFor('takeover after expiry', () => tryAcquireOrRenew(api, 'mailrelay-operator', other, 1), 5000, 100);
    const lease = await api.readNamespacedLease({ name: 'mailrelay-operator', namespace: 'default' });
    assert.equal(lease.spec?.holderIdentity, other);
    assert.equal(lease.spec?.leaseTransitions, 1);
    const writes = server.requestLog.filter((e) => e.resource === 'leases' && e.name === 'mailrelay-operator').map((e) => e.verb);
    assert.ok(writes.includes('update') && writes.includes('get'));
  });
});
