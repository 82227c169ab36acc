// Issue 10: a bounce notice that bounces is not a second bounce of the user's mail. The
// bounce-ratio alert reads mailrelay_recipients_total{outcome="bounced"}; notices (null
// reverse-path) are counted in mailrelay_dsn_recipients_total instead.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import nodemailer from 'nodemailer';
import { startFaultServer } from '../peers/fault-server.ts';
import { scrape, startTestRelay } from '../helpers/relay.ts';

test('a message bounced for 3 mailboxes, whose notice bounces too, counts 3 bounces, and the notice apart', async (t) => {
  const server = await startFaultServer({});
  const relay = await startTestRelay(server.port, { log: { level: 'error' } });
  t.after(async () => { await relay.close(); await server.close(); });
  const tr = nodemailer.createTransport({ host: '127.0.0.1', port: relay.smtpPort, secure: false, ignoreTLS: true });
  // The sender's own mailbox refuses mail (550), so the bounce notice to it bounces as well.
  await tr.sendMail({
    envelope: { from: '550-gone@example.com', to: ['550-a@example.com', '550-b@example.com', '550-c@example.com', 'ok@example.com'] },
    raw: 'Subject: x\r\nMessage-ID: <b1@relay.test>\r\n\r\nbody\r\n',
  });
  tr.close();
  const deadline = Date.now() + 10_000;
  while ((relay.spool.size > 0 || await scrape(relay.httpPort, 'mailrelay_dsn_recipients_total', { outcome: 'bounced' }) < 1) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(await scrape(relay.httpPort, 'mailrelay_recipients_total', { outcome: 'bounced' }), 3);
  assert.equal(await scrape(relay.httpPort, 'mailrelay_recipients_total', { outcome: 'delivered' }), 1);
  assert.equal(await scrape(relay.httpPort, 'mailrelay_dsn_recipients_total', { outcome: 'bounced' }), 1);
  assert.equal(await scrape(relay.httpPort, 'mailrelay_dsn_total', { type: 'bounce' }), 1);
  // On the wire: the notice was offered to the sender's mailbox once (null sender), refused.
  const notices = server.transactions.filter((tx) => tx.from === '');
  assert.equal(notices.length, 1);
  assert.deepEqual(notices[0]!.rcptRejected.map((r) => r.address), ['550-gone@example.com']);
});
