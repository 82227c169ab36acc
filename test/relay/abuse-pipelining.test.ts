// Pipelining abuse on raw sockets (RFC 2920, RFC 5321 §4.3.1): with a greeting delay, a
// client outside relayNetworks that talks before the greeting is refused with 421 4.5.0
// and never becomes a session (our own clients are greeted at once); commands
// before EHLO get 503 and leave the session usable; and however a client pipelines —
// even message data behind a DATA whose recipients were all refused — every command gets
// exactly one reply, in order, and no message is stored that was not accepted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startTestInbound } from '../helpers/inbound.ts';
import { waitFor } from '../peers/wait.ts';
import { connectWire } from '../peers/wire-client.ts';

/** Connects from `localAddress`, writes `bytes` at once (before any reply), and collects everything until the server closes. */
function blurt(port: number, bytes: string, localAddress = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress }, () => socket.write(bytes));
    let got = '';
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1');
    });
    socket.on('close', () => resolve(got));
    socket.on('error', reject);
    socket.setTimeout(8000, () => {
      socket.destroy();
      reject(new Error(`no close; got ${JSON.stringify(got)}`));
    });
  });
}

const lines = (s: string): string[] => s.split('\r\n').filter(Boolean);

test('with a greeting delay, an early talker from outside relayNetworks gets 421 4.5.0 instead of the greeting, is closed, and is never counted as a session', async () => {
  const t = await startTestInbound({ greetingDelay: 0.1 });
  try {
    const got = await blurt(t.port, 'EHLO spambot.example\r\nMAIL FROM:<a@example.com>\r\n', '127.0.0.2');
    assert.deepEqual(lines(got), ['421 4.5.0 Protocol error: data sent before the greeting']);
    assert.equal(t.logs.filter((l) => l.reason === 'early_talker').length, 1);
    assert.equal((await t.metrics.inboundSessions.get()).values[0]?.value ?? 0, 0);
    assert.equal(t.server.sessions(), 0);
  } finally {
    await t.close();
  }
});

test('clients on relayNetworks are greeted at once even with a greeting delay, and so is everyone by default', async () => {
  // The greeting goes out as the connection is accepted, before any of the client's bytes
  // are read, so a client that pipelines its EHLO behind the connect is served, not refused.
  for (const [over, from] of [[{ greetingDelay: 0.1 }, '127.0.0.1'], [{}, '127.0.0.2']] as const) {
    const t = await startTestInbound(over);
    try {
      const got = await blurt(t.port, 'EHLO app.example\r\nQUIT\r\n', from);
      const l = lines(got);
      assert.match(l[0] ?? '', /^220 relay\.test ESMTP/, `${JSON.stringify(over)} from ${from}: ${got}`);
      assert.match(l[1] ?? '', /^250-relay\.test/);
      assert.match(l.at(-1) ?? '', /^221 /);
      assert.equal(t.logs.filter((x) => x.reason === 'early_talker').length, 0);
    } finally {
      await t.close();
    }
  }
});

test('MAIL before EHLO gets 503 5.5.1 and the session stays usable', async () => {
  const t = await startTestInbound();
  const c = await connectWire(t.port);
  try {
    await c.readReply();
    assert.equal(await c.command('MAIL FROM:<a@example.com>'), '503 5.5.1 Error: send HELO/EHLO first');
    assert.equal(await c.command('RCPT TO:<b@example.org>'), '503 5.5.1 Error: send HELO/EHLO first');
    assert.match(await c.command('EHLO client.example'), /^250-/);
    assert.equal(await c.command('MAIL FROM:<a@example.com>'), '250 2.1.0 Accepted');
    assert.equal(await c.command('RCPT TO:<b@example.org>'), '250 2.1.5 Accepted');
    assert.match(await c.command('DATA'), /^354 /);
    c.write('Subject: ok\r\n\r\nok\r\n.\r\n');
    assert.equal(await c.readReply(), '250 2.0.0 Ok: queued as MEM1');
  } finally {
    c.destroy();
    await t.close();
  }
});

test('a whole transaction pipelined in one write after the greeting: one reply per command, in order, one message', async () => {
  const t = await startTestInbound();
  const c = await connectWire(t.port);
  try {
    await c.readReply();
    const before = c.received().length;
    c.write('EHLO client.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nSubject: p\r\n\r\nbody\r\n.\r\nNOOP\r\nQUIT\r\n');
    await c.closed(5000);
    const got = lines(c.received().subarray(before).toString('latin1')).filter((l) => !l.startsWith('250-'));
    assert.deepEqual(got.map((l) => l.slice(0, 3)), ['250', '250', '250', '354', '250', '250', '221']);
    assert.equal(got[4], '250 2.0.0 Ok: queued as MEM1');
    assert.equal(t.sink.messages.length, 1);
  } finally {
    c.destroy();
    await t.close();
  }
});

test('message data pipelined behind a DATA that fails is read as commands, each answered once; nothing is stored', async () => {
  const t = await startTestInbound({ relayNetworks: [] });
  const c = await connectWire(t.port);
  try {
    await c.readReply();
    const before = c.received().length;
    // Not a relay client: RCPT is refused, so DATA is refused, and the "message" is commands.
    c.write('EHLO client.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nNOOP\r\nQUIT\r\n');
    await c.closed(5000);
    const got = lines(c.received().subarray(before).toString('latin1')).filter((l) => !l.startsWith('250-'));
    assert.match(got[0] ?? '', /^250 /, 'the last line of the EHLO reply');
    // "Subject: x", the empty line, "body" and "." are each one unrecognized command.
    assert.deepEqual(got.slice(1), [
      '250 2.1.0 Accepted',
      '554 5.7.1 Relay access denied',
      '503 5.5.1 Error: need RCPT command',
      '500 5.5.2 Error: command not recognized',
      '500 5.5.2 Error: command not recognized',
      '500 5.5.2 Error: command not recognized',
      '500 5.5.2 Error: command not recognized',
      '250 2.0.0 OK',
      '221 2.0.0 Bye',
    ]);
    assert.equal(t.sink.messages.length, 0);
    await waitFor(() => t.server.sessions() === 0, 2000, 'the session to be released');
  } finally {
    c.destroy();
    await t.close();
  }
});
