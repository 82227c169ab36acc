// Issue 10: recipients of one message deferred together are retried together. With a retry
// jitter per recipient, 2 messages × 2 recipients deferred once reached the next hop as 4
// transactions on the retry, one per recipient. Counted on the wire, at the next hop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import nodemailer from 'nodemailer';
import { startFaultServer } from '../peers/fault-server.ts';
import { startTestRelay } from '../helpers/relay.ts';

test('2 messages × 2 recipients deferred once are retried as 2 transactions, each with both recipients', async (t) => {
  const server = await startFaultServer({});
  // A wide jitter: each recipient drawing its own would scatter them over 0.5-1.5 s.
  const relay = await startTestRelay(server.port, { delivery: { retry: { schedule: [1], jitter: 0.5, maxAge: 3600 } } });
  t.after(async () => { await relay.close(); await server.close(); });
  const tr = nodemailer.createTransport({ host: '127.0.0.1', port: relay.smtpPort, secure: false, ignoreTLS: true });
  for (const n of [1, 2]) {
    const to = [`tempfail-once-a${n}@example.com`, `tempfail-once-b${n}@example.com`];
    await tr.sendMail({ envelope: { from: 's@relay.test', to }, raw: `Subject: m${n}\r\nMessage-ID: <m${n}@relay.test>\r\n\r\nbody ${n}\r\n` });
  }
  tr.close();
  await server.waitFor((s) => s.deliveries().size === 4, 15_000, 'all four recipients delivered');
  await new Promise((r) => setTimeout(r, 300));
  const delivering = server.transactions.filter((tx) => tx.dataReply?.startsWith('250'));
  // The two messages draw their own jitter, so either may be retried first.
  assert.deepEqual(delivering.map((tx) => [...tx.rcptAccepted].sort()).sort((x, y) => x[0]!.localeCompare(y[0]!)), [
    ['tempfail-once-a1@example.com', 'tempfail-once-b1@example.com'],
    ['tempfail-once-a2@example.com', 'tempfail-once-b2@example.com'],
  ]);
  // First attempt: one refused transaction per message; the retry: one per message.
  assert.equal(server.transactions.length, 4);
  assert.ok([...server.deliveries().values()].every((n) => n === 1));
});
