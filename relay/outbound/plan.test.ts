// A table of transaction plans: a server model answers each RCPT and the data phase, the
// real pure session (client-session.ts) turns those replies into a TransactionResult, and
// the plan decides the next transaction. Each row says which transactions go out and how
// every recipient ends, for batching, configured and learned limits, re-queueing of "too
// many" recipients, and the rule that no 452/552 is final while it does not stand alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type SessionState, type TransactionResult, type TxRecipient, initialSession, step } from '../protocol/client-session.ts';
import { makeReply } from '../protocol/reply.ts';
import { applyResult, nextBatch, startPlan } from './plan.ts';

/** A server: the reply to the RCPT at `pos` (0-based) given how many it accepted before, and the reply to the final dot. */
interface Model {
  rcpt(address: string, pos: number, acceptedBefore: number): string;
  dot?(accepted: string[], refused: string[]): string;
}

function runTransaction(model: Model, rcpts: readonly TxRecipient[], overQuotaPolicy: 'bounce' | 'retry'): TransactionResult {
  let s: SessionState = initialSession({ heloName: 'c.test', tls: 'none', pipelining: true, chunking: false, overQuotaPolicy });
  const feed = (line: string) => {
    const r = step(s, { type: 'reply', reply: makeReply(Number(line.slice(0, 3)), line.slice(4)) });
    s = r.state;
    return r.actions;
  };
  feed('220 hi');
  feed('250 srv\nPIPELINING');
  s = step(s, { type: 'begin', tx: { from: 's@x.test', recipients: rcpts, size: 10 } }).state;
  let result: TransactionResult | null = null;
  const take = (actions: ReturnType<typeof feed>) => {
    for (const a of actions) if (a.type === 'tx-done') result = a.result;
  };
  take(feed('250 ok'));
  const accepted: string[] = [];
  const refused: string[] = [];
  rcpts.forEach((r, pos) => {
    const line = model.rcpt(r.address, pos, accepted.length);
    (line.startsWith('2') ? accepted : refused).push(r.address);
    take(feed(line));
  });
  take(feed(accepted.length > 0 ? '354 go' : '554 no valid recipients'));
  if (!result && accepted.length > 0) {
    s = step(s, { type: 'body-done' }).state;
    take(feed(model.dot?.(accepted, refused) ?? '250 2.0.0 queued'));
  }
  if (!result) throw new Error('no result');
  return result;
}

interface Outcome {
  /** Each transaction's recipients, as "first..last (n)". */
  transactions: string[];
  /** address -> final status for this attempt. */
  status: Record<string, string>;
  learned: number | null;
}

function simulate(model: Model, addresses: string[], configured: number, learned: number | null = null, policy: 'bounce' | 'retry' = 'bounce'): Outcome {
  let plan = startPlan(addresses.map((address) => ({ address })), configured, learned);
  const transactions: string[] = [];
  const status: Record<string, string> = {};
  let confirmed: number | null = null;
  for (let i = 0; i < 50 && plan.queue.length > 0; i++) {
    const batch = nextBatch(plan);
    transactions.push(batch.length === 1 ? batch[0]!.rcpt.address : `${batch[0]!.rcpt.address}..${batch.at(-1)!.rcpt.address} (${batch.length})`);
    const st = applyResult(plan, batch, runTransaction(model, batch.map((q) => q.rcpt), policy));
    plan = st.plan;
    confirmed = st.confirmed ?? confirmed;
    for (const x of st.settled) {
      assert.equal(status[x.result.address], undefined, `${x.result.address} settled twice`);
      const v = x.result.verdict;
      status[x.result.address] = v.status === 'deferred' ? `deferred:${v.reason}` : v.status === 'failed' ? `failed:${v.reason}` : 'accepted';
    }
    if (st.stop) {
      for (const q of plan.queue) status[q.rcpt.address] = 'deferred:stopped';
      break;
    }
  }
  return { transactions, status, learned: confirmed ?? plan.learned };
}

const rc = (n: number, p = 'u') => Array.from({ length: n }, (_, i) => `${p}${String(i + 1).padStart(2, '0')}@x.test`);
const limitAt = (limit: number, reply: string, quota: string[] = [], quotaReply = '552 5.2.2 Mailbox full'): Model => ({
  rcpt: (a, _pos, acc) => (acc >= limit ? reply : quota.includes(a) ? quotaReply : '250 2.1.5 ok'),
});
const all = (addrs: string[], st: string) => Object.fromEntries(addrs.map((a) => [a, st]));

test('batching: at most the configured limit per transaction', () => {
  const o = simulate(limitAt(1000, '452 4.5.3 x'), rc(25), 10);
  assert.deepEqual(o.transactions, ['u01@x.test..u10@x.test (10)', 'u11@x.test..u20@x.test (10)', 'u21@x.test..u25@x.test (5)']);
  assert.deepEqual(o.status, all(rc(25), 'accepted'));
  assert.equal(o.learned, null);
});

test('a learned limit below the configured one splits up front', () => {
  const o = simulate(limitAt(1000, '452 4.5.3 x'), rc(5), 10, 2);
  assert.deepEqual(o.transactions, ['u01@x.test..u02@x.test (2)', 'u03@x.test..u04@x.test (2)', 'u05@x.test']);
});

