import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { CoreV1Api } from '@kubernetes/client-node';
import { EventRecorder } from './events.ts';

function fakeApi() {
  const calls: { op: 'create' | 'patch'; body: Record<string, unknown>; name?: string }[] = [];
  const api = {
    createNamespacedEvent: async (p: { body: Record<string, unknown> }) => { calls.push({ op: 'create', body: p.body }); return p.body; },
    patchNamespacedEvent: async (p: { name: string; body: Record<string, unknown> }) => { calls.push({ op: 'patch', body: p.body, name: p.name }); return p.body; },
  } as unknown as CoreV1Api;
  return { api, calls };
}

const obj = { name: 'relay', namespace: 'mail', uid: 'u1' };

describe('EventRecorder', () => {
  it('creates one Event and aggregates repeats into count, writing at most once per interval', async () => {
    let now = 1_000_000;
    const { api, calls } = fakeApi();
    const rec = new EventRecorder({ api, now: () => now, minIntervalMs: 60_000, aggregateWindowMs: 600_000, instance: 'replica-a' });
    await rec.record(obj, 'Warning', 'InvalidSpec', 'spec.relayNetworks[0]: not a valid CIDR');
    assert.equal(calls.length, 1);
    const created = calls[0]?.body as { involvedObject: Record<string, unknown>; count: number; reportingInstance: string; type: string };
    assert.deepEqual(created.involvedObject, { apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay', name: 'relay', namespace: 'mail', uid: 'u1' });
    assert.equal(created.count, 1);
    assert.equal(created.reportingInstance, 'replica-a');
    for (let i = 0; i < 10; i++) {
      now += 1000;
      await rec.record(obj, 'Warning', 'InvalidSpec', 'spec.relayNetworks[0]: not a valid CIDR');
    }
    assert.equal(calls.length, 1, 'ten repeats within the interval: no write');
    now += 60_000;
    await rec.record(obj, 'Warning', 'InvalidSpec', 'spec.relayNetworks[0]: not a valid CIDR');
    assert.equal(calls.length, 2);
    assert.equal(calls[1]?.op, 'patch');
    assert.equal(calls[1]?.body.count, 12, 'the pending repeats ride along');
  });

  it('a different message, reason or object is a new Event; so is a repeat after the window', async () => {
    let now = 0;
    const { api, calls } = fakeApi();
    const rec = new EventRecorder({ api, now: () => now, aggregateWindowMs: 1000 });
    await rec.record(obj, 'Normal', 'Applied', 'applied ConfigMap/relay-config');
    await rec.record(obj, 'Normal', 'Applied', 'applied StatefulSet/relay');
    await rec.record({ ...obj, name: 'other' }, 'Normal', 'Applied', 'applied StatefulSet/relay');
    now = 5000;
    await rec.record(obj, 'Normal', 'Applied', 'applied ConfigMap/relay-config');
    assert.deepEqual(calls.map((c) => c.op), ['create', 'create', 'create', 'create']);
  });

  it('never throws: a failed write is reported', async () => {
    const errors: unknown[] = [];
    const api = { createNamespacedEvent: async () => { throw new Error('forbidden'); } } as unknown as CoreV1Api;
    const rec = new EventRecorder({ api, onError: (e) => errors.push(e) });
    await rec.record(obj, 'Normal', 'Applied', 'x');
    assert.equal((errors[0] as Error).message, 'forbidden');
  });
});
