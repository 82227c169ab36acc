// `mailrelay operator` flags and environment: what the chart's Deployment sets (POD_NAME,
// POD_NAMESPACE, WATCH_NAMESPACE, LEADER_ELECTION_LEASE_NAME, RELAY_IMAGE, LOG_LEVEL)
// must land in the config, and a bad flag must be a usage error, not a crash loop with a
// stack trace.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseListenAddress, parseOperatorConfig, UsageError } from '../../operator/main.ts';

const CLI = fileURLToPath(new URL('../../bin/mailrelay.mjs', import.meta.url));

describe('operator config', () => {
  it('defaults: all namespaces, :8080, no leader election', () => {
    const c = parseOperatorConfig([], {});
    assert.equal(c.namespace, undefined);
    assert.equal(c.metricsHost, '0.0.0.0');
    assert.equal(c.metricsPort, 8080);
    assert.equal(c.leaderElection, undefined);
    assert.equal(c.logLevel, 'info');
    assert.ok(Object.isFrozen(c));
  });

  it('takes what the chart sets in the environment', () => {
    const c = parseOperatorConfig(['--leader-elect'], {
      WATCH_NAMESPACE: 'mail', POD_NAMESPACE: 'mail-system', LEADER_ELECTION_LEASE_NAME: 'mr-mailrelay-operator-leader',
      RELAY_IMAGE: 'registry.example/mailrelay:1.2.3', LOG_LEVEL: 'debug',
    });
    assert.equal(c.namespace, 'mail');
    assert.deepEqual(c.leaderElection, { namespace: 'mail-system', name: 'mr-mailrelay-operator-leader', leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 });
    assert.equal(c.relayImage, 'registry.example/mailrelay:1.2.3');
    assert.equal(c.logLevel, 'debug');
    assert.equal(parseOperatorConfig([], { WATCH_NAMESPACE: '' }).namespace, undefined, 'empty: every namespace');
  });

  it('flags win over the environment', () => {
    const c = parseOperatorConfig(['--namespace', 'other', '--metrics-port', '9443', '--leader-elect', '--leader-election-namespace', 'ops', '--leader-election-id', 'x', '--lease-duration', '30', '--renew-deadline', '20', '--retry-period', '4'], { WATCH_NAMESPACE: 'mail', POD_NAMESPACE: 'mail-system' });
    assert.equal(c.namespace, 'other');
    assert.equal(c.metricsPort, 9443);
    assert.deepEqual(c.leaderElection, { namespace: 'ops', name: 'x', leaseDurationMs: 30_000, renewDeadlineMs: 20_000, retryPeriodMs: 4_000 });
  });

  it('parses listen addresses', () => {
    assert.deepEqual(parseListenAddress(':8080'), { host: '0.0.0.0', port: 8080 });
    assert.deepEqual(parseListenAddress('127.0.0.1:0'), { host: '127.0.0.1', port: 0 });
    assert.deepEqual(parseListenAddress('[::]:9090'), { host: '::', port: 9090 });
    assert.throws(() => parseListenAddress('8080'), UsageError);
    assert.throws(() => parseListenAddress(':99999'), UsageError);
  });

  it('rejects inconsistent leader election timing and unknown levels', () => {
    assert.throws(() => parseOperatorConfig(['--leader-elect', '--renew-deadline', '20'], {}), /retry-period < renew-deadline < lease-duration/);
    assert.throws(() => parseOperatorConfig(['--log-level', 'loud'], {}), UsageError);
    assert.throws(() => parseOperatorConfig(['--workers', '0'], {}), UsageError);
  });

  it('the CLI prints usage for --help and exits 2 on a bad flag', () => {
    const help = spawnSync(process.execPath, [CLI, 'operator', '--help'], { encoding: 'utf8', env: { ...process.env, KUBECONFIG: '/nonexistent' } });
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--leader-elect/);
    const bad = spawnSync(process.execPath, [CLI, 'operator', '--metrics-addr', 'nope'], { encoding: 'utf8', env: { ...process.env, KUBECONFIG: '/nonexistent' } });
    assert.equal(bad.status, 2, bad.stderr);
    assert.match(bad.stderr, /--metrics-addr nope: expected \[HOST\]:PORT/);
    const unknown = spawnSync(process.execPath, [CLI, 'operator', '--frobnicate'], { encoding: 'utf8', env: { ...process.env, KUBECONFIG: '/nonexistent' } });
    assert.equal(unknown.status, 2, unknown.stderr);
    const noCluster = spawnSync(process.execPath, [CLI, 'operator'], { encoding: 'utf8', env: { ...process.env, KUBECONFIG: '/nonexistent' } });
    assert.equal(noCluster.status, 1);
    assert.match(noCluster.stderr, /no usable kubeconfig/);
  });
});
