// The mailrelay-operator chart, rendered the way `helm template` renders it: every object
// valid for its kind, labelled, in the right namespace; the operator Deployment HA and
// admitted by the restricted Pod Security Standard; optional parts gated on their values
// and on the Prometheus Operator API; bad values rejected by values.schema.json.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import Ajv from 'ajv';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { HelmRenderError, findObject, helmNotes, helmTemplate, helmTemplateObjects } from '../helpers/helm.ts';
import type { HelmTemplateOptions, KubeObject } from '../helpers/helm.ts';
import { ALL_ON, CHART, MONITORING_API, opts, renderAllOn } from './chart.ts';
import { restrictedViolations } from './pod-security.ts';
import type { PodSpecLike } from './pod-security.ts';

/** The relay monitoring defaults the chart passes the operator (relay ServiceMonitors selected by a stock kube-prometheus-stack). */
const MONITORING_ARGS = ['--relay-servicemonitor-labels={"release":"kube-prometheus-stack"}', '--runbook-base-url=https://github.com/mailrelay/mailrelay/blob/main/docs/runbooks'];

interface CrdDoc {
  kind: string;
  spec: { group: string; names: { kind: string }; versions: { name: string; storage: boolean; schema: { openAPIV3Schema: { properties: { spec: object } } } }[] };
}

/** Paths in value that a structural schema would prune: properties it does not declare. */
function unknownFields(schema: unknown, value: unknown, path: string): string[] {
  const s = schema as { properties?: Record<string, unknown>; additionalProperties?: unknown; items?: unknown; 'x-kubernetes-preserve-unknown-fields'?: boolean };
  if (s['x-kubernetes-preserve-unknown-fields']) return [];
  if (Array.isArray(value)) return value.flatMap((v, i) => unknownFields(s.items ?? {}, v, `${path}[${i}]`));
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([k, v]) => {
    const sub = s.properties?.[k] ?? (typeof s.additionalProperties === 'object' ? s.additionalProperties : undefined);
    return sub === undefined ? [`${path}.${k}`] : unknownFields(sub, v, `${path}.${k}`);
  });
}

const chartYaml = parseYaml(await readFile(join(CHART, 'Chart.yaml'), 'utf8')) as { name: string; version: string; appVersion: string };

