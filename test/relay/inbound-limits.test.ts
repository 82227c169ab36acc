// Inbound limits: recipients per message (452 4.5.3, RFC 5321 §4.5.3.1.10), message size
// declared (SIZE=) and actual (552 5.3.4, RFC 1870), sessions per client IP (421 4.7.0)
// and in total (421 4.3.2). Over-limit messages never reach the sink.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import nodemailer from 'nodemailer';
import { startTestInbound } from '../helpers/inbound.ts';
import { waitFor } from '../peers/wait.ts';
import { connectWire } from '../peers/wire-client.ts';
import type { WireClient } from '../peers/wire-client.ts';

/** Connects from `localAddress` and resolves with the first reply line (the greeting or a refusal). */
function firstLine(port: number, localAddress: string): Promise<{ line: string; socket: net.Socket }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    let buf = '';
    socket.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      const nl = buf.indexOf('\r\n');
      if (nl >= 0) resolve({ line: buf.slice(0, nl), socket });
    });
    socket.on('error', reject);
    socket.setTimeout(5000, () => reject(new Error('no greeting')));
  });
}

test('recipients beyond maxRecipients get 452 4.5.3; nodemailer delivers to the accepted ones', async () => {
  const t = await startTestInbound({ maxRecipients: 2 });
  try {
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port: t.port, ignoreTLS: true });
    const info = await transport.sendMail({
      envelope: { from: 'a@example.com', to: ['r1@example.org', 'r2@example.org', 'r3@example.org'] },
      raw: 'Subject: many\r\n\r\nx\r\n',
    });
    transport.close();
    assert.deepEqual(info.accepted, ['r1@example.org', 'r2@example.org']);
    assert.deepEqual(info.rejected, ['r3@example.org']);
    assert.equal((info as unknown as { rejectedErrors: { response: string }[] }).rejectedErrors[0]?.response, '452 4.5.3 Too many recipients');
    assert.deepEqual(t.sink.messages[0]?.envelope.recipients.map((r) => r.address), ['r1@example.org', 'r2@example.org']);
    assert.equal(t.logs.filter((l) => l.reason === 'too_many_recipients').length, 1);
  } finally {
    await t.close();
  }
});

test('a message larger than maxMessageSize gets 552 5.3.4 after the final dot, is not stored, and the session goes on', async () => {
  const t = await startTestInbound({ maxMessageSize: 1000 });
  let c: WireClient | undefined;
  try {
    c = await connectWire(t.port);
    await c.readReply();
    await c.command('EHLO client.example');
    assert.equal(await c.command('MAIL FROM:<a@example.com> SIZE=1001'), '552 5.3.4 Error: message exceeds fixed maximum message size 1000');
    assert.equal(await c.command('MAIL FROM:<a@example.com>'), '250 2.1.0 Accepted');
    assert.equal(await c.command('RCPT TO:<b@example.org>'), '250 2.1.5 Accepted');
    assert.match(await c.command('DATA'), /^354 /);
    const line = `${'x'.repeat(76)}\r\n`;
    for (let i = 0; i < 100; i++) c.write(line);
    c.write('.\r\n');
    assert.equal(await c.readReply(), '552 5.3.4 Message size exceeds fixed maximum message size');
    assert.equal(t.sink.messages.length, 0);
    // The oversized body was read to its end: the next transaction on the connection works.
    assert.equal(await c.command('MAIL FROM:<a@example.com>'), '250 2.1.0 Accepted');
    assert.equal(await c.command('RCPT TO:<b@example.org>'), '250 2.1.5 Accepted');
    assert.match(await c.command('DATA'), /^354 /);
    c.write('Subject: small\r\n\r\nok\r\n.\r\n');
    assert.equal(await c.readReply(), '250 2.0.0 Ok: queued as MEM1');
    const results = (await t.metrics.inboundMessages.get()).values;
    assert.equal(results.find((v) => v.labels.result === 'rejected')?.value, 1);
    assert.equal(results.find((v) => v.labels.result === 'accepted')?.value, 1);
    const logged = t.logs.find((l) => l.reason === 'message_too_big' && l.size !== undefined);
    assert.ok(logged && Number(logged.size) > 1000);
  } finally {
    c?.destroy();
    await t.close();
  }
});

test('a client IP at maxConnectionsPerIp gets 421 4.7.0 and is closed; other IPs still get in; a freed slot is reused', async () => {
  const t = await startTestInbound({ maxConnectionsPerIp: 2, maxConnections: 100 });
  const open: net.Socket[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const g = await firstLine(t.port, '127.0.0.1');
      open.push(g.socket);
      assert.match(g.line, /^220 /);
    }
    const refused = await firstLine(t.port, '127.0.0.1');
    open.push(refused.socket);
    assert.equal(refused.line, '421 4.7.0 Too many connections from your address');
    await new Promise((resolve) => refused.socket.once('close', resolve));
    const other = await firstLine(t.port, '127.0.0.2');
    open.push(other.socket);
    assert.match(other.line, /^220 /);
    assert.equal(t.server.sessions(), 3);
    open[0]?.destroy();
    await waitFor(() => t.server.sessions() === 2, 5000, 'the closed session to be released');
    const again = await firstLine(t.port, '127.0.0.1');
    open.push(again.socket);
    assert.match(again.line, /^220 /);
    assert.equal((await t.metrics.inboundSessions.get()).values[0]?.value, 3);
  } finally {
    for (const s of open) s.destroy();
    await t.close();
  }
});

test('beyond maxConnections every new client gets 421 4.3.2', async () => {
  const t = await startTestInbound({ maxConnections: 2, maxConnectionsPerIp: 10 });
  const open: net.Socket[] = [];
  try {
    for (const ip of ['127.0.0.1', '127.0.0.2']) {
      const g = await firstLine(t.port, ip);
      open.push(g.socket);
      assert.match(g.line, /^220 /);
    }
    const refused = await firstLine(t.port, '127.0.0.3');
    open.push(refused.socket);
    assert.equal(refused.line, '421 4.3.2 Too many connections, try again later');
  } finally {
    for (const s of open) s.destroy();
    await t.close();
  }
});
