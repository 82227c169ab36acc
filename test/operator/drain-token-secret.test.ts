// The drain-token Secret (ADR 0003 R2): the reconcile creates `<name>-drain-token` once
// (a random token, owned by the MailRelay, standard labels), never rotates it, leaves a
// Secret of that name it did not create alone, creates it again when it is deleted, and
// none of this changes the relays' config hash (the pods mount it optional).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Secret } from '@kubernetes/client-node';
import { waitFor } from '../kube/testutil.ts';
import {
  configHashOf, createMailRelay, getMailRelay, minimalSpec, patchMailRelaySpec, startOperatorEnv, stopOperatorEnv, writesSince, type TestCluster, type TestOperator,
} from './harness.ts';

const tokenOf = (s: V1Secret) => Buffer.from(s.data?.token ?? '', 'base64').toString('utf8');

describe('the drain-token Secret', () => {
  let cluster: TestCluster;
  let op: TestOperator;
  const ns = 'mail';
  const readSecret = (name: string) => cluster.core.readNamespacedSecret({ name, namespace: ns });
  const secretWrites = (from: number) => writesSince(cluster.server, from, 'mailrelay-operator/').filter((e) => e.resource === 'secrets');

  before(async () => {
    ({ cluster, op } = await startOperatorEnv(ns));
  });
  after(() => stopOperatorEnv(cluster, op));

  it('is created with the MailRelay: Opaque, a 32-byte base64url token, owned by the MailRelay, standard labels', async () => {
    const mr = await createMailRelay(cluster, ns, 'relay', minimalSpec());
    const secret = await waitFor('the drain-token Secret', () => readSecret('relay-drain-token'));
    assert.equal(secret.type, 'Opaque');
    assert.match(tokenOf(secret), /^[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(tokenOf(secret), 'base64url').length, 32);
    assert.deepEqual(secret.metadata?.ownerReferences?.map((r) => [r.kind, r.name, r.uid, r.controller]), [['MailRelay', 'relay', mr.metadata.uid, true]]);
    assert.equal(secret.metadata?.labels?.['app.kubernetes.io/instance'], 'relay');
    assert.equal(secret.metadata?.labels?.['app.kubernetes.io/managed-by'], 'mailrelay-operator');
    const sts = await waitFor('the StatefulSet', () => cluster.apps.readNamespacedStatefulSet({ name: 'relay', namespace: ns }));
    const sources = sts.spec?.template.spec?.volumes?.find((v) => v.name === 'config')?.projected?.sources ?? [];
    assert.ok(sources.some((s) => s.secret?.name === 'relay-drain-token' && s.secret.optional === true), 'mounted optional');
  });

  it('is never rotated: later reconciles leave it alone', async () => {
    const before = await readSecret('relay-drain-token');
    const from = cluster.server.requestLog.length;
    const generation = (await patchMailRelaySpec(cluster, ns, 'relay', { logLevel: 'debug' })).metadata.generation;
    await waitFor('reconciled', async () => (await getMailRelay(cluster, ns, 'relay')).status?.observedGeneration === generation);
    const after = await readSecret('relay-drain-token');
    assert.equal(tokenOf(after), tokenOf(before));
    assert.equal(after.metadata?.resourceVersion, before.metadata?.resourceVersion);
    assert.deepEqual(secretWrites(from), []);
  });

  it('is created again when deleted, and the config hash stays', async () => {
    const hash = configHashOf(await cluster.apps.readNamespacedStatefulSet({ name: 'relay', namespace: ns }));
    const old = tokenOf(await readSecret('relay-drain-token'));
    await cluster.core.deleteNamespacedSecret({ name: 'relay-drain-token', namespace: ns });
    const again = await waitFor('the Secret again', async () => {
      try { return await readSecret('relay-drain-token'); } catch { return undefined; }
    });
    assert.notEqual(tokenOf(again), old);
    assert.equal(configHashOf(await cluster.apps.readNamespacedStatefulSet({ name: 'relay', namespace: ns })), hash, 'the pods do not roll');
  });

  it('a Secret of that name that exists already is used as it is, not replaced', async () => {
    await cluster.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'mine-drain-token' }, stringData: { token: 'chosen-by-a-person' } } });
    const from = cluster.server.requestLog.length;
    await createMailRelay(cluster, ns, 'mine', minimalSpec());
    await waitFor('the StatefulSet', () => cluster.apps.readNamespacedStatefulSet({ name: 'mine', namespace: ns }));
    const secret = await readSecret('mine-drain-token');
    assert.equal(tokenOf(secret), 'chosen-by-a-person');
    assert.equal(secret.metadata?.ownerReferences, undefined);
    // If the Secret cache had not seen it yet, a create may have been tried: it gets a 409 and changes nothing.
    assert.deepEqual(secretWrites(from).filter((e) => e.code !== 409), []);
  });
});
