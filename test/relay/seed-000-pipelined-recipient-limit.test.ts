// Seed 000 (Windows Server 2003 SMTP): pipelined RCPTs beyond the receiving server's
// recipient limit got 552s, the sender mis-tracked them and bounced real recipients.
// Here: 35 recipients to a server that takes 10 per transaction -> 4 transactions on one
// connection, 35 deliveries, 0 bounces, no recipient delivered twice.
import { test } from 'node:test';
import { SMTPServer } from 'smtp-server';
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

// Issue 10: smtp-server written the way an application would, errors with a responseCode,
// ENHANCEDSTATUSCODES shown. smtp-server puts its own default enhanced code in front of the
// text, so a limit of 10 reaches the wire as "552 5.2.2 Too many recipients": the 5.2.2
// looks like "mailbox full" (Postfix 3.7 bounces on it). Nothing may bounce.
for (const [code, text, wire] of [
  [552, 'Too many recipients', '552 5.2.2 Too many recipients'],
  [552, '5.5.3 Too many recipients', '552 5.2.2 5.5.3 Too many recipients'],
  [452, '4.5.3 Too many recipients', '452 4.2.2 4.5.3 Too many recipients'],
] as const) {
  for (const pipelining of [true, false]) {
    test(`smtp-server next hop answering "${wire}" past 10 recipients, pipelining ${pipelining ? 'on' : 'off'}: 35 delivered, none bounced`, async (t) => {
      const txs: { rcpts: string[]; data: boolean }[] = [];
      const replies: string[] = [];
      let connections = 0;
      const server = new SMTPServer({
        authOptional: true, disabledCommands: ['AUTH', 'STARTTLS'], hideENHANCEDSTATUSCODES: false, hidePIPELINING: !pipelining,
        disableReverseLookup: true,
        logger: { info() {}, warn() {}, error() {}, trace() {}, fatal() {}, debug(e: { tnx?: string } | undefined, m?: string, p?: unknown) { if (e?.tnx === 'send' && m === 'S:') replies.push(String(p)); } } as never,
        onConnect(_s, cb) { connections++; cb(); },
        onMailFrom(_a, _s, cb) { txs.push({ rcpts: [], data: false }); cb(); },
        onRcptTo(a, session, cb) {
          if (session.envelope.rcptTo.length >= 10) return cb(Object.assign(new Error(text), { responseCode: code }));
          txs.at(-1)!.rcpts.push(a.address);
          cb();
        },
        onData(stream, _s, cb) { stream.resume(); stream.on('end', () => { txs.at(-1)!.data = true; cb(); }); },
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const port = (server.server.address() as { port: number }).port;
      const { engine, metrics } = engineFor(port, { chunking: false, pipelining });
      t.after(async () => { await engine.close(); await new Promise<void>((r) => server.close(() => r())); });

      const results = await engine.deliver(message('sender@relay.test', rcpts, 'Subject: hi\r\n\r\nbody\r\n'));
      assert.ok(replies.includes(wire), `the wire carried "${wire}" (saw ${[...new Set(replies.filter((x) => /^[45]/.test(x)))].join(' | ')})`);
      assert.deepEqual(results.filter((r) => r.verdict.status !== 'accepted').map((r) => `${r.address} ${r.verdict.status}`), [], 'no false bounce, nothing deferred');
      assert.deepEqual(txs.filter((x) => x.data).map((x) => x.rcpts.length), [10, 10, 10, 5]);
      assert.equal(connections, 1);
      const delivered = txs.filter((x) => x.data).flatMap((x) => x.rcpts);
      assert.deepEqual([...delivered].sort(), [...rcpts].sort(), 'every recipient exactly once');
      assert.equal(engine.learnedLimits().get('[smarthost]'), 10);
      assert.equal(await counterValue(metrics, 'mailrelay_rcpt_552_total', { class: 'mailbox' }), 0);
    });
  }
}
