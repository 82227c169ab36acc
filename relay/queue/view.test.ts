import { test } from 'node:test';
import assert from 'node:assert/strict';
import { domainOf, formatSeconds, indexMatches, listEntry, messageMatches } from './view.ts';
import type { QueuedMessage } from '../spool/record.ts';

const NOW = Date.parse('2025-01-01T12:00:00Z');
const msg: QueuedMessage = {
  id: '01JGQ0000000000000000000AA', from: 'Alice@Sender.test', size: 100, receivedAt: NOW - 7200_000,
  recipients: [
    { address: 'x@Down.test', state: { state: 'deferred', attempts: 2, nextAttemptAt: NOW + 300_000, lastReply: '451 4.4.1 later', reason: 'temporary_reply' } },
    { address: 'y@up.test', state: { state: 'delivered', at: NOW - 7000_000, reply: '250 ok', attempts: 1 } },
    { address: 'z@other.test', state: { state: 'deferred', attempts: 1, nextAttemptAt: NOW + 900_000, lastReply: '421 busy', reason: 'connection' } },
  ],
};

test('ages read like a human writes them', () => {
  assert.deepEqual([0, 45, 60, 725, 3600, 12_000, 86_400 + 4 * 3600 + 59].map(formatSeconds), ['0s', '45s', '1m', '12m5s', '1h', '3h20m', '1d4h']);
});

test('a list entry counts recipients, names the destinations still open, and the next retry with its reply', () => {
  const e = listEntry(msg, 'deferred', false, NOW);
  assert.deepEqual(e.recipients, { total: 3, pending: 0, deferred: 2, delivered: 1, failed: 0 });
  assert.deepEqual(e.destinations, ['down.test', 'other.test']);
  assert.equal(e.nextAttemptAt, new Date(NOW + 300_000).toISOString());
  assert.equal(e.lastReply, '451 4.4.1 later');
  assert.equal(e.ageSeconds, 7200);
  assert.equal(domainOf('a@B.Example'), 'b.example');
});

test('filters: state and age from the index, sender and open destinations from the message', () => {
  assert.ok(indexMatches({ state: 'deferred', receivedAt: NOW - 7200_000 }, { state: 'deferred', olderThanSeconds: 3600 }, NOW));
  assert.ok(!indexMatches({ state: 'held', receivedAt: NOW }, { state: 'deferred' }, NOW));
  assert.ok(!indexMatches({ state: 'deferred', receivedAt: NOW - 60_000 }, { olderThanSeconds: 3600 }, NOW));
  assert.ok(messageMatches(msg, { sender: 'alice@sender' }));
  assert.ok(!messageMatches(msg, { sender: '<>' }));
  assert.ok(messageMatches({ ...msg, from: '' }, { sender: '<>' }));
  assert.ok(messageMatches(msg, { destination: 'DOWN.test' }));
  assert.ok(!messageMatches(msg, { destination: 'up.test' }), 'y@up.test is already delivered');
});
