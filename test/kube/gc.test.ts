// Deletion semantics: background garbage collection through ownerReferences
// (cascading), Orphan and Foreground propagation, finalizers, namespace termination.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AppsV1Api, CoreV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { V1ConfigMap, V1OwnerReference } from '@kubernetes/client-node';
import { startApiServer } from './apiserver.ts';
import type { ApiServer } from './apiserver.ts';
import { apiFailure, rawRequest, waitFor } from './testutil.ts';

const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

describe('deletion and garbage collection', () => {
  let server: ApiServer;
  let core: CoreV1Api;
  let apps: AppsV1Api;

  const ownedBy = (o: V1ConfigMap, kind = 'ConfigMap', apiVersion = 'v1'): V1OwnerReference[] =>
    [{ apiVersion, kind, name: o.metadata?.name ?? '', uid: o.metadata?.uid ?? '', controller: true, blockOwnerDeletion: true }];
  const exists = (ns: string, name: string) => server.get('', 'v1', 'configmaps', ns, name) !== undefined;

  before(async () => {
    server = await startApiServer();
    const kc = server.kubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    apps = kc.makeApiClient(AppsV1Api);
  });
  after(async () => { await server.close(); });

  test('background propagation: deleting an owner deletes its dependents, cascading, with DELETED events', async () => {
    const sts = await apps.createNamespacedStatefulSet({ namespace: 'default', body: {
      metadata: { name: 'owner' }, spec: { serviceName: 'owner', selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'i:1' }] } } },
    } });
    const child = await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'child', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'owner', uid: sts.metadata?.uid ?? '' }] } } });
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'grandchild', ownerReferences: ownedBy(child) } } });
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'bystander' } } });
    const deletedEvents: string[] = [];
    const unsubscribe = server.core.store.subscribe((ev) => { if (ev.type === 'DELETED') deletedEvents.push(ev.object.metadata.name ?? ''); });
    try {
      await apps.deleteNamespacedStatefulSet({ name: 'owner', namespace: 'default', propagationPolicy: 'Background' });
      await waitFor('dependents to be collected', () => !exists('default', 'child') && !exists('default', 'grandchild'));
      assert.deepEqual(deletedEvents, ['owner', 'child', 'grandchild']);
      assert.ok(exists('default', 'bystander'));
    } finally {
      unsubscribe();
    }
  });

  test('a dependent whose owner never existed is collected; one with a surviving owner loses only the dangling reference', async () => {
    const owner = await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'real-owner' } } });
    const dangling = [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'ghost', uid: '00000000-0000-0000-0000-000000000000' }];
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'orphaned', ownerReferences: dangling } } });
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'half', ownerReferences: [...dangling, ...ownedBy(owner)] } } });
    await waitFor('the orphan to be collected', () => !exists('default', 'orphaned'));
    const half = await waitFor('the dangling reference to go', async () => {
      const h = await core.readNamespacedConfigMap({ name: 'half', namespace: 'default' });
      return h.metadata?.ownerReferences?.length === 1 ? h : undefined;
    });
    assert.equal(half.metadata?.ownerReferences?.[0]?.name, 'real-owner');
  });

  test('Orphan propagation keeps dependents and strips their ownerReferences', async () => {
    const owner = await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'o-owner' } } });
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'o-child', ownerReferences: ownedBy(owner) } } });
    await core.deleteNamespacedConfigMap({ name: 'o-owner', namespace: 'default', propagationPolicy: 'Orphan' });
    assert.equal(exists('default', 'o-owner'), false);
    const child = await core.readNamespacedConfigMap({ name: 'o-child', namespace: 'default' });
    assert.equal(child.metadata?.ownerReferences, undefined);
  });

  test('finalizers hold deletion: deletionTimestamp is set, the object stays readable, removing the last finalizer deletes it', async () => {
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'guarded', finalizers: ['mailrelay.io/cleanup'] } } });
    // client-node types the answer as V1Status; on the wire it is the object, now being deleted.
    const pending = await rawRequest(`${server.url}/api/v1/namespaces/default/configmaps/guarded`, 'DELETE');
    assert.equal(pending.code, 200);
    assert.equal(pending.json.kind, 'ConfigMap');
    assert.ok((pending.json.metadata as { deletionTimestamp?: string }).deletionTimestamp);
    const still = await core.readNamespacedConfigMap({ name: 'guarded', namespace: 'default' });
    assert.ok(still.metadata?.deletionTimestamp instanceof Date);
    const more = await apiFailure(core.patchNamespacedConfigMap({ name: 'guarded', namespace: 'default', body: { metadata: { finalizers: ['mailrelay.io/cleanup', 'x.io/new'] } } }, merge));
    assert.equal(more.code, 422);
    assert.match(String(more.status.message), /no new finalizers can be added if the object is being deleted/);
    await core.patchNamespacedConfigMap({ name: 'guarded', namespace: 'default', body: { metadata: { finalizers: null } } }, merge);
    assert.equal((await apiFailure(core.readNamespacedConfigMap({ name: 'guarded', namespace: 'default' }))).code, 404);
  });

  test('Foreground propagation: the owner waits (foregroundDeletion finalizer) until its dependents are gone', async () => {
    const owner = await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'f-owner' } } });
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'f-child', ownerReferences: ownedBy(owner), finalizers: ['test/hold'] } } });
    await core.deleteNamespacedConfigMap({ name: 'f-owner', namespace: 'default', propagationPolicy: 'Foreground' });
    const waiting = await core.readNamespacedConfigMap({ name: 'f-owner', namespace: 'default' });
    assert.deepEqual(waiting.metadata?.finalizers, ['foregroundDeletion']);
    await waitFor('the child to be marked for deletion', async () => (await core.readNamespacedConfigMap({ name: 'f-child', namespace: 'default' })).metadata?.deletionTimestamp);
    assert.ok(exists('default', 'f-owner'), 'owner stays while a dependent remains');
    await core.patchNamespacedConfigMap({ name: 'f-child', namespace: 'default', body: { metadata: { finalizers: [] } } }, merge);
    await waitFor('the owner to go once the child is gone', () => !exists('default', 'f-owner') && !exists('default', 'f-child'));
  });

  test('deleting a namespace: Terminating, no new content (403), contents removed, then the namespace', async () => {
    await core.createNamespace({ body: { metadata: { name: 'doomed' } } });
    await core.createNamespacedConfigMap({ namespace: 'doomed', body: { metadata: { name: 'c1' } } });
    await core.createNamespacedSecret({ namespace: 'doomed', body: { metadata: { name: 's1', finalizers: ['test/hold'] } } });
    const ns = await core.deleteNamespace({ name: 'doomed' }) as unknown as { status?: { phase?: string } };
    assert.equal(ns.status?.phase, 'Terminating');
    const blocked = await apiFailure(core.createNamespacedConfigMap({ namespace: 'doomed', body: { metadata: { name: 'late' } } }));
    assert.equal(blocked.code, 403);
    assert.match(String(blocked.status.message), /unable to create new content in namespace doomed because it is being terminated/);
    await waitFor('contents to go', () => !exists('doomed', 'c1'));
    assert.ok(server.get('', 'v1', 'namespaces', undefined, 'doomed'), 'a finalizer on content holds the namespace');
    await core.patchNamespacedSecret({ name: 's1', namespace: 'doomed', body: { metadata: { finalizers: null } } }, merge);
    await waitFor('the namespace to go', () => server.get('', 'v1', 'namespaces', undefined, 'doomed') === undefined);
  });
});
