// The per-MailRelay alerts: the chart's relay alerts (relay-alerts.generated.ts, generated
// from templates/_alerts.tpl), each selector narrowed to one MailRelay's namespace and
// mailrelay labels, each with the runbook link the chart gives it.

/** Stands in the generated expressions where a selector gets the MailRelay's matchers. */
export const SELECTOR_PLACEHOLDER = '__MAILRELAY__';

/** One alert as the chart renders it, before it is narrowed to a MailRelay. */
export interface RelayAlertTemplate {
  alert: string;
  /** PromQL with SELECTOR_PLACEHOLDER inside every relay metric's selector. */
  expr: string;
  for: string;
  severity: string;
  summary: string;
  description: string;
}

/** Where the runbooks are unless the chart says otherwise (the chart's alerts.runbookBaseUrl default). */
export const DEFAULT_RUNBOOK_BASE_URL = 'https://github.com/mailrelay/mailrelay/blob/main/docs/runbooks';

/** The expression narrowed to one MailRelay. */
export function narrow(expr: string, namespace: string, name: string): string {
  const q = (v: string) => JSON.stringify(v);
  return expr.split(SELECTOR_PLACEHOLDER).join(`namespace=${q(namespace)}, mailrelay=${q(name)}`);
}
