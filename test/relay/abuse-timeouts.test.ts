// Slow-loris: smtp-server's idle timeout restarts with every byte, so a client trickling
// one byte at a time would hold its session for ever. commandTimeout bounds the time to
// a complete command line, dataTimeout the whole DATA phase; both answer 421 4.4.2 and
// close, and a message cut off this way is never stored. The clocks only run while the
// client owes us something: a slow SPF check of ours does not count against it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestInbound } from '../helpers/inbound.ts';
import { startDnsServer } from '../peers/dns-server.ts';
import { delay, waitFor } from '../peers/wait.ts';
import { connectWire } from '../peers/wire-client.ts';
import type { WireClient } from '../peers/wire-client.ts';

/** Writes one byte of `text` every `everyMs` until the connection closes or `maxBytes` went out. */
function trickle(c: WireClient, text: string, everyMs: number, maxBytes: number): () => void {
  let i = 0;
  const timer = setInterval(() => {
    if (c.isClosed() || i >= maxBytes) {
      clearInterval(timer);
      return;
    }
    c.write(text[i % text.length]!);
    i++;
  }, everyMs);
  return () => clearInterval(timer);
}

test('a command line trickled byte by byte is cut off at commandTimeout with 421 4.4.2, although bytes keep coming', async () => {
  const t = await startTestInbound({ commandTimeout: 0.6, socketTimeout: 300 });
  const c = await connectWire(t.port);
  let stop = () => {};
  try {
    await c.readReply();
    assert.match(await c.command('EHLO client.example'), /^250/);
    const t0 = Date.now();
    stop = trickle(c, 'NOOP NOOP NOOP', 50, 200);
    assert.equal(await c.readReply(5000), '421 4.4.2 Timeout waiting for a command');
    const took = Date.now() - t0;
    assert.ok(took >= 500 && took < 2500, `cut off after ${took} ms`);
    await c.closed(6000);
    assert.equal(t.logs.filter((l) => l.reason === 'command_timeout').length, 1);
    await waitFor(() => t.server.sessions() === 0, 2000, 'the session to be released');
  } finally {
    stop();
    c.destroy();
    await t.close();
  }
});

test('message data trickled byte by byte is cut off at dataTimeout with 421 4.4.2 and never stored; a steady client is not', async () => {
  const t = await startTestInbound({ dataTimeout: 0.8, commandTimeout: 300, socketTimeout: 300 });
  const c = await connectWire(t.port);
  let stop = () => {};
  try {
    await c.readReply();
    await c.command('EHLO client.example');
    // First a message that takes a while but finishes inside the limit.
    await c.command('MAIL FROM:<a@example.com>');
    await c.command('RCPT TO:<b@example.org>');
    assert.match(await c.command('DATA'), /^354 /);
    c.write('Subject: fine\r\n\r\n');
    await delay(200);
    c.write('done\r\n.\r\n');
    assert.equal(await c.readReply(), '250 2.0.0 Ok: queued as MEM1');
    // Then one that trickles.
    await c.command('MAIL FROM:<a@example.com>');
    await c.command('RCPT TO:<b@example.org>');
    assert.match(await c.command('DATA'), /^354 /);
    const t0 = Date.now();
    stop = trickle(c, 'Subject: slow\r\n\r\nxxxxxxxxxxxxxxxx\r\n', 40, 500);
    assert.equal(await c.readReply(5000), '421 4.4.2 Timeout: message data took too long');
    const took = Date.now() - t0;
    assert.ok(took >= 700 && took < 3000, `cut off after ${took} ms`);
    await waitFor(() => t.server.sessions() === 0, 8000, 'the session to be released');
    assert.equal(t.sink.messages.length, 1, 'only the first message');
    assert.equal(t.logs.filter((l) => l.reason === 'data_timeout').length, 1);
  } finally {
    stop();
    c.destroy();
    await t.close();
  }
});

test('a client that goes silent gets smtp-server\'s idle timeout as 421 4.4.2 with its reason logged', async () => {
  const t = await startTestInbound({ socketTimeout: 0.4, commandTimeout: 300 });
  const c = await connectWire(t.port);
  try {
    await c.readReply();
    await c.command('EHLO client.example');
    assert.equal(await c.readReply(5000), '421 4.4.2 Timeout - closing connection');
    assert.equal(t.logs.filter((l) => l.reason === 'idle_timeout').length, 1);
  } finally {
    c.destroy();
    await t.close();
  }
});

test('the command clock does not run while we work: an SPF check longer than commandTimeout is answered, not timed out', async () => {
  const dns = await startDnsServer([{ name: 'slow.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.0/8 -all' }], { faults: { 'slow.test': { mode: 'slow', ms: 900 } } });
  const t = await startTestInbound({
    relayNetworks: [], commandTimeout: 0.4,
    spf: { enabled: true, checkHelo: false, dnsServers: [dns.server], dnsTimeoutMs: 3000, checkBudgetMs: 3000 },
  });
  const c = await connectWire(t.port);
  try {
    await c.readReply();
    await c.command('EHLO client.example');
    assert.equal(await c.command('MAIL FROM:<a@slow.test>', 5000), '250 2.1.0 Accepted');
    // ...and once we answered, the client's clock runs again.
    assert.equal(await c.readReply(5000), '421 4.4.2 Timeout waiting for a command');
  } finally {
    c.destroy();
    await t.close();
    await dns.close();
  }
});
