// kube-prometheus-stack by default (issue 13 §6): a stock kube-prometheus-stack selects
// ServiceMonitors by its release label, and relay ServiceMonitors had none, so no relay was
// scraped. The chart now passes operator-wide defaults (labels, relabelings,
// metricRelabelings) to the operator; with the chart's default values the operator's relay
// ServiceMonitor carries `release: kube-prometheus-stack`. And while the chart installs its
// fleet-wide rules, a MailRelay that asks for its own PrometheusRule gets none: it would
// page twice (the chart passes --fleet-alerts).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { installPrometheusOperatorCrds } from '../kube/crds.ts';
import { waitFor } from '../kube/testutil.ts';
import { helmTemplateObjects } from '../helpers/helm.ts';
import { CHART, MONITORING_API, opts } from '../chart/chart.ts';
import { parseOperatorConfig } from '../../operator/main.ts';
import { createMailRelay, createNamespace, minimalSpec, patchMailRelaySpec, startTestCluster, startTestOperator, waitForCondition, type TestCluster, type TestOperator } from './harness.ts';

async function chartOperatorConfig(values: object) {
  const objs = await helmTemplateObjects(CHART, opts({ values: [values], apiVersions: [MONITORING_API] }));
  const dep = objs.find((o) => o.kind === 'Deployment') as unknown as { spec: { template: { spec: { containers: { args: string[] }[] } } } };
  return parseOperatorConfig(dep.spec.template.spec.containers[0]!.args.slice(1), {});
}

describe('relay monitoring with the chart\'s defaults', () => {
  let cluster: TestCluster;
  let op: TestOperator | undefined;
  const ns = 'mail';
  const get = (plural: string, name: string) => cluster.server.get('monitoring.coreos.com', 'v1', plural, ns, name);

  before(async () => {
    cluster = await startTestCluster();
    createNamespace(cluster, ns);
    installPrometheusOperatorCrds(cluster.server);
  });
  after(async () => {
    await op?.stop();
    await cluster.close();
  });

  it('the relay ServiceMonitor carries release: kube-prometheus-stack, the MailRelay\'s own labels, and the chart\'s relabelings', async () => {
    const config = await chartOperatorConfig({ monitoring: { relays: { serviceMonitor: {
      labels: { release: 'kube-prometheus-stack' },
      relabelings: [{ sourceLabels: ['__meta_kubernetes_pod_node_name'], targetLabel: 'node', action: 'replace' }],
      metricRelabelings: [{ sourceLabels: ['__name__'], regex: 'nodejs_gc_.*', action: 'drop' }],
    } } } });
    op = await startTestOperator(cluster, { monitoring: config.monitoring });
    await createMailRelay(cluster, ns, 'edge', minimalSpec({ monitoring: { serviceMonitor: { labels: { team: 'mail' } }, prometheusRule: { enabled: true } } }));
    const sm = await waitFor('the ServiceMonitor', () => get('servicemonitors', 'edge'));
    assert.deepEqual(sm.metadata.labels, { ...sm.metadata.labels, release: 'kube-prometheus-stack', team: 'mail' });
    const ep = (sm.spec as { endpoints: { relabelings: { targetLabel?: string }[]; metricRelabelings?: { regex?: string }[] }[] }).endpoints[0]!;
    assert.deepEqual(ep.relabelings.map((r) => r.targetLabel), ['mailrelay', 'node'], 'the operator\'s mailrelay label first, then the chart\'s');
    assert.deepEqual(ep.metricRelabelings?.map((r) => r.regex), ['nodejs_gc_.*']);
    // The chart's own PrometheusRule is off here: the MailRelay gets its own.
    await waitFor('the per-MailRelay PrometheusRule', () => get('prometheusrules', 'edge'));
    await op.stop();
    op = undefined;
  });

  it('with the chart\'s PrometheusRule on, the per-MailRelay PrometheusRule goes away (it would page twice)', async () => {
    const config = await chartOperatorConfig({ monitoring: { prometheusRule: { enabled: true } } });
    assert.equal(config.monitoring.fleetAlerts, true);
    op = await startTestOperator(cluster, { monitoring: config.monitoring });
    await patchMailRelaySpec(cluster, ns, 'edge', { logLevel: 'debug' });
    await waitFor('the per-MailRelay PrometheusRule deleted', () => !get('prometheusrules', 'edge'));
    await waitForCondition(cluster, ns, 'edge', 'Degraded', 'False');
    assert.equal(get('servicemonitors', 'edge')?.metadata.labels?.release, 'kube-prometheus-stack', 'the chart\'s default label');
  });
});
