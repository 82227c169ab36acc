// The test API server driven by the real @kubernetes/client-node over HTTP:
// discovery, CRUD, conflicts, patches, built-in validation, the request log, and
// a child process using a written kubeconfig.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  AppsV1Api, ApisApi, CoreV1Api, CoreApi, KubernetesObjectApi, PatchStrategy, VersionApi, setHeaderOptions,
} from '@kubernetes/client-node';
import type { V1StatefulSet } from '@kubernetes/client-node';
import { startApiServer } from './apiserver.ts';
import type { ApiServer } from './apiserver.ts';
import { apiFailure, rawRequest } from './testutil.ts';

const run = promisify(execFile);
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const strategic = setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);

function statefulSet(name: string, extra: Partial<V1StatefulSet['spec']> = {}): V1StatefulSet {
  return {
    apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name, labels: { app: name } },
    spec: {
      serviceName: name, replicas: 2, selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'relay', image: 'mailrelay:1.0', ports: [{ name: 'smtp', containerPort: 25 }] }] } },
      ...extra,
    },
  };
}

describe('test API server over HTTP', () => {
  let server: ApiServer;
  let core: CoreV1Api;
  let apps: AppsV1Api;

  before(async () => {
    server = await startApiServer();
    const kc = server.kubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    apps = kc.makeApiClient(AppsV1Api);
  });
  after(async () => { await server.close(); });

  test('listens on 127.0.0.1 on a picked port', () => {
    assert.ok(server.port > 0);
    assert.equal(server.url, `http://127.0.0.1:${server.port}`);
  });

  test('discovery: version, core and group resource lists with subresources', async () => {
    const kc = server.kubeConfig();
    const version = await kc.makeApiClient(VersionApi).getCode();
    assert.equal(version.major, '1');
    const api = await kc.makeApiClient(CoreApi).getAPIVersions();
    assert.deepEqual(api.versions, ['v1']);
    const groups = await kc.makeApiClient(ApisApi).getAPIVersions();
    const names = groups.groups.map((g) => g.name);
    for (const g of ['apps', 'policy', 'networking.k8s.io', 'coordination.k8s.io', 'events.k8s.io', 'apiextensions.k8s.io']) assert.ok(names.includes(g), g);
    assert.equal(groups.groups.find((g) => g.name === 'apps')?.preferredVersion?.groupVersion, 'apps/v1');

    const coreRes = await core.getAPIResources();
    const cm = coreRes.resources.find((r) => r.name === 'configmaps');
    assert.equal(cm?.kind, 'ConfigMap');
    assert.equal(cm?.namespaced, true);
    assert.deepEqual(cm?.verbs.slice().sort(), ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch']);
    assert.equal(coreRes.resources.find((r) => r.name === 'namespaces')?.namespaced, false);
    for (const r of ['secrets', 'services', 'serviceaccounts', 'pods', 'persistentvolumeclaims', 'events', 'pods/status']) {
      assert.ok(coreRes.resources.some((x) => x.name === r), r);
    }
    const appsRes = await apps.getAPIResources();
    const scale = appsRes.resources.find((r) => r.name === 'statefulsets/scale');
    assert.equal(scale?.kind, 'Scale');
    assert.equal(scale?.group, 'autoscaling');
    assert.ok(appsRes.resources.some((r) => r.name === 'statefulsets/status'));
    assert.ok(appsRes.resources.some((r) => r.name === 'deployments'));

    const missing = await rawRequest(`${server.url}/apis/monitoring.coreos.com/v1`, 'GET');
    assert.equal(missing.code, 404);
    assert.equal(missing.json.kind, 'Status');
    assert.equal((await rawRequest(`${server.url}/openapi/v2`, 'GET')).code, 404);
  });

  test('create sets uid, resourceVersion, creationTimestamp, generation and managedFields; get and list return it', async () => {
    const before = server.resourceVersion;
    const cm = await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'settings', labels: { app: 'relay' } }, data: { a: '1' } } });
    assert.match(cm.metadata?.uid ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(Number(cm.metadata?.resourceVersion), before + 1);
    assert.ok(cm.metadata?.creationTimestamp instanceof Date);
    assert.equal(cm.metadata?.generation, 1);
    assert.equal(cm.metadata?.managedFields?.[0]?.operation, 'Update');

    const got = await core.readNamespacedConfigMap({ name: 'settings', namespace: 'default' });
    assert.deepEqual(got.data, { a: '1' });
    const list = await core.listNamespacedConfigMap({ namespace: 'default', labelSelector: 'app=relay' });
    assert.deepEqual(list.items.map((i) => i.metadata?.name), ['settings']);
    assert.equal(list.metadata?.resourceVersion, String(server.resourceVersion));
    assert.equal((await core.listNamespacedConfigMap({ namespace: 'default', labelSelector: 'app=other' })).items.length, 0);
  });

  test('list across all namespaces with fieldSelector on metadata.namespace and metadata.name', async () => {
    await core.createNamespace({ body: { metadata: { name: 'team-a' } } });
    await core.createNamespacedConfigMap({ namespace: 'team-a', body: { metadata: { name: 'settings' }, data: {} } });
    const all = await core.listConfigMapForAllNamespaces({ fieldSelector: 'metadata.name=settings' });
    assert.deepEqual(all.items.map((i) => `${i.metadata?.namespace}/${i.metadata?.name}`), ['default/settings', 'team-a/settings']);
    const one = await core.listConfigMapForAllNamespaces({ fieldSelector: 'metadata.namespace=team-a' });
    assert.deepEqual(one.items.map((i) => i.metadata?.namespace), ['team-a']);
    const bad = await apiFailure(core.listConfigMapForAllNamespaces({ fieldSelector: 'data.a=1' }));
    assert.equal(bad.code, 400);
    assert.match(String(bad.status.message), /field label not supported: data.a/);
    const paged = await core.listConfigMapForAllNamespaces({ fieldSelector: 'metadata.name=settings', limit: 1 });
    assert.equal(paged.items.length, 1);
    assert.ok(paged.metadata?._continue);
    const rest = await core.listConfigMapForAllNamespaces({ fieldSelector: 'metadata.name=settings', limit: 1, _continue: paged.metadata?._continue ?? '' });
    assert.deepEqual(rest.items.map((i) => i.metadata?.namespace), ['team-a']);
  });

  test('409 Conflict on a stale resourceVersion (PUT and merge patch), 409 AlreadyExists, 404 NotFound', async () => {
    const cm = await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'contended' }, data: { v: '0' } } });
    const updated = await core.replaceNamespacedConfigMap({ name: 'contended', namespace: 'default', body: { ...cm, data: { v: '1' } } });
    assert.ok(Number(updated.metadata?.resourceVersion) > Number(cm.metadata?.resourceVersion));

    const stale = await apiFailure(core.replaceNamespacedConfigMap({ name: 'contended', namespace: 'default', body: { ...cm, data: { v: '2' } } }));
    assert.equal(stale.code, 409);
    assert.equal(stale.status.kind, 'Status');
    assert.equal(stale.status.reason, 'Conflict');
    assert.equal(stale.status.message, 'Operation cannot be fulfilled on configmaps "contended": the object has been modified; please apply your changes to the latest version and try again');

    const stalePatch = await apiFailure(core.patchNamespacedConfigMap({ name: 'contended', namespace: 'default', body: { metadata: { resourceVersion: cm.metadata?.resourceVersion }, data: { v: '3' } } }, merge));
    assert.equal(stalePatch.code, 409);

    const exists = await apiFailure(core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'contended' } } }));
    assert.equal(exists.code, 409);
    assert.equal(exists.status.reason, 'AlreadyExists');
    assert.equal(exists.status.message, 'configmaps "contended" already exists');

    const missing = await apiFailure(core.readNamespacedConfigMap({ name: 'nope', namespace: 'default' }));
    assert.equal(missing.code, 404);
    assert.equal(missing.status.reason, 'NotFound');
    assert.equal(missing.status.message, 'configmaps "nope" not found');

    const noNs = await apiFailure(core.createNamespacedConfigMap({ namespace: 'ghost', body: { metadata: { name: 'x' } } }));
    assert.equal(noNs.code, 404);
    assert.equal(noNs.status.message, 'namespaces "ghost" not found');

    const staleAppsStatus = await apiFailure(apps.readNamespacedStatefulSet({ name: 'nope', namespace: 'default' }));
    assert.equal(staleAppsStatus.status.message, 'statefulsets.apps "nope" not found');
  });

  test('patches: merge, JSON and strategic (containers merged by name); a no-op write keeps the resourceVersion', async () => {
    const sts = await apps.createNamespacedStatefulSet({ namespace: 'default', body: statefulSet('patchme') });
    const rv0 = sts.metadata?.resourceVersion;
    const merged = await apps.patchNamespacedStatefulSet({ name: 'patchme', namespace: 'default', body: { spec: { replicas: 3 } } }, merge);
    assert.equal(merged.spec?.replicas, 3);
    assert.equal(merged.metadata?.generation, 2);
    const json = await apps.patchNamespacedStatefulSet({ name: 'patchme', namespace: 'default', body: [{ op: 'replace', path: '/spec/replicas', value: 4 }] });
    assert.equal(json.spec?.replicas, 4);
    const smp = await apps.patchNamespacedStatefulSet({ name: 'patchme', namespace: 'default', body: { spec: { template: { spec: { containers: [{ name: 'sidecar', image: 'exporter:2' }] } } } } }, strategic);
    assert.deepEqual(smp.spec?.template.spec?.containers.map((c) => c.name), ['relay', 'sidecar']);
    const rv = smp.metadata?.resourceVersion;
    assert.notEqual(rv, rv0);

    const noop = await apps.patchNamespacedStatefulSet({ name: 'patchme', namespace: 'default', body: { spec: { replicas: 4 } } }, merge);
    assert.equal(noop.metadata?.resourceVersion, rv, 'an unchanged object is not written');
    const replaced = await apps.replaceNamespacedStatefulSet({ name: 'patchme', namespace: 'default', body: noop });
    assert.equal(replaced.metadata?.resourceVersion, rv);

    const failedTest = await apiFailure(apps.patchNamespacedStatefulSet({ name: 'patchme', namespace: 'default', body: [{ op: 'test', path: '/spec/replicas', value: 9 }] }));
    assert.equal(failedTest.code, 422);
    const force = await rawRequest(`${server.url}/apis/apps/v1/namespaces/default/statefulsets/patchme?force=true`, 'PATCH', '{}', { 'Content-Type': PatchStrategy.MergePatch });
    assert.equal(force.code, 422);
    assert.match(String(force.json.message), /force: Forbidden: may not be specified for non-apply patch/);
  });

  test('status subresource of a built-in: main writes ignore .status, /status writes change only .status', async () => {
    await apps.createNamespacedStatefulSet({ namespace: 'default', body: { ...statefulSet('stat'), status: { replicas: 7 } } });
    const created = await apps.readNamespacedStatefulSet({ name: 'stat', namespace: 'default' });
    assert.equal(created.status?.replicas, undefined, 'status is dropped on create');
    const st = await apps.replaceNamespacedStatefulSetStatus({ name: 'stat', namespace: 'default', body: { ...created, spec: { ...created.spec!, replicas: 9 }, status: { replicas: 2, readyReplicas: 1 } } });
    assert.equal(st.status?.readyReplicas, 1);
    assert.equal(st.spec?.replicas, 2, 'spec is ignored through /status');
    assert.equal(st.metadata?.generation, 1, 'a status write does not bump generation');
    const main = await apps.patchNamespacedStatefulSet({ name: 'stat', namespace: 'default', body: { status: { readyReplicas: 5 }, metadata: { labels: { extra: 'x' } } } }, merge);
    assert.equal(main.status?.readyReplicas, 1, 'status is ignored through the main resource');
    assert.equal(main.metadata?.generation, 1, 'a metadata-only change does not bump generation');
    assert.equal(main.metadata?.labels?.extra, 'x');
    const scale = await apps.readNamespacedStatefulSetScale({ name: 'stat', namespace: 'default' });
    assert.equal(scale.spec?.replicas, 2);
    assert.equal(scale.status?.selector, 'app=stat');
    const scaled = await apps.replaceNamespacedStatefulSetScale({ name: 'stat', namespace: 'default', body: { ...scale, spec: { replicas: 5 } } });
    assert.equal(scaled.spec?.replicas, 5);
    const after = await apps.readNamespacedStatefulSet({ name: 'stat', namespace: 'default' });
    assert.equal(after.spec?.replicas, 5);
    assert.equal(after.metadata?.generation, 2);
  });

  test('422 Invalid for built-ins, naming the field, as the real server words it', async () => {
    const bad = statefulSet('broken');
    (bad.spec as unknown as Record<string, unknown>).replicas = 'three';
    const typeErr = await apiFailure(apps.createNamespacedStatefulSet({ namespace: 'default', body: bad }));
    assert.equal(typeErr.code, 422);
    assert.equal(typeErr.status.reason, 'Invalid');
    assert.equal(typeErr.status.message, 'StatefulSet.apps "broken" is invalid: spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"');
    const details = typeErr.status.details as { causes: Array<{ field: string }> };
    assert.equal(details.causes[0]?.field, 'spec.replicas');

    const mismatch = statefulSet('mismatch');
    mismatch.spec!.template.metadata = { labels: { app: 'other' } };
    const sel = await apiFailure(apps.createNamespacedStatefulSet({ namespace: 'default', body: mismatch }));
    assert.equal(sel.code, 422);
    assert.match(String(sel.status.message), /spec\.template\.metadata\.labels: Invalid value: .*`selector` does not match template `labels`/);

    const noImage = statefulSet('noimage');
    noImage.spec!.template.spec!.containers = [{ name: 'relay' }];
    assert.match(String((await apiFailure(apps.createNamespacedStatefulSet({ namespace: 'default', body: noImage }))).status.message), /spec\.template\.spec\.containers\[0\]\.image: Required value/);

    const badName = await apiFailure(core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'Not_Valid' } } }));
    assert.equal(badName.code, 422);
    assert.match(String(badName.status.message), /^ConfigMap "Not_Valid" is invalid: metadata\.name: Invalid value: "Not_Valid": a lowercase RFC 1123 subdomain/);

    await apps.createNamespacedStatefulSet({ namespace: 'default', body: statefulSet('immutable') });
    const vct = await apiFailure(apps.patchNamespacedStatefulSet({ name: 'immutable', namespace: 'default', body: { spec: { serviceName: 'changed' } } }, merge));
    assert.equal(vct.code, 422);
    assert.match(String(vct.status.message), /spec: Forbidden: updates to statefulset spec for fields other than 'replicas'/);

    const badData = await apiFailure(core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'num' }, data: { n: 1 as unknown as string } } }));
    assert.equal(badData.code, 422);
    assert.match(String(badData.status.message), /data\.n: Invalid value: "integer": data\.n in body must be of type string/);
  });

  test('server-side defaults and allocations as a real cluster fills them in', async () => {
    const sts = await apps.readNamespacedStatefulSet({ name: 'immutable', namespace: 'default' });
    assert.equal(sts.spec?.podManagementPolicy, 'OrderedReady');
    assert.equal(sts.spec?.template.spec?.containers[0]?.imagePullPolicy, 'IfNotPresent');
    assert.equal(sts.spec?.template.spec?.containers[0]?.ports?.[0]?.protocol, 'TCP');
    const secret = await core.createNamespacedSecret({ namespace: 'default', body: { metadata: { name: 'creds' }, stringData: { password: 'hunter2' } } });
    assert.equal(secret.data?.password, Buffer.from('hunter2').toString('base64'));
    assert.equal(secret.stringData, undefined);
    assert.equal(secret.type, 'Opaque');
    const svc = await core.createNamespacedService({ namespace: 'default', body: { metadata: { name: 'relay' }, spec: { selector: { app: 'relay' }, ports: [{ port: 25 }] } } });
    assert.match(svc.spec?.clusterIP ?? '', /^10\.96\.\d+\.\d+$/);
    assert.equal(svc.spec?.ports?.[0]?.targetPort, 25);
    const ns = await core.readNamespace({ name: 'team-a' });
    assert.equal(ns.status?.phase, 'Active');
    assert.equal(ns.metadata?.labels?.['kubernetes.io/metadata.name'], 'team-a');
  });

  test('KubernetesObjectApi resolves kinds through discovery and does CRUD', async () => {
    const client = KubernetesObjectApi.makeApiClient(server.kubeConfig());
    const created = await client.create({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: 'relay', namespace: 'default' }, spec: { maxUnavailable: 1, selector: { matchLabels: { app: 'relay' } } } });
    assert.equal(created.metadata?.name, 'relay');
    const np = await client.create({ apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'relay', namespace: 'default' }, spec: { podSelector: {} } });
    assert.deepEqual((np as unknown as { spec: { policyTypes: string[] } }).spec.policyTypes, ['Ingress']);
    const listed = await client.list('policy/v1', 'PodDisruptionBudget', 'default');
    assert.equal(listed.items.length, 1);
    await client.delete({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: 'relay', namespace: 'default' } });
    assert.equal((await apiFailure(client.read({ apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: 'relay', namespace: 'default' } }))).code, 404);
  });

  test('delete answers a Success Status; deletecollection honours the label selector', async () => {
    for (const n of ['d1', 'd2', 'keep']) {
      await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: n, labels: { batch: n === 'keep' ? 'no' : 'yes' } } } });
    }
    const status = await core.deleteNamespacedConfigMap({ name: 'd1', namespace: 'default' });
    assert.equal(status.status, 'Success');
    assert.equal(status.details?.name, 'd1');
    await core.createNamespacedConfigMap({ namespace: 'default', body: { metadata: { name: 'd1', labels: { batch: 'yes' } } } });
    await core.deleteCollectionNamespacedConfigMap({ namespace: 'default', labelSelector: 'batch=yes' });
    const left = (await core.listNamespacedConfigMap({ namespace: 'default', labelSelector: 'batch' })).items.map((i) => i.metadata?.name);
    assert.deepEqual(left, ['keep']);
  });

  test('the request log records each call in RBAC terms', async () => {
    server.requestLog.length = 0;
    await core.readNamespacedConfigMap({ name: 'keep', namespace: 'default' });
    await core.listConfigMapForAllNamespaces();
    await core.patchNamespacedConfigMap({ name: 'keep', namespace: 'default', body: { data: { x: 'y' } }, fieldManager: 'mailrelay' }, merge);
    await core.deleteCollectionNamespacedConfigMap({ namespace: 'default', labelSelector: 'batch=no' });
    await apps.readNamespacedStatefulSetStatus({ name: 'stat', namespace: 'default' });
    const shape = server.requestLog.map(({ verb, group, version, resource, subresource, namespace, name }) => ({ verb, group, version, resource, subresource, namespace, name }));
    assert.deepEqual(shape, [
      { verb: 'get', group: '', version: 'v1', resource: 'configmaps', subresource: undefined, namespace: 'default', name: 'keep' },
      { verb: 'list', group: '', version: 'v1', resource: 'configmaps', subresource: undefined, namespace: undefined, name: undefined },
      { verb: 'patch', group: '', version: 'v1', resource: 'configmaps', subresource: undefined, namespace: 'default', name: 'keep' },
      { verb: 'deletecollection', group: '', version: 'v1', resource: 'configmaps', subresource: undefined, namespace: 'default', name: undefined },
      { verb: 'get', group: 'apps', version: 'v1', resource: 'statefulsets', subresource: 'status', namespace: 'default', name: 'stat' },
    ]);
    assert.equal(server.requestLog[2]?.fieldManager, 'mailrelay');
    assert.equal(server.requestLog[2]?.patchType, PatchStrategy.MergePatch);
  });

  test('a child process reaches the server through a written kubeconfig (KUBECONFIG)', async () => {
    const path = server.writeKubeconfig();
    const script = `
      import { KubeConfig, CoreV1Api } from '@kubernetes/client-node';
      const kc = new KubeConfig(); kc.loadFromDefault();
      const list = await kc.makeApiClient(CoreV1Api).listNamespacedConfigMap({ namespace: kc.getContextObject(kc.currentContext).namespace });
      console.log(JSON.stringify(list.items.map((i) => i.metadata.name)));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, KUBECONFIG: path }, cwd: process.cwd() });
    assert.ok((JSON.parse(stdout) as string[]).includes('settings'));
  });
});

test('a bearer token, when configured, is required', async () => {
  const server = await startApiServer({ token: 's3cret' });
  try {
    assert.equal((await rawRequest(`${server.url}/api/v1/namespaces`, 'GET')).code, 401);
    const ns = await server.kubeConfig().makeApiClient(CoreV1Api).listNamespace();
    assert.deepEqual(ns.items.map((n) => n.metadata?.name).sort(), ['default', 'kube-node-lease', 'kube-public', 'kube-system']);
  } finally {
    await server.close();
  }
});
