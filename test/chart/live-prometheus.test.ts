// End to end with a real Prometheus: it scrapes the exposition text of the real relay and
// operator registries (served over HTTP the way their /metrics endpoints serve it, with the
// target labels a ServiceMonitor attaches), evaluates the chart's rendered alert rules, and
// answers every dashboard query. Proves the contract between metrics.ts, the dashboards and
// the alerts on a live server rather than on a parser.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { stringify } from 'yaml';
import { createRelayMetrics } from '../../relay/metrics.ts';
import { createOperatorMetrics } from '../../operator/metrics.ts';
import { pollUntil, startPrometheus } from '../helpers/prometheus.ts';
import type { PrometheusHandle } from '../helpers/prometheus.ts';
import { CHART, renderRuleGroups } from './chart.ts';

/** Serves a registry; `onScrape` moves the counters first, so rates are non-zero on every scrape. */
async function serveMetrics(registry: Registry, onScrape: () => void): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    onScrape();
    registry.metrics().then((text) => {
      res.writeHead(200, { 'content-type': registry.contentType });
      res.end(text);
    }, (err: unknown) => {
      res.writeHead(500);
      res.end(String(err));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  assert.ok(addr && typeof addr === 'object');
  return { server, url: `http://127.0.0.1:${addr.port}/metrics` };
}

/** A loopback port nothing listens on: a relay target that is down. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const addr = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  assert.ok(addr && typeof addr === 'object');
  return addr.port;
}

/** A relay with healthy traffic except one thing: a fifth of its RCPTs are refused with 552 mailbox. */
function relayTraffic() {
  const m = createRelayMetrics(new Registry());
  m.rcpt552.inc({ class: 'too_many_recipients' }, 1);
  return {
    registry: m.registry,
    scrape() {
      m.inboundMessages.inc({ result: 'accepted' }, 10);
      m.inboundBytes.inc(10_000);
      m.inboundRejections.inc({ code: '550' });
      m.spfResults.inc({ result: 'pass' }, 5);
      m.inboundSessions.set(3);
      m.recipients.inc({ outcome: 'delivered' }, 100);
      m.recipients.inc({ outcome: 'deferred' }, 2);
      m.recipients.inc({ outcome: 'bounced' }, 1);
      m.deliveryAttempts.inc({ result: 'delivered' }, 50);
      m.deliveryAttempts.inc({ result: 'partial' }, 1);
      m.partialDeliveries.inc();
      m.smtpReplies.inc({ command: 'mail', code: '250' }, 50);
      m.smtpReplies.inc({ command: 'rcpt', code: '250' }, 80);
      m.smtpReplies.inc({ command: 'rcpt', code: '552' }, 20);
      m.smtpReplies.inc({ command: 'rcpt', code: '450' }, 1);
      m.rcpt552.inc({ class: 'mailbox' }, 20);
      m.retries.inc({ reason: 'connection' });
      m.learnedRecipientLimit.set(20);
      m.learnedRecipientLimitDestinations.set(1);
      m.connectionsOpen.set(5);
      m.queueMessages.set({ state: 'queued' }, 10);
      m.queueMessages.set({ state: 'deferred' }, 4);
      m.queueOldestAge.set(60);
      m.draining.set(0);
      m.dsnSent.inc({ type: 'bounce' });
      for (let i = 0; i < 5; i++) m.deliveryDuration.observe(0.2);
      m.queueResidence.observe(3);
    },
  };
}

/** An operator that leads and reconciles, but every reconcile also produces an error. */
function operatorTraffic() {
  const m = createOperatorMetrics(new Registry());
  m.watchRestarts.inc({ kind: 'StatefulSet' });
  return {
    registry: m.registry,
    scrape() {
      m.reconciles.inc({ result: 'success' }, 5);
      m.reconciles.inc({ result: 'error' });
      m.reconcileDuration.observe(0.05);
      m.relays.set({ ready: 'True' }, 3);
      m.relays.set({ ready: 'False' }, 0);
      m.relays.set({ ready: 'Unknown' }, 0);
      m.leader.set(1);
      m.writes.inc({ result: 'applied' }, 2);
      m.workqueueDepth.set(0);
    },
  };
}

/** Every alert with for: 0, so "quiet" below means the condition is false, not merely pending. */
const ALL_ALERTS = ['rcpt552Mailbox', 'rcpt552TooManyRecipients', 'partialDeliveries', 'retryStorm', 'queueGrowing', 'oldestMessage', 'bounces',
  'smarthostTls', 'inboundTempfail', 'relayDown', 'relaysNotReady', 'operatorNoLeader', 'operatorMultipleLeaders', 'operatorReconcileErrors'];

describe('a live Prometheus scraping the real registries', { timeout: 120_000 }, () => {
  let prom: PrometheusHandle;
  const servers: Server[] = [];
  let work = '';

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'mailrelay-live-'));
    const groups = await renderRuleGroups([{ alerts: Object.fromEntries(ALL_ALERTS.map((a) => [a, { for: '0' }])) }]);
    const rules = join(work, 'rules.yaml');
    await writeFile(rules, stringify({ groups }));
    const relay = relayTraffic();
    const operator = operatorTraffic();
    const r = await serveMetrics(relay.registry, relay.scrape);
    const o = await serveMetrics(operator.registry, operator.scrape);
    servers.push(r.server, o.server);
    prom = await startPrometheus({
      ruleFiles: [rules],
      scrapeTargets: [
        { url: r.url, job: 'mailrelay', labels: { namespace: 'mail', mailrelay: 'edge', pod: 'edge-0' } },
        { url: `http://127.0.0.1:${await closedPort()}/metrics`, job: 'mailrelay', labels: { namespace: 'mail', mailrelay: 'edge', pod: 'edge-1' } },
        { url: o.url, job: 'mailrelay-operator', labels: { namespace: 'mailrelay-system', pod: 'op-0' } },
      ],
    });
  });

  after(async () => {
    await prom?.close();
    for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('fires exactly the alerts the traffic calls for, with the MailRelay labels', async () => {
    const expected = ['MailRelayOperatorReconcileErrors', 'MailRelayRecipientMailbox552High', 'MailRelayTargetDown'];
    await prom.waitFor('ALERTS{alertstate="firing"}', { until: (s) => expected.every((a) => s.some((x) => x.metric.alertname === a)), timeoutMs: 60_000 });
    const mailbox = await prom.query('ALERTS{alertname="MailRelayRecipientMailbox552High", alertstate="firing"}');
    assert.deepEqual(mailbox.map((s) => [s.metric.namespace, s.metric.mailrelay, s.metric.severity]), [['mail', 'edge', 'warning']]);
    const down = await prom.query('ALERTS{alertname="MailRelayTargetDown", alertstate="firing"}');
    assert.deepEqual(down.map((s) => s.metric.pod), ['edge-1']);
    // Let the rules evaluate a few more times on more samples: the healthy conditions stay false.
    const since = await prom.lastRuleEvaluation();
    await pollUntil(async () => (await prom.lastRuleEvaluation()) >= since + 3000, 'three more rule evaluations');
    assert.deepEqual(await prom.firingAlerts(), expected);
  });

  it('answers every dashboard query with data', async () => {
    const files = (await readdir(join(CHART, 'dashboards'))).filter((f) => f.endsWith('.json'));
    const exprs: string[] = [];
    for (const f of files) {
      const d = JSON.parse(await readFile(join(CHART, 'dashboards', f), 'utf8')) as { panels: { targets?: { expr: string }[] }[]; templating: { list: { type: string; query?: string }[] } };
      for (const p of d.panels) for (const t of p.targets ?? []) exprs.push(t.expr);
      for (const v of d.templating.list) {
        const m = /^label_values\((.+),\s*\w+\)$/.exec(v.query ?? '');
        if (v.type === 'query' && m?.[1]) exprs.push(m[1]);
      }
    }
    assert.ok(exprs.length > 40, `collected ${exprs.length} queries`);
    // What Grafana would send with "All" selected: regex variables match anything.
    const concrete = (e: string) => e.replace(/\$__rate_interval/g, '15s').replace(/\$__range/g, '1m').replace(/\$\{?\w+\}?/g, '.*');
    const empty: string[] = [];
    for (const e of exprs) {
      try {
        await prom.waitFor(concrete(e), { timeoutMs: 20_000 });
      } catch {
        empty.push(e);
      }
    }
    assert.deepEqual(empty, [], 'dashboard queries without data');
  });
});
