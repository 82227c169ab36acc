// What the operator reports about sick relay pods and spools, from the pods' own /status,
// the Pod objects (the termination message the relay wrote) and the spool PVCs; and the
// queue figures it sums into status.queue.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildRelayStatus } from '../../relay/status.ts';
import { deepFreeze } from '../../test/helpers/desired-fixtures.ts';
import { buildQueueStatus, findHealingProblems, type PodLike, type PvcLike } from './healing.ts';

const NOW = new Date('2026-01-01T12:00:00Z');
const status = (queued: number, opts: { deferred?: number; oldest?: number; oldestQueued?: number; problem?: 'full' | 'unwritable'; message?: string } = {}) => buildRelayStatus({
  now: NOW.getTime(),
  spool: {
    messages: queued + (opts.deferred ?? 0), byState: { queued, deferred: opts.deferred ?? 0 },
    oldestReceivedAt: opts.oldest === undefined ? undefined : NOW.getTime() - opts.oldest * 1000,
    oldestQueuedReceivedAt: opts.oldestQueued === undefined ? undefined : NOW.getTime() - opts.oldestQueued * 1000,
  },
  inFlight: 0, learnedLimits: new Map(), rates: { delivered: 0, accepted: 0, windowSeconds: 60 }, draining: false,
  ...(opts.problem ? { spoolProblem: { problem: opts.problem, message: opts.message ?? 'x' } } : {}),
});
const claim = (name: string, phase: string, ageSeconds: number, storageClassName?: string): PvcLike => ({
  metadata: { name, creationTimestamp: new Date(NOW.getTime() - ageSeconds * 1000).toISOString() },
  spec: storageClassName === undefined ? {} : { storageClassName },
  status: { phase },
});
const crashing = (name: string, restartCount: number, message?: string, waiting?: string): PodLike => ({
  metadata: { name },
  status: { containerStatuses: [{ name: 'relay', restartCount, ready: false, state: waiting ? { waiting: { reason: waiting } } : { running: {} }, lastState: { terminated: { exitCode: 1, reason: 'Error', ...(message ? { message } : {}) } } }] },
});

describe('findHealingProblems', () => {
  it('nothing wrong: no problems', () => {
    assert.deepEqual(findHealingProblems(deepFreeze({ readings: [{ ordinal: 0, name: 'r-0', status: status(3) }], pods: [], claims: [claim('spool-r-0', 'Bound', 999)], now: NOW })), []);
  });

  it('a full spool, in the relay\'s own words', () => {
    const [p] = findHealingProblems({ readings: [{ ordinal: 0, name: 'r-0', status: status(0, { problem: 'full', message: 'spool accept failed: no_space (ENOSPC in write /spool/log/0001)' }) }], pods: [], claims: [], now: NOW });
    assert.equal(p?.reason, 'SpoolFull');
    assert.match(p?.message ?? '', /pod r-0: spool accept failed: no_space \(ENOSPC in write \/spool\/log\/0001\)/);
  });

  it('an unwritable spool', () => {
    assert.deepEqual(findHealingProblems({ readings: [{ ordinal: 1, name: 'r-1', status: status(0, { problem: 'unwritable', message: 'spool probe write failed: EROFS' }) }], pods: [], claims: [], now: NOW }).map((p) => p.reason), ['SpoolUnwritable']);
  });

  it('a spool PVC Pending for long names its StorageClass; a young one or a bound one is not reported', () => {
    const [p, ...rest] = findHealingProblems({ readings: [], pods: [], claims: [claim('spool-r-1', 'Pending', 121, 'fast-ssd'), claim('spool-r-2', 'Pending', 30, 'fast-ssd'), claim('spool-r-0', 'Bound', 999, 'fast-ssd')], now: NOW });
    assert.equal(rest.length, 0);
    assert.equal(p?.reason, 'StoragePending');
    assert.match(p?.message ?? '', /spool PVCs spool-r-1 have been Pending/);
    assert.match(p?.message ?? '', /StorageClass fast-ssd/);
    const [d] = findHealingProblems({ readings: [], pods: [], claims: [claim('spool-r-0', 'Pending', 500)], now: NOW });
    assert.match(d?.message ?? '', /default StorageClass/);
  });

  it('a pod crash-looping on a damaged spool: the relay\'s termination message is the condition\'s message', () => {
    const msg = 'spool open failed: io (EEXIST in mkdir /var/spool/mailrelay/log)';
    const [p] = findHealingProblems({ readings: [], pods: [crashing('r-0', 4, msg, 'CrashLoopBackOff')], claims: [], now: NOW });
    assert.equal(p?.reason, 'RelayCrashLooping');
    assert.match(p?.message ?? '', /pod r-0 restarted 4 times; last exit 1: spool open failed: io \(EEXIST in mkdir \/var\/spool\/mailrelay\/log\)/);
    assert.match(p?.message ?? '', /Nothing is deleted automatically/);
  });

  it('restarts without a back-off: crash-looping only from CRASH_LOOP_RESTARTS on, and not once ready again', () => {
    assert.deepEqual(findHealingProblems({ readings: [], pods: [crashing('r-0', 2)], claims: [], now: NOW }), []);
    assert.equal(findHealingProblems({ readings: [], pods: [crashing('r-0', 3)], claims: [], now: NOW })[0]?.reason, 'RelayCrashLooping');
    const healed = crashing('r-0', 9);
    healed.status!.containerStatuses![0]!.ready = true;
    assert.deepEqual(findHealingProblems({ readings: [], pods: [healed], claims: [], now: NOW }), []);
  });
});

describe('buildQueueStatus', () => {
  it('sums every pod that answered, names the running ones that did not, and turns ages into times', () => {
    const q = buildQueueStatus(deepFreeze([
      { ordinal: 0, name: 'r-0', running: true, status: status(10, { deferred: 2, oldest: 90.4, oldestQueued: 30 }) },
      { ordinal: 1, name: 'r-1', running: true, status: status(5, { oldest: 12, oldestQueued: 12 }) },
      { ordinal: 2, name: 'r-2', running: true },
      { ordinal: 3, name: 'r-3', running: false },
    ]), NOW);
    assert.deepEqual(q, {
      messages: 17, queued: 15, deferred: 2, pods: 2,
      oldestMessageTime: '2026-01-01T11:58:29Z', oldestQueuedMessageTime: '2026-01-01T11:59:30Z',
      unreachablePods: ['r-2'],
    });
  });

  it('no running pod: no queue figures at all', () => {
    assert.equal(buildQueueStatus([{ ordinal: 0, name: 'r-0', running: false }], NOW), undefined);
  });
});
