import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  FIXTURE_CHART,
  HelmRenderError,
  helmBinary,
  findObject,
  helmNotes,
  helmTemplate,
  helmTemplateObjects,
  parseRenderedDocuments,
} from './helm.ts';
import type { HelmTemplateOptions, KubeObject } from './helm.ts';

const chart = FIXTURE_CHART;
const required = { smtp: { hostname: 'mx.example.test' } };

function opts(extra: Partial<HelmTemplateOptions> = {}): HelmTemplateOptions {
  return { releaseName: 'edge', namespace: 'mail', values: [required], ...extra };
}

interface Container {
  name: string;
  image: string;
  args: string[];
  env: { name: string; value: string }[];
  securityContext: Record<string, unknown>;
  resources: { limits?: Record<string, string>; requests?: Record<string, string> };
}

function deploymentOf(objects: KubeObject[]) {
  const dep = findObject(objects, 'Deployment', 'edge-fixture');
  const spec = dep.spec as {
    replicas: number;
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels: Record<string, string>; annotations: Record<string, string> }; spec: { containers: Container[] } };
  };
  const container = spec.template.spec.containers[0];
  assert.ok(container, 'deployment has a container');
  return { dep, spec, container };
}

/** Asserts that a render fails and returns the renderer's error message. */
async function renderError(o: HelmTemplateOptions): Promise<string> {
  try {
    await helmTemplate(chart, o);
  } catch (err) {
    assert.ok(err instanceof HelmRenderError, `expected HelmRenderError, got ${String(err)}`);
    assert.equal(err.exitCode, 1);
    return err.message;
  }
  assert.fail('render was expected to fail');
}

