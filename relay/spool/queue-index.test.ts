import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { QueueIndex } from './queue-index.ts';

describe('QueueIndex', () => {
  it('lists due ids earliest first, ties by id, up to the limit', () => {
    const q = new QueueIndex();
    q.set('C', 10, 'queued', 10);
    q.set('A', 30, 'deferred', 50);
    q.set('B', 20, 'queued', 20);
    q.set('D', 5, 'deferred', 20);
    q.set('E', 1, 'deferred', 1000);
    assert.deepEqual(q.due(100, 10), ['C', 'B', 'D', 'A']);
    assert.deepEqual(q.due(20, 10), ['C', 'B', 'D']);
    assert.deepEqual(q.due(100, 2), ['C', 'B']);
    assert.deepEqual(q.due(9, 10), []);
    assert.deepEqual(q.due(100, 0), []);
    assert.deepEqual(q.due(100, 10, new Set(['C', 'D'])), ['B', 'A']);
    assert.equal(q.nextDueAt(), 10);
  });

  it('moves entries when their due time changes, and forgets done ones', () => {
    const q = new QueueIndex();
    q.set('A', 1, 'queued', 1);
    q.set('B', 2, 'queued', 2);
    q.set('A', 1, 'deferred', 500);
    assert.deepEqual(q.due(100, 10), ['B']);
    q.set('B', 2, 'done', Infinity);
    assert.equal(q.has('B'), false);
    assert.deepEqual(q.due(1000, 10), ['A']);
    assert.equal(q.delete('A'), true);
    assert.equal(q.delete('A'), false);
    assert.equal(q.size, 0);
    assert.equal(q.nextDueAt(), undefined);
  });

  it('counts by bucket and tracks the oldest arrival through deletions', () => {
    const q = new QueueIndex();
    q.set('A', 300, 'queued', 300);
    q.set('B', 100, 'deferred', 900);
    q.set('C', 200, 'queued', 200);
    assert.deepEqual(q.stats(), { messages: 3, byState: { queued: 2, deferred: 1, held: 0 }, oldestReceivedAt: 100, oldestQueuedReceivedAt: 200 });
    q.delete('B');
    q.set('C', 200, 'deferred', 1000);
    assert.deepEqual(q.stats(), { messages: 2, byState: { queued: 1, deferred: 1, held: 0 }, oldestReceivedAt: 200, oldestQueuedReceivedAt: 300 });
    q.set('D', 50, 'queued', 50);
    assert.equal(q.stats().oldestReceivedAt, 50);
    assert.equal(q.stats().oldestQueuedReceivedAt, 50);
    q.set('D', 50, 'deferred', 500);
    assert.equal(q.stats().oldestQueuedReceivedAt, 300, 'a message waiting for a retry is not behind');
    q.delete('D');
    q.delete('C');
    q.delete('A');
    assert.deepEqual(q.stats(), { messages: 0, byState: { queued: 0, deferred: 0, held: 0 }, oldestReceivedAt: undefined, oldestQueuedReceivedAt: undefined });
  });

  it('agrees with a naive model under random operations (property)', () => {
    type Op = { k: 'set'; id: number; due: number; kind: 'queued' | 'deferred' | 'done' } | { k: 'del'; id: number } | { k: 'due'; now: number; limit: number; ex: number[] };
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ k: fc.constant('set' as const), id: fc.nat(30), due: fc.nat(100), kind: fc.constantFrom('queued', 'deferred', 'done' as const) }),
      fc.record({ k: fc.constant('del' as const), id: fc.nat(30) }),
      fc.record({ k: fc.constant('due' as const), now: fc.nat(110), limit: fc.nat(40), ex: fc.array(fc.nat(30), { maxLength: 5 }) }),
    );
    fc.assert(fc.property(fc.array(opArb, { maxLength: 200 }), (ops) => {
      const q = new QueueIndex();
      const model = new Map<string, { due: number; kind: string; receivedAt: number }>();
      const name = (n: number): string => `id${String(n).padStart(3, '0')}`;
      for (const op of ops) {
        if (op.k === 'set') {
          const id = name(op.id);
          const receivedAt = model.get(id)?.receivedAt ?? op.id * 7;
          q.set(id, receivedAt, op.kind, op.due);
          if (op.kind === 'done') model.delete(id);
          else model.set(id, { due: op.due, kind: op.kind, receivedAt });
        } else if (op.k === 'del') {
          assert.equal(q.delete(name(op.id)), model.delete(name(op.id)));
        } else {
          const ex = new Set(op.ex.map(name));
          const want = [...model].filter(([id, e]) => e.due <= op.now && !ex.has(id))
            .sort(([a, x], [b, y]) => x.due - y.due || (a < b ? -1 : 1)).slice(0, op.limit).map(([id]) => id);
          assert.deepEqual(q.due(op.now, op.limit, ex), want);
        }
        const s = q.stats();
        assert.equal(s.messages, model.size);
        assert.equal(s.byState.queued, [...model.values()].filter((e) => e.kind === 'queued').length);
        assert.equal(s.oldestReceivedAt, model.size === 0 ? undefined : Math.min(...[...model.values()].map((e) => e.receivedAt)));
        const queued = [...model.values()].filter((e) => e.kind === 'queued').map((e) => e.receivedAt);
        assert.equal(s.oldestQueuedReceivedAt, queued.length === 0 ? undefined : Math.min(...queued));
      }
    }), { numRuns: 300 });
  });

  it('due() work is bounded by what is due, not by the queue size', () => {
    const q = new QueueIndex();
    for (let i = 0; i < 200_000; i++) q.set(`m${String(i).padStart(7, '0')}`, i, 'deferred', 1_000_000 + i);
    q.set('early', 0, 'queued', 5);
    const t0 = performance.now();
    for (let i = 0; i < 10_000; i++) assert.equal(q.due(100, 100).length, 1);
    assert.ok(performance.now() - t0 < 1000, 'due() must not scan the whole index');
  });
});
