// The autoscaler's decisions as a table: each row the pods' /status figures, the spec, the
// replicas chosen last and the remembered windows, and the decision it must give. Then
// the property the ADR claims: fed its own decisions on a constant queue, it never moves
// back and forth.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AutoscalingSchema, type AutoscalingSpec } from '../api/schema.ts';
import { buildRelayStatus, type RelayStatus } from '../../relay/status.ts';
import { deepFreeze } from '../../test/helpers/desired-fixtures.ts';
import { decideReplicas, queueFigures, type AutoscaleInput, type AutoscaleReason, type AutoscaleState, type PodReading } from './decide.ts';

const NOW = new Date('2026-01-01T12:00:00Z');
const ago = (s: number) => new Date(NOW.getTime() - s * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
const spec = (s: Partial<AutoscalingSpec> = {}): AutoscalingSpec => AutoscalingSchema.parse({ maxReplicas: 4, targetQueuePerReplica: 100, targetOldestAgeSeconds: 60, scaleDownStabilizationSeconds: 30, ...s });

/** A pod's /status with `queued` due messages whose oldest is `oldest` s old. */
function pod(ordinal: number, queued: number, opts: { oldest?: number; deferred?: number; draining?: boolean; problem?: 'full' | 'unwritable'; accepted?: number; delivered?: number } = {}): PodReading {
  const status: RelayStatus = buildRelayStatus({
    now: NOW.getTime(),
    spool: {
      messages: queued + (opts.deferred ?? 0), byState: { queued, deferred: opts.deferred ?? 0 },
      oldestReceivedAt: undefined, oldestQueuedReceivedAt: queued > 0 ? NOW.getTime() - (opts.oldest ?? 1) * 1000 : undefined,
    },
    inFlight: 0, learnedLimits: new Map(), rates: { delivered: opts.delivered ?? 0, accepted: opts.accepted ?? 0, windowSeconds: 60 }, draining: opts.draining ?? false,
    ...(opts.problem ? { spoolProblem: { problem: opts.problem, message: 'ENOSPC' } } : {}),
  });
  return { ordinal, status };
}
const silent = (ordinal: number): PodReading => ({ ordinal });

interface Row {
  name: string;
  input: Partial<AutoscaleInput>;
  replicas: number;
  reason: AutoscaleReason;
  state?: AutoscaleState;
}

const ROWS: Row[] = [
  { name: 'below minReplicas: up to it at once', input: { spec: spec({ minReplicas: 2 }), current: 1, pods: [pod(0, 0)] }, replicas: 2, reason: 'BelowMinReplicas', state: { lastScaleTime: ago(0) } },
  { name: 'above maxReplicas (lowered): down to it (through the drain)', input: { spec: spec({ maxReplicas: 2 }), current: 3, pods: [pod(0, 0)] }, replicas: 2, reason: 'AboveMaxReplicas' },
  { name: 'queue over target: straight to ceil(queued / target)', input: { current: 1, pods: [pod(0, 250)] }, replicas: 3, reason: 'QueueAboveTarget', state: { lastScaleTime: ago(0) } },
  { name: 'queue over target: capped at maxReplicas', input: { current: 1, pods: [pod(0, 20_000)] }, replicas: 4, reason: 'QueueAboveTarget' },
  { name: 'queue exactly at target: stays', input: { current: 2, pods: [pod(0, 100), pod(1, 100)] }, replicas: 2, reason: 'WithinTarget', state: {} },
  { name: 'deferred mail is no reason to scale (the destination is slow, not the relay)', input: { current: 1, pods: [pod(0, 0, { deferred: 5000 })] }, replicas: 1, reason: 'WithinTarget' },
  { name: 'oldest over target: one pod more', input: { current: 1, pods: [pod(0, 10, { oldest: 61 })] }, replicas: 2, reason: 'OldestAboveTarget' },
  { name: 'oldest over target while a new pod has not come up: wait for it', input: { current: 2, pods: [pod(0, 10, { oldest: 90 })], previous: { lastScaleTime: ago(5) } }, replicas: 2, reason: 'OldestAboveTarget', state: { lastScaleTime: ago(5), aboveTargetSince: ago(0) } },
  { name: 'the queue on a pod not up yet is not counted twice: capacity is the chosen count', input: { current: 3, pods: [pod(0, 250), silent(1), silent(2)] }, replicas: 3, reason: 'PodsNotReporting' },
  { name: 'spool full: one pod more', input: { current: 1, pods: [pod(0, 0, { problem: 'full' })] }, replicas: 2, reason: 'SpoolFull' },
  { name: 'spool unwritable: one pod more', input: { current: 2, pods: [pod(0, 0), pod(1, 0, { problem: 'unwritable' })] }, replicas: 3, reason: 'SpoolUnwritable' },
  { name: 'spool full at maxReplicas: stays, says so', input: { current: 4, pods: [0, 1, 2, 3].map((o) => pod(o, 0, { problem: o === 0 ? 'full' : undefined })) }, replicas: 4, reason: 'AtMaxReplicas' },
  { name: 'up stabilization: the window starts', input: { spec: spec({ scaleUpStabilizationSeconds: 10 }), current: 1, pods: [pod(0, 500)] }, replicas: 1, reason: 'StabilizingUp', state: { aboveTargetSince: ago(0) } },
  { name: 'up stabilization: the window passed', input: { spec: spec({ scaleUpStabilizationSeconds: 10 }), current: 1, pods: [pod(0, 500)], previous: { aboveTargetSince: ago(10) } }, replicas: 4, reason: 'QueueAboveTarget', state: { lastScaleTime: ago(0) } },
  { name: 'down: the window starts when one pod fewer stays at half the target', input: { current: 3, pods: [pod(0, 50), pod(1, 50), pod(2, 0)] }, replicas: 3, reason: 'StabilizingDown', state: { belowTargetSince: ago(0) } },
  { name: 'down: window not over', input: { current: 3, pods: [pod(0, 50), pod(1, 50), pod(2, 0)], previous: { belowTargetSince: ago(29), lastScaleTime: ago(100) } }, replicas: 3, reason: 'StabilizingDown', state: { belowTargetSince: ago(29), lastScaleTime: ago(100) } },
  { name: 'down: window over, one pod fewer (never more at once)', input: { current: 4, pods: [pod(0, 0), pod(1, 0), pod(2, 0), pod(3, 0)], previous: { belowTargetSince: ago(30) } }, replicas: 3, reason: 'QueueBelowTarget', state: { lastScaleTime: ago(0) } },
  { name: 'dead band: under target but not under half of it for one pod fewer: no scale-down', input: { current: 3, pods: [pod(0, 60), pod(1, 60), pod(2, 60)], previous: { belowTargetSince: ago(300) } }, replicas: 3, reason: 'WithinTarget', state: {} },
  { name: 'dead band on age: an oldest over half the target holds the scale-down', input: { current: 2, pods: [pod(0, 1, { oldest: 31 }), pod(1, 0)], previous: { belowTargetSince: ago(300) } }, replicas: 2, reason: 'WithinTarget' },
  { name: 'a pod not answering: no scale-down on partial figures', input: { current: 2, pods: [pod(0, 0), silent(1)], previous: { belowTargetSince: ago(300) } }, replicas: 2, reason: 'PodsNotReporting', state: {} },
  { name: 'a pod still draining below the count (coming back): no scale-down', input: { current: 2, pods: [pod(0, 0), pod(1, 0, { draining: true })], previous: { belowTargetSince: ago(300) } }, replicas: 2, reason: 'PodsNotReporting' },
  { name: 'a scale-down still draining: no second one', input: { current: 2, pods: [pod(0, 0), pod(1, 0), pod(2, 40, { draining: true })], scaleDownInProgress: true, previous: { belowTargetSince: ago(300) } }, replicas: 2, reason: 'ScaleDownInProgress' },
  { name: 'draining pods above the count are not capacity: their queue does not count either', input: { current: 1, pods: [pod(0, 90), pod(1, 5000, { draining: true })], scaleDownInProgress: true }, replicas: 1, reason: 'WithinTarget' },
  { name: 'a backlogged pod\'s delivery rate is remembered as a pod\'s capacity', input: { current: 1, pods: [pod(0, 400, { delivered: 65, accepted: 250 })] }, replicas: 4, reason: 'QueueAboveTarget', state: { lastScaleTime: ago(0), podDeliveryRate: 65 } },
  { name: 'short queues while mail pours in: one pod fewer could not carry the inflow, no scale-down', input: { current: 4, pods: [0, 1, 2, 3].map((o) => pod(o, 5, { accepted: 62, delivered: 62 })), previous: { belowTargetSince: ago(300), podDeliveryRate: 65 } }, replicas: 4, reason: 'InflowAboveCapacity', state: { podDeliveryRate: 65 } },
  { name: 'the inflow fell to what one pod fewer carries at half speed: the window runs', input: { current: 4, pods: [0, 1, 2, 3].map((o) => pod(o, 0, { accepted: 20, delivered: 20 })), previous: { belowTargetSince: ago(30), podDeliveryRate: 65 } }, replicas: 3, reason: 'QueueBelowTarget', state: { lastScaleTime: ago(0), podDeliveryRate: 65 } },
  { name: 'at minReplicas and idle: stays', input: { current: 1, pods: [pod(0, 0)], previous: { belowTargetSince: ago(3000) } }, replicas: 1, reason: 'WithinTarget', state: {} },
];

describe('decideReplicas', () => {
  for (const row of ROWS) {
    it(row.name, () => {
      const input = deepFreeze({ spec: spec(), current: 1, pods: [], scaleDownInProgress: false, now: NOW, ...row.input });
      const d = decideReplicas(input);
      assert.equal(d.replicas, row.replicas, d.message);
      assert.equal(d.reason, row.reason, d.message);
      assert.equal(d.changed, row.replicas !== input.current);
      if (row.state) assert.deepEqual(d.state, row.state);
      assert.ok(d.message.length > 0);
    });
  }

  it('sums only the serving pods below the chosen count', () => {
    const f = queueFigures(2, [pod(0, 10, { oldest: 5, deferred: 3 }), pod(1, 20, { oldest: 9 }), pod(2, 1000, { oldest: 500 })]);
    assert.deepEqual(f, { queued: 30, deferred: 3, oldestQueuedAgeSeconds: 9, serving: 2, notServing: [], acceptedPerSecond: 0, backloggedDeliveryRate: null, spoolFull: [], spoolUnwritable: [] });
  });

  it('never flaps: any constant queue, fed back its own decisions, moves in one direction and settles', () => {
    const s = spec({ scaleDownStabilizationSeconds: 5 });
    for (const [start, total] of [1, 4].flatMap((st) => [0, 40, 99, 100, 101, 150, 199, 200, 250, 301, 399, 400, 1000].map((q) => [st, q] as const))) {
      let current = start;
      let state: AutoscaleState = {};
      const seen: number[] = [current];
      for (let t = 0; t < 200; t++) {
        const now = new Date(NOW.getTime() + t * 1000);
        // The same queue, spread evenly over the pods the last decision chose.
        const pods = Array.from({ length: current }, (_, o) => pod(o, Math.floor(total / current) + (o < total % current ? 1 : 0)));
        const d = decideReplicas({ spec: s, current, pods, scaleDownInProgress: false, previous: state, now });
        current = d.replicas;
        state = d.state;
        if (seen.at(-1) !== current) seen.push(current);
      }
      const ups = seen.slice(1).filter((n, i) => n > (seen[i] ?? 0)).length;
      const downs = seen.slice(1).filter((n, i) => n < (seen[i] ?? 0)).length;
      assert.ok(ups === 0 || downs === 0, `queue ${total} from ${start}: went ${seen.join(' -> ')}`);
      assert.ok(current >= Math.min(4, Math.ceil(total / 100)), `queue ${total}: settled at ${current}, below what the target needs`);
    }
  });
});
