// RFC 2034 §3: once ENHANCEDSTATUSCODES is advertised, every 2xx/4xx/5xx reply other than
// the greeting and the EHLO/HELO reply starts with an enhanced status code whose class
// matches the reply code, on every line. smtp-server only does this with
// hideENHANCEDSTATUSCODES: false, and gives our handler errors generic codes unless the
// text carries its own; this walks a session through success, syntax, sequence, policy
// and size replies and checks each one on the wire.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { repliesMissingEnhancedCode, startTestInbound } from '../helpers/inbound.ts';
import { connectWire } from '../peers/wire-client.ts';

test('every reply of a busy session carries a matching enhanced status code', async () => {
  const t = await startTestInbound({ maxRecipients: 2, maxMessageSize: 10_000 });
  const c = await connectWire(t.port);
  const replies: string[] = [];
  const cmd = async (line: string): Promise<string> => {
    const r = await c.command(line);
    replies.push(r);
    return r;
  };
  try {
    assert.match(await c.readReply(), /^220 relay\.test ESMTP mailrelay$/, 'the greeting carries none (RFC 2034 §3)');
    assert.match(await c.command('HELO client.example'), /^250 relay\.test /, 'nor does the HELO reply');
    assert.match(await c.command('EHLO client.example'), /250-ENHANCEDSTATUSCODES\r\n/);
    for (const line of [
      'NOOP', 'HELP', 'VRFY someone@example.org', 'VRFY', 'RSET', 'FOO bar', 'DATA', 'RCPT TO:<x@example.org>',
      'MAIL FROM:<not an address>', 'MAIL FROM:<a@example.com> SIZE=20000', 'MAIL FROM:<a@example.com> BODY=BINARYMIME',
      'MAIL FROM:<a@example.com>', 'MAIL FROM:<a@example.com>', 'RCPT TO:<bad address>', 'RCPT TO:<postmaster>',
      'RCPT TO:<jöran@example.org>', 'RCPT TO:<r1@example.org> NOTIFY=BOGUS', 'RCPT TO:<r1@example.org>', 'RCPT TO:<r2@example.org>',
      'RCPT TO:<r3@example.org>', 'AUTH PLAIN AGFsaWNlAHB3', 'STARTTLS', 'XCLIENT ADDR=192.0.2.1', 'BDAT 10 LAST',
    ]) await cmd(line);
    assert.match(await c.command('DATA'), /^354 /);
    c.write('Subject: ok\r\n\r\nhello\r\n.\r\n');
    replies.push(await c.readReply());
    await cmd('MAIL FROM:<a@example.com>');
    await cmd('RCPT TO:<r1@example.org>');
    assert.match(await c.command('DATA'), /^354 /);
    c.write(`Subject: big\r\n\r\n${'y'.repeat(78)}\r\n`.repeat(200));
    c.write('.\r\n');
    replies.push(await c.readReply());
    await cmd('QUIT');

    assert.deepEqual(repliesMissingEnhancedCode(replies), []);
    const codes = new Set(replies.map((r) => r.slice(0, 9)));
    for (const want of ['250 2.0.0', '250 2.1.0', '250 2.1.5', '214 2.0.0', '252 2.1.5', '221 2.0.0', '500 5.5.2', '501 5.5.4',
      '501 5.1.7', '501 5.1.3', '503 5.5.1', '552 5.3.4', '553 5.6.7', '452 4.5.3']) {
      assert.ok(codes.has(want), `expected a ${want} reply in ${JSON.stringify([...codes])}`);
    }
  } finally {
    c.destroy();
    await t.close();
  }
});

test('refusals at connect, at RCPT and while draining carry enhanced codes too', async () => {
  const t = await startTestInbound({ relayNetworks: [], maxConnectionsPerIp: 1 });
  const c = await connectWire(t.port);
  const replies: string[] = [];
  try {
    await c.readReply();
    const second = await connectWire(t.port);
    replies.push(await second.readReply());
    second.destroy();
    await c.command('EHLO client.example');
    replies.push(await c.command('MAIL FROM:<a@example.com>'));
    replies.push(await c.command('RCPT TO:<b@example.org>'));
    replies.push(await c.command('RSET'));
    t.server.stopAccepting();
    replies.push(await c.readReply());
    assert.deepEqual(replies, [
      '421 4.7.0 Too many connections from your address',
      '250 2.1.0 Accepted',
      '554 5.7.1 Relay access denied',
      '250 2.0.0 Flushed',
      '421 4.3.2 Service shutting down',
    ]);
    assert.deepEqual(repliesMissingEnhancedCode(replies), []);
  } finally {
    c.destroy();
    await t.close();
  }
});
