// Condition transitions: what each condition says in each situation, and that
// lastTransitionTime moves only when a status flips.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Condition } from '../api/mailrelay.ts';
import { deepFreeze } from '../../test/helpers/desired-fixtures.ts';
import { computeConditions, setCondition, type ConditionObservations, type ObservedStatefulSet } from './conditions.ts';

const T0 = new Date('2025-01-01T12:00:00.123Z');
const T1 = new Date('2025-01-01T12:05:00Z');
const T2 = new Date('2025-01-01T12:30:00Z');

const sts = (s: NonNullable<ObservedStatefulSet['status']>, replicas = 2, generation = 1): ObservedStatefulSet =>
  ({ metadata: { generation }, spec: { replicas }, status: { observedGeneration: generation, currentRevision: 'r1', updateRevision: 'r1', ...s } });
const HEALTHY = sts({ replicas: 2, readyReplicas: 2, updatedReplicas: 2 });

const obs = (o: Partial<ConditionObservations> = {}): ConditionObservations =>
  ({ generation: 3, problems: [], statefulSet: HEALTHY, desiredReplicas: 2, maxUnavailable: 1, now: T1, ...o });
const byType = (cs: Condition[]) => Object.fromEntries(cs.map((c) => [c.type, c]));
const summary = (cs: Condition[]) => cs.map((c) => `${c.type}=${c.status}/${c.reason}`);

