// Generates docs/metrics.md from the metric declarations (relay/metrics.ts and
// operator/metrics.ts): `npx tsx scripts/gen-metrics-doc.ts > docs/metrics.md`.
// scripts/metrics-doc.test.ts fails when the committed file is stale.
import { createPrimaryMetrics, createRelayMetrics } from '../relay/metrics.ts';
import { createOperatorMetrics } from '../operator/metrics.ts';

async function table(title: string, registry: import('prom-client').Registry): Promise<string[]> {
  const out = [`## ${title}`, '', '| metric | type | labels | what it counts |', '|---|---|---|---|'];
  const metrics = await registry.getMetricsAsJSON();
  for (const m of metrics.sort((a, b) => a.name.localeCompare(b.name))) {
    const labels = new Set<string>();
    const inner = (registry.getSingleMetric(m.name) as unknown as { labelNames?: string[] }).labelNames ?? [];
    for (const l of inner) labels.add(l);
    out.push(`| \`${m.name}\` | ${m.type} | ${[...labels].map((l) => `\`${l}\``).join(', ')} | ${m.help} |`);
  }
  return out;
}

/** Renders the Markdown reference (process metrics from prom-client's defaults are left out). */
export async function metricsDoc(): Promise<string> {
  const relay = createRelayMetrics(undefined, { defaultMetrics: false });
  const operator = createOperatorMetrics(undefined, { defaultMetrics: false });
  const primary = createPrimaryMetrics(undefined, { defaultMetrics: false });
  return [
    '# Metrics',
    '',
    'Generated from `relay/metrics.ts` and `operator/metrics.ts` by `npx tsx scripts/gen-metrics-doc.ts > docs/metrics.md`.',
    'These names and labels are a contract: the chart\'s dashboards and alerts use them. Label values are',
    'bounded enums; no label ever carries a recipient, a domain or a message id. Both processes also',
    'export prom-client\'s default process metrics under their standard names (`process_*`, `nodejs_*`),',
    'which generic Node.js dashboards and alerts query; the `job` and `pod` labels tell them apart.',
    '',
    'The relay serves them on `http.port` (default 9090) at `/metrics`; the operator on its metrics port (8080).',
    '',
    ...(await table('Relay', relay.registry)),
    '',
    'A relay with `workers` > 1 serves the sum over its worker processes (a gauge of levels or ages: the largest;',
    '`mailrelay_learned_recipient_limit`: the smallest learned), plus these of its primary process:',
    '',
    ...(await table('Relay primary (workers > 1)', primary.registry)),
    '',
    ...(await table('Operator', operator.registry)),
    '',
  ].join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) process.stdout.write(await metricsDoc());