describe('helm template through the test helper', () => {
  it('uses the pinned helm from the control-plane build', () => {
    assert.match(helmBinary(), /cluster-k8s[^/]*-helmv4\.[0-9.]+-[0-9a-f]+\/bin\/helm$/);
  });

  it('renders chart defaults, helpers and Chart.yaml metadata', async () => {
    const objects = await helmTemplateObjects(chart, opts());
    const { dep, spec, container } = deploymentOf(objects);
    assert.equal(dep.metadata.namespace, 'mail');
    assert.equal(spec.replicas, 1);
    // include + nindent from _helpers.tpl, with .Chart capitalised fields.
    assert.deepEqual(dep.metadata.labels, {
      'helm.sh/chart': 'fixture-0.3.1',
      'app.kubernetes.io/name': 'fixture',
      'app.kubernetes.io/instance': 'edge',
      'app.kubernetes.io/version': '1.4.2',
      'app.kubernetes.io/managed-by': 'Helm',
    });
    assert.deepEqual(spec.selector.matchLabels, { 'app.kubernetes.io/name': 'fixture', 'app.kubernetes.io/instance': 'edge' });
    // default: empty image.tag falls back to appVersion.
    assert.equal(container.image, 'ghcr.io/example/mailrelay:1.4.2');
    assert.deepEqual(container.args, ['--hostname=mx.example.test', '--port=2525']);
    // toYaml of nested maps, keys sorted like sigs.k8s.io/yaml.
    assert.deepEqual(container.securityContext, { readOnlyRootFilesystem: true, runAsNonRoot: true });
    assert.deepEqual(container.resources, { limits: { memory: '256Mi' }, requests: { cpu: '50m', memory: '64Mi' } });
    // tpl renders a template string held in values.
    const env = Object.fromEntries(container.env.map((e) => [e.name, e.value]));
    assert.equal(env.RELAY_BANNER, 'mx.example.test ESMTP edge');
    assert.equal(env.KUBE_VERSION, 'v1.31.0');
    // include of a whole template file (checksum annotation pattern).
    assert.match(spec.template.metadata.annotations['checksum/config'] ?? '', /^[0-9a-f]{64}$/);

    const cm = findObject(objects, 'ConfigMap', 'edge-fixture-config');
    const data = cm.data as Record<string, string>;
    assert.equal(data['template'], 'fixture/templates/configmap.yaml', '.Template.Name');
    assert.equal(data['missing'], '', '"<no value>" becomes an empty string');
    assert.match(data['relay.conf'] ?? '', /max_recipients = 100\nqueue_dir = \/var\/spool\/mailrelay/);
  });

  it('emits Source comments and orders documents by kind like helm template', async () => {
    const docs = parseRenderedDocuments(await helmTemplate(chart, opts()));
    const summary = docs.map((d) => `${d.object?.kind ?? '(comment)'} ${d.source}`);
    assert.deepEqual(summary, [
      'ServiceAccount fixture/templates/rbac/serviceaccount-and-role.yaml',
      'ConfigMap fixture/templates/configmap.yaml',
      'ConfigMap fixture/templates/dashboards.yaml',
      'Role fixture/templates/rbac/serviceaccount-and-role.yaml',
      'Service fixture/templates/service.yaml',
      'Deployment fixture/templates/deployment.yaml',
      '(comment) fixture/templates/rbac/serviceaccount-and-role.yaml',
      // hooks come after the manifests
      'Pod fixture/templates/tests/test-connection.yaml',
    ]);
    const text = await helmTemplate(chart, opts());
    assert.ok(text.startsWith('---\n# Source: fixture/templates/rbac/serviceaccount-and-role.yaml\napiVersion: v1\nkind: ServiceAccount\n'));
    assert.ok(!text.includes('NOTES'), 'NOTES.txt is not a manifest');
    assert.ok(!text.includes('define "fixture'), 'partials are not output');
  });

  it('skips documents that render empty', async () => {
    const objects = await helmTemplateObjects(chart, opts({ values: [required, { rbac: { create: false }, dashboards: { enabled: false } }] }));
    assert.deepEqual(
      objects.map((o) => o.kind),
      ['ServiceAccount', 'ConfigMap', 'Service', 'Deployment', 'Pod'],
    );
  });

  it('merges values files in order over the chart defaults, deeply', async () => {
    const objects = await helmTemplateObjects(
      chart,
      opts({
        values: [
          { replicaCount: 2, service: { port: 2525 }, smtp: { hostname: 'first.example.test', port: 587 } },
          { replicaCount: 3, smtp: { hostname: 'second.example.test' }, image: { tag: '9.9.9' } },
        ],
      }),
    );
    const { spec, container } = deploymentOf(objects);
    assert.equal(spec.replicas, 3, 'the later file wins');
    assert.equal(container.image, 'ghcr.io/example/mailrelay:9.9.9');
    // smtp.port from the first file survives the second file's smtp map.
    assert.deepEqual(container.args, ['--hostname=second.example.test', '--port=587']);
    const svc = findObject(objects, 'Service');
    const svcSpec = svc.spec as { type: string; ports: { port: number }[] };
    assert.equal(svcSpec.ports[0]?.port, 2525);
    assert.equal(svcSpec.type, 'ClusterIP', 'untouched defaults stay');
  });

  it('deletes a default when user values set it to null', async () => {
    const objects = await helmTemplateObjects(
      chart,
      opts({ values: [required, { securityContext: { readOnlyRootFilesystem: null }, resources: { limits: null } }] }),
    );
    const { container } = deploymentOf(objects);
    assert.deepEqual(container.securityContext, { runAsNonRoot: true });
    assert.deepEqual(container.resources, { requests: { cpu: '50m', memory: '64Mi' } });
  });

  it('applies --set after the values files, with typed scalars and list indexes', async () => {
    const objects = await helmTemplateObjects(
      chart,
      opts({
        values: [required, { replicaCount: 2 }],
        set: {
          replicaCount: '4',
          'image.tag': '2.0.0',
          'extraArgs[1]': '--verbose',
          'extraArgs[0]': '--debug',
          'podAnnotations.team': 'mail',
        },
        setString: { 'podAnnotations.build': '0042' },
      }),
    );
    const { spec, container } = deploymentOf(objects);
    assert.equal(spec.replicas, 4, '--set ints are ints (the schema requires an integer)');
    assert.equal(container.image, 'ghcr.io/example/mailrelay:2.0.0');
    assert.deepEqual(container.args, ['--hostname=mx.example.test', '--port=2525', '--debug', '--verbose']);
    assert.equal(spec.template.metadata.annotations['team'], 'mail');
    assert.equal(spec.template.metadata.annotations['build'], '0042');
  });

  it('gates the ServiceMonitor on .Capabilities.APIVersions.Has', async () => {
    const without = await helmTemplateObjects(chart, opts());
    assert.equal(without.filter((o) => o.kind === 'ServiceMonitor').length, 0);

    const withApi = await helmTemplateObjects(chart, opts({ apiVersions: ['monitoring.coreos.com/v1'] }));
    const sm = findObject(withApi, 'ServiceMonitor', 'edge-fixture');
    assert.equal(sm.apiVersion, 'monitoring.coreos.com/v1');
    assert.deepEqual((sm.spec as { endpoints: unknown[] }).endpoints, [{ port: 'metrics', interval: '30s' }]);

    const disabled = await helmTemplateObjects(
      chart,
      opts({ apiVersions: ['monitoring.coreos.com/v1'], set: { 'metrics.serviceMonitor.enabled': 'false' } }),
    );
    assert.equal(disabled.filter((o) => o.kind === 'ServiceMonitor').length, 0, '--set bools are bools');
  });

  it('loads dashboards with .Files.Glob and AsConfig, honouring .helmignore', async () => {
    const objects = await helmTemplateObjects(chart, opts());
    const cm = findObject(objects, 'ConfigMap', 'edge-fixture-dashboards');
    assert.equal(cm.metadata.labels?.['grafana_dashboard'], '1');
    const data = cm.data as Record<string, string>;
    // "*" does not cross "/", so dashboards/archive/old.json is out; wip-*.json is in .helmignore.
    assert.deepEqual(Object.keys(data).sort(), ['delivery.json', 'relay-overview.json']);
    for (const name of Object.keys(data)) {
      const onDisk = await readFile(join(chart, 'dashboards', name), 'utf8');
      assert.equal(data[name], onDisk);
      assert.ok((JSON.parse(data[name] ?? '') as { uid: string }).uid);
    }
  });

  it('fails with the required message when a required value is missing', async () => {
    const msg = await renderError(opts({ values: [] }));
    assert.match(msg, /execution error at \(fixture\/templates\/deployment\.yaml:1:\d+\): smtp\.hostname is required: set the relay's public HELO name/);
  });

  it('rejects values that break values.schema.json, naming the field and value', async () => {
    const typeMsg = await renderError(opts({ values: [required, { replicaCount: 'three' }] }));
    assert.match(typeMsg, /values don't meet the specifications of the schema\(s\) in the following chart\(s\):\nfixture:/);
    assert.match(typeMsg, /- at '\/replicaCount': got string, want integer/);

    const enumMsg = await renderError(opts({ set: { 'smtp.hostname': 'x', 'service.type': 'Bogus' } }));
    assert.match(enumMsg, /at '\/service\/type': value must be one of 'ClusterIP', 'NodePort', 'LoadBalancer'/);
  });

  it('prepends crds/ files verbatim with --include-crds', async () => {
    const text = await helmTemplate(chart, opts({ includeCrds: true }));
    const crdFile = await readFile(join(chart, 'crds', 'relays.mailrelay.example.com.yaml'), 'utf8');
    assert.ok(text.startsWith(`---\n# Source: fixture/crds/relays.mailrelay.example.com.yaml\n${crdFile}`));
    assert.ok(text.includes('{{ .Release.Name }} is not a template here'), 'CRDs are not templated');
    assert.ok(!text.includes('README.txt'), 'only .yaml/.yml/.json files under crds/ are CRDs');
    const docs = parseRenderedDocuments(text);
    assert.equal(docs[0]?.object?.kind, 'CustomResourceDefinition');
    assert.equal(docs[0]?.object?.metadata.name, 'relays.mailrelay.example.com');

    const plain = await helmTemplateObjects(chart, opts());
    assert.equal(plain.filter((o) => o.kind === 'CustomResourceDefinition').length, 0);
  });

  it('renders NOTES.txt', async () => {
    const notes = await helmNotes(chart, opts());
    assert.equal(
      notes,
      'fixture 1.4.2 is installed as edge in namespace mail.\n\n' +
        'Send mail to edge-fixture.mail.svc:25 (HELO mx.example.test).\n\n' +
        'The Prometheus Operator API (monitoring.coreos.com/v1) was not found: no ServiceMonitor was created.\n',
    );
    const withApi = await helmNotes(chart, opts({ apiVersions: ['monitoring.coreos.com/v1'] }));
    assert.ok(!withApi.includes('Prometheus Operator'));
  });

  it('honours --kube-version against Chart.yaml kubeVersion', async () => {
    const objects = await helmTemplateObjects(chart, opts({ kubeVersion: '1.29.3' }));
    const env = deploymentOf(objects).container.env.find((e) => e.name === 'KUBE_VERSION');
    assert.equal(env?.value, 'v1.29.3');
    const msg = await renderError(opts({ kubeVersion: '1.20.0' }));
    assert.match(msg, /chart requires kubeVersion: >=1\.25\.0-0 which is incompatible with Kubernetes v1\.20\.0/);
  });

  it('limits output with showOnly', async () => {
    const docs = parseRenderedDocuments(await helmTemplate(chart, opts({ showOnly: ['templates/service.yaml'] })));
    assert.deepEqual(
      docs.map((d) => `${d.object?.kind} ${d.source}`),
      ['Service fixture/templates/service.yaml'],
    );
  });
});
