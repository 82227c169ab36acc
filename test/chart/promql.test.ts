// The checker the dashboard and alert tests rely on: it must catch what it claims to catch.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { createRelayMetrics } from '../../relay/metrics.ts';
import { createOperatorMetrics } from '../../operator/metrics.ts';
import { LABEL_VALUES, checkExpression, exportedMetrics, metricNamesFromExposition, parsePromQL, substituteGrafanaVariables } from './promql.ts';

describe('metricNamesFromExposition', () => {
  it('reads sample names, and TYPE lines of metrics with no samples yet', () => {
    const text = [
      '# HELP a_total A.', '# TYPE a_total counter', '',
      '# HELP b Gauge.', '# TYPE b gauge', 'b 1',
      '# HELP h_seconds H.', '# TYPE h_seconds histogram', 'h_seconds_bucket{le="1"} 0', 'h_seconds_bucket{le="+Inf"} 0', 'h_seconds_sum 0', 'h_seconds_count 0',
      '# HELP empty_seconds E.', '# TYPE empty_seconds histogram',
      'untyped_thing{x="y"} 3',
    ].join('\n');
    assert.deepEqual([...metricNamesFromExposition(text)].sort(), [
      'a_total', 'b', 'empty_seconds_bucket', 'empty_seconds_count', 'empty_seconds_sum', 'h_seconds_bucket', 'h_seconds_count', 'h_seconds_sum', 'untyped_thing',
    ]);
  });

  it('finds every declared relay and operator metric in the real registries, labelled or not', async () => {
    const relay = createRelayMetrics(new Registry(), { defaultMetrics: false });
    const operator = createOperatorMetrics(new Registry(), { defaultMetrics: false });
    const names = metricNamesFromExposition((await relay.registry.metrics()) + (await operator.registry.metrics()));
    for (const n of ['mailrelay_smtp_replies_total', 'mailrelay_rcpt_552_total', 'mailrelay_delivery_duration_seconds_bucket', 'mailrelay_operator_leader', 'mailrelay_operator_reconcile_total']) {
      assert.ok(names.has(n), n);
    }
  });
});

describe('parsePromQL and checkExpression', async () => {
  const exported = await exportedMetrics();

  it('collects selectors with their matchers and grouping labels', () => {
    const p = parsePromQL('sum by (namespace, le) (rate(mailrelay_delivery_duration_seconds_bucket{pod=~"a.*", mailrelay="x"}[5m])) > on (namespace) group_left up');
    assert.deepEqual(p.errors, []);
    assert.deepEqual(p.selectors.map((s) => s.metric), ['mailrelay_delivery_duration_seconds_bucket', 'up']);
    assert.deepEqual(p.selectors[0]?.matchers, [{ label: 'pod', op: '=~', value: 'a.*' }, { label: 'mailrelay', op: '=', value: 'x' }]);
    assert.deepEqual(p.groupingLabels, ['namespace', 'le', 'namespace'], 'by (...) and on (...)');
  });

  it('accepts sound expressions', () => {
    for (const e of [
      'sum by (namespace, mailrelay) (rate(mailrelay_recipients_total{outcome="delivered"}[5m]))',
      'histogram_quantile(0.95, sum by (le) (rate(mailrelay_operator_reconcile_duration_seconds_bucket[5m])))',
      'max by (ready) (mailrelay_operator_relays{ready=~"False|Unknown"})',
      'up{mailrelay!=""} == 0 or absent(mailrelay_operator_leader)',
    ]) assert.deepEqual(checkExpression(e, exported), [], e);
  });

  it('reports syntax errors', () => {
    assert.match(checkExpression('sum(rate(mailrelay_retries_total[5m])', exported).join(), /syntax error/);
    assert.match(checkExpression('rate(mailrelay_retries_total[$__rate_interval])', exported).join(), /syntax error/, 'Grafana macros must be substituted first');
  });

  it('reports metrics nobody exports, labels they lack, values they never have and grouping labels nobody has', () => {
    assert.match(checkExpression('rate(mailrelay_recipient_total[5m])', exported).join(), /mailrelay_recipient_total is not exported/);
    assert.match(checkExpression('rate(mailrelay_delivery_duration_seconds[5m])', exported).join(), /mailrelay_delivery_duration_seconds is not exported/, 'a histogram is only its _bucket/_sum/_count series');
    assert.match(checkExpression('rate(mailrelay_recipients_total{result="delivered"}[5m])', exported).join(), /has no label "result"/);
    assert.match(checkExpression('rate(mailrelay_recipients_total{outcome="delivred"}[5m])', exported).join(), /never has the value "delivred"/);
    assert.match(checkExpression('mailrelay_operator_relays{ready=~"false|Unknown"}', exported).join(), /never has the value "false"/);
    assert.match(checkExpression('sum by (destination) (rate(mailrelay_retries_total[5m]))', exported).join(), /grouping label "destination"/);
    assert.deepEqual(checkExpression('rate(mailrelay_smtp_replies_total{code=~"5.."}[5m])', exported), [], 'regex values are not enumerated');
  });

  it('substitutes Grafana variables into plain PromQL', () => {
    assert.equal(
      substituteGrafanaVariables('sum(rate(x{namespace=~"$namespace", pod=~"${pod:regex}"}[$__rate_interval])) / increase(y[$__range])'),
      'sum(rate(x{namespace=~"value", pod=~"value"}[5m])) / increase(y[5m])',
    );
  });
});

describe('LABEL_VALUES', () => {
  it('lists only values the metric HELP texts document (command and reason come from the relay types)', async () => {
    const relay = createRelayMetrics(new Registry(), { defaultMetrics: false });
    const operator = createOperatorMetrics(new Registry(), { defaultMetrics: false });
    const text = (await relay.registry.metrics()) + (await operator.registry.metrics());
    const help = new Map([...text.matchAll(/^# HELP (\S+) (.*)$/gm)].map((m) => [m[1] ?? '', m[2] ?? '']));
    for (const [metric, labels] of Object.entries(LABEL_VALUES)) {
      assert.ok(help.has(metric), `${metric} is declared`);
      for (const [label, values] of Object.entries(labels)) {
        if ((metric === 'mailrelay_smtp_replies_total' && label === 'command') || (metric === 'mailrelay_retries_total' && label === 'reason')) continue;
        for (const v of values) assert.match(help.get(metric) ?? '', new RegExp(`\\b${v}\\b`), `${metric} HELP mentions ${label}="${v}"`);
      }
    }
  });
});
