// Alerts that fire (issue 13 §5), on a real Prometheus scraping a real relay. The relay's
// smarthost refuses connections (nothing listens on its port): MailRelayDeliveriesFailing
// must fire, from the chart's rules and from the per-MailRelay rules the operator builds,
// which are the chart's expressions filtered to one MailRelay. A second, unreachable
// target stands for a down pod of examples/mailrelay-full.yaml: whatever combination
// the chart installs (its own PrometheusRule on or off), the operator's arguments make
// exactly one rule page for it, never two. `for` is set to 0 so alerts fire within seconds.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { parseAllDocuments, stringify } from 'yaml';
import { startTestRelay } from '../helpers/relay.ts';
import { startPrometheus, type PrometheusHandle } from '../helpers/prometheus.ts';
import { ALL_ON, CHART, REPO, opts, renderRuleGroups, type RuleGroup } from '../chart/chart.ts';
import { helmTemplateObjects } from '../helpers/helm.ts';
import { buildPrometheusRule } from '../../operator/desired/prometheusrule.ts';
import { parseOperatorConfig } from '../../operator/main.ts';
import type { MailRelay } from '../../operator/api/mailrelay.ts';
import type { RelayHandle } from '../../relay/service.ts';

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Every rule with `for` 0: the test is about whether expressions hold, not about waiting. */
const immediate = (groups: RuleGroup[]): RuleGroup[] => groups.map((g) => ({ ...g, rules: g.rules.map((r) => ({ ...r, for: '0s' })) }));

/** The operator's args as the chart's Deployment passes them, with these chart values. */
async function operatorArgs(values: object): Promise<string[]> {
  const objs = await helmTemplateObjects(CHART, opts({ values: [values], apiVersions: ['monitoring.coreos.com/v1'] }));
  const dep = objs.find((o) => o.kind === 'Deployment') as unknown as { spec: { template: { spec: { containers: { args: string[] }[] } } } };
  return dep.spec.template.spec.containers[0]!.args.slice(1); // after "operator"
}

/** The per-MailRelay rule groups the operator would create for these MailRelays, configured by the chart with these values. */
async function operatorGroups(relays: MailRelay[], chartValues: object): Promise<RuleGroup[]> {
  const config = parseOperatorConfig(await operatorArgs(chartValues), {});
  const out: RuleGroup[] = [];
  for (const mr of relays) {
    const pr = buildPrometheusRule(mr, { capabilities: { prometheusRule: true }, monitoring: config.monitoring });
    if (pr) out.push(...(pr.spec as { groups: RuleGroup[] }).groups);
  }
  return out;
}

async function send(port: number): Promise<void> {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port, ignoreTLS: true });
  await t.sendMail({ from: 'a@sender.test', to: 'b@example.com', subject: 'outage', text: 'x' });
  t.close();
}

interface Firing { alertname: string; mailrelay?: string }

async function firing(prom: PrometheusHandle): Promise<Firing[]> {
  return (await prom.query('ALERTS{alertstate="firing"}')).map((s) => ({ alertname: s.metric.alertname!, mailrelay: s.metric.mailrelay }));
}

describe('a smarthost outage fires an alert; examples/mailrelay-full.yaml pages once', () => {
  let relay: RelayHandle;
  let work: string;
  let full: MailRelay;
  let edge: MailRelay;
  let deadPort: number;
  const proms: PrometheusHandle[] = [];

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'mailrelay-outage-'));
    relay = await startTestRelay(await closedPort(), { delivery: { retry: { schedule: [0.5], jitter: 0, maxAge: 3600 } } });
    deadPort = await closedPort();
    const docs = parseAllDocuments(await readFile(join(REPO, 'examples', 'mailrelay-full.yaml'), 'utf8')).map((d) => d.toJS() as { kind?: string });
    full = docs.find((d) => d.kind === 'MailRelay') as unknown as MailRelay;
    edge = { apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay', metadata: { name: 'edge', namespace: 'mail' }, spec: { monitoring: { prometheusRule: { enabled: true } } } };
    for (let i = 0; i < 3; i++) await send(relay.smtpPort);
  });
  after(async () => {
    for (const p of proms) await p.close();
    await relay?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  async function start(name: string, groups: RuleGroup[]): Promise<PrometheusHandle> {
    const file = join(work, `${name}.rules.yaml`);
    await writeFile(file, stringify({ groups: immediate(groups) }));
    const prom = await startPrometheus({
      ruleFiles: [file],
      scrapeTargets: [
        { url: `http://127.0.0.1:${relay.httpPort}/metrics`, labels: { namespace: 'mail', mailrelay: 'edge', pod: 'edge-0' } },
        { url: `http://127.0.0.1:${deadPort}/metrics`, labels: { namespace: 'mail', mailrelay: 'full', pod: 'full-0' } },
      ],
    });
    proms.push(prom);
    return prom;
  }

  for (const chartRules of [false, true]) {
    it(`chart PrometheusRule ${chartRules ? 'on' : 'off (the default)'}: DeliveriesFailing fires for the refused smarthost, and a down pod of the full example pages once`, async () => {
      const values = chartRules ? ALL_ON : {};
      const groups = [...(chartRules ? await renderRuleGroups() : []), ...await operatorGroups([edge, full], values)];
      assert.ok(groups.length > 0);
      const prom = await start(chartRules ? 'chart' : 'operator', groups);
      await prom.waitFor('ALERTS{alertname="MailRelayDeliveriesFailing", alertstate="firing", mailrelay="edge"}', { timeoutMs: 90_000 });
      await prom.waitFor('ALERTS{alertstate="firing", mailrelay="full"}', { timeoutMs: 60_000 });
      // Two more evaluations of every group, so every rule that would fire has fired.
      const t0 = Date.now();
      const deadline = t0 + 15_000;
      while (await prom.lastRuleEvaluation() < t0 + 2000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      const all = await firing(prom);
      const forFull = all.filter((a) => a.mailrelay === 'full').map((a) => a.alertname);
      assert.deepEqual(forFull, ['MailRelayTargetDown'], `one page for the down pod, got ${JSON.stringify(forFull)}`);
      const forEdge = all.filter((a) => a.mailrelay === 'edge').map((a) => a.alertname).sort();
      assert.equal(forEdge.filter((n) => n === 'MailRelayDeliveriesFailing').length, 1, `DeliveriesFailing once for edge: ${JSON.stringify(forEdge)}`);
    });
  }
});
