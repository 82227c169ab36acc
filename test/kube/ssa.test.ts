// Server-side apply through client-node's KubernetesObjectApi.patch(..., ServerSideApply):
// create, update, no-op, removal of dropped fields, conflicts between managers, force.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AppsV1Api, CoreV1Api, KubernetesObjectApi, PatchStrategy, Watch, setHeaderOptions } from '@kubernetes/client-node';
import type { KubernetesObject, V1ConfigMap, V1StatefulSet } from '@kubernetes/client-node';
import { startApiServer } from './apiserver.ts';
import type { ApiServer } from './apiserver.ts';
import { apiFailure, rawRequest, waitFor } from './testutil.ts';

function relaySts(image: string, extra: Record<string, unknown> = {}): V1StatefulSet {
  return {
    apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'relay', namespace: 'default', labels: { app: 'relay' } },
    spec: {
      serviceName: 'relay', replicas: 2, selector: { matchLabels: { app: 'relay' } },
      template: {
        metadata: { labels: { app: 'relay' } },
        spec: { containers: [{ name: 'relay', image, env: [{ name: 'MODE', value: 'prod' }], ports: [{ name: 'smtp', containerPort: 25 }] }] },
      },
      ...extra,
    },
  };
}

describe('server-side apply', () => {
  let server: ApiServer;
  let objects: KubernetesObjectApi;
  let apps: AppsV1Api;
  const ssa = <T extends KubernetesObject>(obj: T, manager: string, force = false) =>
    objects.patch(obj, undefined, undefined, manager, force, PatchStrategy.ServerSideApply);

  before(async () => {
    server = await startApiServer();
    objects = KubernetesObjectApi.makeApiClient(server.kubeConfig());
    apps = server.kubeConfig().makeApiClient(AppsV1Api);
  });
  after(async () => { await server.close(); });

  test('apply creates a missing object and records an Apply managedFields entry', async () => {
    const created = await ssa(relaySts('mailrelay:1'), 'mailrelay-operator');
    assert.equal(created.metadata?.generation, 1);
    const mf = created.metadata?.managedFields ?? [];
    assert.equal(mf.length, 1);
    assert.equal(mf[0]?.manager, 'mailrelay-operator');
    assert.equal(mf[0]?.operation, 'Apply');
    const fields = mf[0]?.fieldsV1 as Record<string, Record<string, unknown>>;
    assert.ok(fields['f:spec']?.['f:replicas'], 'spec.replicas is owned');
    assert.equal(server.requestLog.at(-1)?.code, 201);
  });

  test('apply updates; an identical apply is a no-op that neither bumps resourceVersion nor emits a watch event', async () => {
    const updated = await ssa(relaySts('mailrelay:2'), 'mailrelay-operator');
    assert.equal(updated.spec?.template.spec?.containers[0]?.image, 'mailrelay:2');
    assert.equal(updated.metadata?.generation, 2);
    const rv = updated.metadata?.resourceVersion;

    const events: Array<{ type: string; rv: string | undefined; labels: Record<string, string> | undefined }> = [];
    const watch = new Watch(server.kubeConfig());
    const req = await watch.watch('/apis/apps/v1/namespaces/default/statefulsets', { resourceVersion: rv },
      (type: string, obj: V1StatefulSet) => events.push({ type, rv: obj.metadata?.resourceVersion, labels: obj.metadata?.labels }), () => {});
    try {
      const again = await ssa(relaySts('mailrelay:2'), 'mailrelay-operator');
      assert.equal(again.metadata?.resourceVersion, rv, 'no-op apply keeps the resourceVersion');
      // A marker write: the first event the watch sees must be this one, not the no-op.
      await apps.patchNamespacedStatefulSet({ name: 'relay', namespace: 'default', body: { metadata: { labels: { marker: 'yes' } } }, fieldManager: 'marker' },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
      await waitFor('the marker event', () => events.some((e) => e.labels?.marker === 'yes'));
      const first = events[0];
      assert.equal(first?.type, 'MODIFIED');
      assert.equal(first?.labels?.marker, 'yes', 'the no-op apply produced no event before the marker');
      assert.equal(events.length, 1);
    } finally {
      req.abort();
    }
  });

  test('a manager that stops applying a field removes it; fields others own stay', async () => {
    const withExtra = await ssa(relaySts('mailrelay:2', { minReadySeconds: 10 }), 'mailrelay-operator');
    assert.equal(withExtra.spec?.minReadySeconds, 10);
    const without = await ssa(relaySts('mailrelay:2'), 'mailrelay-operator');
    assert.equal(without.spec?.minReadySeconds, undefined);
    assert.equal(without.metadata?.labels?.marker, 'yes', 'the marker label belongs to another manager');

    const twoEnv = relaySts('mailrelay:2');
    twoEnv.spec!.template.spec!.containers[0]!.env!.push({ name: 'DEBUG', value: '1' });
    const added = await ssa(twoEnv, 'mailrelay-operator');
    assert.deepEqual(added.spec?.template.spec?.containers[0]?.env?.map((e) => e.name), ['MODE', 'DEBUG']);
    const removed = await ssa(relaySts('mailrelay:2'), 'mailrelay-operator');
    assert.deepEqual(removed.spec?.template.spec?.containers[0]?.env?.map((e) => e.name), ['MODE'], 'env merges by name; the dropped item goes');
  });

  test('a second manager setting an owned field to a different value gets 409 Conflict; force=true takes it over', async () => {
    const hpa = { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'relay', namespace: 'default' }, spec: { replicas: 5 } } as V1StatefulSet;
    const conflict = await apiFailure(ssa(hpa, 'autoscaler'));
    assert.equal(conflict.code, 409);
    assert.equal(conflict.status.reason, 'Conflict');
    assert.equal(conflict.status.message, 'Apply failed with 1 conflict: conflict with "mailrelay-operator" using apps/v1: .spec.replicas');
    const causes = (conflict.status.details as { causes: Array<{ reason: string; field: string }> }).causes;
    assert.deepEqual(causes.map((c) => [c.reason, c.field]), [['FieldManagerConflict', '.spec.replicas']]);

    const same = await ssa({ ...hpa, spec: { replicas: 2 } }, 'autoscaler');
    assert.equal(same.spec?.replicas, 2, 'the same value is shared, not a conflict');

    const forced = await ssa(hpa, 'autoscaler', true);
    assert.equal(forced.spec?.replicas, 5);
    const owners = (forced.metadata?.managedFields ?? []).filter((m) => (m.fieldsV1 as Record<string, Record<string, unknown>>)['f:spec']?.['f:replicas']);
    assert.deepEqual(owners.map((m) => m.manager), ['autoscaler']);

    const back = await apiFailure(ssa(relaySts('mailrelay:2'), 'mailrelay-operator'));
    assert.equal(back.code, 409, 'now the operator conflicts with the autoscaler');
    const ok = await ssa(relaySts('mailrelay:2'), 'mailrelay-operator', true);
    assert.equal(ok.spec?.replicas, 2);
  });

  test('an ordinary update takes ownership of what it changed, so the next apply of another value conflicts', async () => {
    const core = server.kubeConfig().makeApiClient(CoreV1Api);
    const cm: V1ConfigMap = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'tuned', namespace: 'default' }, data: { level: 'info' } };
    await ssa(cm, 'mailrelay-operator');
    await core.patchNamespacedConfigMap({ name: 'tuned', namespace: 'default', body: { data: { level: 'debug' } }, fieldManager: 'kubectl-edit' },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    const c = await apiFailure(ssa(cm, 'mailrelay-operator'));
    assert.equal(c.code, 409);
    assert.match(String(c.status.message), /conflict with "kubectl-edit" using v1: \.data\.level/);
  });

  test('apply needs fieldManager (422 as the real server answers), honours dryRun, and rejects a stale resourceVersion', async () => {
    const url = `${server.url}/api/v1/namespaces/default/configmaps/tuned`;
    const body = JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'tuned' }, data: { x: '1' } });
    const missing = await rawRequest(url, 'PATCH', body, { 'Content-Type': PatchStrategy.ServerSideApply });
    assert.equal(missing.code, 422);
    assert.equal(missing.json.message, 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch');

    const yaml = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tuned\ndata:\n  dry: "run"\n';
    const dry = await rawRequest(`${url}?fieldManager=dry&dryRun=All`, 'PATCH', yaml, { 'Content-Type': PatchStrategy.ServerSideApply });
    assert.equal(dry.code, 200);
    assert.equal((dry.json.data as Record<string, string>).dry, 'run');
    assert.equal(server.get('', 'v1', 'configmaps', 'default', 'tuned')?.data && (server.get('', 'v1', 'configmaps', 'default', 'tuned')?.data as Record<string, string>).dry, undefined);

    const stale = await rawRequest(`${url}?fieldManager=x`, 'PATCH', JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'tuned', resourceVersion: '1' } }), { 'Content-Type': PatchStrategy.ServerSideApply });
    assert.equal(stale.code, 409);
  });
});