// Seed 000 and issue 10: every wording of a limit of 10 gives the same four transactions.
for (const reply of ['452 4.5.3 Error: too many recipients', '552 5.5.3 Too many recipients', '552 Too many recipients',
  '552 5.2.2 Too many recipients', '552 5.2.2 5.5.3 Too many recipients', '452 4.2.2 4.5.3 Too many recipients']) {
  test(`limit 10 answered "${reply}": nothing bounces, the limit is learned from the position`, () => {
    const o = simulate(limitAt(10, reply), rc(35), 100);
    assert.deepEqual(o.transactions, [
      'u01@x.test..u35@x.test (35)', 'u11@x.test..u20@x.test (10)', 'u21@x.test..u30@x.test (10)', 'u31@x.test..u35@x.test (5)',
    ]);
    assert.deepEqual(o.status, all(rc(35), 'accepted'));
    assert.equal(o.learned, 10);
  });
}

test('a real quota error bounces exactly its own recipient, at any position, and teaches no limit', () => {
  for (const pos of [0, 1, 4, 7]) {
    const addrs = rc(8);
    const quota = addrs[pos]!;
    const o = simulate(limitAt(1000, '452 x', [quota]), addrs, 100);
    assert.deepEqual(o.status, { ...all(addrs, 'accepted'), [quota]: 'failed:over_quota' }, `quota at ${pos}`);
    // At 0 it stands alone at once; elsewhere it is put back first into a transaction of its own.
    assert.deepEqual(o.transactions, pos === 0 ? ['u01@x.test..u08@x.test (8)'] : ['u01@x.test..u08@x.test (8)', quota], `quota at ${pos}`);
    assert.equal(o.learned, null, `quota at ${pos}`);
  }
});

test('quota mailboxes past a limit: each bounces alone, everyone else once', () => {
  const addrs = rc(14);
  const quota = [addrs[4]!, addrs[11]!, addrs[13]!];
  const o = simulate(limitAt(10, '552 5.2.2 Too many recipients', quota), addrs, 100);
  const want = all(addrs, 'accepted');
  for (const q of quota) want[q] = 'failed:over_quota';
  assert.deepEqual(o.status, want);
});

test('over-quota policy "retry" is applied only where the 552 stands alone', () => {
  const addrs = rc(3);
  const o = simulate(limitAt(1000, '452 x', [addrs[1]!]), addrs, 100, null, 'retry');
  assert.deepEqual(o.status, { ...all(addrs, 'accepted'), [addrs[1]!]: 'deferred:temporary_reply' });
  assert.deepEqual(o.transactions, ['u01@x.test..u03@x.test (3)', addrs[1]], 'put back first, then retried per the policy');
});

test('Exim recipients_max_reject: 552 to the surplus and 554 to the data; the accepted ones are not bounced', () => {
  const model: Model = {
    rcpt: (_a, _p, acc) => (acc >= 10 ? '552 too many recipients' : '250 Accepted'),
    dot: (_acc, refused) => (refused.length > 0 ? '554 Too many recipients' : '250 OK id=1'),
  };
  const o = simulate(model, rc(35), 100);
  assert.deepEqual(o.status, all(rc(35), 'accepted'));
  assert.equal(o.learned, 10);
  assert.equal(o.transactions[1], 'u11@x.test..u20@x.test (10)', 'the refused ones lead, within the limit');
});

test('a 5xx to the data without any surplus is final for the recipients of that transaction only', () => {
  const model: Model = { rcpt: () => '250 ok', dot: (acc) => (acc.includes('u02@x.test') ? '554 5.6.0 Content rejected' : '250 ok') };
  const o = simulate(model, rc(4), 2);
  assert.deepEqual(o.status, { 'u01@x.test': 'failed:permanent', 'u02@x.test': 'failed:permanent', 'u03@x.test': 'accepted', 'u04@x.test': 'accepted' });
});

test('"too many" with nothing accepted waits for the schedule: no storm (seed 001)', () => {
  const o = simulate({ rcpt: () => '452 4.5.3 Too many recipients' }, rc(3), 100);
  assert.deepEqual(o.transactions, ['u01@x.test..u03@x.test (3)']);
  assert.deepEqual(o.status, all(rc(3), 'deferred:too_many_recipients'));
});

test('a recipient refused 452 whenever it is not first ends deferred, never loops', () => {
  const o = simulate({ rcpt: (a, pos) => (a === 'u02@x.test' ? (pos === 0 ? '452 4.2.2 Mailbox full' : '452 4.5.3 busy') : '250 ok') }, rc(3), 100);
  assert.deepEqual(o.status, { 'u01@x.test': 'accepted', 'u02@x.test': 'deferred:temporary_reply', 'u03@x.test': 'accepted' });
  assert.equal(o.transactions.length, 2);
});

test('Exim recipients_max_reject with a full mailbox inside the limit: only the full mailboxes bounce', () => {
  const addrs = rc(14);
  const quota = [addrs[4]!, addrs[11]!, addrs[13]!];
  // Exim counts every RCPT against recipients_max, refused or not, and refuses the data after a surplus.
  const model: Model = {
    rcpt: (a, pos) => (pos >= 10 ? '552 too many recipients' : quota.includes(a) ? '552 5.2.2 Mailbox full' : '250 Accepted'),
    dot: (acc, refused) => (acc.length + refused.length > 10 ? '554 Too many recipients' : '250 OK'),
  };
  const o = simulate(model, addrs, 100);
  const want = all(addrs, 'accepted');
  for (const q of quota) want[q] = 'failed:over_quota';
  assert.deepEqual(o.status, want);
});
