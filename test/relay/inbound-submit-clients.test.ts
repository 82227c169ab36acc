// Two independent clients (nodemailer, and Debian's swaks) submit to the inbound listener
// from a relay network: the message reaches the sink with its envelope, a Received header
// (RFC 5321 §4.4) is prepended, and the client only hears 250 with the sink's queue id.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import nodemailer from 'nodemailer';
import { startTestInbound } from '../helpers/inbound.ts';

/** Runs swaks; resolves with its exit code and transcript. */
function swaks(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('swaks', args, { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? Number((err as { code?: unknown }).code ?? 1) : 0;
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

test('nodemailer submits from a relay network: stored with envelope and a Received header, 250 names the queue id', async () => {
  const t = await startTestInbound({}, { now: () => Date.UTC(2025, 10, 25, 10, 0, 0) });
  try {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: t.port, secure: false, ignoreTLS: true, name: 'client.example' });
    const info = await transport.sendMail({
      envelope: { from: 'sender@example.com', to: ['rcpt@example.org'] },
      from: 'sender@example.com', to: 'rcpt@example.org', subject: 'hello', text: 'body line\n.leading dot\n',
    });
    transport.close();
    assert.equal(t.sink.messages.length, 1);
    const m = t.sink.messages[0];
    assert.ok(m);
    assert.match(info.response, new RegExp(`^250 2\\.0\\.0 Ok: queued as ${m.id}$`));
    assert.deepEqual(m.envelope, {
      from: 'sender@example.com',
      recipients: [{ address: 'rcpt@example.org' }],
      receivedAt: Date.UTC(2025, 10, 25, 10, 0, 0),
      clientAddress: '127.0.0.1',
      heloName: 'client.example',
      bodyType: '7BIT',
    });
    const text = m.body.toString('utf8');
    assert.match(text, /^Received: from client\.example \(\[127\.0\.0\.1\]\)\r\n\tby relay\.test \(mailrelay\) with ESMTP id [0-9a-z]+\.1\r\n\tfor <rcpt@example\.org>; Tue, 25 Nov 2025 10:00:00 \+0000\r\nFrom: sender@example\.com\r\n/);
    assert.match(text, /\r\nSubject: hello\r\n/);
    assert.match(text, /\r\n\.leading dot\r\n/, 'the dot-stuffed line arrives unstuffed');
    const accepted = (await t.metrics.inboundMessages.get()).values.find((v) => v.labels.result === 'accepted');
    assert.equal(accepted?.value, 1);
    assert.equal((await t.metrics.inboundBytes.get()).values[0]?.value, m.body.length);
    const line = t.logs.find((l) => l.msg === 'message accepted');
    assert.equal(line?.queueId, m.id);
    assert.equal(line?.client, '127.0.0.1');
    assert.equal(line?.from, 'sender@example.com');
    assert.equal(line?.recipients, 1);
    assert.equal(line?.size, m.body.length);
  } finally {
    await t.close();
  }
});

test('swaks submits from a relay network and gets 250 2.0.0 with the queue id', async () => {
  const t = await startTestInbound();
  try {
    const r = await swaks([
      '--server', '127.0.0.1', '--port', String(t.port), '--helo', 'swaks.test',
      '--from', 'sender@example.com', '--to', 'one@example.org,two@example.net', '--body', 'hello from swaks',
    ]);
    assert.equal(r.code, 0, r.out);
    assert.equal(t.sink.messages.length, 1);
    const m = t.sink.messages[0];
    assert.ok(m);
    assert.match(r.out, new RegExp(`<- {2}250 2\\.0\\.0 Ok: queued as ${m.id}\\n`));
    assert.deepEqual(m.envelope.recipients, [{ address: 'one@example.org' }, { address: 'two@example.net' }]);
    const text = m.body.toString('utf8');
    // Two recipients: no For clause, it would tell each about the other (RFC 5321 §7.2).
    assert.match(text, /^Received: from swaks\.test \(\[127\.0\.0\.1\]\)\r\n\tby relay\.test \(mailrelay\) with ESMTP id \S+; [^\r\n]+\r\nDate: /);
    assert.match(text, /\r\nhello from swaks\r\n/);
  } finally {
    await t.close();
  }
});