describe('computeConditions', () => {
  it('a healthy relay: Ready, not Progressing, not Degraded', () => {
    const cs = computeConditions(undefined, obs());
    assert.deepEqual(summary(cs), ['Ready=True/ReplicasReady', 'Progressing=False/Complete', 'Degraded=False/AsExpected']);
    for (const c of cs) {
      assert.equal(c.observedGeneration, 3);
      assert.equal(c.lastTransitionTime, '2025-01-01T12:05:00Z');
    }
  });

  it('being created: not Ready, Progressing', () => {
    assert.deepEqual(summary(computeConditions(undefined, obs({ statefulSet: undefined }))), ['Ready=False/StatefulSetNotFound', 'Progressing=True/Creating', 'Degraded=False/AsExpected']);
  });

  it('a rolling update within the disruption budget stays Ready', () => {
    const rolling = sts({ replicas: 2, readyReplicas: 1, updatedReplicas: 1, updateRevision: 'r2' });
    assert.deepEqual(summary(computeConditions(undefined, obs({ statefulSet: rolling }))), ['Ready=True/ReplicasReady', 'Progressing=True/RollingUpdate', 'Degraded=False/AsExpected']);
  });

  it('fewer ready pods than the budget allows: not Ready', () => {
    const c = byType(computeConditions(undefined, obs({ statefulSet: sts({ replicas: 3, readyReplicas: 1, updatedReplicas: 3 }, 3), desiredReplicas: 3 })));
    assert.equal(c.Ready?.status, 'False');
    assert.equal(c.Ready?.reason, 'ReplicasNotReady');
    assert.match(c.Ready?.message ?? '', /1\/3/);
    assert.equal(c.Progressing?.reason, 'Scaling');
  });

  it('scaled to zero: not Ready', () => {
    assert.equal(byType(computeConditions(undefined, obs({ desiredReplicas: 0, statefulSet: sts({ replicas: 0 }, 0) }))).Ready?.reason, 'ScaledToZero');
  });

  it('a scale-down waiting for pods to drain is Progressing, and never Degraded for taking long', () => {
    const draining = sts({ replicas: 4, readyReplicas: 2, updatedReplicas: 4 }, 4);
    const first = computeConditions(undefined, obs({ statefulSet: draining, drainingOrdinals: [2, 3], now: T0 }));
    assert.equal(byType(first).Progressing?.reason, 'DrainingForScaleDown');
    const later = computeConditions(first, obs({ statefulSet: draining, drainingOrdinals: [2, 3], now: T2 }));
    assert.equal(byType(later).Degraded?.status, 'False');
  });

  it('an invalid spec: Degraded with the fields, Progressing stops, Ready still reflects the running pods', () => {
    const problems = [{ field: 'spec.relayNetworks[1]', reason: 'InvalidCIDR' as const, message: 'not a valid CIDR' }];
    const c = byType(computeConditions(undefined, obs({ problems })));
    assert.equal(c.Degraded?.status, 'True');
    assert.equal(c.Degraded?.reason, 'InvalidSpec');
    assert.match(c.Degraded?.message ?? '', /spec\.relayNetworks\[1\]: not a valid CIDR/);
    assert.equal(c.Progressing?.reason, 'InvalidSpec');
    assert.equal(c.Ready?.status, 'True');
  });

  it('only missing Secrets: Degraded SecretNotFound (e.g. cert-manager has not issued yet)', () => {
    const problems = [{ field: 'spec.tls.secretRef.name', reason: 'SecretNotFound' as const, message: 'Secret "t" not found' }];
    const c = byType(computeConditions(undefined, obs({ problems, statefulSet: undefined })));
    assert.equal(c.Degraded?.reason, 'SecretNotFound');
    assert.match(c.Ready?.message ?? '', /invalid/);
  });

  it('an apply error and undrained spools are Degraded, all reported', () => {
    const c = byType(computeConditions(undefined, obs({ applyError: 'StatefulSet.apps "x" is invalid', undrainedSpools: ['spool-relay-2'] })));
    assert.equal(c.Degraded?.reason, 'ApplyFailed');
    assert.match(c.Degraded?.message ?? '', /also SpoolNotDrained: PVCs spool-relay-2/);
  });

  it('pods still missing past the progress deadline: Degraded ReplicasUnavailable', () => {
    const stuck = sts({ replicas: 2, readyReplicas: 1, updatedReplicas: 2 });
    const first = computeConditions(undefined, obs({ statefulSet: stuck, now: T0 }));
    assert.equal(byType(first).Degraded?.status, 'False');
    const later = computeConditions(first, obs({ statefulSet: stuck, now: T2 }));
    assert.equal(byType(later).Degraded?.reason, 'ReplicasUnavailable');
  });

  it('moves lastTransitionTime only when the status flips', () => {
    const first = deepFreeze(computeConditions(undefined, obs({ statefulSet: undefined, now: T0 })));
    const same = byType(computeConditions(first, obs({ statefulSet: undefined, now: T1, generation: 4 })));
    assert.equal(same.Ready?.lastTransitionTime, '2025-01-01T12:00:00Z');
    assert.equal(same.Ready?.observedGeneration, 4);
    const flipped = byType(computeConditions(first, obs({ now: T1 })));
    assert.equal(flipped.Ready?.status, 'True');
    assert.equal(flipped.Ready?.lastTransitionTime, '2025-01-01T12:05:00Z');
    // Degraded stayed False: its time stays although its inputs changed.
    assert.equal(flipped.Degraded?.lastTransitionTime, '2025-01-01T12:00:00Z');
    // Progressing went True/Creating -> False/Complete: flipped.
    assert.equal(flipped.Progressing?.lastTransitionTime, '2025-01-01T12:05:00Z');
  });

  it('keeps conditions of other types, after its own, and never modifies its input', () => {
    const previous = deepFreeze([{ type: 'example.com/Audited', status: 'True', reason: 'Done', message: '', lastTransitionTime: '2024-01-01T00:00:00Z' }] as Condition[]);
    const cs = computeConditions(previous, obs());
    assert.deepEqual(cs.map((c) => c.type), ['Ready', 'Progressing', 'Degraded', 'example.com/Audited']);
    assert.deepEqual(cs[3], previous[0]);
  });

  it('setCondition truncates messages to the API limit', () => {
    const [c] = setCondition([], { type: 'Ready', status: 'True', reason: 'X', message: 'x'.repeat(40000) }, 1, T0);
    assert.equal(c?.message.length, 32768);
  });
});
