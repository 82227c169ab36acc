// buildStatus: the whole status subresource from the StatefulSet and the plan.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { MailRelay } from '../api/mailrelay.ts';
import { deepFreeze } from '../../test/helpers/desired-fixtures.ts';
import { buildStatus } from './status.ts';

const mr = (spec: unknown, status?: MailRelay['status']): MailRelay => deepFreeze({
  apiVersion: 'mailrelay.io/v1alpha1', kind: 'MailRelay', metadata: { name: 'relay', namespace: 'mail', generation: 5 }, spec: spec as MailRelay['spec'], ...(status ? { status } : {}),
});
const NOW = new Date('2025-01-01T00:00:00Z');
const STS = { metadata: { generation: 2 }, spec: { replicas: 3 }, status: { observedGeneration: 2, replicas: 3, readyReplicas: 3, updatedReplicas: 3 } };

describe('buildStatus', () => {
  it('counts, selector, hash, smarthost and conditions', () => {
    const s = buildStatus(mr({ replicas: 3, delivery: { mode: 'smarthost', smarthost: { host: 'smtp.example.net' } } }), { problems: [], statefulSet: STS, configHash: 'abc', now: NOW });
    assert.equal(s.observedGeneration, 5);
    assert.equal(s.replicas, 3);
    assert.equal(s.readyReplicas, 3);
    assert.equal(s.updatedReplicas, 3);
    assert.equal(s.selector, 'app.kubernetes.io/component=relay,app.kubernetes.io/instance=relay,app.kubernetes.io/name=mailrelay');
    assert.equal(s.configHash, 'abc');
    assert.equal(s.smarthost, 'smtp.example.net:587');
    assert.equal(s.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
  });

  it('records a waiting scale-down', () => {
    const s = buildStatus(mr({ replicas: 1 }), { problems: [], statefulSet: STS, now: NOW, scaleDown: { startedAt: '2025-01-01T00:00:00Z', drainingOrdinals: [1, 2], queuedMessages: 4 } });
    assert.deepEqual(s.scaleDown, { startedAt: '2025-01-01T00:00:00Z', drainingOrdinals: [1, 2], queuedMessages: 4 });
    assert.equal(s.conditions?.find((c) => c.type === 'Progressing')?.reason, 'DrainingForScaleDown');
  });

  it('an invalid spec keeps the last config hash (it still describes the running pods)', () => {
    const problems = [{ field: 'spec.replicas', reason: 'InvalidValue' as const, message: 'bad' }];
    const s = buildStatus(mr({ replicas: 'three' }, { configHash: 'old' }), { problems, statefulSet: STS, now: NOW });
    assert.equal(s.configHash, 'old');
    assert.equal(s.conditions?.find((c) => c.type === 'Degraded')?.reason, 'InvalidSpec');
  });
});
