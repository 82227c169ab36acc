// What generic dashboards and alerts look for (issue 13 §4): prom-client's default process
// metrics under their standard names (process_*, nodejs_*, as node-exporter-style
// dashboards and kube-prometheus-stack's rules expect), and a build_info gauge with the version.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRelayMetrics } from './metrics.ts';
import { createOperatorMetrics } from '../operator/metrics.ts';

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

for (const [who, registry, info] of [
  ['relay', () => createRelayMetrics().registry, 'mailrelay_build_info'],
  ['operator', () => createOperatorMetrics().registry, 'mailrelay_operator_build_info'],
] as const) {
  test(`${who}: default metrics under their standard names, and ${info}`, async () => {
    const text = await registry().metrics();
    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
      assert.match(text, new RegExp(`^${name}[ {]`, 'm'), name);
    }
    assert.doesNotMatch(text, /^mailrelay_(operator_)?(process|nodejs)_/m, 'no prefixed copies');
    const line = new RegExp(`^${info}\\{version="${VERSION.replace(/\./g, '\\.')}",nodejs_version="${process.versions.node.replace(/\./g, '\\.')}"\\} 1$`, 'm');
    assert.match(text, line);
  });
}
