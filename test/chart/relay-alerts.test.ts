// A MailRelay's own PrometheusRule (operator/desired/prometheusrule.ts) is the chart's relay
// alerts, narrowed to that MailRelay (issue 13 §5): same names, thresholds, durations,
// severities and texts, every relay metric selector filtered by {namespace, mailrelay}, and a
// runbook_url to a runbook that exists. The operator's copy is generated from the chart
// (scripts/gen-relay-alerts.ts); this test fails while it is stale.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { relayAlertsModule } from '../../scripts/gen-relay-alerts.ts';
import { relayAlerts } from '../../operator/desired/prometheusrule.ts';
import { REPO, RUNBOOKS, renderRuleGroups } from './chart.ts';
import { parsePromQL } from './promql.ts';

describe('per-MailRelay alerts', async () => {
  const chart = (await renderRuleGroups()).find((g) => g.name === 'mailrelay.relays')!.rules;
  const mine = relayAlerts({ metadata: { name: 'edge', namespace: 'mail' } });

  it('operator/desired/relay-alerts.generated.ts is generated from the chart and up to date', async () => {
    const committed = readFileSync(join(REPO, 'operator', 'desired', 'relay-alerts.generated.ts'), 'utf8');
    assert.ok(committed === await relayAlertsModule(), 'regenerate with: npx tsx scripts/gen-relay-alerts.ts > operator/desired/relay-alerts.generated.ts');
  });

  it('are the chart\'s relay alerts (all but the fleet-wide MailRelayNotReady), with the same thresholds, durations and texts', () => {
    const per = chart.filter((r) => r.alert !== 'MailRelayNotReady');
    assert.deepEqual(mine.map((a) => a.alert), per.map((r) => r.alert));
    for (const [i, r] of per.entries()) {
      const a = mine[i]!;
      assert.equal(a.for, r.for, `${a.alert}: for`);
      assert.equal(a.labels.severity, r.labels?.severity, `${a.alert}: severity`);
      assert.equal(a.annotations.summary, r.annotations?.summary);
      assert.equal(a.annotations.description, r.annotations?.description);
      assert.equal(a.annotations.runbook_url, r.annotations?.runbook_url, `${a.alert}: the chart's runbook link`);
      // The same expression once the filter is taken out again.
      assert.equal(a.expr.replaceAll(', namespace="mail", mailrelay="edge"', '').replaceAll('{namespace="mail", mailrelay="edge"}', ''), r.expr, a.alert);
    }
  });

  it('filter every relay metric selector by {namespace, mailrelay}', () => {
    for (const a of mine) {
      const { selectors } = parsePromQL(a.expr);
      assert.ok(selectors.length > 0, a.alert);
      for (const s of selectors) {
        const has = (label: string, value: string) => s.matchers.some((m) => m.label === label && m.op === '=' && m.value === value);
        assert.ok(has('namespace', 'mail') && has('mailrelay', 'edge'), `${a.alert}: ${s.metric} filtered by namespace and mailrelay`);
      }
    }
  });

  it('link each alert to a runbook that exists', () => {
    for (const a of mine) {
      const file = /\/docs\/runbooks\/([A-Za-z0-9]+\.md)$/.exec(a.annotations.runbook_url ?? '')?.[1];
      assert.ok(file, `${a.alert}: runbook_url ${a.annotations.runbook_url}`);
      assert.ok(existsSync(join(RUNBOOKS, file)), `${a.alert}: docs/runbooks/${file} exists`);
    }
  });
});
