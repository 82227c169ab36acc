// Seed 003 (Exchange 5.5 SP3, Q260741): one mailbox's "552 mailbox quota limit exceeded"
// was stamped on every message of the batch and none was delivered. Here: a reply
// concerns only the recipient(s) it answers — across recipients, transactions and messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startFaultServer } from '../peers/fault-server.ts';
import { engineFor, message } from '../helpers/engine.ts';

test('a quota 552 for one recipient leaves every other recipient and message delivered', async (t) => {
  const server = await startFaultServer({});
  const { engine } = engineFor(server.port, { chunking: false, concurrencyPerDestination: 2 });
  t.after(async () => { await engine.close(); await server.close(); });
  const batch = Array.from({ length: 6 }, (_, i) => message('s@relay.test',
    i === 2 ? ['a2@example.com', '552-quota@example.com', 'b2@example.com'] : [`a${i}@example.com`, `b${i}@example.com`],
    `Subject: m${i}\r\n\r\nbody ${i}\r\n`, `m${i}`));
  const all = await Promise.all(batch.map((m) => engine.deliver(m)));
  const failed = all.flat().filter((r) => r.verdict.status !== 'accepted').map((r) => r.address);
  assert.deepEqual(failed, ['552-quota@example.com']);
  const d = server.deliveries();
  assert.equal(d.size, 12);
  assert.ok([...d.values()].every((n) => n === 1));
  // Each message's body reached exactly its own recipients.
  const m2 = server.transactions.find((tx) => tx.data?.toString().includes('body 2'));
  assert.deepEqual(m2?.rcptAccepted, ['a2@example.com', 'b2@example.com']);
});

test('a 5xx to the final dot fails only the recipients accepted in that transaction', async (t) => {
  const server = await startFaultServer({});
  const { engine } = engineFor(server.port, { chunking: false, maxRecipientsPerTransaction: 2 });
  t.after(async () => { await engine.close(); await server.close(); });
  const results = await engine.deliver(message('s@relay.test',
    ['data-554-x@example.com', '450-grey@example.com', 'y@example.com', 'c@example.com', 'd@example.com'], 'x\r\n'));
  assert.deepEqual(results.map((r) => `${r.address}:${r.verdict.status}:${r.reply?.code}`), [
    'data-554-x@example.com:failed:554',   // accepted, then the dot got 554
    '450-grey@example.com:deferred:450',   // its own RCPT reply, not the 554
    'y@example.com:accepted:250',          // the next transactions are unaffected
    'c@example.com:accepted:250',
    'd@example.com:accepted:250',
  ]);
  assert.deepEqual(server.transactions.map((tx) => tx.dataReply?.slice(0, 3)), ['554', '250', '250']);
});

test('a 5xx to the final dot is not stamped on recipients of other transactions', async (t) => {
  const server = await startFaultServer({ maxRecipientsPerTransaction: 2, limitReply: '452 4.5.3 Too many recipients' });
  const { engine } = engineFor(server.port, { chunking: false });
  t.after(async () => { await engine.close(); await server.close(); });
  // First transaction: b and c accepted, the third is "too many" and goes first into the
  // second transaction, whose dot gets 554: that fails it alone.
  const results = await engine.deliver(message('s@relay.test', ['b@example.com', 'c@example.com', 'data-554-a@example.com'], 'x\r\n'));
  assert.deepEqual(results.map((r) => r.verdict.status), ['accepted', 'accepted', 'failed']);
  assert.deepEqual([...server.deliveries().keys()], ['b@example.com', 'c@example.com']);
  assert.deepEqual(server.transactions.map((tx) => tx.rcptAccepted), [['b@example.com', 'c@example.com'], ['data-554-a@example.com']]);
});