/** Validates a rendered object with its kubernetes-models class; throws on unknown kinds so none slips through unchecked. */
function validateObject(o: KubeObject): void {
  const models: Record<string, new (data: never) => { validate(): void }> = {
    'v1/ConfigMap': ConfigMap, 'v1/Service': Service, 'v1/ServiceAccount': ServiceAccount, 'apps/v1/Deployment': Deployment,
    'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
    'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole, 'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
    'rbac.authorization.k8s.io/v1/Role': Role, 'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  };
  const key = `${o.apiVersion}/${o.kind}`;
  if (key === `${MONITORING_API}/ServiceMonitor`) return validateServiceMonitor(o);
  if (key === `${MONITORING_API}/PrometheusRule`) return validatePrometheusRule(o);
  const Model = models[key];
  assert.ok(Model, `no validator for ${key}: add one before the chart renders it`);
  new Model(o as never).validate();
}

/** The parts of monitoring.coreos.com/v1 ServiceMonitor the Prometheus Operator requires (no kubernetes-models class exists). */
function validateServiceMonitor(o: KubeObject): void {
  const spec = o.spec as { selector?: { matchLabels?: Record<string, string> }; endpoints?: { port?: string; path?: string; interval?: string }[]; namespaceSelector?: { matchNames?: string[] } };
  assert.ok(spec.selector?.matchLabels && Object.keys(spec.selector.matchLabels).length > 0, 'ServiceMonitor selects by labels');
  assert.ok(Array.isArray(spec.endpoints) && spec.endpoints.length > 0, 'ServiceMonitor has endpoints');
  for (const e of spec.endpoints) {
    assert.equal(typeof e.port, 'string', 'endpoint names a Service port');
    if (e.interval !== undefined) assert.match(e.interval, /^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$/);
  }
}

/** The parts of monitoring.coreos.com/v1 PrometheusRule the Prometheus Operator requires; alerts.test.ts runs promtool on the rules. */
function validatePrometheusRule(o: KubeObject): void {
  const spec = o.spec as { groups?: { name?: string; rules?: { alert?: string; expr?: unknown }[] }[] };
  assert.ok(Array.isArray(spec.groups) && spec.groups.length > 0, 'PrometheusRule has groups');
  const names = spec.groups.map((g) => g.name);
  assert.equal(new Set(names).size, names.length, 'group names are unique');
  for (const g of spec.groups) {
    assert.ok(g.name && Array.isArray(g.rules), `group ${g.name} has a name and rules`);
    for (const r of g.rules) assert.ok(typeof r.alert === 'string' && typeof r.expr === 'string', `rule in ${g.name} is an alert with an expr`);
  }
}

const CLUSTER_SCOPED = new Set(['ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'Namespace']);

function assertStandardLabels(o: KubeObject, release = 'mr'): void {
  const l = o.metadata.labels ?? {};
  const where = `${o.kind}/${o.metadata.name}`;
  assert.equal(l['helm.sh/chart'], `${chartYaml.name}-${chartYaml.version}`, `${where} helm.sh/chart`);
  assert.equal(l['app.kubernetes.io/name'], 'mailrelay-operator', `${where} name`);
  assert.equal(l['app.kubernetes.io/instance'], release, `${where} instance`);
  assert.equal(l['app.kubernetes.io/version'], chartYaml.appVersion, `${where} version`);
  assert.equal(l['app.kubernetes.io/part-of'], 'mailrelay', `${where} part-of`);
  assert.equal(l['app.kubernetes.io/managed-by'], 'Helm', `${where} managed-by`);
  assert.match(l['app.kubernetes.io/component'] ?? '', /^(operator|alerts|dashboards|example)$/, `${where} component`);
}

interface Container {
  name: string;
  image: string;
  imagePullPolicy: string;
  args: string[];
  env: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports: { name: string; containerPort: number }[];
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  resources: { requests?: Record<string, string>; limits?: Record<string, string> };
}
interface PodSpec extends PodSpecLike {
  serviceAccountName: string;
  containers: (Container & PodSpecLike['containers'][number])[];
  affinity?: Record<string, unknown>;
  topologySpreadConstraints?: Record<string, unknown>[];
  nodeSelector?: Record<string, string>;
  tolerations?: Record<string, unknown>[];
  priorityClassName?: string;
  imagePullSecrets?: { name: string }[];
}

function operatorDeployment(objects: KubeObject[]) {
  const dep = findObject(objects, 'Deployment');
  const spec = dep.spec as { replicas: number; selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string>; annotations?: Record<string, string> }; spec: PodSpec } };
  const container = spec.template.spec.containers[0];
  assert.ok(container);
  return { dep, spec, pod: spec.template.spec, container };
}

async function renderError(o: HelmTemplateOptions, chart = CHART): Promise<string> {
  try {
    await helmTemplate(chart, o);
  } catch (err) {
    assert.ok(err instanceof HelmRenderError, `expected a HelmRenderError, got ${String(err)}`);
    return err.message;
  }
  assert.fail(`render with ${JSON.stringify(o.values ?? o.set)} was expected to fail`);
}

describe('mailrelay-operator chart: defaults', async () => {
  const objects = await helmTemplateObjects(CHART, opts());

  it('renders the operator and its RBAC, and nothing optional', () => {
    assert.deepEqual(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort(), [
      'ClusterRole/mr-mailrelay-operator',
      'ClusterRoleBinding/mr-mailrelay-operator',
      'Deployment/mr-mailrelay-operator',
      'PodDisruptionBudget/mr-mailrelay-operator',
      'Role/mr-mailrelay-operator-leader-election',
      'RoleBinding/mr-mailrelay-operator-leader-election',
      'Service/mr-mailrelay-operator-metrics',
      'ServiceAccount/mr-mailrelay-operator',
    ]);
  });

  it('renders objects valid for their kind, labelled, in the release namespace', () => {
    for (const o of objects) {
      validateObject(o);
      assertStandardLabels(o);
      if (CLUSTER_SCOPED.has(o.kind)) assert.equal(o.metadata.namespace, undefined, `${o.kind} is cluster-scoped`);
      else assert.equal(o.metadata.namespace, 'mail-system', `${o.kind}/${o.metadata.name} namespace`);
    }
  });

  it('runs two operator replicas with leader election, spread softly over nodes and zones', () => {
    const { spec, pod, container } = operatorDeployment(objects);
    assert.equal(spec.replicas, 2);
    assert.deepEqual(container.args, ['operator', '--leader-elect', ...MONITORING_ARGS]);
    const anti = pod.affinity as { podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: { podAffinityTerm: { topologyKey: string; labelSelector: { matchLabels: Record<string, string> } } }[] } };
    const term = anti.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]?.podAffinityTerm;
    assert.equal(term?.topologyKey, 'kubernetes.io/hostname');
    assert.deepEqual(term?.labelSelector.matchLabels, spec.selector.matchLabels);
    assert.deepEqual(pod.topologySpreadConstraints, [{
      maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: spec.selector.matchLabels },
    }]);
    assert.ok(!('requiredDuringSchedulingIgnoredDuringExecution' in anti.podAntiAffinity), 'anti-affinity is soft');
    const pdb = findObject(objects, 'PodDisruptionBudget');
    assert.deepEqual(pdb.spec, { maxUnavailable: 1, selector: { matchLabels: spec.selector.matchLabels } });
  });

  it('selects its pods by stable labels only, which the pod template carries', () => {
    const { spec } = operatorDeployment(objects);
    assert.deepEqual(spec.selector.matchLabels, {
      'app.kubernetes.io/name': 'mailrelay-operator', 'app.kubernetes.io/instance': 'mr', 'app.kubernetes.io/component': 'operator',
    });
    for (const [k, v] of Object.entries(spec.selector.matchLabels)) assert.equal(spec.template.metadata.labels[k], v);
    const svc = findObject(objects, 'Service');
    assert.deepEqual((svc.spec as { selector: unknown }).selector, spec.selector.matchLabels);
  });

  it('is admitted by the restricted Pod Security Standard', () => {
    const { pod, container } = operatorDeployment(objects);
    assert.deepEqual(restrictedViolations(pod), []);
    const sc = (container as unknown as { securityContext: Record<string, unknown> }).securityContext;
    assert.deepEqual(sc, {
      allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532,
      capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' },
    });
    assert.equal(pod.securityContext?.runAsUser, 65532);
    assert.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault');
  });

  it('tells the operator who and where it is through the downward API', () => {
    const { container } = operatorDeployment(objects);
    const env = Object.fromEntries(container.env.map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath ?? e.value]));
    assert.deepEqual(env, {
      POD_NAMESPACE: 'metadata.namespace',
      POD_NAME: 'metadata.name',
      WATCH_NAMESPACE: '',
      LEADER_ELECTION_LEASE_NAME: 'mr-mailrelay-operator-leader',
      RELAY_IMAGE: `ghcr.io/mailrelay/mailrelay:${chartYaml.appVersion}`,
      LOG_LEVEL: 'info',
    });
  });

  it('serves metrics and probes on port http (8080) and defaults the image tag to appVersion', () => {
    const { pod, container } = operatorDeployment(objects);
    assert.deepEqual(container.ports, [{ name: 'http', containerPort: 8080, protocol: 'TCP' }]);
    assert.deepEqual(container.livenessProbe.httpGet, { path: '/healthz', port: 'http' });
    assert.deepEqual(container.readinessProbe.httpGet, { path: '/readyz', port: 'http' });
    assert.equal(container.image, `ghcr.io/mailrelay/mailrelay:${chartYaml.appVersion}`);
    assert.equal(container.imagePullPolicy, 'IfNotPresent');
    assert.deepEqual(container.resources, { requests: { cpu: '50m', memory: '128Mi' }, limits: { memory: '256Mi' } });
    assert.equal(pod.serviceAccountName, 'mr-mailrelay-operator');
    const svc = findObject(objects, 'Service');
    assert.deepEqual((svc.spec as { ports: unknown }).ports, [{ name: 'http', port: 8080, targetPort: 'http', protocol: 'TCP' }]);
  });
});

