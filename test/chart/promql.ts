// Checks the PromQL in dashboards and alerts against what the relay and the operator
// really export: parse each expression with Prometheus' own lezer grammar, then compare
// every metric name and label it uses with the exposition text of the real registries
// (the text a live /metrics scrape returns). A typo in a metric name makes a panel empty
// or an alert silent forever, and nothing else would notice.
import { parser } from '@prometheus-io/lezer-promql';
import type { Registry } from 'prom-client';
import { createRelayMetrics } from '../../relay/metrics.ts';
import type { ReplyCommand, RetryReason } from '../../relay/metrics.ts';
import { createOperatorMetrics } from '../../operator/metrics.ts';

type SyntaxNode = ReturnType<typeof parser.parse>['topNode'];

const REPLY_COMMANDS = ['connect', 'ehlo', 'helo', 'mail', 'rcpt', 'data', 'bdat', 'dot', 'rset', 'auth', 'starttls', 'quit'] as const satisfies readonly ReplyCommand[];
const RETRY_REASONS = ['too_many_recipients', 'temporary_reply', 'connection', 'timeout', 'tls'] as const satisfies readonly RetryReason[];

/**
 * The bounded label values the exporters document (in their HELP texts, or as the
 * ReplyCommand/RetryReason types). A matcher like outcome="delivred" selects nothing, so
 * the checks compare equality matchers with these. label-values.test.ts keeps the table
 * honest: each value must appear in the metric's HELP text or its TypeScript type.
 */
export const LABEL_VALUES: Readonly<Record<string, Readonly<Record<string, readonly string[]>>>> = {
  mailrelay_smtp_replies_total: { command: REPLY_COMMANDS },
  mailrelay_rcpt_552_total: { class: ['too_many_recipients', 'mailbox'] },
  mailrelay_retries_total: { reason: RETRY_REASONS },
  mailrelay_recipients_total: { outcome: ['delivered', 'deferred', 'bounced', 'expired'] },
  mailrelay_delivery_attempts_total: { result: ['delivered', 'partial', 'deferred', 'failed'] },
  mailrelay_queue_messages: { state: ['queued', 'deferred'] },
  mailrelay_inbound_messages_total: { result: ['accepted', 'rejected', 'tempfail'] },
  mailrelay_dsn_total: { type: ['bounce', 'delay'] },
  mailrelay_operator_reconcile_total: { result: ['success', 'error', 'invalid'] },
  mailrelay_operator_relays: { ready: ['True', 'False', 'Unknown'] },
  mailrelay_operator_apply_total: { result: ['applied', 'unchanged', 'error'] },
};

/** Values a matcher can match, when that is knowable: = and != literally, =~ and !~ when the regex is a plain a|b|c list. */
function matcherValues(op: string, value: string): string[] | null {
  if (op === '=' || op === '!=') return [value];
  if (/^[A-Za-z0-9_]+(\|[A-Za-z0-9_]+)*$/.test(value)) return value.split('|');
  return null;
}

/** Metric names a Prometheus server synthesises for every target; no exporter declares them. */
export const SYNTHETIC_METRICS: ReadonlySet<string> = new Set(['up']);

/**
 * Labels Prometheus attaches to every scraped series of a MailRelay or operator target:
 * job/instance by Prometheus itself; namespace, pod, service, container, endpoint by the
 * Prometheus Operator's ServiceMonitor; mailrelay by the relay ServiceMonitor's relabeling
 * (docs/monitoring.md).
 */
export const TARGET_LABELS: ReadonlySet<string> = new Set(['job', 'instance', 'namespace', 'pod', 'service', 'container', 'endpoint', 'mailrelay']);

/**
 * Every sample name in Prometheus exposition text. Metrics without samples yet (a labelled
 * counter nothing has incremented) still have # TYPE lines; they count too, with the sample
 * names their type implies (histogram: _bucket, _sum, _count).
 */
export function metricNamesFromExposition(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)/.exec(line);
    if (type) {
      const [, name = '', kind] = type;
      if (kind === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
      else if (kind === 'summary') for (const s of ['', '_sum', '_count']) names.add(name + s);
      else names.add(name);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
    if (sample?.[1]) names.add(sample[1]);
  }
  return names;
}

/** Label names of every sample name a registry declares (histogram buckets add "le"), including metrics with no samples yet. */
export function metricLabelsFromRegistry(registry: Registry): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const metric of registry.getMetricsAsArray()) {
    const m = metric as unknown as { name: string; labelNames?: readonly string[]; constructor: { name: string } };
    const labels = [...(m.labelNames ?? [])];
    const kind = m.constructor.name;
    if (kind === 'Histogram') {
      out.set(`${m.name}_bucket`, new Set([...labels, 'le']));
      out.set(`${m.name}_sum`, new Set(labels));
      out.set(`${m.name}_count`, new Set(labels));
    } else {
      out.set(m.name, new Set(labels));
    }
  }
  return out;
}

/** What the relay and the operator export: names from the exposition text, labels from the metric declarations. */
export interface ExportedMetrics {
  /** Sample names, as metricNamesFromExposition returns them. */
  names: Set<string>;
  /** Declared label names per sample name (default process metrics may be absent). */
  labels: Map<string, Set<string>>;
}

