// The scale-down plan (ADR 0003): the StatefulSet never shrinks past a pod whose
// spool may still hold mail, unless the user chose Immediate or the timeout passed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { requestedReplicas, withDefaults, type MailRelaySpec } from '../api/mailrelay.ts';
import { deepFreeze } from '../../test/helpers/desired-fixtures.ts';
import { planScaleDown, type ScalePlanInput, type SpoolObservation } from './scale-down.ts';

const NOW = new Date('2025-01-01T12:00:00Z');
const spec = (s: MailRelaySpec) => {
  const d = withDefaults(s);
  return { ...d, replicas: requestedReplicas(d) };
};
const pods = (...list: [number, number | undefined, boolean][]): SpoolObservation[] =>
  list.map(([ordinal, queuedMessages, draining]) => (queuedMessages === undefined ? { ordinal, draining } : { ordinal, queuedMessages, draining }));
const plan = (input: Omit<ScalePlanInput, 'now'> & { now?: Date }) => planScaleDown(deepFreeze({ now: NOW, ...input }));

describe('planScaleDown', () => {
  it('scales up and holds steady at once', () => {
    assert.deepEqual(plan({ spec: spec({ replicas: 3 }), currentReplicas: 2, observations: [] }), { statefulSetReplicas: 3, drain: [], undrain: [], unverified: [] });
    assert.deepEqual(plan({ spec: spec({ replicas: 2 }), observations: [] }), { statefulSetReplicas: 2, drain: [], undrain: [], unverified: [] });
  });

  it('keeps the pods being removed until they drain, and asks them to drain', () => {
    const p = plan({ spec: spec({ replicas: 2 }), currentReplicas: 4, observations: pods([0, 3, false], [1, 0, false], [2, 12, false], [3, 5, false]) });
    assert.equal(p.statefulSetReplicas, 4);
    assert.deepEqual(p.drain, [2, 3]);
    assert.deepEqual(p.status, { startedAt: '2025-01-01T12:00:00Z', drainingOrdinals: [2, 3], queuedMessages: 17 });
  });

  it('removes the highest pods as soon as they are drained and empty, from the top down', () => {
    const top = plan({ spec: spec({ replicas: 2 }), currentReplicas: 4, observations: pods([2, 4, true], [3, 0, true]), previous: { startedAt: '2025-01-01T11:00:00Z' } });
    assert.equal(top.statefulSetReplicas, 3);
    assert.deepEqual(top.drain, []);
    assert.deepEqual(top.status, { startedAt: '2025-01-01T11:00:00Z', drainingOrdinals: [2], queuedMessages: 4 });
    // Ordinal 2 is empty but 3 is not: the StatefulSet can only remove 3 first, so both stay.
    const blocked = plan({ spec: spec({ replicas: 2 }), currentReplicas: 4, observations: pods([2, 0, true], [3, 1, true]) });
    assert.equal(blocked.statefulSetReplicas, 4);
    const done = plan({ spec: spec({ replicas: 2 }), currentReplicas: 4, observations: pods([2, 0, true], [3, 0, true]) });
    assert.deepEqual(done, { statefulSetReplicas: 2, drain: [], undrain: [], unverified: [] });
  });

  it('does not take an empty queue as proof unless the pod is draining (it could still accept mail)', () => {
    const p = plan({ spec: spec({ replicas: 1 }), currentReplicas: 2, observations: pods([1, 0, false]) });
    assert.equal(p.statefulSetReplicas, 2);
    assert.deepEqual(p.drain, [1]);
  });

  it('treats a pod it cannot observe as holding mail', () => {
    const p = plan({ spec: spec({ replicas: 1 }), currentReplicas: 2, observations: pods([1, undefined, true]) });
    assert.equal(p.statefulSetReplicas, 2);
    assert.equal(p.status?.queuedMessages, undefined);
  });

  it('stops draining pods that a scale-up wants back', () => {
    const p = plan({ spec: spec({ replicas: 4 }), currentReplicas: 4, observations: pods([2, 3, true], [3, 0, false]) });
    assert.deepEqual(p.undrain, [2]);
    assert.equal(p.statefulSetReplicas, 4);
  });

  it('Immediate: shrinks at once and reports the spools it could not prove empty', () => {
    const p = plan({ spec: spec({ replicas: 1, scaleDown: { policy: 'Immediate' } }), currentReplicas: 3, observations: pods([1, 0, true], [2, 9, false]) });
    assert.deepEqual(p, { statefulSetReplicas: 1, drain: [], undrain: [], unverified: [2] });
  });

  it('timeout: gives up waiting and reports the undrained spools', () => {
    const s = spec({ replicas: 1, scaleDown: { timeout: '1h' } });
    const waiting = plan({ spec: s, currentReplicas: 2, observations: pods([1, 3, true]), previous: { startedAt: '2025-01-01T11:30:00Z' } });
    assert.equal(waiting.statefulSetReplicas, 2);
    const expired = plan({ spec: s, currentReplicas: 2, observations: pods([1, 3, true]), previous: { startedAt: '2025-01-01T11:00:00Z' } });
    assert.deepEqual(expired, { statefulSetReplicas: 1, drain: [], undrain: [], unverified: [1] });
  });
});