describe('mailrelay-operator chart: optional parts', () => {
  it('renders ServiceMonitor, PrometheusRule and dashboards when enabled and the API exists', async () => {
    const objects = await renderAllOn();
    for (const o of objects) {
      validateObject(o);
      assertStandardLabels(o);
    }
    const sm = findObject(objects, 'ServiceMonitor');
    assert.equal(sm.metadata.labels?.release, 'kube-prometheus-stack');
    const dep = operatorDeployment(objects);
    const spec = sm.spec as { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; path: string; interval: string }[]; namespaceSelector: unknown; jobLabel: string };
    assert.deepEqual(spec.selector.matchLabels, dep.spec.selector.matchLabels);
    assert.deepEqual(spec.endpoints, [{ port: 'http', path: '/metrics', interval: '30s' }]);
    assert.deepEqual(spec.namespaceSelector, { matchNames: ['mail-system'] });
    // The Service must carry the jobLabel, or job falls back to the Service name.
    assert.equal(findObject(objects, 'Service').metadata.labels?.[spec.jobLabel], 'mailrelay-operator');
    const rule = findObject(objects, 'PrometheusRule');
    assert.equal(rule.metadata.labels?.release, 'kube-prometheus-stack');
    assert.equal(rule.metadata.namespace, 'mail-system');
  });

  it('loads each dashboard file verbatim into a ConfigMap of its own for the Grafana sidecar', async () => {
    const objects = await renderAllOn();
    const files = (await readdir(join(CHART, 'dashboards'))).filter((f) => f.endsWith('.json')).sort();
    const cms = objects.filter((o) => o.kind === 'ConfigMap');
    assert.equal(cms.length, files.length);
    for (const file of files) {
      const cm = findObject(objects, 'ConfigMap', `mr-mailrelay-operator-dashboard-${file.replace(/\.json$/, '')}`);
      assert.equal(cm.metadata.labels?.grafana_dashboard, '1');
      assert.equal(cm.metadata.annotations?.grafana_folder, 'Mail relays');
      const data = cm.data as Record<string, string>;
      assert.deepEqual(Object.keys(data), [file]);
      assert.deepEqual(JSON.parse(data[file] ?? ''), JSON.parse(await readFile(join(CHART, 'dashboards', file), 'utf8')));
      assert.ok(Buffer.byteLength(data[file] ?? '') < 1024 * 1024, 'fits in a ConfigMap');
    }
  });

  it('puts dashboards where Grafana looks, with its label and folder annotation', async () => {
    const objects = await renderAllOn([{ grafana: { dashboards: { namespace: 'monitoring', label: 'grafana_dashboard_mail', labelValue: 'yes', folder: 'SMTP', folderAnnotation: 'k8s-sidecar-target-directory', annotations: { team: 'mail' } } } }]);
    for (const cm of objects.filter((o) => o.kind === 'ConfigMap')) {
      assert.equal(cm.metadata.namespace, 'monitoring');
      assert.equal(cm.metadata.labels?.grafana_dashboard_mail, 'yes');
      assert.equal(cm.metadata.labels?.grafana_dashboard, undefined);
      assert.deepEqual(cm.metadata.annotations, { 'k8s-sidecar-target-directory': 'SMTP', team: 'mail' });
    }
    const noFolder = await renderAllOn([{ grafana: { dashboards: { folder: '' } } }]);
    for (const cm of noFolder.filter((o) => o.kind === 'ConfigMap')) assert.equal(cm.metadata.annotations, undefined);
  });

  it('creates no monitoring objects when the Prometheus Operator API is missing, and NOTES says why', async () => {
    const o = opts({ values: [ALL_ON] });
    const objects = await helmTemplateObjects(CHART, o);
    assert.deepEqual(objects.filter((x) => x.apiVersion === MONITORING_API), []);
    const notes = await helmNotes(CHART, o);
    assert.match(notes, /monitoring\.serviceMonitor\.enabled is true, but the cluster does not serve\s+monitoring\.coreos\.com\/v1/);
    assert.match(notes, /monitoring\.prometheusRule\.enabled is true, but the cluster does not serve\s+monitoring\.coreos\.com\/v1/);
  });

  it('creates no monitoring objects when they are disabled, even with the API', async () => {
    const objects = await helmTemplateObjects(CHART, opts({ apiVersions: [MONITORING_API] }));
    assert.deepEqual(objects.filter((x) => x.apiVersion === MONITORING_API || x.kind === 'ConfigMap'), []);
  });

  it('passes scheduling, image and pod settings through', async () => {
    const objects = await helmTemplateObjects(CHART, opts({
      values: [{
        image: { repository: 'registry.example/mail/mailrelay', tag: '1.2.3', digest: `sha256:${'a'.repeat(64)}`, pullPolicy: 'Always' },
        imagePullSecrets: [{ name: 'regcred' }],
        nodeSelector: { 'kubernetes.io/os': 'linux' },
        tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'mail', effect: 'NoSchedule' }],
        affinity: { nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 1, preference: { matchExpressions: [{ key: 'zone', operator: 'In', values: ['a'] }] } }] } },
        topologySpreadConstraints: [{ maxSkew: 2, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'DoNotSchedule' }],
        priorityClassName: 'system-cluster-critical',
        podAnnotations: { 'example.com/a': 'b' },
        podLabels: { team: 'mail' },
        extraArgs: ['--resync=10m'],
        extraEnv: [{ name: 'NODE_OPTIONS', value: '--max-old-space-size=200' }],
        logLevel: 'debug',
      }],
    }));
    const { spec, pod, container } = operatorDeployment(objects);
    validateObject(findObject(objects, 'Deployment'));
    const image = `registry.example/mail/mailrelay:1.2.3@sha256:${'a'.repeat(64)}`;
    assert.equal(container.image, image);
    assert.equal(container.env.find((e) => e.name === 'RELAY_IMAGE')?.value, image, 'relays run the same image');
    assert.equal(container.env.find((e) => e.name === 'LOG_LEVEL')?.value, 'debug');
    assert.equal(container.env.at(-1)?.name, 'NODE_OPTIONS');
    assert.equal(container.imagePullPolicy, 'Always');
    assert.deepEqual(container.args, ['operator', '--leader-elect', ...MONITORING_ARGS, '--resync=10m']);
    assert.deepEqual(pod.imagePullSecrets, [{ name: 'regcred' }]);
    assert.deepEqual(pod.nodeSelector, { 'kubernetes.io/os': 'linux' });
    assert.equal(pod.tolerations?.length, 1);
    assert.ok(pod.affinity && 'nodeAffinity' in pod.affinity && !('podAntiAffinity' in pod.affinity), 'user affinity replaces the default');
    assert.deepEqual(pod.topologySpreadConstraints, [{ maxSkew: 2, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'DoNotSchedule' }]);
    assert.equal(pod.priorityClassName, 'system-cluster-critical');
    assert.equal(spec.template.metadata.annotations?.['example.com/a'], 'b');
    assert.equal(spec.template.metadata.labels.team, 'mail');
  });

  it('runs a single replica without leader election, and refuses two without it', async () => {
    const single = await helmTemplateObjects(CHART, opts({ values: [{ replicaCount: 1, leaderElection: { enabled: false } }] }));
    assert.deepEqual(operatorDeployment(single).container.args, ['operator', ...MONITORING_ARGS]);
    assert.equal(single.filter((o) => o.kind === 'PodDisruptionBudget').length, 0, 'no PDB for one replica: it would block node drains');
    const msg = await renderError(opts({ values: [{ leaderElection: { enabled: false } }] }));
    assert.match(msg, /leaderElection\.enabled=false needs replicaCount <= 1/);
  });

  it('uses an existing ServiceAccount when told to', async () => {
    const objects = await helmTemplateObjects(CHART, opts({ values: [{ serviceAccount: { create: false, name: 'mail-operator' } }] }));
    assert.equal(objects.filter((o) => o.kind === 'ServiceAccount').length, 0);
    assert.equal(operatorDeployment(objects).pod.serviceAccountName, 'mail-operator');
    for (const b of objects.filter((o) => o.kind.endsWith('Binding'))) {
      assert.deepEqual((b as unknown as { subjects: unknown }).subjects, [{ kind: 'ServiceAccount', name: 'mail-operator', namespace: 'mail-system' }]);
    }
    assert.match(await renderError(opts({ values: [{ serviceAccount: { create: false } }] })), /serviceAccount\.name is required/);
  });

  it('names objects after the release, without repeating the chart name', async () => {
    const a = await helmTemplateObjects(CHART, opts({ releaseName: 'mailrelay-operator' }));
    assert.equal(findObject(a, 'Deployment').metadata.name, 'mailrelay-operator');
    const b = await helmTemplateObjects(CHART, opts({ values: [{ fullnameOverride: 'smtp-op' }] }));
    assert.equal(findObject(b, 'Deployment').metadata.name, 'smtp-op');
    assert.equal(findObject(b, 'Service').metadata.name, 'smtp-op-metrics');
  });
});

