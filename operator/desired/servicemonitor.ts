// The ServiceMonitor (Prometheus Operator). It selects the headless Service, so every
// relay is scraped, including not-ready and draining ones whose queue is what a
// scale-down waits on; selecting both Services would scrape each pod twice. Its labels
// start from the operator-wide defaults (the chart's, e.g. release: kube-prometheus-stack,
// which a stock kube-prometheus-stack selects on), then the MailRelay's own.
import type { MailRelayInputs } from '../api/inputs.ts';
import { withDefaults, type MailRelay } from '../api/mailrelay.ts';
import { METRICS_PORT_NAME } from './layout.ts';
import { selectorLabels, sortedKeys } from './labels.ts';
import { childMeta, type KubeObject } from './meta.ts';
import { childNames } from './names.ts';
import { SERVICE_ROLE_LABEL } from './service.ts';

/** The ServiceMonitor, or undefined when disabled or when the cluster has no monitoring.coreos.com CRDs. */
export function buildServiceMonitor(mr: MailRelay, inputs: Pick<MailRelayInputs, 'capabilities' | 'monitoring'>): KubeObject | undefined {
  const sm = withDefaults(mr.spec).monitoring.serviceMonitor;
  if (!sm.enabled || !inputs.capabilities?.serviceMonitor) return undefined;
  const defaults = inputs.monitoring;
  const endpoint: Record<string, unknown> = {
    port: METRICS_PORT_NAME, path: '/metrics', scheme: 'http',
    // Every dashboard and alert groups relay series by a `mailrelay` label (docs/monitoring.md).
    relabelings: [
      { sourceLabels: ['__meta_kubernetes_pod_label_app_kubernetes_io_instance'], targetLabel: 'mailrelay', action: 'replace' },
      ...structuredClone(defaults?.relabelings ?? []),
    ],
  };
  if ((defaults?.metricRelabelings ?? []).length > 0) endpoint.metricRelabelings = structuredClone(defaults!.metricRelabelings);
  if (sm.interval) endpoint.interval = sm.interval;
  return {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'ServiceMonitor',
    metadata: childMeta(mr, childNames(mr).serviceMonitor, { labels: sortedKeys({ ...defaults?.serviceMonitorLabels, ...sm.labels }) }),
    spec: {
      selector: { matchLabels: sortedKeys({ ...selectorLabels(mr), [SERVICE_ROLE_LABEL]: 'headless' }) },
      endpoints: [endpoint],
    },
  };
}
