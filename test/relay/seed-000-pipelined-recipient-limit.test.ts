// Seed 000 (Windows Server 2003 SMTP): pipelined RCPTs beyond the receiving server's
// recipient limit got 552s, the sender mis-tracked them and bounced real recipients.
// Here: 35 recipients to a server that takes 10 per transaction -> 4 transactions on one
// connection, 35 deliveries, 0 bounces, no recipient delivered twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startFaultServer } from '../peers/fault-server.ts';
import { engineFor, message, counterValue } from '../helpers/engine.ts';

const rcpts = Array.from({ length: 35 }, (_, i) => `user${i}@example.com`);

for (const limitReply of ['452 4.5.3 Too many recipients', '552 5.5.3 Too many recipients', '552 Too many recipients', '452 Too many recipients']) {
  for (const pipelining of [true, false]) {
    test(`35 recipients, limit 10 answered "${limitReply}", pipelining ${pipelining ? 'on' : 'off'}`, async (t) => {
      const server = await startFaultServer({ maxRecipientsPerTransaction: 10, limitReply, pipelining, enhancedStatusCodes: /\d\.\d\.\d/.test(limitReply) });
      const { engine, metrics } = engineFor(server.port, { chunking: false });
      t.after(async () => { await engine.close(); await server.close(); });

      const results = await engine.deliver(message('sender@relay.test', rcpts, 'Subject: hi\r\n\r\nbody\r\n'));
      assert.equal(results.length, 35);
      assert.deepEqual(results.filter((r) => r.verdict.status !== 'accepted').map((r) => `${r.address} ${r.verdict.status}`), []);

      // On the wire: 4 transactions of 10, 10, 10, 5 on ONE connection, every recipient exactly once.
      assert.deepEqual(server.transactions.map((tx) => tx.rcptAccepted.length), [10, 10, 10, 5]);
      assert.equal(new Set(server.transactions.map((tx) => tx.connectionId)).size, 1);
      const deliveries = server.deliveries();
      assert.equal(deliveries.size, 35);
      assert.deepEqual([...deliveries.values()].filter((n) => n !== 1), [], 'no recipient delivered twice');
      assert.equal(engine.learnedLimits().get('[smarthost]'), 10);

      // The limit was learned after the first transaction: later messages split at 10 up front.
      const again = await engine.deliver(message('sender@relay.test', rcpts.slice(0, 25), 'Subject: 2\r\n\r\nx\r\n'));
      assert.ok(again.every((r) => r.verdict.status === 'accepted'));
      assert.deepEqual(server.transactions.slice(4).map((tx) => tx.rcptAccepted.length), [10, 10, 5]);
      assert.deepEqual(server.transactions.slice(4).map((tx) => tx.rcptRejected.length), [0, 0, 0], 'no more "too many" once learned');

      if (limitReply.startsWith('552')) {
        assert.equal(await counterValue(metrics, 'mailrelay_rcpt_552_total', { class: 'too_many_recipients' }), pipelining ? 25 : 1, 'pipelined: all 25 beyond the limit; lock-step stops at the first');
        assert.equal(await counterValue(metrics, 'mailrelay_rcpt_552_total', { class: 'mailbox' }), 0);
      }
      assert.ok(await counterValue(metrics, 'mailrelay_retries_total', { reason: 'too_many_recipients' }) > 0);
    });
  }
}
