// The seeds end to end through the whole relay: submit with nodemailer and with swaks
// (Debian's, nobody here wrote it), deliver through the relay to the fault-injecting peer,
// and check per recipient: delivered once, deferred then delivered, or bounced with a DSN
// that quotes the remote reply. Then scrape /metrics and match it against what the peer saw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import nodemailer from 'nodemailer';
import { startFaultServer, type FaultServer } from '../peers/fault-server.ts';
import { startTestRelay, scrape } from '../helpers/relay.ts';

const run = promisify(execFile);

async function submit(port: number, from: string, to: string[], text: string) {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  const info = await t.sendMail({ from, to, subject: 'e2e', text, envelope: { from, to } });
  t.close();
  return info;
}

const bounceFor = (peer: FaultServer, sender: string) =>
  peer.transactions.filter((tx) => tx.from === '' && tx.rcptAccepted.includes(sender) && tx.data !== undefined);

test('seeds end to end: limit, quota, tempfail, dot-lines; DSN quotes the remote reply; metrics match the wire', async (t) => {
  const peer = await startFaultServer({ maxRecipientsPerTransaction: 10, limitReply: '552 5.5.3 Too many recipients' });
  const relay = await startTestRelay(peer.port, { delivery: { chunking: false } });
  t.after(async () => { await relay.close(); await peer.close(); });

  // Seed 000: 35 recipients against a limit of 10, submitted with nodemailer.
  const many = Array.from({ length: 35 }, (_, i) => `u${i}@example.com`);
  const info = await submit(relay.smtpPort, 'alice@relay.test', many, 'hello\n.\n..dots\n');
  assert.match(info.response, /^250 2\.0\.0/);
  // Seed 001/003 + a temporary failure: submitted with swaks.
  const swaks = await run('swaks', [
    '--server', `127.0.0.1:${relay.smtpPort}`, '--from', 'bob@relay.test',
    '--to', '552-quota@example.com,tempfail-once-carol@example.com,dave@example.com',
    '--header', 'Subject: swaks e2e', '--body', '.leading dot line\n.\nend', '--hide-all', '--silent', '3',
  ]);
  assert.equal(swaks.stderr, '');

  await peer.waitFor((p) => {
    const d = p.deliveries();
    return many.every((a) => d.get(a) === 1) && d.get('tempfail-once-carol@example.com') === 1 && d.get('dave@example.com') === 1
      && bounceFor(p, 'bob@relay.test').length === 1;
  }, 20_000, 'every recipient settled');

  const d = peer.deliveries();
  assert.deepEqual([...d.entries()].filter(([, n]) => n !== 1), [], 'no recipient got a second copy');
  assert.equal(d.has('552-quota@example.com'), false);
  const bounce = bounceFor(peer, 'bob@relay.test')[0]!.data!.toString();
  assert.match(bounce, /Content-Type: multipart\/report; report-type=delivery-status/i);
  assert.match(bounce, /Final-Recipient: rfc822; ?552-quota@example\.com/i);
  assert.match(bounce, /Diagnostic-Code: smtp; 552 5\.2\.2 Mailbox full, quota exceeded/);
  assert.match(bounce, /Action: failed/);
  assert.equal(bounceFor(peer, 'alice@relay.test').length, 0, 'no bounce for the recipient-limit message');
  // The body with dot-lines arrived intact.
  const dotsMsg = peer.transactions.find((tx) => tx.rcptAccepted.includes('u0@example.com'))!;
  assert.match(dotsMsg.data!.toString(), /\r\nhello\r\n\.\r\n\.\.dots\r\n$/);
  assert.match(dotsMsg.data!.toString(), /^Received: from /, 'a Received header was added on the way in');

  // Metrics, scraped over HTTP, agree with the peer.
  const m = (n: string, l: Record<string, string> = {}) => scrape(relay.httpPort, n, l);
  assert.equal(await m('mailrelay_rcpt_552_total', { class: 'too_many_recipients' }), 25);
  assert.equal(await m('mailrelay_rcpt_552_total', { class: 'mailbox' }), 1);
  assert.ok(await m('mailrelay_retries_total', { reason: 'too_many_recipients' }) >= 25);
  assert.equal(await m('mailrelay_retries_total', { reason: 'temporary_reply' }), 1);
  assert.equal(await m('mailrelay_recipients_total', { outcome: 'bounced' }), 1, 'only the quota mailbox bounced');
  assert.equal(await m('mailrelay_recipients_total', { outcome: 'delivered' }), 35 + 2, 'the 37 recipients of the users\' mail');
  assert.equal(await m('mailrelay_dsn_recipients_total', { outcome: 'delivered' }), 1, 'the bounce notice, counted apart');
  assert.equal(await m('mailrelay_inbound_messages_total', { result: 'accepted' }), 2);
  assert.equal(await m('mailrelay_dsn_total', { type: 'bounce' }), 1);
  assert.ok(await m('mailrelay_partial_deliveries_total') >= 1);
  assert.equal(await m('mailrelay_smtp_replies_total', { command: 'rcpt', code: '552' }), 26);
});

