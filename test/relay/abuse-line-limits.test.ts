// Line and header limits. Message data: a line over maxLineLength (RFC 5322 §2.1.1:
// 998 + CRLF) gets 554 5.6.0 after the final dot, a header section over maxHeaderSize
// 552 5.3.4; neither is stored and the session goes on. Command lines: smtp-server's
// parser stops at 16 KiB, which we answer 421 4.5.2 (it cannot resume mid-line).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestInbound } from '../helpers/inbound.ts';
import type { TestInbound } from '../helpers/inbound.ts';
import { connectWire } from '../peers/wire-client.ts';
import type { WireClient } from '../peers/wire-client.ts';

async function transaction(c: WireClient, data: string): Promise<string> {
  assert.equal(await c.command('MAIL FROM:<a@example.com>'), '250 2.1.0 Accepted');
  assert.equal(await c.command('RCPT TO:<b@example.org>'), '250 2.1.5 Accepted');
  assert.match(await c.command('DATA'), /^354 /);
  c.write(`${data}.\r\n`);
  return c.readReply();
}

async function withSession(over: Parameters<typeof startTestInbound>[0], fn: (c: WireClient, t: TestInbound) => Promise<void>): Promise<void> {
  const t = await startTestInbound(over);
  const c = await connectWire(t.port);
  try {
    await c.readReply();
    await c.command('EHLO client.example');
    await fn(c, t);
  } finally {
    c.destroy();
    await t.close();
  }
}

test('a 998-character line is fine, 999 gets 554 5.6.0 after the dot, is not stored, and the session goes on', async () => {
  await withSession({}, async (c, t) => {
    assert.equal(await transaction(c, `Subject: ok\r\n\r\n${'a'.repeat(998)}\r\n`), '250 2.0.0 Ok: queued as MEM1');
    assert.equal(await transaction(c, `Subject: long\r\n\r\n${'a'.repeat(999)}\r\nmore\r\n`), '554 5.6.0 Message has a line longer than the limit (RFC 5322 2.1.1)');
    // counted after bare-LF normalisation: 998 characters ended by a bare LF are one line of 998
    assert.equal(await transaction(c, `Subject: lf\r\n\r\n${'b'.repeat(998)}\nend\r\n`), '250 2.0.0 Ok: queued as MEM2');
    assert.equal(t.sink.messages.length, 2);
    const logged = t.logs.find((l) => l.reason === 'line_too_long');
    assert.equal(logged?.maxLineLength, 998);
    assert.equal((await t.metrics.inboundMessages.get()).values.find((v) => v.labels.result === 'rejected')?.value, 1);
  });
});

test('maxLineLength can be raised for clients that need it', async () => {
  await withSession({ maxLineLength: 5000 }, async (c, t) => {
    assert.equal(await transaction(c, `Subject: wide\r\n\r\n${'a'.repeat(4000)}\r\n`), '250 2.0.0 Ok: queued as MEM1');
    assert.equal(t.sink.messages.length, 1);
  });
});

test('a header section over maxHeaderSize gets 552 5.3.4 and is not stored', async () => {
  await withSession({ maxHeaderSize: 4096 }, async (c, t) => {
    const field = `X-Pad: ${'p'.repeat(90)}\r\n`;
    assert.equal(await transaction(c, `${field.repeat(40)}\r\nbody\r\n`), '250 2.0.0 Ok: queued as MEM1');
    assert.equal(await transaction(c, `${field.repeat(50)}\r\nbody\r\n`), '552 5.3.4 Message header exceeds the fixed maximum size');
    // without any blank line the whole message is header
    assert.equal(await transaction(c, field.repeat(50)), '552 5.3.4 Message header exceeds the fixed maximum size');
    assert.equal(t.sink.messages.length, 1);
    assert.equal(t.logs.filter((l) => l.reason === 'header_too_big').length, 2);
  });
});

test('a command line over 16 KiB gets 421 4.5.2 and the connection is closed', async () => {
  await withSession({}, async (c, t) => {
    c.write(`MAIL FROM:<${'a'.repeat(17 * 1024)}@example.com>\r\n`);
    assert.equal(await c.readReply(5000), '421 4.5.2 Command line too long');
    await c.closed(6000);
    assert.equal(t.logs.filter((l) => l.reason === 'command_too_long').length, 1);
  });
});
