// Alerts for one MailRelay (Prometheus Operator PrometheusRule), built on the metrics
// declared in relay/metrics.ts. Each alert is scoped to this relay's scrape targets by
// the namespace and service labels the ServiceMonitor gives them.
import type { MailRelayInputs } from '../api/inputs.ts';
import { withDefaults, type MailRelay } from '../api/mailrelay.ts';
import { sortedKeys } from './labels.ts';
import { childMeta, type KubeObject } from './meta.ts';
import { childNames } from './names.ts';

/** One alerting rule. */
export interface AlertRule {
  /** Alert name. */
  alert: string;
  /** PromQL expression; the alert fires while it returns series. */
  expr: string;
  /** How long the expression must hold first. */
  for: string;
  /** Labels (severity). */
  labels: Record<string, string>;
  /** summary and description. */
  annotations: Record<string, string>;
}

/** The alerts for a MailRelay. */
export function relayAlerts(mr: Pick<MailRelay, 'metadata'>): AlertRule[] {
  const ns = mr.metadata.namespace ?? 'default';
  const sel = `namespace="${ns}", service="${childNames(mr).headlessService}"`;
  const who = `MailRelay ${ns}/${mr.metadata.name}`;
  return [
    {
      alert: 'MailRelayDown',
      expr: `(sum(up{${sel}}) or vector(0)) == 0`,
      for: '5m',
      labels: { severity: 'critical' },
      annotations: { summary: `${who}: no relay pod is up`, description: 'No relay pod has answered a scrape for 5 minutes; clients cannot send mail.' },
    },
    {
      alert: 'MailRelayQueueStuck',
      expr: `max(mailrelay_queue_oldest_message_age_seconds{${sel}}) > 3600`,
      for: '15m',
      labels: { severity: 'warning' },
      annotations: { summary: `${who}: a message has waited over an hour`, description: 'The oldest spooled message is older than an hour: a destination or the smarthost keeps deferring.' },
    },
    {
      alert: 'MailRelayDeliveriesFailing',
      expr: `sum(rate(mailrelay_delivery_attempts_total{${sel}, result=~"deferred|failed"}[15m])) / sum(rate(mailrelay_delivery_attempts_total{${sel}}[15m])) > 0.5`,
      for: '15m',
      labels: { severity: 'warning' },
      annotations: { summary: `${who}: most delivery attempts fail`, description: 'Over half of the delivery transactions in the last 15 minutes were deferred or failed.' },
    },
    {
      alert: 'MailRelayDrainingTooLong',
      expr: `max by (pod) (mailrelay_draining{${sel}}) == 1`,
      for: '2h',
      labels: { severity: 'info' },
      annotations: { summary: `${who}: a relay has been draining for 2 hours`, description: 'A scale-down waits for this pod to deliver its queue (docs/adr/0003); check mailrelay_queue_messages for what it still holds.' },
    },
  ];
}

/** The PrometheusRule, or undefined when disabled or when the cluster has no monitoring.coreos.com CRDs. */
export function buildPrometheusRule(mr: MailRelay, inputs: Pick<MailRelayInputs, 'capabilities'>): KubeObject | undefined {
  const pr = withDefaults(mr.spec).monitoring.prometheusRule;
  if (!pr.enabled || !inputs.capabilities?.prometheusRule) return undefined;
  return {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: childMeta(mr, childNames(mr).prometheusRule, { labels: sortedKeys(pr.labels ?? {}) }),
    spec: { groups: [{ name: `mailrelay.${mr.metadata.name}`, rules: relayAlerts(mr) }] },
  };
}
