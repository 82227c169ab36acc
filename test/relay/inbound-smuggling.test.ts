// SMTP smuggling (CVE-2023-51764 and kin): "\n.\n" or "\r.\r" inside DATA followed by
// SMTP commands must not end the message and start a second one. smtp-server ends DATA
// on CRLF.CRLF only; we also normalise bare CR/LF to CRLF in the stored body, so the
// attempt becomes a line holding "." that the outbound side dot-stuffs, and no next hop
// can be tricked either.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestInbound } from '../helpers/inbound.ts';
import { connectWire } from '../peers/wire-client.ts';

const smuggled = (eol: string): string =>
  `MAIL FROM:<evil@example.com>${eol}RCPT TO:<victim@example.org>${eol}DATA${eol}Subject: smuggled${eol}${eol}owned`;

for (const [name, eol] of [['bare LF', '\n'], ['bare CR', '\r'], ['LF then CRLF', '\n']] as const) {
  test(`a ${name} end-of-data inside DATA does not become a second message`, async () => {
    const t = await startTestInbound();
    const c = await connectWire(t.port);
    try {
      await c.readReply();
      await c.command('EHLO client.example');
      assert.equal(await c.command('MAIL FROM:<a@example.com>'), '250 2.1.0 Accepted');
      assert.equal(await c.command('RCPT TO:<b@example.org>'), '250 2.1.5 Accepted');
      assert.match(await c.command('DATA'), /^354 /);
      const fakeEnd = name === 'LF then CRLF' ? '\n.\r\n' : `${eol}.${eol}`;
      const before = c.received().length;
      c.write(`Subject: innocent\r\n\r\nhello${fakeEnd}${smuggled(eol)}\r\n.\r\n`);
      assert.equal(await c.readReply(), '250 2.0.0 Ok: queued as MEM1');
      assert.equal(await c.command('QUIT'), '221 2.0.0 Bye');
      // Exactly two replies after the 354: the one 250 and the 221. A smuggled MAIL/RCPT/DATA would have added more.
      assert.equal(c.received().subarray(before).toString('latin1'), '250 2.0.0 Ok: queued as MEM1\r\n221 2.0.0 Bye\r\n');
      assert.equal(t.sink.messages.length, 1);
      const body = t.sink.messages[0]?.body.toString('latin1') ?? '';
      assert.doesNotMatch(body, /\r(?!\n)|(?<!\r)\n/, 'no bare CR or LF in the stored body');
      assert.ok(body.endsWith('\r\nhello\r\n.\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nowned\r\n'), JSON.stringify(body));
      assert.deepEqual(t.sink.messages[0]?.envelope.recipients, [{ address: 'b@example.org' }]);
    } finally {
      c.destroy();
      await t.close();
    }
  });
}

test('a bare LF and a CRLF split across TCP writes still end up as CRLF, and only CRLF.CRLF ends DATA', async () => {
  const t = await startTestInbound();
  const c = await connectWire(t.port);
  try {
    await c.readReply();
    await c.command('EHLO client.example');
    await c.command('MAIL FROM:<a@example.com>');
    await c.command('RCPT TO:<b@example.org>');
    await c.command('DATA');
    for (const piece of ['Subject: split\r', '\n\r\nline one\r', '\nline two\n', '.\n', 'tail\r\n', '.', '\r\n']) {
      c.write(piece);
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(await c.readReply(), '250 2.0.0 Ok: queued as MEM1');
    const body = t.sink.messages[0]?.body.toString('latin1') ?? '';
    assert.ok(body.endsWith('Subject: split\r\n\r\nline one\r\nline two\r\n.\r\ntail\r\n'), JSON.stringify(body));
  } finally {
    c.destroy();
    await t.close();
  }
});
