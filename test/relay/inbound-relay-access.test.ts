// Never an open relay: a client outside inbound.relayNetworks gets 554 5.7.1 at RCPT
// unless it authenticated; with no relayNetworks configured nobody relays unauthenticated.
// The client is bound to 127.0.0.2 (nodemailer's localAddress, swaks --local-interface)
// while only 127.0.0.1/32 may relay.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import nodemailer from 'nodemailer';
import { startTestInbound, writeUsersFile } from '../helpers/inbound.ts';
import { connectWire } from '../peers/wire-client.ts';

function swaks(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('swaks', args, { timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, out: `${stdout}${stderr}` });
    });
  });
}

test('nodemailer from 127.0.0.2 (outside relayNetworks) gets 554 5.7.1 Relay access denied; nothing is stored', async () => {
  const t = await startTestInbound({ relayNetworks: ['127.0.0.1/32'] });
  try {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: t.port, ignoreTLS: true, localAddress: '127.0.0.2' });
    await assert.rejects(
      transport.sendMail({ envelope: { from: 'a@example.com', to: ['b@example.org'] }, raw: 'Subject: x\r\n\r\nbody\r\n' }),
      (err: { responseCode?: number; response?: string; rejectedErrors?: { response?: string }[] }) => {
        const reply = err.response ?? err.rejectedErrors?.[0]?.response;
        assert.equal(reply, '554 5.7.1 Relay access denied');
        return true;
      },
    );
    transport.close();
    assert.equal(t.sink.messages.length, 0);
    const denied = t.logs.find((l) => l.reason === 'relay_denied');
    assert.equal(denied?.client, '127.0.0.2');
    assert.equal(denied?.rcpt, 'b@example.org');
    assert.equal((await t.metrics.inboundRejections.get()).values.find((v) => v.labels.code === '554')?.value, 1);
  } finally {
    await t.close();
  }
});

test('swaks --local-interface 127.0.0.2 is denied at RCPT; from 127.0.0.1 the same message is relayed', async () => {
  const t = await startTestInbound({ relayNetworks: ['127.0.0.1/32'] });
  try {
    const base = ['--server', '127.0.0.1', '--port', String(t.port), '--helo', 'swaks.test', '--from', 'a@example.com', '--to', 'b@example.org'];
    const denied = await swaks([...base, '--local-interface', '127.0.0.2']);
    assert.notEqual(denied.code, 0);
    assert.match(denied.out, /<\*\* 554 5\.7\.1 Relay access denied/);
    assert.equal(t.sink.messages.length, 0);
    const allowed = await swaks([...base, '--local-interface', '127.0.0.1']);
    assert.equal(allowed.code, 0, allowed.out);
    assert.equal(t.sink.messages.length, 1);
  } finally {
    await t.close();
  }
});

test('an authenticated client relays from outside relayNetworks (swaks AUTH PLAIN over loopback plaintext)', async () => {
  const users = writeUsersFile({ alice: 'correct horse' });
  const t = await startTestInbound({ relayNetworks: ['127.0.0.1/32'], authUsersFile: users.file });
  try {
    const r = await swaks([
      '--server', '127.0.0.1', '--port', String(t.port), '--helo', 'swaks.test', '--local-interface', '127.0.0.2',
      '--from', 'a@example.com', '--to', 'b@example.org',
      '--auth', 'PLAIN', '--auth-user', 'alice', '--auth-password', 'correct horse',
    ]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /<- {2}235 2\.7\.0 Authentication successful/);
    assert.equal(t.sink.messages[0]?.envelope.authUser, 'alice');
    assert.equal(t.sink.messages[0]?.envelope.clientAddress, '127.0.0.2');
    assert.match(t.sink.messages[0]?.body.toString() ?? '', /with ESMTPA id /);
  } finally {
    await t.close();
    users.cleanup();
  }
});

test('relayNetworks defaults to none: even 127.0.0.1 is denied without AUTH', async () => {
  const t = await startTestInbound({ relayNetworks: [] });
  try {
    const c = await connectWire(t.port);
    assert.match(await c.readReply(), /^220 /);
    await c.command('EHLO client.example');
    assert.equal(await c.command('MAIL FROM:<a@example.com>'), '250 2.1.0 Accepted');
    assert.equal(await c.command('RCPT TO:<b@example.org>'), '554 5.7.1 Relay access denied');
    assert.equal(await c.command('DATA'), '503 5.5.1 Error: need RCPT command');
    c.destroy();
    assert.equal(t.sink.messages.length, 0);
  } finally {
    await t.close();
  }
});
