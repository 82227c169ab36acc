// A client that drops the connection in the middle of DATA: nothing is stored (the sink's
// read fails, so a spool discards its temp file), the session is released, and the
// listener keeps serving others.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestInbound } from '../helpers/inbound.ts';
import { waitFor } from '../peers/wait.ts';
import { connectWire } from '../peers/wire-client.ts';

test('a connection lost mid-DATA stores nothing, frees its session, and the next client is served', async () => {
  const t = await startTestInbound();
  try {
    const c = await connectWire(t.port);
    await c.readReply();
    await c.command('EHLO client.example');
    await c.command('MAIL FROM:<a@example.com>');
    await c.command('RCPT TO:<b@example.org>');
    assert.match(await c.command('DATA'), /^354 /);
    c.write(`Subject: cut\r\n\r\n${'z'.repeat(70)}\r\n`.repeat(50));
    c.destroy();
    await waitFor(() => t.server.sessions() === 0 && t.logs.some((l) => l.msg === 'client went away during DATA'),
      5000, 'the aborted session to be released and logged');
    assert.equal(t.sink.messages.length, 0);
    assert.equal(t.server.transactions(), 0);

    const next = await connectWire(t.port);
    await next.readReply();
    await next.command('EHLO client.example');
    await next.command('MAIL FROM:<a@example.com>');
    await next.command('RCPT TO:<b@example.org>');
    await next.command('DATA');
    next.write('Subject: fine\r\n\r\nok\r\n.\r\n');
    assert.equal(await next.readReply(), '250 2.0.0 Ok: queued as MEM1');
    next.destroy();
  } finally {
    await t.close();
  }
});
