// The alerting rules, taken from the rendered PrometheusRule: valid for Prometheus'
// own rule checker (promtool check rules), each alert proven by a promtool unit test to fire
// on a bad series and stay quiet on a healthy one (test/chart/alerts/<Alert>.test.yaml),
// every expression over metrics the relay and operator really export, and every alert
// documented by a runbook in docs/runbooks.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { access, copyFile, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { RUNBOOKS, renderRuleGroups } from './chart.ts';
import type { RuleGroup } from './chart.ts';
import { checkExpression, exportedMetrics, parsePromQL } from './promql.ts';

const PROMTOOL = '/usr/bin/promtool';
const TESTS_DIR = fileURLToPath(new URL('./alerts/', import.meta.url));

function promtool(args: string[], cwd: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    execFile(PROMTOOL, args, { cwd, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        reject(err);
        return;
      }
      resolve({ code: err ? (err.code as number) : 0, output: `${stdout}${stderr}` });
    });
  });
}

/** A rule file for the unit tests: the rendered rules without descriptions (the tests pin summaries and runbook links, not prose). */
function withoutDescriptions(groups: RuleGroup[]): RuleGroup[] {
  return groups.map((g) => ({
    ...g,
    rules: g.rules.map((r) => {
      const { description: _d, ...annotations } = r.annotations ?? {};
      return { ...r, annotations };
    }),
  }));
}

const alertsOf = (groups: RuleGroup[]) => groups.flatMap((g) => g.rules.map((r) => ({ group: g.name, ...r, alert: r.alert ?? '' })));

