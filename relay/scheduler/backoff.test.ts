import { test } from 'node:test';
import assert from 'node:assert/strict';
import { retryDelayMs, nextState, isExpired } from './backoff.ts';
import type { DeliveryResult } from '../outbound/engine.ts';
import { makeReply } from '../protocol/reply.ts';

const policy = { schedule: [60, 300, 900], jitter: 0.2, maxAge: 3600 };
const res = (status: 'accepted' | 'deferred' | 'failed', code: number, text: string): DeliveryResult => ({
  address: 'a@x', host: 'mx', rcptReply: null, class552: null, reply: makeReply(code, text),
  verdict: status === 'deferred' ? { status, reason: 'temporary_reply', sameConnection: false } : status === 'failed' ? { status, reason: 'permanent' } : { status },
});

test('the schedule is followed, the last step repeats, jitter stays within bounds', () => {
  assert.equal(retryDelayMs(1, policy, () => 0.5), 60_000);
  assert.equal(retryDelayMs(2, policy, () => 0.5), 300_000);
  assert.equal(retryDelayMs(9, policy, () => 0.5), 900_000);
  assert.equal(retryDelayMs(1, policy, () => 0), 48_000);
  assert.equal(retryDelayMs(1, policy, () => 1), 72_000);
});

test('results become states with the exact reply; a deferral past max age expires with 4.4.7', () => {
  const t0 = 1_000_000;
  assert.deepEqual(nextState({ state: 'pending' }, res('accepted', 250, '2.0.0 queued'), t0, t0 + 5, policy, () => 0.5),
    { state: 'delivered', at: t0 + 5, reply: '250 2.0.0 queued', attempts: 1 });
  const d = nextState({ state: 'pending' }, res('deferred', 451, '4.3.0 try later'), t0, t0, policy, () => 0.5);
  assert.deepEqual(d, { state: 'deferred', attempts: 1, nextAttemptAt: t0 + 60_000, lastReply: '451 4.3.0 try later', reason: 'temporary_reply' });
  const late = nextState(d, res('deferred', 451, '4.3.0 try later'), t0, t0 + 3600_000, policy);
  assert.equal(late.state, 'failed');
  assert.ok(late.state === 'failed' && late.reason === 'expired' && late.reply.startsWith('4.4.7') && late.reply.includes('451 4.3.0 try later'));
  const near = nextState(d, res('deferred', 451, 'x'), t0, t0 + 3500_000, policy, () => 0.5);
  assert.ok(near.state === 'deferred' && near.nextAttemptAt === t0 + 3600_000, 'last retry is not scheduled past the max age');
  assert.equal(isExpired(t0, t0 + 3599_999, policy), false);
});

test('a deferral decided locally keeps its own status (TLS 4.7.5), others without a reply get 4.4.1', async () => {
  const { resultText } = await import('./backoff.ts');
  const base = { address: 'a@x', host: null, rcptReply: null, class552: null, reply: null };
  const tls: DeliveryResult = { ...base, verdict: { status: 'deferred', reason: 'tls', sameConnection: false }, status: '4.7.5', note: 'certificate verification failed for smtp.example.test: certificate has expired' };
  assert.equal(resultText(tls), '4.7.5 certificate verification failed for smtp.example.test: certificate has expired');
  const lost: DeliveryResult = { ...base, verdict: { status: 'deferred', reason: 'connection', sameConnection: false }, note: 'connection refused' };
  assert.equal(resultText(lost), '4.4.1 connection refused');
});
