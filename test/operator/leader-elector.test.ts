// The Lease elector on its own, against the test API server: takeover after a leader
// dies without releasing (judged on the candidate's own clock, so a skewed renewTime
// cannot hold the Lease forever), stepping down within renewDeadline when the API server
// is unreachable, and releasing only after reconciling has stopped.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CoordinationV1Api } from '@kubernetes/client-node';
import { LeaderElector, microTime } from '../../operator/controller/leader.ts';
import { startApiServer, type ApiServer } from '../kube/apiserver.ts';
import { waitFor } from '../kube/testutil.ts';

const TIMING = { leaseDurationMs: 1000, renewDeadlineMs: 600, retryPeriodMs: 100 };

describe('LeaderElector', () => {
  let server: ApiServer;
  let api: CoordinationV1Api;

  before(async () => {
    server = await startApiServer();
    api = server.kubeConfig().makeApiClient(CoordinationV1Api);
  });
  after(async () => { await server.close(); });

  const elector = (name: string, identity: string, log: string[] = []) => new LeaderElector({
    api, namespace: 'default', name, identity, ...TIMING,
    onStartedLeading: () => log.push(`${identity} start`),
    onStoppedLeading: () => { log.push(`${identity} stop`); },
  });

  it('takes over from a leader that died without releasing, after leaseDuration on its own clock', async () => {
    // A dead holder whose renewTime claims the far future (a skewed clock).
    await api.createNamespacedLease({ namespace: 'default', body: { metadata: { name: 'dead' }, spec: {
      holderIdentity: 'crashed', leaseDurationSeconds: 1, renewTime: microTime(Date.now() + 3_600_000) as unknown as Date, leaseTransitions: 4,
    } } });
    const log: string[] = [];
    const b = elector('dead', 'b', log);
    const t0 = Date.now();
    b.run();
    await waitFor('b leads', () => b.isLeader, 5000);
    const waited = Date.now() - t0;
    assert.ok(waited >= 1000 && waited < 3000, `waited ${waited} ms`);
    const lease = await api.readNamespacedLease({ name: 'dead', namespace: 'default' });
    assert.equal(lease.spec?.holderIdentity, 'b');
    assert.equal(lease.spec?.leaseTransitions, 5);
    await b.stop();
    assert.deepEqual(log, ['b start', 'b stop']);
  });

  it('steps down within renewDeadline when the API server goes away, and leads again when it is back', async () => {
    const log: string[] = [];
    const a = elector('outage', 'a', log);
    a.run();
    await waitFor('a leads', () => a.isLeader, 5000);
    await server.stop();
    const t0 = Date.now();
    await waitFor('a steps down', () => !a.isLeader, 5000);
    assert.ok(Date.now() - t0 < TIMING.leaseDurationMs + 200, 'before anyone else could take the lease');
    await server.start();
    await waitFor('a leads again', () => a.isLeader, 5000);
    await a.stop();
    assert.deepEqual(log, ['a start', 'a stop', 'a start', 'a stop']);
  });

  it('releases the Lease on stop only after onStoppedLeading has finished', async () => {
    let holderWhileStopping: string | undefined;
    const a = new LeaderElector({
      api, namespace: 'default', name: 'release', identity: 'a', ...TIMING,
      onStartedLeading: () => undefined,
      onStoppedLeading: async () => {
        holderWhileStopping = (await api.readNamespacedLease({ name: 'release', namespace: 'default' })).spec?.holderIdentity;
      },
    });
    a.run();
    await waitFor('a leads', () => a.isLeader, 5000);
    await a.stop();
    assert.equal(holderWhileStopping, 'a', 'still held while reconciling stops');
    const lease = await api.readNamespacedLease({ name: 'release', namespace: 'default' });
    assert.equal(lease.spec?.holderIdentity, '');
    const b = elector('release', 'b');
    const t0 = Date.now();
    b.run();
    await waitFor('b leads at once', () => b.isLeader, 5000);
    assert.ok(Date.now() - t0 < TIMING.leaseDurationMs, 'no wait for expiry after a release');
    await b.stop();
  });

  it('rejects timings where the leader could outlive its lease', () => {
    assert.throws(() => new LeaderElector({ api, namespace: 'default', name: 'x', identity: 'a', leaseDurationMs: 1000, renewDeadlineMs: 1000, retryPeriodMs: 100, onStartedLeading: () => undefined, onStoppedLeading: () => undefined }));
  });
});
