// 250 only after the sink made the message durable: a full disk answers 452 4.3.1, any
// other storage failure 451 4.3.0 (the client keeps the message and retries), and a slow
// sink delays the 250 until it resolves. Never a 250 for a message that was not stored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import nodemailer from 'nodemailer';
import { startTestInbound } from '../helpers/inbound.ts';
import { waitFor } from '../peers/wait.ts';
import { connectWire } from '../peers/wire-client.ts';
import type { WireClient } from '../peers/wire-client.ts';

async function openTransaction(port: number, rcpt: string): Promise<WireClient> {
  const c = await connectWire(port);
  await c.readReply();
  await c.command('EHLO client.example');
  assert.equal(await c.command('MAIL FROM:<a@example.com>'), '250 2.1.0 Accepted');
  assert.equal(await c.command(`RCPT TO:<${rcpt}>`), '250 2.1.5 Accepted');
  assert.match(await c.command('DATA'), /^354 /);
  return c;
}

test('sink out of space: 452 4.3.1 Insufficient system storage, no 250, counted as tempfail; the session goes on', async () => {
  const t = await startTestInbound();
  const c = await openTransaction(t.port, 'nospace-1@example.org');
  try {
    c.write('Subject: x\r\n\r\nbody\r\n.\r\n');
    assert.equal(await c.readReply(), '452 4.3.1 Insufficient system storage');
    assert.equal(await c.command('MAIL FROM:<a@example.com>'), '250 2.1.0 Accepted');
    assert.equal(await c.command('QUIT'), '221 2.0.0 Bye');
    assert.doesNotMatch(c.received().toString('latin1'), /\r\n250 2\.0\.0 Ok/);
    assert.equal(t.sink.messages.length, 0);
    const results = (await t.metrics.inboundMessages.get()).values;
    assert.equal(results.find((v) => v.labels.result === 'tempfail')?.value, 1);
    assert.equal(results.find((v) => v.labels.result === 'accepted')?.value ?? 0, 0, 'nothing counted as accepted');
    assert.equal(t.logs.find((l) => l.msg === 'sink could not store the message')?.kind, 'no_space');
  } finally {
    c.destroy();
    await t.close();
  }
});

test('any other sink failure (kind io): 451 4.3.0 Local error in processing; nodemailer sees a temporary failure', async () => {
  const t = await startTestInbound();
  try {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: t.port, ignoreTLS: true });
    await assert.rejects(
      transport.sendMail({ envelope: { from: 'a@example.com', to: ['ioerror-1@example.org'] }, raw: 'Subject: x\r\n\r\nx\r\n' }),
      (err: { responseCode?: number; response?: string }) => {
        assert.equal(err.responseCode, 451);
        assert.equal(err.response, '451 4.3.0 Local error in processing');
        return true;
      },
    );
    transport.close();
    assert.equal(t.sink.messages.length, 0);
  } finally {
    await t.close();
  }
});

test('a slow sink: the 250 goes out only after accept resolved', async () => {
  const t = await startTestInbound();
  const c = await openTransaction(t.port, 'slow-1@example.org');
  try {
    c.write('Subject: slow\r\n\r\nbody\r\n.\r\n');
    // The sink has the whole body and is holding its promise.
    await waitFor(() => t.sink.waiting() === 1, 5000, 'the sink to hold the message');
    assert.deepEqual(t.sink.events, [{ type: 'body-read' }]);
    for (let i = 0; i < 20; i++) await tick();
    assert.doesNotMatch(c.received().toString('latin1'), /250 2\.0\.0 Ok/, 'no 250 while the sink has not resolved');
    t.sink.release();
    const reply = await c.readReply();
    assert.deepEqual(t.sink.events, [{ type: 'body-read' }, { type: 'resolved', id: 'MEM1' }]);
    assert.equal(reply, '250 2.0.0 Ok: queued as MEM1');
  } finally {
    c.destroy();
    await t.close();
  }
});

test('close() lets a message already in the sink finish: the client gets its 250, then 421', async () => {
  const t = await startTestInbound();
  const c = await openTransaction(t.port, 'slow-2@example.org');
  try {
    c.write('Subject: slow\r\n\r\nbody\r\n.\r\n');
    await waitFor(() => t.sink.waiting() === 1, 5000, 'the sink to hold the message');
    let closed = false;
    const closing = t.server.close().then(() => {
      closed = true;
    });
    for (let i = 0; i < 20; i++) await tick();
    assert.equal(closed, false, 'close() must not return while a message is being stored');
    t.sink.release();
    assert.equal(await c.readReply(), '250 2.0.0 Ok: queued as MEM1');
    assert.equal(await c.readReply(), '421 4.3.2 Service shutting down');
    await closing;
    assert.equal(t.sink.messages.length, 1);
  } finally {
    c.destroy();
    await t.close();
  }
});
