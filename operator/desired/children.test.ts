// The small children: Services, PodDisruptionBudget, NetworkPolicy, ServiceMonitor and
// PrometheusRule, each checked for the property that matters about it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parser } from '@prometheus-io/lezer-promql';
import type { MailRelay, MailRelaySpec } from '../api/mailrelay.ts';
import { buildNetworkPolicy } from './networkpolicy.ts';
import { buildPodDisruptionBudget } from './pdb.ts';
import { buildPrometheusRule, relayAlerts } from './prometheusrule.ts';
import { buildClientService, buildHeadlessService } from './service.ts';
import { buildServiceMonitor } from './servicemonitor.ts';
import { deepFreeze, validateKubeObject } from '../../test/helpers/desired-fixtures.ts';
import { selectorLabels, selectorString } from './labels.ts';

const relay = (spec: MailRelaySpec): MailRelay => deepFreeze({ apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay', metadata: { name: 'relay', namespace: 'mail', uid: 'u1' }, spec });
const ALL = { capabilities: { serviceMonitor: true, prometheusRule: true } };

describe('labels', () => {
  it('select the relay pods with name, instance and component', () => {
    assert.deepEqual(selectorLabels(relay({})), { 'app.kubernetes.io/component': 'relay', 'app.kubernetes.io/instance': 'relay', 'app.kubernetes.io/name': 'mailrelay' });
    assert.equal(selectorString(relay({})), 'app.kubernetes.io/component=relay,app.kubernetes.io/instance=relay,app.kubernetes.io/name=mailrelay');
  });
});

describe('Services', () => {
  it('headless: governs the StatefulSet and publishes not-ready (draining) pods, SMTP and metrics', () => {
    const s = buildHeadlessService(relay({}));
    validateKubeObject(s);
    assert.equal(s.spec?.clusterIP, 'None');
    assert.equal(s.spec?.publishNotReadyAddresses, true);
    assert.deepEqual(s.spec?.ports?.map((p) => [p.name, p.port]), [['smtp', 2525], ['metrics', 9090]]);
  });

  it('client: port 25 to the relay\'s 2525, SMTP only (it may be public; /drain is on the HTTP port)', () => {
    const s = buildClientService(relay({}));
    validateKubeObject(s);
    assert.equal(s.spec?.type, 'ClusterIP');
    assert.deepEqual(s.spec?.ports, [{ name: 'smtp', port: 25, targetPort: 'smtp', protocol: 'TCP' }]);
    assert.equal(s.spec?.publishNotReadyAddresses, undefined);
    assert.equal(s.metadata.annotations, undefined);
  });

  it('client: LoadBalancer settings pass through', () => {
    const s = buildClientService(relay({ service: { type: 'LoadBalancer', port: 2525, externalTrafficPolicy: 'Local', loadBalancerSourceRanges: ['192.0.2.0/24'], annotations: { a: 'b' } } }));
    validateKubeObject(s);
    assert.equal(s.spec?.type, 'LoadBalancer');
    assert.equal(s.spec?.externalTrafficPolicy, 'Local');
    assert.deepEqual(s.spec?.loadBalancerSourceRanges, ['192.0.2.0/24']);
    assert.equal(s.spec?.ports?.[0]?.port, 2525);
    assert.deepEqual(s.metadata.annotations, { a: 'b' });
  });
});

describe('PodDisruptionBudget', () => {
  it('limits voluntary disruptions and lets unhealthy pods be evicted', () => {
    const p = buildPodDisruptionBudget(relay({ podDisruptionBudget: { maxUnavailable: 2 } }));
    assert.ok(p);
    validateKubeObject(p);
    assert.equal(p.spec?.maxUnavailable, 2);
    assert.equal(p.spec?.unhealthyPodEvictionPolicy, 'AlwaysAllow');
    assert.deepEqual(p.spec?.selector?.matchLabels, selectorLabels(relay({})));
    assert.equal(buildPodDisruptionBudget(relay({ podDisruptionBudget: { enabled: false } })), undefined);
  });
});

describe('NetworkPolicy', () => {
  it('is built only when enabled', () => {
    assert.equal(buildNetworkPolicy(relay({})), undefined);
  });

  it('defaults: SMTP from this namespace, metrics from any pod, egress DNS, SMTP ports and (MTA-STS in mode mx) HTTPS', () => {
    const np = buildNetworkPolicy(relay({ networkPolicy: { enabled: true } }));
    assert.ok(np);
    validateKubeObject(np);
    assert.deepEqual(np.spec.policyTypes, ['Ingress', 'Egress']);
    assert.deepEqual(np.spec.ingress?.[0], { from: [{ podSelector: {} }], ports: [{ protocol: 'TCP', port: 2525 }] });
    assert.deepEqual(np.spec.ingress?.[1], { from: [{ namespaceSelector: {} }], ports: [{ protocol: 'TCP', port: 9090 }] });
    assert.deepEqual(np.spec.egress?.map((e) => e.ports?.map((p) => `${p.protocol}/${p.port}`)), [['UDP/53', 'TCP/53'], ['TCP/25', 'TCP/443', 'TCP/465', 'TCP/587']]);
    const noSts = buildNetworkPolicy(relay({ networkPolicy: { enabled: true }, delivery: { mtaSts: { enabled: false } } }));
    assert.deepEqual(noSts?.spec.egress?.[1]?.ports?.map((p) => p.port), [25, 465, 587], 'no HTTPS without MTA-STS');
  });

  it('allows the configured clients and a smarthost on an unusual port', () => {
    const np = buildNetworkPolicy(relay({
      networkPolicy: { enabled: true, allowedClients: [{ ipBlock: { cidr: '192.0.2.0/24' } }], metricsFrom: [{ podSelector: { matchLabels: { app: 'prom' } } }] },
      delivery: { mode: 'smarthost', smarthost: { host: 'h', port: 2587 } },
    }));
    assert.ok(np);
    validateKubeObject(np);
    assert.deepEqual(np.spec.ingress?.[0]?.from, [{ ipBlock: { cidr: '192.0.2.0/24' } }]);
    assert.deepEqual(np.spec.ingress?.[1]?.from, [{ podSelector: { matchLabels: { app: 'prom' } } }]);
    assert.deepEqual(np.spec.egress?.[1]?.ports?.map((p) => p.port), [25, 465, 587, 2587]);
  });
});

describe('ServiceMonitor', () => {
  it('is built only when enabled and the CRD exists', () => {
    assert.equal(buildServiceMonitor(relay({}), {}), undefined);
    assert.equal(buildServiceMonitor(relay({ monitoring: { serviceMonitor: { enabled: false } } }), ALL), undefined);
  });

  it('scrapes the headless Service only (draining pods included, no pod twice), with extra labels', () => {
    const sm = buildServiceMonitor(relay({ monitoring: { serviceMonitor: { interval: '30s', labels: { release: 'prom' } } } }), ALL);
    assert.ok(sm);
    validateKubeObject(sm);
    const spec = sm.spec as { selector: { matchLabels: Record<string, string> }; endpoints: Record<string, unknown>[] };
    assert.equal(spec.selector.matchLabels['mailrelay.io/service'], 'headless');
    assert.deepEqual(spec.endpoints, [{
      port: 'metrics', path: '/metrics', scheme: 'http', interval: '30s',
      relabelings: [{ sourceLabels: ['__meta_kubernetes_pod_label_app_kubernetes_io_instance'], targetLabel: 'mailrelay', action: 'replace' }],
    }], 'the mailrelay label every dashboard and alert groups by');
    assert.equal(sm.metadata.labels?.release, 'prom');
  });
});

describe('PrometheusRule', () => {
  it('is built only when enabled and the CRD exists', () => {
    assert.equal(buildPrometheusRule(relay({}), {}), undefined);
    assert.equal(buildPrometheusRule(relay({}), ALL), undefined, 'off by default: the chart\'s rules cover every relay');
    const pr = buildPrometheusRule(relay({ monitoring: { prometheusRule: { enabled: true, labels: { release: 'prom' } } } }), ALL);
    assert.ok(pr);
    validateKubeObject(pr);
    assert.equal(pr.metadata.labels?.release, 'prom');
  });

  it('every alert expression parses as PromQL and is scoped to this relay', () => {
    for (const a of relayAlerts(relay({}))) {
      const tree = parser.parse(a.expr);
      let error = false;
      tree.iterate({ enter: (n) => { if (n.type.isError) error = true; } });
      assert.equal(error, false, `${a.alert}: ${a.expr}`);
      assert.match(a.expr, /namespace="mail", mailrelay="relay"/);
      assert.ok(a.annotations.summary && a.annotations.description && a.annotations.runbook_url);
    }
  });

  it('uses only metrics the relay declares', async () => {
    const { createRelayMetrics } = await import('../../relay/metrics.ts');
    const declared = new Set((await createRelayMetrics(undefined, { defaultMetrics: false }).registry.getMetricsAsJSON()).map((m) => m.name));
    for (const a of relayAlerts(relay({}))) {
      for (const m of a.expr.matchAll(/\b(mailrelay_[a-z_]+)\{/g)) assert.ok(declared.has(m[1]!), `${a.alert}: ${m[1]} is not in relay/metrics.ts`);
    }
  });
});
