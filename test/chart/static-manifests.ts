// Generates deploy/static/ (the Helm-less install, docs/install-static.md) from the chart,
// so the static manifests can never drift from what `helm install` creates.
//   node --import tsx test/chart/static-manifests.ts --write   regenerate deploy/static/
// static-manifests.test.ts fails while the committed files differ from a fresh render.
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { helmTemplate, helmTemplateObjects } from '../helpers/helm.ts';
import { CHART, MONITORING_API, REPO } from './chart.ts';
import type { RuleGroup } from './chart.ts';

/** Where the static manifests live. */
export const STATIC_DIR = join(REPO, 'deploy', 'static');
/** Release name and namespace the static manifests are rendered for. */
export const STATIC_RELEASE = { releaseName: 'mailrelay-operator', namespace: 'mailrelay-system' } as const;

const HEADER = [
  '# Generated from charts/mailrelay-operator by `node --import tsx test/chart/static-manifests.ts --write`.',
  '# Do not edit: change the chart and regenerate (test/chart/static-manifests.test.ts fails until you do).',
].join('\n');

/** The label Helm sets says Helm manages the objects; here kubectl does. */
function notHelm(text: string): string {
  return text.replace(/^(\s*app\.kubernetes\.io\/managed-by:) Helm$/gm, '$1 kubectl');
}

const MONITORING_VALUES = {
  monitoring: { serviceMonitor: { enabled: true }, prometheusRule: { enabled: true } },
  grafana: { dashboards: { enabled: true } },
};

/** Every file of deploy/static/, by path relative to it. */
export async function renderStaticManifests(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const base = { ...STATIC_RELEASE };
  const ns = STATIC_RELEASE.namespace;

  out.set('namespace.yaml', `${HEADER}\n${stringify({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name: ns,
      labels: {
        'app.kubernetes.io/part-of': 'mailrelay',
        // The operator's pods meet the restricted Pod Security Standard; let the API server enforce it.
        'pod-security.kubernetes.io/enforce': 'restricted',
        'pod-security.kubernetes.io/warn': 'restricted',
        'pod-security.kubernetes.io/audit': 'restricted',
      },
    },
  })}`);

  const crds = (await readdir(join(CHART, 'crds'))).filter((f) => /\.(ya?ml|json)$/.test(f)).sort();
  for (const f of crds) out.set(`crds/${f}`, await readFile(join(CHART, 'crds', f), 'utf8'));

  out.set('operator.yaml', `${HEADER}\n${notHelm(await helmTemplate(CHART, base))}`);

  const withMonitoring = { ...base, values: [MONITORING_VALUES], apiVersions: [MONITORING_API] };
  for (const [file, template] of [['servicemonitor.yaml', 'templates/servicemonitor.yaml'], ['prometheusrule.yaml', 'templates/prometheusrule.yaml'], ['dashboards.yaml', 'templates/dashboards.yaml']] as const) {
    out.set(`monitoring/${file}`, `${HEADER}\n${notHelm(await helmTemplate(CHART, { ...withMonitoring, showOnly: [template] }))}`);
  }
  out.set('monitoring/kustomization.yaml', `${HEADER}\n${stringify({
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    resources: ['servicemonitor.yaml', 'prometheusrule.yaml', 'dashboards.yaml'],
  })}`);

  // The same alerts as a plain Prometheus rule file, for a Prometheus without the Prometheus Operator.
  const rule = (await helmTemplateObjects(CHART, withMonitoring)).find((o) => o.kind === 'PrometheusRule');
  if (!rule) throw new Error('the chart rendered no PrometheusRule');
  const groups = (rule.spec as { groups: RuleGroup[] }).groups;
  out.set('prometheus-rules.yaml', `${HEADER}\n# A Prometheus rule file (rule_files:); check it with: promtool check rules prometheus-rules.yaml\n${stringify({ groups }, { lineWidth: 0 })}`);

  out.set('kustomization.yaml', `${HEADER}\n${stringify({
    apiVersion: 'kustomize.config.k8s.io/v1beta1',
    kind: 'Kustomization',
    resources: ['namespace.yaml', ...crds.map((f) => `crds/${f}`), 'operator.yaml'],
  })}`);
  return out;
}

/** Every file under a directory, by relative path. */
export async function readTree(dir: string, prefix = ''): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let entries;
  try {
    entries = await readdir(join(dir, prefix), { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) for (const [k, v] of await readTree(dir, rel)) out.set(k, v);
    else out.set(rel, await readFile(join(dir, rel), 'utf8'));
  }
  return out;
}

async function write(): Promise<void> {
  const files = await renderStaticManifests();
  await rm(STATIC_DIR, { recursive: true, force: true });
  for (const [rel, text] of files) {
    await mkdir(dirname(join(STATIC_DIR, rel)), { recursive: true });
    await writeFile(join(STATIC_DIR, rel), text);
  }
  process.stdout.write(`wrote ${files.size} files to ${STATIC_DIR}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv[2] !== '--write') {
    process.stderr.write('usage: node --import tsx test/chart/static-manifests.ts --write\n');
    process.exit(2);
  }
  await write();
}
