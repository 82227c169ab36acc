import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RateMeter, buildRelayStatus, combineRelayStatus, relayStatusProblems, type RelaySnapshot } from './status.ts';

const T0 = Date.parse('2026-12-01T10:00:00Z');

function snapshot(over: Partial<RelaySnapshot> = {}): RelaySnapshot {
  return {
    now: T0,
    spool: { messages: 5, byState: { queued: 3, deferred: 2 }, oldestReceivedAt: T0 - 90_000, oldestQueuedReceivedAt: T0 - 12_340 },
    inFlight: 2,
    learnedLimits: new Map([['smtp.b.example', 10], ['mx.a.example', 50]]),
    rates: { delivered: 12.345, accepted: 3, windowSeconds: 60 },
    draining: false,
    ...over,
  };
}

describe('buildRelayStatus', () => {
  it('reports counts, ages in seconds, rates and learned limits sorted by destination', () => {
    assert.deepEqual(buildRelayStatus(snapshot()), {
      version: 1,
      time: '2026-12-01T10:00:00.000Z',
      queue: { messages: 5, queued: 3, deferred: 2, inFlight: 2, oldestAgeSeconds: 90, oldestQueuedAgeSeconds: 12.3 },
      delivery: {
        deliveredPerSecond: 12.35, acceptedPerSecond: 3, windowSeconds: 60,
        learnedLimits: [{ destination: 'mx.a.example', maxRecipients: 50 }, { destination: 'smtp.b.example', maxRecipients: 10 }],
      },
      draining: false,
      spool: { writable: true },
      processes: 1,
    });
  });

  it('an empty spool has no ages; a spool problem is reported with its message', () => {
    const s = buildRelayStatus(snapshot({
      spool: { messages: 0, byState: { queued: 0, deferred: 0 }, oldestReceivedAt: undefined, oldestQueuedReceivedAt: undefined },
      spoolProblem: { problem: 'full', message: 'spool accept failed: no_space (ENOSPC in write)' },
    }));
    assert.equal(s.queue.oldestAgeSeconds, null);
    assert.equal(s.queue.oldestQueuedAgeSeconds, null);
    assert.deepEqual(s.spool, { writable: false, problem: 'full', message: 'spool accept failed: no_space (ENOSPC in write)' });
    assert.deepEqual(relayStatusProblems(s), []);
  });
});

describe('combineRelayStatus (several worker processes, one pod)', () => {
  it('adds counts and rates, keeps the oldest ages and the smallest learned limit; drains only when every process drains', () => {
    const a = buildRelayStatus(snapshot());
    const b = buildRelayStatus(snapshot({
      now: T0 + 500,
      spool: { messages: 1, byState: { queued: 1, deferred: 0 }, oldestReceivedAt: T0 - 1000, oldestQueuedReceivedAt: T0 - 1000 },
      inFlight: 1,
      learnedLimits: new Map([['smtp.b.example', 5]]),
      rates: { delivered: 1, accepted: 1, windowSeconds: 60 },
      draining: true,
    }));
    const c = combineRelayStatus([a, b]);
    assert.deepEqual(c.queue, { messages: 6, queued: 4, deferred: 2, inFlight: 3, oldestAgeSeconds: 90, oldestQueuedAgeSeconds: 12.3 });
    assert.equal(c.delivery.deliveredPerSecond, 13.35);
    assert.deepEqual(c.delivery.learnedLimits, [{ destination: 'mx.a.example', maxRecipients: 50 }, { destination: 'smtp.b.example', maxRecipients: 5 }]);
    assert.equal(c.draining, false, 'one process still takes mail');
    assert.equal(combineRelayStatus([{ ...a, draining: true }, b]).draining, true);
    assert.equal(c.processes, 2);
    assert.equal(c.time, b.time);
  });

  it('a spool problem of any shard is the pod\'s, unwritable before full', () => {
    const ok = buildRelayStatus(snapshot());
    const full = buildRelayStatus(snapshot({ spoolProblem: { problem: 'full', message: 'full' } }));
    const ro = buildRelayStatus(snapshot({ spoolProblem: { problem: 'unwritable', message: 'EROFS' } }));
    assert.deepEqual(combineRelayStatus([ok, full]).spool, { writable: false, problem: 'full', message: 'full' });
    assert.deepEqual(combineRelayStatus([full, ro, ok]).spool, { writable: false, problem: 'unwritable', message: 'EROFS' });
    assert.deepEqual(combineRelayStatus([ok]).spool, { writable: true });
  });
});

describe('relayStatusProblems', () => {
  it('refuses what the operator cannot read', () => {
    assert.deepEqual(relayStatusProblems(null), ['not a JSON object']);
    assert.deepEqual(relayStatusProblems({ version: 2 }), ['version 2, expected 1']);
    const s = buildRelayStatus(snapshot()) as unknown as { queue: Record<string, unknown> };
    s.queue.queued = 'many';
    assert.deepEqual(relayStatusProblems(s), ['queue.queued is not a number']);
  });
});

describe('RateMeter', () => {
  it('divides the increase over the window by the time it covers', () => {
    const m = new RateMeter(10_000, 1000);
    assert.equal(m.perSecond(), 0);
    m.sample(0, 0);
    assert.equal(m.perSecond(), 0, 'one sample spans no time');
    for (let t = 1; t <= 20; t++) m.sample(t * 5, t * 1000); // 5 per second
    assert.equal(m.perSecond(), 5);
    for (let t = 21; t <= 40; t++) m.sample(100, t * 1000); // stopped
    assert.equal(m.perSecond(), 0, 'the window forgets old increases');
  });

  it('keeps at most one sample per resolution step, and restarts when the counter goes back', () => {
    const m = new RateMeter(60_000, 1000);
    m.sample(0, 0);
    m.sample(10, 1000);
    m.sample(20, 1200);
    m.sample(30, 1400); // replaces the 1200 sample
    assert.equal(m.perSecond(), (30 * 1000) / 1400);
    m.sample(3, 3000); // a restarted process: counters start again
    m.sample(13, 4000);
    assert.equal(m.perSecond(), 10);
  });
});