describe('mailrelay-operator chart: values schema', () => {
  // [what, values, what the error must name: helm 4 reports JSON pointers, "at '/a/b'"]
  const cases: [string, object, string][] = [
    ['replicaCount "two"', { replicaCount: 'two' }, "at '/replicaCount'"],
    ['replicaCount -1', { replicaCount: -1 }, "at '/replicaCount'"],
    ['an unknown image pullPolicy', { image: { pullPolicy: 'Sometimes' } }, "at '/image/pullPolicy'"],
    ['an image digest that is not sha256', { image: { digest: 'md5:abc' } }, "at '/image/digest'"],
    ['an unknown top-level key (a typo)', { replicas: 3 }, "additional properties 'replicas' not allowed"],
    ['an unknown nested key', { monitoring: { serviceMonitor: { enable: true } } }, "at '/monitoring/serviceMonitor': additional properties 'enable' not allowed"],
    ['a log level nobody knows', { logLevel: 'verbose' }, "at '/logLevel'"],
    ['a watchNamespace that is not a DNS label', { watchNamespace: 'Mail_System' }, "at '/watchNamespace'"],
    ['an alert "for" that is not a duration', { alerts: { queueGrowing: { for: '15 minutes' } } }, "at '/alerts/queueGrowing/for'"],
    ['an unknown severity', { alerts: { relayDown: { severity: 'page' } } }, "at '/alerts/relayDown/severity'"],
    ['a negative threshold', { alerts: { bounces: { ratio: -0.1 } } }, "at '/alerts/bounces/ratio'"],
    ['a runbook base URL with a trailing slash', { alerts: { runbookBaseUrl: 'https://example.com/runbooks/' } }, "at '/alerts/runbookBaseUrl'"],
    // helm 4.3.2 names the wrong parent here ("at '/securityContext'"), but the key it refuses is right.
    ['a pod label the chart owns', { podLabels: { 'app.kubernetes.io/name': 'x' } }, "invalid propertyName 'app.kubernetes.io/name'"],
    ['a dashboard label value too long for a label', { grafana: { dashboards: { labelValue: 'x'.repeat(64) } } }, "at '/grafana/dashboards/labelValue'"],
    ['a non-object example spec', { exampleRelay: { spec: 'replicas: 2' } }, "at '/exampleRelay/spec'"],
  ];
  for (const [what, values, field] of cases) {
    it(`rejects ${what}`, async () => {
      const msg = await renderError(opts({ values: [values] }));
      assert.match(msg, /values don't meet the specifications of the schema/);
      assert.ok(msg.includes(field), `the error names ${field}:\n${msg}`);
    });
  }

  it('rejects --set replicaCount=two, naming the field', async () => {
    const msg = await renderError(opts({ set: { replicaCount: 'two' } }));
    assert.match(msg, /replicaCount/);
  });

  it('accepts the documented alternatives', async () => {
    await helmTemplate(CHART, opts({
      values: [{ image: { pullPolicy: 'Never', tag: '0.1.0-rc.1' }, watchNamespace: 'mail', monitoring: { serviceMonitor: { interval: '', scrapeTimeout: '10s' } }, alerts: { relayDown: { for: '0', severity: 'info' } } }],
    }));
  });
});

describe('mailrelay-operator chart: NOTES', () => {
  it('tells the user what to do next', async () => {
    const notes = await helmNotes(CHART, opts());
    assert.match(notes, /installed as release "mr" in namespace "mail-system"/);
    assert.match(notes, /kubectl -n mail-system rollout status deployment\/mr-mailrelay-operator/);
    assert.match(notes, /kind: MailRelay/);
    assert.match(notes, /kubectl get mailrelays -A/);
    assert.match(notes, /swaks --server/);
    assert.match(notes, /mr-mailrelay-operator-metrics/);
    assert.match(notes, /Dashboards are off; enable them with --set grafana\.dashboards\.enabled=true/);
  });

  it('says where the dashboards and alerts are when they are on', async () => {
    const notes = await helmNotes(CHART, opts({ values: [ALL_ON], apiVersions: [MONITORING_API] }));
    assert.match(notes, /ServiceMonitor mr-mailrelay-operator scrapes the operator/);
    assert.match(notes, /PrometheusRule mr-mailrelay-operator holds the alerts/);
    assert.match(notes, /ConfigMaps labelled grafana_dashboard=1 in namespace\s+"mail-system", folder "Mail relays"/);
    assert.doesNotMatch(notes, /WARNING/);
  });

  it('warns that the no-leader alert fires when nothing scrapes the operator', async () => {
    const notes = await helmNotes(CHART, opts({ values: [{ monitoring: { prometheusRule: { enabled: true } } }], apiVersions: [MONITORING_API] }));
    assert.match(notes, /MailRelayOperatorNoLeader fires unless you scrape it another way/);
  });

  it('names the watched namespace', async () => {
    const notes = await helmNotes(CHART, opts({ values: [{ watchNamespace: 'mail' }] }));
    assert.match(notes, /manages MailRelays in namespace "mail" only/);
    assert.match(notes, /kubectl apply -n mail -f -/);
  });
});

describe('mailrelay-operator chart: CRDs', () => {
  /** The same chart with a MailRelay CRD in crds/, to test what the chart derives from it while the real CRD may not exist yet. */
  async function chartWithCrd(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
    const dir = await mkdtemp(join(tmpdir(), 'mailrelay-chart-'));
    await cp(CHART, dir, { recursive: true });
    await rm(join(dir, 'crds'), { recursive: true, force: true });
    await cp(join(CHART, 'crds'), join(dir, 'crds'), { recursive: true });
    await writeFile(join(dir, 'crds', 'zz-fixture.mailrelay.test.example.yaml'), [
      '# A fixture CRD: two versions, v1beta1 stored.',
      'apiVersion: apiextensions.k8s.io/v1',
      'kind: CustomResourceDefinition',
      'metadata:',
      '  name: mailrelays.fixture.test.example',
      'spec:',
      '  group: fixture.test.example',
      '  scope: Namespaced',
      '  names: {kind: MailRelay, listKind: MailRelayList, plural: mailrelays, singular: mailrelay}',
      '  versions:',
      '    - {name: v1alpha1, served: true, storage: false, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}',
      '    - {name: v1beta1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}',
      '---',
      'apiVersion: v1',
      'kind: ConfigMap',
      'metadata: {name: not-a-crd}',
      '',
    ].join('\n'));
    return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
  }

  it('grants the operator its verbs on the CRDs it ships, derived from the CRD files', async () => {
    const { dir, cleanup } = await chartWithCrd();
    try {
      const role = findObject(await helmTemplateObjects(dir, opts()), 'ClusterRole');
      const rules = (role as unknown as { rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[] }).rules;
      const mine = rules.filter((r) => r.apiGroups.includes('fixture.test.example'));
      assert.deepEqual(mine, [
        { apiGroups: ['fixture.test.example'], resources: ['mailrelays'], verbs: ['get', 'list', 'watch'] },
        { apiGroups: ['fixture.test.example'], resources: ['mailrelays/status'], verbs: ['update'] },
        { apiGroups: ['fixture.test.example'], resources: ['mailrelays/finalizers'], verbs: ['update'] },
      ]);
    } finally {
      await cleanup();
    }
  });

  it('creates the example MailRelay at the stored version, in the watched namespace', async () => {
    const { dir, cleanup } = await chartWithCrd();
    try {
      const objects = await helmTemplateObjects(dir, opts({ values: [{ exampleRelay: { enabled: true }, watchNamespace: 'mail' }] }));
      const mr = findObject(objects, 'MailRelay', 'example');
      assert.equal(mr.apiVersion, 'fixture.test.example/v1beta1');
      assert.equal(mr.metadata.namespace, 'mail');
      assertStandardLabels(mr);
      assert.deepEqual(mr.spec, { replicas: 2, relayNetworks: ['10.0.0.0/8'], delivery: { mode: 'smarthost', smarthost: { host: 'smtp.example.com', port: 587 } } });
      const notes = await helmNotes(dir, opts({ values: [{ exampleRelay: { enabled: true } }] }));
      assert.match(notes, /apiVersion: fixture\.test\.example\/v1beta1/);
      assert.match(notes, /The chart created one for you: MailRelay "example" in namespace "mail-system"/);
    } finally {
      await cleanup();
    }
  });

  it('refuses the example MailRelay when no CRD defines MailRelay', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mailrelay-chart-'));
    try {
      await cp(CHART, dir, { recursive: true });
      await rm(join(dir, 'crds'), { recursive: true, force: true });
      assert.match(await renderError(opts({ values: [{ exampleRelay: { enabled: true } }] }), dir), /needs the MailRelay CustomResourceDefinition/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('creates an example MailRelay the real CRD schema accepts', async () => {
    const crds = (await readdir(join(CHART, 'crds'))).filter((f) => /\.ya?ml$/.test(f));
    const crd = (await Promise.all(crds.map(async (f) => parseYaml(await readFile(join(CHART, 'crds', f), 'utf8')) as CrdDoc)))
      .find((c) => c.kind === 'CustomResourceDefinition' && c.spec.names.kind === 'MailRelay');
    assert.ok(crd, 'the chart ships the MailRelay CRD');
    const stored = crd.spec.versions.find((v) => v.storage);
    assert.ok(stored);
    const mr = findObject(await helmTemplateObjects(CHART, opts({ values: [{ exampleRelay: { enabled: true } }] })), 'MailRelay');
    assert.equal(mr.apiVersion, `${crd.spec.group}/${stored.name}`);
    // The structural schema's own keywords (x-kubernetes-*) are not JSON Schema; ajv ignores them with strict off.
    const ajv = new Ajv.default({ strict: false, allErrors: true, validateFormats: false });
    const valid = ajv.validate(stored.schema.openAPIV3Schema.properties.spec, mr.spec);
    assert.ok(valid, JSON.stringify(ajv.errors, null, 2));
    // The API server prunes (or, with fieldValidation=Strict, rejects) fields its schema does not know.
    assert.deepEqual(unknownFields(stored.schema.openAPIV3Schema.properties.spec, mr.spec, '.spec'), []);
  });
});

describe('mailrelay-operator chart: relay monitoring passed to the operator', () => {
  it('relay ServiceMonitor labels, relabelings and metricRelabelings become operator flags the operator accepts', async () => {
    const { parseOperatorConfig } = await import('../../operator/main.ts');
    const relabel = [{ sourceLabels: ['__meta_kubernetes_pod_node_name'], targetLabel: 'node', action: 'replace' }];
    const drop = [{ sourceLabels: ['__name__'], regex: 'nodejs_.*', action: 'drop' }];
    const objs = await helmTemplateObjects(CHART, opts({ values: [{ monitoring: { relays: { serviceMonitor: { labels: { release: 'prom', team: 'mail' }, relabelings: relabel, metricRelabelings: drop } } } }] }));
    const args = (objs.find((o) => o.kind === 'Deployment') as unknown as { spec: { template: { spec: { containers: { args: string[] }[] } } } }).spec.template.spec.containers[0]!.args;
    const c = parseOperatorConfig(args.slice(1), {});
    assert.deepEqual(c.monitoring, { serviceMonitorLabels: { release: 'prom', team: 'mail' }, relabelings: relabel, metricRelabelings: drop, runbookBaseUrl: 'https://github.com/mailrelay/mailrelay/blob/main/docs/runbooks' });
  });

  it('--fleet-alerts exactly when the chart installs its own PrometheusRule', async () => {
    const argsWith = async (values: object, apiVersions: string[]) => {
      const objs = await helmTemplateObjects(CHART, opts({ values: [values], apiVersions }));
      return (objs.find((o) => o.kind === 'Deployment') as unknown as { spec: { template: { spec: { containers: { args: string[] }[] } } } }).spec.template.spec.containers[0]!.args;
    };
    const on = { monitoring: { prometheusRule: { enabled: true } } };
    assert.ok((await argsWith(on, [MONITORING_API])).includes('--fleet-alerts'));
    assert.ok(!(await argsWith(on, [])).includes('--fleet-alerts'), 'no Prometheus Operator API: the chart creates no rules');
    assert.ok(!(await argsWith({}, [MONITORING_API])).includes('--fleet-alerts'));
  });
});