/** Builds fresh relay and operator registries (default metrics included) and reads back what they export. */
export async function exportedMetrics(): Promise<ExportedMetrics> {
  const relay = createRelayMetrics();
  const operator = createOperatorMetrics();
  const text = (await relay.registry.metrics()) + '\n' + (await operator.registry.metrics());
  return {
    names: metricNamesFromExposition(text),
    labels: new Map([...metricLabelsFromRegistry(relay.registry), ...metricLabelsFromRegistry(operator.registry)]),
  };
}

/** One vector selector of an expression. */
export interface Selector {
  metric: string;
  matchers: { label: string; op: string; value: string }[];
}

/** What an expression uses. */
export interface ParsedExpr {
  /** Parse errors: the text around each ⚠ node. Empty for a valid expression. */
  errors: string[];
  selectors: Selector[];
  /** Label names in by(...)/without(...) and on(...)/ignoring(...) clauses. */
  groupingLabels: string[];
}

function unquote(literal: string): string {
  if (literal.startsWith('`')) return literal.slice(1, -1);
  try {
    return JSON.parse(literal.startsWith("'") ? `"${literal.slice(1, -1).replace(/"/g, '\\"')}"` : literal) as string;
  } catch {
    return literal.slice(1, -1);
  }
}

/** Parses PromQL with Prometheus' lezer grammar and collects its selectors and grouping labels. */
export function parsePromQL(expr: string): ParsedExpr {
  const tree = parser.parse(expr);
  const out: ParsedExpr = { errors: [], selectors: [], groupingLabels: [] };
  const text = (n: SyntaxNode) => expr.slice(n.from, n.to);
  tree.iterate({
    enter(ref) {
      if (ref.type.isError) {
        out.errors.push(`syntax error at ${ref.from}: …${expr.slice(Math.max(0, ref.from - 20), ref.from + 20)}…`);
        return;
      }
      const node = ref.node;
      if (ref.name === 'VectorSelector') {
        const sel: Selector = { metric: '', matchers: [] };
        const id = node.getChild('Identifier');
        if (id) sel.metric = text(id);
        const matchers = node.getChild('LabelMatchers');
        for (const m of matchers ? [...matchers.getChildren('UnquotedLabelMatcher'), ...matchers.getChildren('QuotedLabelMatcher')] : []) {
          const label = m.getChild('LabelName') ?? m.getChild('QuotedLabelName');
          const op = m.getChild('MatchOp');
          const value = m.getChild('StringLiteral');
          if (!label || !op) continue;
          const name = label.name === 'QuotedLabelName' ? unquote(text(label)) : text(label);
          const v = value ? unquote(text(value)) : '';
          if (name === '__name__' && text(op) === '=') sel.metric = v;
          else sel.matchers.push({ label: name, op: text(op), value: v });
        }
        out.selectors.push(sel);
        return false;
      }
      if (ref.name === 'GroupingLabels') {
        for (const l of node.getChildren('LabelName')) out.groupingLabels.push(text(l));
        return false;
      }
      return undefined;
    },
  });
  return out;
}

/**
 * Replaces Grafana's template variables so the expression is plain PromQL: interval
 * macros become durations, other variables ($namespace, ${pod:regex}) a plain word (they
 * only occur inside label matcher strings in our dashboards).
 */
export function substituteGrafanaVariables(expr: string): string {
  return expr
    .replace(/\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}/g, '5m')
    .replace(/\$\{[A-Za-z_]\w*(?::\w+)?\}|\$[A-Za-z_]\w*/g, 'value');
}

/**
 * Problems with one expression: parse errors, metrics nobody exports, and labels that
 * neither the metric declares nor Prometheus attaches. Empty when the expression is sound.
 */
export function checkExpression(expr: string, exported: ExportedMetrics): string[] {
  const parsed = parsePromQL(expr);
  const problems = [...parsed.errors];
  const usable = new Set(TARGET_LABELS);
  for (const sel of parsed.selectors) {
    if (sel.metric === '') {
      problems.push(`a selector without a metric name: ${JSON.stringify(sel.matchers)}`);
      continue;
    }
    if (SYNTHETIC_METRICS.has(sel.metric)) continue;
    if (!exported.names.has(sel.metric)) {
      problems.push(`metric ${sel.metric} is not exported by the relay or the operator`);
      continue;
    }
    const declared = exported.labels.get(sel.metric) ?? new Set<string>();
    for (const l of declared) usable.add(l);
    for (const m of sel.matchers) {
      if (!declared.has(m.label) && !TARGET_LABELS.has(m.label)) problems.push(`${sel.metric} has no label "${m.label}"`);
      const known = LABEL_VALUES[sel.metric]?.[m.label];
      for (const v of (known && matcherValues(m.op, m.value)) ?? []) {
        if (!known?.includes(v)) problems.push(`${sel.metric}{${m.label}} never has the value "${v}" (known: ${known?.join(', ')})`);
      }
    }
  }
  for (const l of parsed.groupingLabels) {
    if (!usable.has(l)) problems.push(`grouping label "${l}" is on none of the metrics used`);
  }
  return problems;
}

/** Metric names an expression selects. */
export function metricsOf(expr: string): string[] {
  return parsePromQL(expr).selectors.map((s) => s.metric);
}
