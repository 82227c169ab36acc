// CustomResourceDefinitions: serving follows the CRD (discovery and CRUD at once,
// gone when deleted), schema pruning/defaulting/validation with 422s, CEL rules,
// and the status and scale subresources.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiextensionsV1Api, CustomObjectsApi, KubernetesObjectApi, PatchStrategy, Watch, loadYaml, setHeaderOptions } from '@kubernetes/client-node';
import type { V1CustomResourceDefinition } from '@kubernetes/client-node';
import { startApiServer } from './apiserver.ts';
import type { ApiServer } from './apiserver.ts';
import { crd, installPrometheusOperatorCrds } from './crds.ts';
import { apiFailure, rawRequest, waitFor } from './testutil.ts';

const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

const mailRelayCrd = crd({
  group: 'mailrelay.io', kind: 'MailRelay', plural: 'mailrelays', version: 'v1alpha1', shortNames: ['mr'],
  status: true,
  scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' },
  schema: {
    type: 'object',
    properties: {
      spec: {
        type: 'object',
        required: ['hostname'],
        'x-kubernetes-validations': [{ rule: 'self.minReplicas <= self.replicas', message: 'replicas must be at least minReplicas' }],
        properties: {
          hostname: { type: 'string', pattern: '^[a-z0-9.-]+$' },
          replicas: { type: 'integer', minimum: 0, default: 2 },
          minReplicas: { type: 'integer', minimum: 0, default: 1 },
          mode: { type: 'string', enum: ['relay', 'smarthost'], default: 'relay' },
          tls: { type: 'object', default: {}, properties: { enabled: { type: 'boolean', default: true } } },
          extra: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
        },
      },
      status: {
        type: 'object',
        properties: {
          replicas: { type: 'integer' },
          selector: { type: 'string' },
          observedGeneration: { type: 'integer' },
          conditions: { type: 'array', items: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
        },
      },
    },
  },
});

// Typed clients serialise through client-node's models, whose property names differ from the
// wire names (x-kubernetes-*, default): a raw CRD must go through loadYaml first, as a CRD file would.
const typedCrd = (o: object): V1CustomResourceDefinition => loadYaml<V1CustomResourceDefinition>(JSON.stringify(o));

type Relay = { metadata: { name: string; resourceVersion?: string; generation?: number; [k: string]: unknown }; spec: Record<string, unknown>; status?: Record<string, unknown> };
const G = { group: 'mailrelay.io', version: 'v1alpha1', plural: 'mailrelays', namespace: 'default' };

describe('custom resources', () => {
  let server: ApiServer;
  let custom: CustomObjectsApi;
  let ext: ApiextensionsV1Api;

  before(async () => {
    server = await startApiServer();
    custom = server.kubeConfig().makeApiClient(CustomObjectsApi);
    ext = server.kubeConfig().makeApiClient(ApiextensionsV1Api);
  });
  after(async () => { await server.close(); });

  test('ServiceMonitor is absent from discovery until its CRD is installed, then served at once', async () => {
    const before = await rawRequest(`${server.url}/apis/monitoring.coreos.com/v1`, 'GET');
    assert.equal(before.code, 404);
    installPrometheusOperatorCrds(server);
    const res = await rawRequest(`${server.url}/apis/monitoring.coreos.com/v1`, 'GET');
    assert.equal(res.code, 200);
    const names = (res.json.resources as Array<{ name: string; kind: string }>).map((r) => `${r.name}:${r.kind}`);
    assert.deepEqual(names.sort(), ['prometheusrules:PrometheusRule', 'servicemonitors:ServiceMonitor']);
    const groups = await rawRequest(`${server.url}/apis`, 'GET');
    assert.ok((groups.json.groups as Array<{ name: string }>).some((g) => g.name === 'monitoring.coreos.com'));

    const sm = await custom.createNamespacedCustomObject({
      group: 'monitoring.coreos.com', version: 'v1', plural: 'servicemonitors', namespace: 'default',
      body: { apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor', metadata: { name: 'relay' }, spec: { endpoints: [{ port: 'metrics', interval: '30s' }], selector: { matchLabels: { app: 'relay' } } } },
    }) as { spec: { endpoints: unknown[] } };
    assert.deepEqual(sm.spec.endpoints, [{ port: 'metrics', interval: '30s' }], 'x-kubernetes-preserve-unknown-fields keeps everything');
  });

  test('a CRD created through the API is served immediately with its subresources in discovery', async () => {
    const created = await ext.createCustomResourceDefinition({ body: typedCrd(mailRelayCrd) });
    assert.equal(created.status?.conditions?.find((c) => c.type === 'Established')?.status, 'True');
    const res = await rawRequest(`${server.url}/apis/mailrelay.io/v1alpha1`, 'GET');
    const resources = res.json.resources as Array<{ name: string; kind: string; namespaced: boolean; shortNames?: string[] }>;
    assert.deepEqual(resources.map((r) => r.name), ['mailrelays', 'mailrelays/status', 'mailrelays/scale']);
    assert.deepEqual(resources[0]?.shortNames, ['mr']);
    assert.equal(resources[0]?.namespaced, true);
  });

  test('create prunes unknown fields (with a Warning), applies schema defaults, keeps preserved subtrees', async () => {
    const res = await rawRequest(`${server.url}/apis/mailrelay.io/v1alpha1/namespaces/default/mailrelays`, 'POST',
      JSON.stringify({ apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay', metadata: { name: 'edge' }, spec: { hostname: 'mx.example', bogus: true, extra: { free: { form: 1 } } }, status: { replicas: 9 } }),
      { 'Content-Type': 'application/json' });
    assert.equal(res.code, 201);
    assert.match(res.headers.get('warning') ?? '', /unknown field \\"spec.bogus\\"/);
    const spec = res.json.spec as Record<string, unknown>;
    assert.deepEqual(spec, { hostname: 'mx.example', extra: { free: { form: 1 } }, replicas: 2, minReplicas: 1, mode: 'relay', tls: { enabled: true } });
    assert.equal(res.json.status, undefined, 'status is dropped on create with a status subresource');
    const strict = await rawRequest(`${server.url}/apis/mailrelay.io/v1alpha1/namespaces/default/mailrelays?fieldValidation=Strict`, 'POST',
      JSON.stringify({ apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay', metadata: { name: 'strict' }, spec: { hostname: 'a', bogus: true } }), { 'Content-Type': 'application/json' });
    assert.equal(strict.code, 400);
    assert.match(String(strict.json.message), /unknown field "spec.bogus"/);
  });

  test('422 Invalid for schema violations and CEL rules, naming the field', async () => {
    const create = (spec: Record<string, unknown>) => custom.createNamespacedCustomObject({ ...G, body: { apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay', metadata: { name: 'bad' }, spec } });
    const type = await apiFailure(create({ hostname: 'mx', replicas: 'two' }));
    assert.equal(type.code, 422);
    assert.equal(type.status.reason, 'Invalid');
    assert.equal(type.status.message, 'MailRelay.mailrelay.io "bad" is invalid: spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"');
    const required = await apiFailure(create({ replicas: 1 }));
    assert.equal(required.status.message, 'MailRelay.mailrelay.io "bad" is invalid: spec.hostname: Required value');
    const enumErr = await apiFailure(create({ hostname: 'mx', mode: 'open' }));
    assert.equal(enumErr.status.message, 'MailRelay.mailrelay.io "bad" is invalid: spec.mode: Unsupported value: "open": supported values: "relay", "smarthost"');
    const min = await apiFailure(create({ hostname: 'mx', replicas: -1 }));
    assert.match(String(min.status.message), /spec\.replicas: Invalid value: -1: spec\.replicas in body should be greater than or equal to 0/);
    const cel = await apiFailure(create({ hostname: 'mx', replicas: 1, minReplicas: 3 }));
    assert.equal(cel.status.message, 'MailRelay.mailrelay.io "bad" is invalid: spec: Invalid value: "object": replicas must be at least minReplicas');
  });

  test('status subresource: generation follows spec only; main writes ignore status; /status writes only status', async () => {
    const r0 = await custom.getNamespacedCustomObject({ ...G, name: 'edge' }) as Relay;
    assert.equal(r0.metadata.generation, 1);
    const st = await custom.patchNamespacedCustomObjectStatus({ ...G, name: 'edge', body: { status: { replicas: 1, observedGeneration: 1 }, spec: { replicas: 7 } } }, merge) as Relay;
    assert.deepEqual(st.status, { replicas: 1, observedGeneration: 1 });
    assert.equal(st.spec.replicas, 2, '/status ignores spec');
    assert.equal(st.metadata.generation, 1);

    const labelled = await custom.patchNamespacedCustomObject({ ...G, name: 'edge', body: { metadata: { labels: { tier: 'edge' } }, status: { replicas: 5 } } }, merge) as Relay;
    assert.equal(labelled.metadata.generation, 1, 'metadata-only change keeps generation');
    assert.equal(labelled.status?.replicas, 1, 'main resource ignores status');
    const spec = await custom.patchNamespacedCustomObject({ ...G, name: 'edge', body: { spec: { replicas: 3 } } }, merge) as Relay;
    assert.equal(spec.metadata.generation, 2);

    const noRv = { ...spec, metadata: { ...spec.metadata, resourceVersion: undefined } };
    const put = await apiFailure(custom.replaceNamespacedCustomObject({ ...G, name: 'edge', body: noRv }));
    assert.equal(put.code, 422);
    assert.match(String(put.status.message), /metadata\.resourceVersion: Invalid value: 0x0: must be specified for an update/);
    const stale = await apiFailure(custom.replaceNamespacedCustomObject({ ...G, name: 'edge', body: { ...r0, spec: { ...r0.spec, replicas: 4 } } }));
    assert.equal(stale.code, 409);

    const smp = await rawRequest(`${server.url}/apis/mailrelay.io/v1alpha1/namespaces/default/mailrelays/edge`, 'PATCH', '{"spec":{"replicas":1}}', { 'Content-Type': PatchStrategy.StrategicMergePatch });
    assert.equal(smp.code, 415, 'strategic merge patch is not supported for custom resources');
  });

  test('scale subresource reads and writes the declared replica paths', async () => {
    await custom.patchNamespacedCustomObjectStatus({ ...G, name: 'edge', body: { status: { replicas: 3, selector: 'app=edge' } } }, merge);
    const scale = await custom.getNamespacedCustomObjectScale({ ...G, name: 'edge' }) as { kind: string; apiVersion: string; spec: { replicas: number }; status: { replicas: number; selector: string } };
    assert.equal(scale.kind, 'Scale');
    assert.equal(scale.apiVersion, 'autoscaling/v1');
    assert.deepEqual(scale.spec, { replicas: 3 });
    assert.deepEqual(scale.status, { replicas: 3, selector: 'app=edge' });
    const put = await custom.replaceNamespacedCustomObjectScale({ ...G, name: 'edge', body: { ...scale, spec: { replicas: 6 } } }) as { spec: { replicas: number } };
    assert.equal(put.spec.replicas, 6);
    const patched = await custom.patchNamespacedCustomObjectScale({ ...G, name: 'edge', body: { spec: { replicas: 4 } } }, merge) as { spec: { replicas: number } };
    assert.equal(patched.spec.replicas, 4);
    const obj = await custom.getNamespacedCustomObject({ ...G, name: 'edge' }) as Relay;
    assert.equal(obj.spec.replicas, 4);
    const stale = await apiFailure(custom.replaceNamespacedCustomObjectScale({ ...G, name: 'edge', body: scale }));
    assert.equal(stale.code, 409);
    const neg = await apiFailure(custom.patchNamespacedCustomObjectScale({ ...G, name: 'edge', body: { spec: { replicas: -2 } } }, merge));
    assert.equal(neg.code, 422);
  });

  test('server-side apply creates a custom resource with schema defaults; CR list items carry apiVersion/kind', async () => {
    const objects = KubernetesObjectApi.makeApiClient(server.kubeConfig());
    const applied = await objects.patch({ apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay', metadata: { name: 'applied', namespace: 'default' }, spec: { hostname: 'smtp.example' } },
      undefined, undefined, 'mailrelay-cli', false, PatchStrategy.ServerSideApply) as unknown as Relay;
    assert.equal(applied.spec.replicas, 2);
    const list = await custom.listNamespacedCustomObject({ ...G }) as { items: Relay[]; kind: string };
    assert.equal(list.kind, 'MailRelayList');
    assert.deepEqual(list.items.map((i) => i.metadata.name), ['applied', 'edge']);
    assert.equal((list.items[0] as unknown as { kind: string }).kind, 'MailRelay', 'unstructured lists keep kind on items');
  });

  test('deleting the CRD stops serving it, removes its objects and ends watches on them', async () => {
    const events: string[] = [];
    let ended = false;
    const rv = (await custom.listNamespacedCustomObject({ ...G }) as { metadata: { resourceVersion: string } }).metadata.resourceVersion;
    const ctl = await new Watch(server.kubeConfig()).watch('/apis/mailrelay.io/v1alpha1/namespaces/default/mailrelays', { resourceVersion: rv },
      (type: string, obj: Relay) => events.push(`${type} ${obj.metadata.name}`), () => { ended = true; });
    await ext.deleteCustomResourceDefinition({ name: 'mailrelays.mailrelay.io' });
    await waitFor('the watch to end', () => ended);
    ctl.abort();
    assert.deepEqual(events.sort(), ['DELETED applied', 'DELETED edge']);
    await waitFor('discovery to drop the group', async () => (await rawRequest(`${server.url}/apis/mailrelay.io/v1alpha1`, 'GET')).code === 404);
    const get = await apiFailure(custom.getNamespacedCustomObject({ ...G, name: 'edge' }));
    assert.equal(get.code, 404);
    const groups = await rawRequest(`${server.url}/apis`, 'GET');
    assert.ok(!(groups.json.groups as Array<{ name: string }>).some((g) => g.name === 'mailrelay.io'));
    await ext.createCustomResourceDefinition({ body: typedCrd(mailRelayCrd) });
    const list = await custom.listNamespacedCustomObject({ ...G }) as { items: unknown[] };
    assert.equal(list.items.length, 0, 'a re-created CRD starts empty');
  });

  test('a CRD whose name does not match plural.group is rejected with 422', async () => {
    const bad = crd({ group: 'x.io', kind: 'Thing', plural: 'things' });
    bad.metadata.name = 'wrong.x.io';
    const res = await apiFailure(ext.createCustomResourceDefinition({ body: typedCrd(bad) }));
    assert.equal(res.code, 422);
    assert.match(String(res.status.message), /metadata\.name: Invalid value: "wrong\.x\.io": must be spec\.names\.plural\+"\."\+spec\.group/);
  });
});
