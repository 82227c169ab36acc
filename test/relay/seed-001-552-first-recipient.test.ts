// Seed 001 (MCIS, KB235316): ISPs answer 552 for "this recipient is over quota"; the
// sender read a 552 to the FIRST recipient as "too many recipients" and stormed the host
// resending. Here: a 552 with nothing accepted before it bounces that recipient alone,
// once, on one connection, and every other recipient is delivered exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startFaultServer } from '../peers/fault-server.ts';
import { engineFor, message, counterValue } from '../helpers/engine.ts';

const others = ['alice@example.com', 'bob@example.com', 'carol@example.com'];

for (const enhanced of [true, false]) {
  test(`552 to the first RCPT is that mailbox's quota (enhanced codes ${enhanced ? 'on' : 'off'})`, async (t) => {
    const server = await startFaultServer({ enhancedStatusCodes: enhanced });
    const { engine, metrics } = engineFor(server.port, { chunking: false });
    t.after(async () => { await engine.close(); await server.close(); });

    const results = await engine.deliver(message('s@relay.test', ['552-quota@example.com', ...others], 'Subject: q\r\n\r\nx\r\n'));
    const quota = results[0]!;
    assert.deepEqual(quota.verdict, { status: 'failed', reason: 'over_quota' });
    assert.equal(quota.reply?.code, 552);
    assert.match(quota.reply?.lines[0] ?? '', /Mailbox full/);
    assert.deepEqual(results.slice(1).map((r) => r.verdict.status), ['accepted', 'accepted', 'accepted']);

    // On the wire: one connection, one transaction; no storm of retries at the quota'd mailbox.
    assert.equal(server.connections.length, 1);
    assert.equal(server.transactions.length, 1);
    assert.deepEqual(server.transactions[0]!.rcptAccepted, others);
    assert.deepEqual([...server.deliveries()].map(([a, n]) => `${a}=${n}`).sort(), others.map((a) => `${a}=1`));
    assert.equal(await counterValue(metrics, 'mailrelay_rcpt_552_total', { class: 'mailbox' }), 1);
    assert.equal(await counterValue(metrics, 'mailrelay_rcpt_552_total', { class: 'too_many_recipients' }), 0);
    assert.equal(await counterValue(metrics, 'mailrelay_retries_total'), 0, 'nothing is retried');
  });
}

test('over-quota policy "retry" defers the 552 5.2.2 recipient instead of bouncing it', async (t) => {
  const server = await startFaultServer({});
  const { engine } = engineFor(server.port, { chunking: false, overQuotaPolicy: 'retry' });
  t.after(async () => { await engine.close(); await server.close(); });
  const [quota, ok] = await engine.deliver(message('s@relay.test', ['552-quota@example.com', 'alice@example.com'], 'x\r\n'));
  assert.deepEqual(quota!.verdict, { status: 'deferred', reason: 'temporary_reply', sameConnection: false });
  assert.equal(ok!.verdict.status, 'accepted');
});

test('a bare 552 after accepted recipients is read as "too many", then confirmed as quota as the first RCPT of its own transaction', async (t) => {
  // Without enhanced codes the two readings are indistinguishable at first; they converge.
  const server = await startFaultServer({ enhancedStatusCodes: false });
  const { engine, metrics } = engineFor(server.port, { chunking: false });
  t.after(async () => { await engine.close(); await server.close(); });
  const results = await engine.deliver(message('s@relay.test', ['alice@example.com', '552-quota@example.com', 'bob@example.com'], 'x\r\n'));
  assert.deepEqual(results.map((r) => r.verdict.status), ['accepted', 'failed', 'accepted']);
  assert.equal(results[1]!.reply?.code, 552);
  // Transaction 1 took alice+bob; transaction 2 had the quota'd mailbox alone and got 552 again.
  assert.deepEqual(server.transactions.map((tx) => [tx.rcptAccepted, tx.rcptRejected.map((r) => r.address)]), [
    [['alice@example.com', 'bob@example.com'], ['552-quota@example.com']],
    [[], ['552-quota@example.com']],
  ]);
  assert.equal(new Set(server.transactions.map((tx) => tx.connectionId)).size, 1, 'same connection');
  assert.equal(await counterValue(metrics, 'mailrelay_rcpt_552_total', { class: 'too_many_recipients' }), 1);
  assert.equal(await counterValue(metrics, 'mailrelay_rcpt_552_total', { class: 'mailbox' }), 1);
  assert.deepEqual([...server.deliveries().values()], [1, 1]);
});
