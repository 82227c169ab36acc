// SMTP AUTH with a bcrypt users file over STARTTLS (RFC 3207, RFC 4954). The password
// only ever crosses TLS: for a non-local client AUTH is neither offered nor accepted
// before STARTTLS (RFC 4954 §4). Wrong credentials get 535 5.7.8; repeated failures end
// the session.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import nodemailer from 'nodemailer';
import { startTestInbound, writeTlsFiles, writeUsersFile } from '../helpers/inbound.ts';
import { waitFor } from '../peers/wait.ts';
import { connectWire } from '../peers/wire-client.ts';

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');

async function withServer(fn: (t: Awaited<ReturnType<typeof startTestInbound>>) => Promise<void>): Promise<void> {
  const tls = writeTlsFiles();
  const users = writeUsersFile({ alice: 'correct horse', bob: 'battery staple' });
  // Not in relayNetworks, and treated as remote so that requireTlsForAuth applies on loopback.
  const t = await startTestInbound(
    { relayNetworks: [], tls: { certFile: tls.certFile, keyFile: tls.keyFile }, authUsersFile: users.file, requireTlsForAuth: true },
    { isLocalClient: () => false },
  );
  try {
    await fn(t);
  } finally {
    await t.close();
    tls.cleanup();
    users.cleanup();
  }
}

test('nodemailer authenticates over STARTTLS and relays; the Received header says ESMTPSA and names the TLS version', async () => {
  await withServer(async (t) => {
    const transport = nodemailer.createTransport({
      host: '127.0.0.1', port: t.port, requireTLS: true, tls: { rejectUnauthorized: false },
      auth: { user: 'alice', pass: 'correct horse' },
    });
    const info = await transport.sendMail({ envelope: { from: 'alice@example.com', to: ['x@example.org'] }, raw: 'Subject: tls\r\n\r\nsecret\r\n' });
    transport.close();
    assert.match(info.response, /^250 2\.0\.0 Ok: queued as MEM1$/);
    const m = t.sink.messages[0];
    assert.equal(m?.envelope.authUser, 'alice');
    assert.match(m?.body.toString() ?? '', /^Received: from \S+ \(\[127\.0\.0\.1\]\)\r\n\t\(using TLSv1\.[23] with cipher \S+\)\r\n\tby relay\.test \(mailrelay\) with ESMTPSA id /);
  });
});

test('before STARTTLS AUTH is not offered and refused; after STARTTLS it is offered; a wrong password is 535 5.7.8', async () => {
  await withServer(async (t) => {
    const c = await connectWire(t.port);
    assert.match(await c.readReply(), /^220 relay\.test ESMTP/);
    const plainEhlo = await c.command('EHLO client.example');
    assert.match(plainEhlo, /250-STARTTLS/);
    assert.doesNotMatch(plainEhlo, /AUTH/);
    assert.match(await c.command(`AUTH PLAIN ${b64('\0alice\0correct horse')}`), /^5\d\d 5\.\d+\.\d+ /);
    assert.equal(await c.command('STARTTLS'), '220 2.0.0 Ready to start TLS');
    await c.startTls();
    const tlsEhlo = await c.command('EHLO client.example');
    assert.match(tlsEhlo, /250-AUTH PLAIN LOGIN/);
    assert.doesNotMatch(tlsEhlo, /STARTTLS/);
    assert.equal(await c.command(`AUTH PLAIN ${b64('\0alice\0wrong')}`), '535 5.7.8 Authentication credentials invalid');
    // Unauthenticated, outside relayNetworks: relaying is still denied.
    assert.equal(await c.command('MAIL FROM:<alice@example.com>'), '250 2.1.0 Accepted');
    assert.equal(await c.command('RCPT TO:<x@example.org>'), '554 5.7.1 Relay access denied');
    assert.equal(await c.command('RSET'), '250 2.0.0 Flushed');
    // AUTH LOGIN with the right password.
    assert.equal(await c.command('AUTH LOGIN'), '334 VXNlcm5hbWU6');
    assert.equal(await c.command(b64('bob')), '334 UGFzc3dvcmQ6');
    assert.equal(await c.command(b64('battery staple')), '235 2.7.0 Authentication successful');
    assert.equal(await c.command('MAIL FROM:<bob@example.com>'), '250 2.1.0 Accepted');
    assert.equal(await c.command('RCPT TO:<x@example.org>'), '250 2.1.5 Accepted');
    assert.equal(await c.command('QUIT'), '221 2.0.0 Bye');
    const failed = t.logs.filter((l) => l.reason === 'auth_failed');
    assert.equal(failed.length, 1);
    assert.equal(failed[0]?.user, 'alice');
    assert.ok(!JSON.stringify(t.logs).includes('wrong'), 'passwords never reach the log');
  });
});

test('PLAIN with an authzid other than the authcid is refused; the third failure ends the session with 421 4.7.0', async () => {
  await withServer(async (t) => {
    const c = await connectWire(t.port);
    await c.readReply();
    await c.command('EHLO client.example');
    await c.command('STARTTLS');
    await c.startTls();
    await c.command('EHLO client.example');
    assert.equal(await c.command(`AUTH PLAIN ${b64('bob\0alice\0correct horse')}`), '535 5.7.8 Authentication credentials invalid');
    assert.equal(await c.command(`AUTH PLAIN ${b64('\0nobody\0x')}`), '535 5.7.8 Authentication credentials invalid');
    assert.equal(await c.command(`AUTH PLAIN ${b64('\0alice\0nope')}`), '421 4.7.0 Too many authentication failures');
    await c.closed();
    await waitFor(() => t.server.sessions() === 0, 5000, 'the session to be released');
  });
});
