// RFC 3461 DSN parameters reach the envelope: RET and ENVID from MAIL, NOTIFY and ORCPT
// from each RCPT (xtext-decoded), plus SMTPUTF8 and BODY=8BITMIME (RFC 6531, RFC 6152).
// Losing them would make the relay send bounces nobody asked for, or none that were.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import nodemailer from 'nodemailer';
import { startTestInbound } from '../helpers/inbound.ts';
import { connectWire } from '../peers/wire-client.ts';

test('nodemailer dsn options arrive as RET, ENVID, NOTIFY and ORCPT on the envelope', async () => {
  const t = await startTestInbound();
  try {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: t.port, ignoreTLS: true });
    await transport.sendMail({
      envelope: { from: 'a@example.com', to: ['b@example.org'] },
      raw: 'Subject: dsn\r\n\r\nx\r\n',
      dsn: { id: 'env id+1', return: 'headers', notify: ['success', 'failure'], recipient: 'orig@example.org' },
    });
    transport.close();
    const env = t.sink.messages[0]?.envelope;
    assert.equal(env?.ret, 'HDRS');
    assert.equal(env?.envid, 'env id+1');
    assert.deepEqual(env?.recipients, [{ address: 'b@example.org', notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;orig@example.org' }]);
  } finally {
    await t.close();
  }
});

test('raw DSN, SMTPUTF8 and 8BITMIME parameters, per recipient; bad NOTIFY is refused with 501 5.5.4', async () => {
  const t = await startTestInbound();
  const c = await connectWire(t.port);
  try {
    await c.readReply();
    await c.command('EHLO client.example');
    assert.equal(await c.command('MAIL FROM:<a@example.com> RET=FULL ENVID=QQ+2B123 BODY=8BITMIME SMTPUTF8'), '250 2.1.0 Accepted');
    assert.equal(await c.command('RCPT TO:<one@example.org> NOTIFY=NEVER'), '250 2.1.5 Accepted');
    assert.equal(await c.command('RCPT TO:<two@example.org> NOTIFY=DELAY,FAILURE ORCPT=rfc822;Two+2Bx@example.org'), '250 2.1.5 Accepted');
    assert.equal(await c.command('RCPT TO:<jöran@bücher.example>'), '250 2.1.5 Accepted');
    assert.equal(await c.command('RCPT TO:<three@example.org> NOTIFY=NEVER,SUCCESS'), '501 5.5.4 Error: NOTIFY=NEVER cannot be combined with other values');
    assert.match(await c.command('DATA'), /^354 /);
    c.write('Subject: caf\u00e9\r\n\r\n8bit \u00e9\r\n.\r\n');
    assert.equal(await c.readReply(), '250 2.0.0 Ok: queued as MEM1');
    const env = t.sink.messages[0]?.envelope;
    assert.equal(env?.ret, 'FULL');
    assert.equal(env?.envid, 'QQ+123');
    assert.equal(env?.smtputf8, true);
    assert.equal(env?.bodyType, '8BITMIME');
    assert.deepEqual(env?.recipients, [
      { address: 'one@example.org', notify: ['NEVER'] },
      { address: 'two@example.org', notify: ['DELAY', 'FAILURE'], orcpt: 'rfc822;Two+x@example.org' },
      { address: 'jöran@xn--bcher-kva.example' },
    ]);
  } finally {
    c.destroy();
    await t.close();
  }
});

test('without SMTPUTF8 a non-ASCII local part is refused with 553 5.6.7; the domain is stored as A-labels', async () => {
  const t = await startTestInbound();
  const c = await connectWire(t.port);
  try {
    await c.readReply();
    await c.command('EHLO client.example');
    assert.equal(await c.command('MAIL FROM:<a@example.com>'), '250 2.1.0 Accepted');
    assert.equal(await c.command('RCPT TO:<jöran@example.org>'), '553 5.6.7 Non-ASCII address needs SMTPUTF8');
    assert.equal(await c.command('RCPT TO:<b@xn--bcher-kva.example>'), '250 2.1.5 Accepted');
    assert.match(await c.command('DATA'), /^354 /);
    c.write('Subject: x\r\n\r\nx\r\n.\r\n');
    assert.match(await c.readReply(), /^250 /);
    const env = t.sink.messages[0]?.envelope;
    assert.deepEqual(env?.recipients, [{ address: 'b@xn--bcher-kva.example' }]);
    assert.equal(env?.smtputf8, undefined);
    assert.equal(env?.bodyType, '7BIT');
  } finally {
    c.destroy();
    await t.close();
  }
});