test('open relay: a client outside relayNetworks cannot relay', async (t) => {
  const peer = await startFaultServer({});
  const relay = await startTestRelay(peer.port, { inbound: { relayNetworks: ['127.0.0.1/32'] } });
  t.after(async () => { await relay.close(); await peer.close(); });
  const tr = nodemailer.createTransport({ host: '127.0.0.1', port: relay.smtpPort, ignoreTLS: true, localAddress: '127.0.0.2' });
  await assert.rejects(tr.sendMail({ from: 'x@evil.test', to: 'victim@example.com', text: 'spam' }), (err: Error & { responseCode?: number; response?: string }) => {
    assert.ok(err.responseCode === 554 || err.responseCode === 550, String(err.responseCode));
    assert.match(err.response ?? '', /5\.7\.1/);
    return true;
  });
  tr.close();
  assert.equal(relay.spool.size, 0);
  assert.equal(peer.transactions.length, 0);
});

test('health endpoints, and a drain refuses new sessions with 421', async (t) => {
  const peer = await startFaultServer({});
  const relay = await startTestRelay(peer.port);
  t.after(async () => { await relay.close(); await peer.close(); });
  assert.equal((await fetch(`http://127.0.0.1:${relay.httpPort}/healthz`)).status, 200);
  assert.equal((await fetch(`http://127.0.0.1:${relay.httpPort}/readyz`)).status, 200);
  const port = relay.smtpPort;
  const draining = relay.drain(3000);
  await assert.rejects(submit(port, 'a@relay.test', ['b@example.com'], 'late'), /421|ECONNREFUSED|ECONNRESET|closed/);
  await draining;
});

test('DSN parameters (RFC 3461) pass from inbound to outbound when the next hop offers DSN', async (t) => {
  const peer = await startFaultServer({ dsn: true });
  const relay = await startTestRelay(peer.port, { delivery: { chunking: false } });
  t.after(async () => { await relay.close(); await peer.close(); });
  const tr = nodemailer.createTransport({ host: '127.0.0.1', port: relay.smtpPort, ignoreTLS: true });
  await tr.sendMail({
    from: 'a@relay.test', to: 'x@example.com', text: 'dsn',
    dsn: { id: 'env-42', return: 'headers', notify: ['failure', 'delay'], recipient: 'orig@example.com' },
  });
  tr.close();
  await peer.waitFor((p) => p.deliveries().has('x@example.com'), 10_000);
  const cmds = peer.connections.flatMap((c) => c.commands);
  const mail = cmds.find((c) => c.startsWith('MAIL FROM:<a@relay.test>'))!;
  const rcpt = cmds.find((c) => c.startsWith('RCPT TO:<x@example.com>'))!;
  assert.match(mail, / RET=HDRS/);
  assert.match(mail, / ENVID=env-42/);
  assert.match(rcpt, / NOTIFY=FAILURE,DELAY/);
  assert.match(rcpt, / ORCPT=rfc822;orig@example\.com/i);
});
