// The chart ships the CRDs from the top-level crds/ directory unchanged: Helm installs
// charts/mailrelay-operator/crds/ before anything else, and the operator is built against
// the top-level files. Any difference means a user gets a different API than the one tested.
// To resync: see RESYNC below (deploy/static/crds/ is regenerated from the chart's copy).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { helmTemplate } from '../helpers/helm.ts';
import { CHART, TOP_CRDS, opts } from './chart.ts';

const CHART_CRDS = join(CHART, 'crds');
const RESYNC = 'resync: rm -f charts/mailrelay-operator/crds/* && cp crds/* charts/mailrelay-operator/crds/ && node --import tsx test/chart/static-manifests.ts --write';

async function files(dir: string): Promise<string[]> {
  return (await readdir(dir, { withFileTypes: true })).filter((d) => d.isFile()).map((d) => d.name).sort();
}

describe('chart CRDs', () => {
  it('holds the same files as the top-level crds/ directory', async () => {
    const top = await files(TOP_CRDS);
    const chart = await files(CHART_CRDS);
    const missing = top.filter((f) => !chart.includes(f));
    const extra = chart.filter((f) => !top.includes(f));
    assert.deepEqual({ missing, extra }, { missing: [], extra: [] }, `charts/mailrelay-operator/crds/ must list exactly the files of crds/; ${RESYNC}`);
  });

  it('holds them byte for byte', async () => {
    for (const f of await files(TOP_CRDS)) {
      const a = await readFile(join(TOP_CRDS, f));
      const b = await readFile(join(CHART_CRDS, f));
      assert.ok(a.equals(b), `charts/mailrelay-operator/crds/${f} differs from crds/${f}; ${RESYNC}`);
    }
  });

  it('holds only CustomResourceDefinitions, which --include-crds renders verbatim', async () => {
    const names: string[] = [];
    for (const f of await files(CHART_CRDS)) {
      if (!/\.(ya?ml|json)$/.test(f)) continue;
      for (const doc of parseAllDocuments(await readFile(join(CHART_CRDS, f), 'utf8'))) {
        const o = doc.toJS() as { apiVersion?: string; kind?: string; metadata?: { name?: string } } | null;
        if (o === null) continue;
        assert.equal(`${o.apiVersion}/${o.kind}`, 'apiextensions.k8s.io/v1/CustomResourceDefinition', `${f} holds only CRDs`);
        names.push(o.metadata?.name ?? '');
      }
    }
    const rendered = await helmTemplate(CHART, opts({ includeCrds: true }));
    for (const n of names) assert.ok(rendered.includes(`name: ${n}`), `--include-crds renders ${n}`);
  });
});