describe('alerting rules', async () => {
  const groups = await renderRuleGroups();
  const alerts = alertsOf(groups);
  const testFiles = (await readdir(TESTS_DIR)).filter((f) => f.endsWith('.test.yaml')).sort();
  let work = '';

  before(async () => {
    await access(PROMTOOL);
    work = await mkdtemp(join(tmpdir(), 'mailrelay-alerts-'));
    await writeFile(join(work, 'full.rules.yaml'), stringify({ groups }));
    await writeFile(join(work, 'rules.yaml'), stringify({ groups: withoutDescriptions(groups) }));
    for (const f of testFiles) await copyFile(join(TESTS_DIR, f), join(work, f));
  });
  after(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('pass promtool check rules', async () => {
    const res = await promtool(['check', 'rules', 'full.rules.yaml'], work);
    assert.equal(res.code, 0, res.output);
    assert.match(res.output, new RegExp(`SUCCESS: ${alerts.length} rules found`));
  });

  it('have unique names, a severity, a summary, a description and a runbook in docs/runbooks', async () => {
    assert.equal(new Set(alerts.map((a) => a.alert)).size, alerts.length);
    for (const a of alerts) {
      assert.match(a.alert, /^MailRelay[A-Z][A-Za-z0-9]+$/, 'alert names are CamelCase, prefixed MailRelay');
      assert.match(a.labels?.severity ?? '', /^(critical|warning|info)$/, `${a.alert} severity`);
      assert.ok(a.annotations?.summary, `${a.alert} summary`);
      assert.ok((a.annotations?.description ?? '').length > 80, `${a.alert} description says what it means`);
      assert.equal(a.annotations?.runbook_url, `https://github.com/mailrelay/mailrelay/blob/main/docs/runbooks/${a.alert}.md`);
      const runbook = await readFile(join(RUNBOOKS, `${a.alert}.md`), 'utf8');
      assert.match(runbook, new RegExp(`^# ${a.alert}\\n`), `${a.alert}.md starts with its title`);
      for (const section of ['## Meaning', '## Impact', '## Diagnosis', '## Mitigation']) assert.ok(runbook.includes(section), `${a.alert}.md has ${section}`);
    }
  });

  it('have no runbook without an alert, and an index listing them all', async () => {
    const pages = (await readdir(RUNBOOKS)).filter((f) => f.endsWith('.md') && f !== 'README.md').sort();
    assert.deepEqual(pages, alerts.map((a) => `${a.alert}.md`).sort());
    const index = await readFile(join(RUNBOOKS, 'README.md'), 'utf8');
    for (const a of alerts) assert.ok(index.includes(`[${a.alert}](${a.alert}.md) | ${a.labels?.severity} |`), `README.md lists ${a.alert} with its severity`);
  });

  it('cover what operators of the fleet need paging for', () => {
    assert.deepEqual(alerts.map((a) => a.alert).sort(), [
      'MailRelayBouncesAboveNormal', 'MailRelayDeliveriesFailing', 'MailRelayDrainingTooLong', 'MailRelayInboundTempfail', 'MailRelayNotReady', 'MailRelayOldestMessageTooOld',
      'MailRelayOperatorMultipleLeaders', 'MailRelayOperatorNoLeader', 'MailRelayOperatorReconcileErrors',
      'MailRelayPartialDeliveriesHigh', 'MailRelayQueueGrowing', 'MailRelayRecipientMailbox552High', 'MailRelayRetryStorm',
      'MailRelaySmarthostTlsFailing', 'MailRelayTargetDown', 'MailRelayTooManyRecipients552',
    ]);
    const byName = new Map(alerts.map((a) => [a.alert, a.expr]));
    assert.match(byName.get('MailRelayRecipientMailbox552High') ?? '', /mailrelay_rcpt_552_total\{class="mailbox"\}/);
    assert.match(byName.get('MailRelayTooManyRecipients552') ?? '', /mailrelay_rcpt_552_total\{class="too_many_recipients"\}/);
    assert.match(byName.get('MailRelayQueueGrowing') ?? '', /predict_linear\(mailrelay_queue_messages\[30m\]/);
    assert.match(byName.get('MailRelayTargetDown') ?? '', /^up\{mailrelay!=""\} == 0$/);
    assert.match(byName.get('MailRelayOperatorNoLeader') ?? '', /absent\(mailrelay_operator_leader\)/);
  });

  it('use only metrics, labels and values the relay and operator export', async () => {
    const exported = await exportedMetrics();
    const problems = alerts.flatMap((a) => checkExpression(a.expr, exported).map((p) => `${a.alert}: ${p}`));
    assert.deepEqual(problems, []);
  });

  it('page per MailRelay: relay alerts keep the namespace and mailrelay labels', () => {
    for (const a of alerts.filter((x) => x.group === 'mailrelay.relays' && x.alert !== 'MailRelayNotReady' && x.alert !== 'MailRelayTargetDown')) {
      const { groupingLabels } = parsePromQL(a.expr);
      assert.ok(groupingLabels.length > 0, `${a.alert} aggregates`);
      // By (namespace, mailrelay), or finer (a per-pod alert adds pod).
      const perPod = a.alert === 'MailRelayDrainingTooLong';
      const width = perPod ? 3 : 2;
      for (let i = 0; i < groupingLabels.length; i += width) {
        assert.deepEqual(groupingLabels.slice(i, i + width), perPod ? ['namespace', 'mailrelay', 'pod'] : ['namespace', 'mailrelay'], `${a.alert}: by (namespace, mailrelay${perPod ? ', pod' : ''})`);
      }
    }
  });

  it('have a promtool unit test each, and no test for an alert that does not exist', () => {
    assert.deepEqual(testFiles, alerts.map((a) => `${a.alert}.test.yaml`).sort());
  });

  for (const file of testFiles) {
    it(`${file.replace(/\.test\.yaml$/, '')}: fires on a bad series, quiet on a healthy one (promtool test rules)`, async () => {
      const res = await promtool(['test', 'rules', file], work);
      assert.equal(res.code, 0, res.output);
      assert.match(res.output, /SUCCESS/);
    });
  }
});

describe('alert values', () => {
  it('set thresholds, durations, severities and extra labels', async () => {
    const groups = await renderRuleGroups([{
      alerts: {
        labels: { team: 'mail' },
        runbookBaseUrl: 'https://wiki.example.com/mail',
        oldestMessage: { ageSeconds: 3600, for: '30m', severity: 'critical' },
        rcpt552Mailbox: { ratio: 0.2, minEvents: 50 },
        queueGrowing: { messages: 500, horizonSeconds: 7200 },
        relayDown: { for: '0' },
      },
    }]);
    const byName = new Map(alertsOf(groups).map((a) => [a.alert, a]));
    const oldest = byName.get('MailRelayOldestMessageTooOld');
    assert.equal(oldest?.expr, 'max by (namespace, mailrelay) (mailrelay_queue_oldest_message_age_seconds) > 3600');
    assert.equal(oldest?.for, '30m');
    assert.deepEqual(oldest?.labels, { severity: 'critical', team: 'mail' });
    assert.equal(oldest?.annotations?.runbook_url, 'https://wiki.example.com/mail/MailRelayOldestMessageTooOld.md');
    assert.match(byName.get('MailRelayRecipientMailbox552High')?.expr ?? '', /\) > 0\.2\nand\n.*>= 50$/);
    assert.match(byName.get('MailRelayQueueGrowing')?.expr ?? '', /predict_linear\(mailrelay_queue_messages\[30m\], 7200\)\) > 500\n/);
    assert.equal(byName.get('MailRelayTargetDown')?.for, undefined, 'for: 0 fires at once');
    for (const a of byName.values()) assert.equal(a.labels?.team, 'mail');
  });

  it('drop disabled alerts, and groups left without any', async () => {
    const off = { enabled: false };
    const groups = await renderRuleGroups([{ alerts: { operatorNoLeader: off, operatorMultipleLeaders: off, operatorReconcileErrors: off, bounces: off } }]);
    const names = alertsOf(groups).map((a) => a.alert);
    assert.ok(!names.includes('MailRelayBouncesAboveNormal'));
    assert.ok(!names.some((n) => n.startsWith('MailRelayOperator')));
    assert.deepEqual(groups.map((g) => g.name), ['mailrelay.relays'], 'Prometheus rejects a group without rules');
    const work = await mkdtemp(join(tmpdir(), 'mailrelay-alerts-'));
    try {
      await writeFile(join(work, 'r.yaml'), stringify({ groups }));
      const res = await promtool(['check', 'rules', 'r.yaml'], work);
      assert.equal(res.code, 0, res.output);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });

  it('renders an empty but valid PrometheusRule when every alert is off', async () => {
    const off = { enabled: false };
    const all = Object.fromEntries(['rcpt552Mailbox', 'rcpt552TooManyRecipients', 'partialDeliveries', 'deliveriesFailing', 'retryStorm', 'queueGrowing', 'oldestMessage', 'bounces',
      'smarthostTls', 'inboundTempfail', 'drainingTooLong', 'relayDown', 'relaysNotReady', 'operatorNoLeader', 'operatorMultipleLeaders', 'operatorReconcileErrors'].map((k) => [k, off]));
    assert.deepEqual(await renderRuleGroups([{ alerts: all }]), []);
  });
});
