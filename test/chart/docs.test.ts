// The monitoring and install docs show configuration users copy: it must work.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { CHART, REPO } from './chart.ts';

/** The fenced code blocks of a Markdown file in one language. */
function codeBlocks(markdown: string, lang: string): string[] {
  return [...markdown.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1] ?? '');
}

describe('docs', () => {
  it('monitoring.md: the Prometheus scrape config passes promtool check config', async () => {
    const md = await readFile(join(REPO, 'docs', 'monitoring.md'), 'utf8');
    const block = codeBlocks(md, 'yaml').find((b) => b.includes('scrape_configs:'));
    assert.ok(block, 'monitoring.md shows a scrape config');
    const work = await mkdtemp(join(tmpdir(), 'mailrelay-docs-'));
    try {
      const cfg = parseYaml(block) as { rule_files: string[]; scrape_configs: Record<string, unknown>[] };
      assert.deepEqual(cfg.rule_files, ['/etc/prometheus/mailrelay/prometheus-rules.yaml']);
      cfg.rule_files = [join(REPO, 'deploy', 'static', 'prometheus-rules.yaml')];
      // Debian builds Prometheus without Kubernetes service discovery; the relabelings are what this checks.
      for (const sc of cfg.scrape_configs) {
        assert.ok(sc.kubernetes_sd_configs, `${String(sc.job_name)} discovers pods`);
        delete sc.kubernetes_sd_configs;
        sc.static_configs = [{ targets: ['127.0.0.1:9090'] }];
      }
      await writeFile(join(work, 'prometheus.yml'), JSON.stringify(cfg));
      const res = await new Promise<{ code: number; out: string }>((resolve) => {
        execFile('/usr/bin/promtool', ['check', 'config', join(work, 'prometheus.yml')], { encoding: 'utf8' }, (err, stdout, stderr) => {
          resolve({ code: err ? Number(err.code ?? 1) : 0, out: stdout + stderr });
        });
      });
      assert.equal(res.code, 0, res.out);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });

  it('monitoring.md: the ServiceMonitor relabeling produces the mailrelay label the queries use', async () => {
    const md = await readFile(join(REPO, 'docs', 'monitoring.md'), 'utf8');
    const sm = codeBlocks(md, 'yaml').find((b) => b.includes('relabelings:'));
    assert.ok(sm);
    const endpoint = (parseYaml(sm) as { spec: { endpoints: { relabelings: { sourceLabels: string[]; targetLabel: string }[] }[] } }).spec.endpoints[0];
    assert.deepEqual(endpoint?.relabelings, [{ sourceLabels: ['__meta_kubernetes_pod_label_app_kubernetes_io_instance'], targetLabel: 'mailrelay' }]);
  });

  it('install-static.md: names only files and objects that exist', async () => {
    const md = await readFile(join(REPO, 'docs', 'install-static.md'), 'utf8');
    for (const m of md.matchAll(/(?:-k|-f) (deploy\/static[\w/.-]*)/g)) assert.ok(existsSync(join(REPO, m[1] ?? '')), `${m[1]} exists`);
    assert.ok(existsSync(join(CHART, 'Chart.yaml')));
    const operator = await readFile(join(REPO, 'deploy', 'static', 'operator.yaml'), 'utf8');
    assert.match(md, /deployment\/mailrelay-operator/);
    assert.match(operator, /kind: Deployment\nmetadata:\n {2}name: mailrelay-operator\n/);
    assert.match(operator, /value: "mailrelay-operator-leader"/, 'the Lease name the doc tells users to read');
    const example = codeBlocks(md, 'sh').find((b) => b.includes('kind: MailRelay')) ?? '';
    const apiVersion = /apiVersion: (\S+)/.exec(example)?.[1];
    const crd = await readFile(join(REPO, 'deploy', 'static', 'crds', 'mailrelay.io_mailrelays.yaml'), 'utf8').catch(() => '');
    const crdDoc = parseYaml(crd) as { spec?: { group: string; versions: { name: string; storage: boolean }[] } } | null;
    const stored = crdDoc?.spec?.versions.find((v) => v.storage);
    assert.equal(apiVersion, `${crdDoc?.spec?.group}/${stored?.name}`, 'the example MailRelay uses the CRD\'s stored version');
  });
});

describe('docs a new user reads (issue 13 §7)', () => {
  const read = (...p: string[]) => readFile(join(REPO, ...p), 'utf8');

  it('one minimum Kubernetes version everywhere: the chart\'s kubeVersion, the install pages, the CRD page, the README', async () => {
    const { MIN_KUBERNETES_VERSION } = await import('../../operator/api/mailrelay.ts');
    const chart = parseYaml(await read('charts', 'mailrelay-operator', 'Chart.yaml')) as { kubeVersion: string };
    assert.equal(chart.kubeVersion, `>=${MIN_KUBERNETES_VERSION}.0-0`);
    const mentions: string[] = [];
    for (const f of ['README.md', 'docs/crd.md', 'docs/install-static.md', 'docs/upgrade.md', 'docs/troubleshooting.md', 'charts/mailrelay-operator/README.md']) {
      const text = await read(f);
      for (const m of text.matchAll(/Kubernetes (\d+\.\d+)(?: or newer|\+)/g)) mentions.push(`${f}: ${m[1]!}`);
      for (const m of text.matchAll(/`kubectl` (\d+\.\d+) or newer/g)) mentions.push(`${f}: ${m[1]!}`);
    }
    assert.ok(mentions.length >= 3, JSON.stringify(mentions));
    assert.deepEqual(mentions.filter((m) => !m.endsWith(`: ${MIN_KUBERNETES_VERSION}`)), []);
  });

  it('an upgrade page that updates the CRDs first (Helm never updates crds/)', async () => {
    const md = await read('docs', 'upgrade.md');
    const steps = codeBlocks(md, 'sh').find((b) => b.includes('helm upgrade')) ?? '';
    const apply = steps.indexOf('kubectl apply --server-side');
    const upgrade = steps.indexOf('helm upgrade');
    assert.ok(apply >= 0 && upgrade >= 0 && apply < upgrade, 'CRDs are applied before helm upgrade');
    assert.match(md, /CHANGELOG/);
    assert.match(await read('README.md'), /docs\/upgrade\.md/);
  });

  it('a troubleshooting page, linked from the README, that uses the queue commands', async () => {
    const md = await read('docs', 'troubleshooting.md');
    for (const s of ['kubectl mailrelay', 'queue list', '452', 'unknown key', 'release']) assert.ok(md.includes(s), `troubleshooting.md covers ${s}`);
    assert.match(await read('README.md'), /docs\/troubleshooting\.md/);
  });

  it('a CHANGELOG with an Unreleased section', async () => {
    const md = await read('CHANGELOG.md');
    assert.match(md, /^## \[?Unreleased\]?/m);
    assert.match(md, /^## \[?0\.1\.0\]?/m);
  });

  it('the README names the printer columns `kubectl get mailrelays` really shows', async () => {
    const crd = parseYaml(await read('crds', 'mailrelay.io_mailrelays.yaml')) as { spec: { versions: { additionalPrinterColumns: { name: string; priority?: number }[] }[] } };
    const cols = crd.spec.versions[0]!.additionalPrinterColumns;
    const readme = await read('README.md');
    const line = /`kubectl get mailrelays[^`]*` shows ([^.]*)\./.exec(readme.replace(/\s+/g, ' '))?.[1] ?? '';
    const named = [...line.matchAll(/\*\*([A-Za-z-]+)\*\*/g)].map((m) => m[1]);
    assert.deepEqual(named, ['NAME', ...cols.filter((c) => !c.priority).map((c) => c.name.toUpperCase())], line);
    const wide = cols.filter((c) => c.priority).map((c) => c.name.toUpperCase());
    for (const w of wide) assert.match(readme, new RegExp(`-o wide[^.]*\\*\\*${w}\\*\\*`), `${w} under -o wide`);
  });

  it('the smarthost example says it needs cert-manager and a ClusterIssuer, in the file and where the README points to it', async () => {
    const example = await read('examples', 'mailrelay-smarthost.yaml');
    const header = example.slice(0, example.indexOf('apiVersion:'));
    assert.match(header, /cert-manager/);
    assert.match(header, /ClusterIssuer/);
    const readme = (await read('README.md')).replace(/\s+/g, ' ');
    const at = readme.indexOf('examples/mailrelay-smarthost.yaml');
    assert.ok(at >= 0);
    assert.match(readme.slice(at, at + 600), /cert-manager[^.]*ClusterIssuer/);
  });

  it('runbooks use the queue commands', async () => {
    for (const rb of ['MailRelayDeliveriesFailing', 'MailRelayOldestMessageTooOld', 'MailRelayQueueGrowing', 'MailRelayRetryStorm', 'MailRelayInboundTempfail', 'MailRelayDrainingTooLong', 'MailRelayBouncesAboveNormal']) {
      assert.match(await read('docs', 'runbooks', `${rb}.md`), /kubectl mailrelay -n NS NAME (--pod POD )?queue (list|show|retry|hold|release|delete)/, rb);
    }
    assert.match(await read('docs', 'runbooks', 'README.md'), /kubectl mailrelay/);
  });
});
