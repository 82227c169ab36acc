import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { applyUpdates, isFinal, restore, snapshotOf, summarize, summarizeSnapshot } from './state.ts';
import { InvalidTransitionError } from './errors.ts';
import type { RecipientState, SpoolRecipient } from './record.ts';

const pending: RecipientState = { state: 'pending' };
const deferred = (at: number, attempts = 1): RecipientState => ({ state: 'deferred', attempts, nextAttemptAt: at, lastReply: '451 4.7.1 later', reason: 'temporary_reply' });
const delivered: RecipientState = { state: 'delivered', at: 5, reply: '250 ok', attempts: 1 };
const failed: RecipientState = { state: 'failed', at: 5, reply: '550 no', attempts: 1, reason: 'permanent' };
const rcpts = (...states: RecipientState[]): SpoolRecipient[] => states.map((state, i) => ({ address: `r${i}@x`, state }));

describe('recipient state machine', () => {
  it('moves pending and deferred recipients anywhere', () => {
    let r = rcpts(pending, pending);
    r = applyUpdates(r, [{ address: 'r0@x', state: deferred(100) }]);
    r = applyUpdates(r, [{ address: 'r0@x', state: deferred(200, 2) }, { address: 'r1@x', state: failed }]);
    r = applyUpdates(r, [{ address: 'r0@x', state: delivered, delayNotified: true }]);
    assert.deepEqual(r.map((x) => x.state.state), ['delivered', 'failed']);
    assert.equal(r[0]?.delayNotified, true);
  });

  it('never moves a final recipient again (strict), so delivered is never re-sent', () => {
    for (const final of [delivered, failed]) {
      for (const next of [pending, deferred(1), delivered, failed]) {
        const r = rcpts(final);
        assert.throws(() => applyUpdates(r, [{ address: 'r0@x', state: next }]), (e: unknown) =>
          e instanceof InvalidTransitionError && e.kind === 'already_final' && e.from === final.state && e.to === next.state);
        assert.equal(r[0]?.state, final, 'input untouched');
      }
    }
  });

  it('refuses unknown recipients, and applies nothing of a refused batch', () => {
    const r = rcpts(pending);
    assert.throws(() => applyUpdates(r, [{ address: 'r0@x', state: delivered }, { address: 'nobody@x', state: delivered }]),
      (e: unknown) => e instanceof InvalidTransitionError && e.kind === 'unknown_recipient');
    assert.equal(r[0]?.state, pending);
  });

  it('replay skips illegal updates and keeps the final state', () => {
    const r = applyUpdates(rcpts(delivered, pending), [{ address: 'r0@x', state: deferred(1) }, { address: 'zz', state: failed }, { address: 'r1@x', state: deferred(9) }], 'replay');
    assert.deepEqual(r.map((x) => x.state.state), ['delivered', 'deferred']);
  });

  it('uses the address map path for big messages the same way', () => {
    const many = rcpts(...Array.from({ length: 50 }, () => pending));
    const r = applyUpdates(many, [{ address: 'r42@x', state: delivered }, { address: 'r7@x', state: deferred(3) }]);
    assert.equal(r[42]?.state.state, 'delivered');
    assert.equal(r[7]?.state.state, 'deferred');
    assert.throws(() => applyUpdates(r, [{ address: 'r42@x', state: pending }]), InvalidTransitionError);
  });

  it('isFinal', () => {
    assert.deepEqual([pending, deferred(1), delivered, failed].map(isFinal), [false, false, true, true]);
  });
});

describe('summaries', () => {
  it('queued while any recipient is pending, due since arrival', () => {
    assert.deepEqual(summarize(rcpts(deferred(500), pending, delivered), 10), { kind: 'queued', dueAt: 10 });
  });
  it('deferred when none is pending, due at the earliest retry', () => {
    assert.deepEqual(summarize(rcpts(deferred(500), deferred(300), failed), 10), { kind: 'deferred', dueAt: 300 });
  });
  it('done when every recipient is final', () => {
    assert.equal(summarize(rcpts(delivered, failed), 10).kind, 'done');
  });

  const stateArb: fc.Arbitrary<RecipientState> = fc.oneof(
    fc.constant(pending), fc.nat(1000).map((n) => deferred(n)), fc.constant(delivered), fc.constant(failed));

  it('snapshot + restore rebuild the list, and summarizeSnapshot agrees with summarize (property)', () => {
    fc.assert(fc.property(fc.array(fc.tuple(stateArb, fc.option(fc.boolean(), { nil: undefined })), { minLength: 1, maxLength: 12 }), fc.nat(10_000), (spec, receivedAt) => {
      const list: SpoolRecipient[] = spec.map(([state, d], i) => (d === undefined ? { address: `a${i}`, state } : { address: `a${i}`, state, delayNotified: d }));
      const env = list.map(({ address }) => ({ address }));
      const snap = snapshotOf(list);
      assert.ok(snap.every((u) => u.state.state !== 'pending' || u.delayNotified !== undefined));
      assert.deepEqual(restore(env, snap), list);
      assert.deepEqual(summarizeSnapshot(list.length, snap, receivedAt), summarize(list, receivedAt));
    }), { numRuns: 500 });
  });
});
