import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { metricsDoc } from './gen-metrics-doc.ts';

test('docs/metrics.md lists every declared metric and is up to date', async () => {
  const committed = readFileSync(new URL('../docs/metrics.md', import.meta.url), 'utf8');
  assert.equal(committed, await metricsDoc(), 'run: npx tsx scripts/gen-metrics-doc.ts > docs/metrics.md');
  for (const name of ['mailrelay_rcpt_552_total', 'mailrelay_retries_total', 'mailrelay_operator_reconcile_total']) {
    assert.ok(committed.includes(`\`${name}\``), name);
  }
});
