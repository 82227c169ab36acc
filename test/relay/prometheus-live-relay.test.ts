// End to end with a real Prometheus scraping a REAL relay over HTTP: the fault-injecting
// peer drives a 552 "too many recipients" scenario and a quota scenario, Prometheus (Debian)
// scrapes the relay's /metrics with the labels the operator's ServiceMonitor adds, and the
// test polls the query API (never a fixed sleep) until the dashboards' key queries return
// the expected non-zero series and the chart's alert expressions evaluate as intended.
// It also checks that every metric the dashboards use is one the live relay or operator exports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { stringify } from 'yaml';
import { startFaultServer } from '../peers/fault-server.ts';
import { startTestRelay } from '../helpers/relay.ts';
import { startPrometheus } from '../helpers/prometheus.ts';
import { CHART, renderRuleGroups } from '../chart/chart.ts';
import { metricNamesFromExposition, metricsOf } from '../chart/promql.ts';
import { createOperatorMetrics } from '../../operator/metrics.ts';

async function send(port: number, to: string[]): Promise<void> {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port, ignoreTLS: true });
  await t.sendMail({ from: 'a@relay.test', to, subject: 'prom', text: 'x' });
  t.close();
}

test('a live relay, scraped by Prometheus: 552 classes, retries, partial deliveries, and the 552 alerts', async (t) => {
  const peer = await startFaultServer({ maxRecipientsPerTransaction: 10, limitReply: '552 5.5.3 Too many recipients' });
  const relay = await startTestRelay(peer.port, { delivery: { chunking: false } });
  const work = await mkdtemp(join(tmpdir(), 'mailrelay-prom-'));
  const groups = await renderRuleGroups();
  const rules = join(work, 'rules.yaml');
  await writeFile(rules, stringify({ groups }));
  const prom = await startPrometheus({
    ruleFiles: [rules],
    scrapeTargets: [{ url: `http://127.0.0.1:${relay.httpPort}/metrics`, job: 'mailrelay', labels: { namespace: 'mail', mailrelay: 'edge', pod: 'edge-0' } }],
  });
  t.after(async () => { await prom.close(); await relay.close(); await peer.close(); await rm(work, { recursive: true, force: true }); });

  // A scrape before any traffic, as with any long-running relay, so increase() sees the events.
  await prom.waitFor('mailrelay_rcpt_552_total{mailrelay="edge"}', { until: (s) => s.length === 2, timeoutMs: 30_000 });

  // Scenario 1 (seed 000): 35 recipients against a limit of 10 -> 25 "too many" 552s, no bounce.
  await send(relay.smtpPort, Array.from({ length: 35 }, (_, i) => `u${i}@example.com`));
  // Scenario 2 (seeds 001/003): 12 over-quota mailboxes, each the first RCPT of its own message, beside a healthy one.
  for (let i = 0; i < 12; i++) await send(relay.smtpPort, [`552-quota${i}@example.com`, `ok${i}@example.com`]);
  await peer.waitFor((p) => p.deliveries().size >= 35 + 12, 30_000, 'all healthy recipients delivered');

  const byClass = await prom.waitFor('sum by (class) (mailrelay_rcpt_552_total{mailrelay="edge"})', {
    until: (s) => s.find((x) => x.metric.class === 'too_many_recipients')?.value === 25 && s.find((x) => x.metric.class === 'mailbox')?.value === 12,
    timeoutMs: 30_000,
  });
  assert.equal(byClass.length, 2);
  // Dashboard key queries (delivery-correctness): rates by class and reply codes by command are non-zero.
  const rate552 = await prom.waitFor('sum by (class) (increase(mailrelay_rcpt_552_total{namespace="mail", mailrelay="edge"}[5m]))', { until: (s) => s.length === 2 && s.every((x) => x.value > 0) });
  assert.deepEqual(rate552.map((s) => s.metric.class).sort(), ['mailbox', 'too_many_recipients']);
  const codes = await prom.waitFor('sum by (command, code) (mailrelay_smtp_replies_total{mailrelay="edge"})', { until: (s) => s.some((x) => x.metric.command === 'rcpt' && x.metric.code === '552') });
  assert.ok(codes.some((x) => x.metric.command === 'dot' && x.metric.code === '250' && x.value >= 13));
  const retries = await prom.waitFor('sum by (reason) (mailrelay_retries_total{mailrelay="edge"})', { until: (s) => s.some((x) => x.metric.reason === 'too_many_recipients' && x.value >= 25) });
  assert.ok(retries.length >= 1);
  await prom.waitFor('mailrelay_partial_deliveries_total{mailrelay="edge"} > 0');
  const bounced = await prom.waitFor('sum(mailrelay_recipients_total{mailrelay="edge", outcome="bounced"})', { until: (s) => s[0]?.value === 12 });
  assert.equal(bounced[0]!.value, 12, 'only the 12 quota mailboxes bounced; the recipient limit bounced nobody');
  await prom.waitFor('mailrelay_learned_recipient_limit{mailrelay="edge"} == 10');

  // The chart's alert expressions, evaluated on the live series: both 552 alerts hold, a
  // healthy condition (relay down) does not.
  const rulesByName = new Map(groups.flatMap((g) => g.rules).filter((r) => r.alert).map((r) => [r.alert!, r.expr]));
  for (const name of ['MailRelayRecipientMailbox552High', 'MailRelayTooManyRecipients552']) {
    const expr = rulesByName.get(name);
    assert.ok(expr, name);
    const got = await prom.waitFor(expr, { timeoutMs: 30_000 });
    assert.deepEqual(got.map((s) => s.metric.mailrelay), ['edge'], `${name} evaluates for this relay`);
  }
  assert.deepEqual(await prom.query(rulesByName.get('MailRelayTargetDown')!), [], 'the relay is up');

  // Every metric a dashboard uses exists in the live relay's /metrics (or the operator's registry).
  const live = metricNamesFromExposition(await (await fetch(`http://127.0.0.1:${relay.httpPort}/metrics`)).text());
  const operator = metricNamesFromExposition(await createOperatorMetrics(undefined, { defaultMetrics: true }).registry.metrics());
  const missing = new Set<string>();
  for (const f of (await readdir(join(CHART, 'dashboards'))).filter((x) => x.endsWith('.json'))) {
    const d = JSON.parse(await readFile(join(CHART, 'dashboards', f), 'utf8')) as { panels: { targets?: { expr: string }[] }[] };
    for (const p of d.panels) for (const tgt of p.targets ?? []) {
      for (const m of metricsOf(tgt.expr)) if (m !== 'up' && !live.has(m) && !operator.has(m)) missing.add(`${f}: ${m}`);
    }
  }
  assert.deepEqual([...missing], []);
});
