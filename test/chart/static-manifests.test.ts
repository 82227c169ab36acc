// deploy/static/ is what users without Helm apply (docs/install-static.md): it must be
// exactly what the chart renders today, complete (every file a kustomization names exists),
// and its plain Prometheus rule file must pass promtool.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { STATIC_DIR, readTree, renderStaticManifests } from './static-manifests.ts';

const REGENERATE = 'regenerate with: node --import tsx test/chart/static-manifests.ts --write';

describe('deploy/static', async () => {
  const expected = await renderStaticManifests();
  const actual = await readTree(STATIC_DIR);

  it('holds exactly the files the chart renders', () => {
    assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort(), REGENERATE);
    for (const [rel, text] of expected) assert.ok(actual.get(rel) === text, `deploy/static/${rel} is out of date; ${REGENERATE}`);
  });

  it('lists only files that exist in its kustomizations, and every manifest of the directory', () => {
    for (const k of ['kustomization.yaml', 'monitoring/kustomization.yaml']) {
      const dir = k.includes('/') ? 'monitoring/' : '';
      const { resources } = parseYaml(expected.get(k) ?? '') as { resources: string[] };
      for (const r of resources) assert.ok(expected.has(`${dir}${r}`), `${k} names ${r}`);
      const own = [...expected.keys()].filter((f) => f.startsWith(dir) && f !== k && f !== 'prometheus-rules.yaml' && (dir !== '' || !f.startsWith('monitoring/')));
      assert.deepEqual(own.map((f) => f.slice(dir.length)).sort(), [...resources].sort(), `${k} applies every manifest next to it`);
    }
  });

  it('installs the operator in a namespace that enforces the restricted Pod Security Standard', () => {
    const objects = parseAllDocuments(expected.get('operator.yaml') ?? '').map((d) => d.toJS() as { kind: string; metadata: { namespace?: string; labels?: Record<string, string> } } | null).filter((o) => o !== null);
    assert.ok(objects.some((o) => o.kind === 'Deployment'));
    for (const o of objects) {
      if (!o.kind.startsWith('Cluster')) assert.equal(o.metadata.namespace, 'mailrelay-system', o.kind);
      assert.equal(o.metadata.labels?.['app.kubernetes.io/managed-by'], 'kubectl', `${o.kind} is not managed by Helm`);
    }
    const ns = parseYaml(expected.get('namespace.yaml') ?? '') as { metadata: { labels: Record<string, string> } };
    assert.equal(ns.metadata.labels['pod-security.kubernetes.io/enforce'], 'restricted');
  });

  it('ships a rule file promtool accepts', async () => {
    const res = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile('/usr/bin/promtool', ['check', 'rules', join(STATIC_DIR, 'prometheus-rules.yaml')], { encoding: 'utf8' }, (err, stdout, stderr) => {
        resolve({ code: err ? Number(err.code ?? 1) : 0, out: stdout + stderr });
      });
    });
    assert.equal(res.code, 0, res.out);
  });
});
