// Graceful drain (pod termination): after stopAccepting() new sessions get 421 4.3.2 and
// are closed, idle sessions are told 421 4.3.2 at once, and a session in the middle of a
// transaction finishes it and gets its 250 before its 421. close() then ends the rest.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startTestInbound } from '../helpers/inbound.ts';
import { waitFor } from '../peers/wait.ts';
import { connectWire } from '../peers/wire-client.ts';

test('stopAccepting: new sessions get 421 4.3.2, an idle one is let go, an in-flight transaction completes', async () => {
  const t = await startTestInbound();
  const busy = await connectWire(t.port);
  const idle = await connectWire(t.port);
  try {
    await busy.readReply();
    await idle.readReply();
    await idle.command('EHLO idle.example');
    await busy.command('EHLO busy.example');
    assert.equal(await busy.command('MAIL FROM:<a@example.com>'), '250 2.1.0 Accepted');
    assert.equal(await busy.command('RCPT TO:<b@example.org>'), '250 2.1.5 Accepted');
    assert.equal(t.server.transactions(), 1);

    t.server.stopAccepting();

    assert.equal(await idle.readReply(), '421 4.3.2 Service shutting down');
    await idle.closed();
    const late = await connectWire(t.port);
    assert.equal(await late.readReply(), '421 4.3.2 Service shutting down');
    await late.closed();

    // The transaction in progress may still add recipients and finish.
    assert.equal(await busy.command('RCPT TO:<c@example.org>'), '250 2.1.5 Accepted');
    assert.match(await busy.command('DATA'), /^354 /);
    busy.write('Subject: last one\r\n\r\nbody\r\n.\r\n');
    assert.equal(await busy.readReply(), '250 2.0.0 Ok: queued as MEM1');
    // Then it may not start another: it is told to go.
    assert.equal(await busy.readReply(), '421 4.3.2 Service shutting down');
    await busy.closed();
    assert.equal(t.sink.messages.length, 1);
    assert.deepEqual(t.sink.messages[0]?.envelope.recipients.map((r) => r.address), ['b@example.org', 'c@example.org']);
    await waitFor(() => t.server.sessions() === 0, 5000, 'every session to be released');
    assert.equal((await t.metrics.inboundSessions.get()).values[0]?.value, 0);
  } finally {
    busy.destroy();
    idle.destroy();
    await t.close();
  }
});

test('close() answers 421 4.3.2 to open sessions and stops listening', async () => {
  const t = await startTestInbound();
  const c = await connectWire(t.port);
  await c.readReply();
  await c.command('EHLO client.example');
  await c.command('MAIL FROM:<a@example.com>');
  const closing = t.server.close();
  assert.equal(await c.readReply(), '421 4.3.2 Service shutting down');
  await c.closed();
  await closing;
  await assert.rejects(new Promise((resolve, reject) => {
    const s = net.connect({ port: t.port, host: '127.0.0.1' }, () => {
      s.destroy();
      resolve(undefined);
    });
    s.on('error', reject);
  }), { code: 'ECONNREFUSED' });
});
