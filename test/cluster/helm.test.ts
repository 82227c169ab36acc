// The chart with real Helm on a real API server: lint, template (defaults and every
// option on) validated by the server itself (server-side dry run), install, and an
// upgrade from a chart whose CRD lacks a field, following the documented upgrade path
// (charts/mailrelay-operator/README.md "Upgrading"): Helm never updates crds/ on
// upgrade, so the CRD is applied first with `kubectl apply --server-side -f crds/`.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { ALL_ON, MONITORING_API } from '../chart/chart.ts';
import { serviceMonitorCrd, prometheusRuleCrd } from '../kube/crds.ts';
import { CHART, RELEASE, startCluster, type ClusterEnv } from './harness.ts';
import { REPO } from './control-plane.ts';

describe('the chart with real helm', { timeout: 600_000 }, () => {
  let env: ClusterEnv;
  before(async () => { env = await startCluster({ chart: false }); });
  after(async () => { await env?.close(); });

  it('helm lint passes, also with every option on', () => {
    const lint = env.cp.helm(['lint', '--strict', CHART]);
    assert.equal(lint.code, 0, lint.stdout + lint.stderr);
    const values = join(env.cp.dir, 'all-on.json');
    writeFileSync(values, JSON.stringify(ALL_ON));
    const allOn = env.cp.helm(['lint', '--strict', CHART, '-f', values]);
    assert.equal(allOn.code, 0, allOn.stdout + allOn.stderr);
  });

  it('helm template output, defaults and every option on, is accepted by the API server (server-side dry run)', () => {
    env.kubectl(['apply', '--server-side', '-f', '-'], [serviceMonitorCrd(), prometheusRuleCrd()].map((o) => stringify(o)).join('---\n'));
    env.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/servicemonitors.monitoring.coreos.com', 'crd/prometheusrules.monitoring.coreos.com']);
    env.kubectl(['create', 'namespace', RELEASE.namespace]);
    const values = join(env.cp.dir, 'all-on.json');
    writeFileSync(values, JSON.stringify(ALL_ON));
    for (const extra of [[], ['-f', values, '--api-versions', MONITORING_API]]) {
      const t = env.cp.helm(['template', RELEASE.name, CHART, '--namespace', RELEASE.namespace, ...extra]);
      assert.equal(t.code, 0, t.stderr);
      const docs = t.stdout.split(/^---$/m).map((d) => parse(d)).filter(Boolean);
      assert.ok(docs.length >= 5, `rendered ${docs.length} objects`);
      const out = env.cp.kubectlResult(['apply', '--server-side', '--dry-run=server', '--validate=strict', '-n', RELEASE.namespace, '-f', '-'], { input: t.stdout });
      assert.equal(out.code, 0, `${extra.join(' ')}: ${out.stderr}`);
      assert.equal((out.stdout.match(/serverside-applied \(server dry run\)/g) ?? []).length, docs.length, out.stdout);
    }
  });

  it('helm install creates the release, the CRD from crds/, and RBAC the API server accepts', () => {
    const r = env.cp.helm(['install', RELEASE.name, CHART, '--namespace', RELEASE.namespace, '--set', 'replicaCount=0', '--wait', '--timeout', '60s']);
    assert.equal(r.code, 0, r.stderr);
    const status = JSON.parse(env.cp.helm(['status', RELEASE.name, '-n', RELEASE.namespace, '-o', 'json']).stdout) as { info: { status: string } };
    assert.equal(status.info.status, 'deployed');
    env.kubectl(['get', 'crd', 'mailrelays.mailrelay.io']);
    const role = env.getJson(['clusterrole', 'mailrelay-mailrelay-operator']);
    assert.ok(role.rules.length > 5);
    const sa = env.getJson(['serviceaccount', '-n', RELEASE.namespace, 'mailrelay-mailrelay-operator']);
    assert.equal(sa.metadata.name, 'mailrelay-mailrelay-operator');
  });
});

describe('helm upgrade from a chart whose CRD lacks a field (the documented upgrade path)', { timeout: 600_000 }, () => {
  let env: ClusterEnv;
  let oldChart: string;
  before(async () => {
    env = await startCluster({ crds: false, chart: false });
    // The "old" chart: the same chart at an older version whose CRD has no spec.logLevel.
    oldChart = join(mkdtempSync(join(tmpdir(), 'old-chart-')), 'mailrelay-operator');
    cpSync(CHART, oldChart, { recursive: true });
    const crdFile = join(oldChart, 'crds', 'mailrelay.io_mailrelays.yaml');
    const crd = parse(readFileSync(crdFile, 'utf8'));
    delete crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.logLevel;
    writeFileSync(crdFile, stringify(crd));
    const chart = parse(readFileSync(join(oldChart, 'Chart.yaml'), 'utf8'));
    writeFileSync(join(oldChart, 'Chart.yaml'), stringify({ ...chart, version: '0.0.1' }));
  });
  after(async () => { await env?.close(); });

  const relay = (logLevel: string) => stringify({
    apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay', metadata: { name: 'r', namespace: 'default' },
    spec: { replicas: 1, relayNetworks: ['10.0.0.0/8'], logLevel },
  });
  const storedLogLevel = () => env.getJson(['mailrelay', '-n', 'default', 'r']).spec.logLevel as string | undefined;

  it('the old release: its CRD has no spec.logLevel, so the field is refused (strict) or silently pruned', () => {
    const r = env.cp.helm(['install', RELEASE.name, oldChart, '--namespace', RELEASE.namespace, '--create-namespace', '--set', 'replicaCount=0']);
    assert.equal(r.code, 0, r.stderr);
    env.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/mailrelays.mailrelay.io']);
    const strict = env.cp.kubectlResult(['apply', '--server-side', '-f', '-'], { input: relay('debug') });
    assert.notEqual(strict.code, 0);
    assert.match(strict.stderr, /\.spec\.logLevel: field not declared in schema/);
    // A client that does not ask for strict validation (a POST, as most controllers and
    // GitOps tools send): accepted, and the field silently dropped.
    env.kubectl(['create', '--validate=false', '-f', '-'], relay('debug'));
    assert.equal(storedLogLevel(), undefined, 'pruned by the old schema');
  });

  it('helm upgrade alone leaves the old CRD in place (Helm never upgrades crds/)', () => {
    const r = env.cp.helm(['upgrade', RELEASE.name, CHART, '--namespace', RELEASE.namespace, '--set', 'replicaCount=0']);
    assert.equal(r.code, 0, r.stderr);
    const crd = env.getJson(['crd', 'mailrelays.mailrelay.io']);
    assert.equal(crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.logLevel, undefined);
  });

  it('the documented path: kubectl apply --server-side --force-conflicts -f crds/, then helm upgrade; the new field is kept', () => {
    env.kubectl(['apply', '--server-side', '--force-conflicts', '-f', join(REPO, 'crds')]);
    env.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/mailrelays.mailrelay.io']);
    const r = env.cp.helm(['upgrade', RELEASE.name, CHART, '--namespace', RELEASE.namespace, '--set', 'replicaCount=0']);
    assert.equal(r.code, 0, r.stderr);
    const crd = env.getJson(['crd', 'mailrelays.mailrelay.io']);
    assert.ok(crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.logLevel);
    env.kubectl(['apply', '--server-side', '-f', '-'], relay('debug'));
    assert.equal(storedLogLevel(), 'debug');
  });
});
