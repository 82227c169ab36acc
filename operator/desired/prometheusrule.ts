// Alerts for one MailRelay (Prometheus Operator PrometheusRule): the chart's relay alerts
// (relay-alerts.generated.ts, generated from templates/_alerts.tpl) with every selector
// narrowed to this MailRelay's namespace and mailrelay labels, the labels its ServiceMonitor
// gives the relay series. When the chart installs its own fleet-wide rules (which cover
// every MailRelay), none is created: the same problem would page twice.
import type { MailRelayInputs } from '../api/inputs.ts';
import { withDefaults, type MailRelay } from '../api/mailrelay.ts';
import { sortedKeys } from './labels.ts';
import { childMeta, type KubeObject } from './meta.ts';
import { childNames } from './names.ts';
import { DEFAULT_RUNBOOK_BASE_URL, narrow } from './relay-alerts.ts';
import { RELAY_ALERT_TEMPLATES } from './relay-alerts.generated.ts';

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
  /** summary, description and runbook_url. */
  annotations: Record<string, string>;
}

/** The alerts for a MailRelay: the chart's relay alerts, for this MailRelay only. */
export function relayAlerts(mr: Pick<MailRelay, 'metadata'>, runbookBaseUrl = DEFAULT_RUNBOOK_BASE_URL): AlertRule[] {
  const ns = mr.metadata.namespace ?? 'default';
  return RELAY_ALERT_TEMPLATES.map((t) => ({
    alert: t.alert,
    expr: narrow(t.expr, ns, mr.metadata.name),
    for: t.for,
    labels: { severity: t.severity },
    annotations: { summary: t.summary, description: t.description, runbook_url: `${runbookBaseUrl}/${t.alert}.md` },
  }));
}

/** The PrometheusRule, or undefined when disabled, when the chart's fleet rules cover the MailRelay, or when the cluster has no monitoring.coreos.com CRDs. */
export function buildPrometheusRule(mr: MailRelay, inputs: Pick<MailRelayInputs, 'capabilities' | 'monitoring'>): KubeObject | undefined {
  const pr = withDefaults(mr.spec).monitoring.prometheusRule;
  if (!pr.enabled || !inputs.capabilities?.prometheusRule || inputs.monitoring?.fleetAlerts) return undefined;
  return {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: childMeta(mr, childNames(mr).prometheusRule, { labels: sortedKeys(pr.labels ?? {}) }),
    spec: { groups: [{ name: `mailrelay.${mr.metadata.name}`, rules: relayAlerts(mr, inputs.monitoring?.runbookBaseUrl) }] },
  };
}
