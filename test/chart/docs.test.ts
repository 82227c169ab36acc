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
