import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ApiException } from '@kubernetes/client-node';
import { monitoringCapabilities, referencedSecretNames, statusOnlyChange } from './controller.ts';
import type { RawKubeApi } from './kube.ts';
import { ordinalOf } from './reconcile.ts';

const mr = (extra: Record<string, unknown> = {}, meta: Record<string, unknown> = {}) => ({
  apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay',
  metadata: { name: 'r', namespace: 'n', resourceVersion: '1', generation: 1, ...meta },
  spec: { replicas: 1 }, ...extra,
});

describe('controller event mapping', () => {
  it('status-only updates (our own status writes) do not wake the MailRelay up; anything else does', () => {
    assert.equal(statusOnlyChange(mr(), mr({ status: { observedGeneration: 1 } }, { resourceVersion: '2', managedFields: [{ manager: 'x' }] })), true);
    assert.equal(statusOnlyChange(mr(), mr({ spec: { replicas: 2 } }, { resourceVersion: '2', generation: 2 })), false);
    assert.equal(statusOnlyChange(mr(), mr({}, { resourceVersion: '2', annotations: { a: 'b' } })), false);
    assert.equal(statusOnlyChange(mr(), mr({}, { resourceVersion: '2', deletionTimestamp: '2025-01-01T00:00:00Z' })), false);
    assert.equal(statusOnlyChange(undefined, mr()), false);
  });

  it('finds the Secrets a spec references, and none for a spec that does not parse', () => {
    const names = referencedSecretNames({
      auth: { usersSecretRef: { name: 'users' }, requireTLS: false },
      tls: { secretRef: { name: 'cert' } },
      delivery: { mode: 'smarthost', smarthost: { host: 'h', tls: 'required', credentialsSecretRef: { name: 'creds' } } },
    });
    assert.deepEqual([...names].sort(), ['cert', 'creds', 'users']);
    assert.deepEqual([...referencedSecretNames({ replicas: 'many' } as never)], []);
  });

  it('reads ordinals from pod and PVC names', () => {
    assert.equal(ordinalOf('relay-0', 'relay'), 0);
    assert.equal(ordinalOf('relay-12', 'relay'), 12);
    assert.equal(ordinalOf('spool-relay-3', 'spool-relay'), 3);
    assert.equal(ordinalOf('relay-01', 'relay'), undefined);
    assert.equal(ordinalOf('relay-x', 'relay'), undefined);
    assert.equal(ordinalOf('relayx-1', 'relay'), undefined);
    assert.equal(ordinalOf('relay-canary-1', 'relay'), undefined);
  });

  it('discovers the monitoring kinds, caches the answer, and keeps the last one when discovery fails', async () => {
    let calls = 0;
    let answer: () => unknown = () => ({ resources: [{ name: 'servicemonitors' }] });
    const raw = { getJson: async () => { calls++; return answer(); } } as unknown as RawKubeApi;
    const probe = monitoringCapabilities({ raw }, 60_000);
    assert.deepEqual(await probe(), { serviceMonitor: true, prometheusRule: false });
    await probe();
    assert.equal(calls, 1, 'cached');
    const uncached = monitoringCapabilities({ raw }, 0);
    answer = () => { throw new ApiException(404, 'nf', {}, {}); };
    assert.deepEqual(await uncached(), { serviceMonitor: false, prometheusRule: false }, '404: not installed');
    answer = () => ({ resources: [{ name: 'servicemonitors' }, { name: 'prometheusrules' }] });
    assert.deepEqual(await uncached(), { serviceMonitor: true, prometheusRule: true });
    answer = () => { throw new Error('connection refused'); };
    assert.deepEqual(await uncached(), { serviceMonitor: true, prometheusRule: true }, 'an outage keeps the last answer');
    await assert.rejects(monitoringCapabilities({ raw }, 0)(), /connection refused/, 'no answer yet: the reconcile fails and retries');
  });
});
