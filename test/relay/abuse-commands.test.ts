// Command caps: a session gets maxCommandsPerSession commands, then 421 4.7.0 and the
// connection closes, also when the commands arrive pipelined in one write; smtp-server's
// own cap of 10 unrecognized commands answers 421 4.7.0 too, with a reason in the log.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestInbound } from '../helpers/inbound.ts';
import { waitFor } from '../peers/wait.ts';
import { connectWire } from '../peers/wire-client.ts';

test('command number maxCommandsPerSession + 1 gets 421 4.7.0 Too many commands, even pipelined, and nothing after it is answered', async () => {
  const t = await startTestInbound({ maxCommandsPerSession: 20 });
  const c = await connectWire(t.port);
  try {
    await c.readReply();
    await c.command('EHLO client.example');
    const before = c.received().length;
    // 19 more are allowed (EHLO was the first); 100 arrive in one write.
    c.write('NOOP\r\n'.repeat(100));
    await c.closed(5000);
    const replies = c.received().subarray(before).toString('latin1').split('\r\n').filter(Boolean);
    assert.equal(replies.length, 20);
    assert.deepEqual(new Set(replies.slice(0, 19)), new Set(['250 2.0.0 OK']));
    assert.equal(replies[19], '421 4.7.0 Too many commands');
    const logged = t.logs.find((l) => l.reason === 'too_many_commands');
    assert.equal(logged?.commands, 21);
    await waitFor(() => t.server.sessions() === 0, 2000, 'the session to be released');
  } finally {
    c.destroy();
    await t.close();
  }
});

test('ten unrecognized commands end the session with 421 4.7.0 (smtp-server\'s limit, our enhanced code)', async () => {
  const t = await startTestInbound();
  const c = await connectWire(t.port);
  try {
    await c.readReply();
    await c.command('EHLO client.example');
    for (let i = 0; i < 9; i++) assert.equal(await c.command(`XYZZY${i}`), '500 5.5.2 Error: command not recognized');
    assert.equal(await c.command('XYZZY9'), '421 4.7.0 Too many unrecognized commands');
    await c.closed(5000);
    assert.equal(t.logs.filter((l) => l.reason === 'too_many_unrecognized_commands').length, 1);
  } finally {
    c.destroy();
    await t.close();
  }
});
