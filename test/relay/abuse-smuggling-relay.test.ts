// SMTP smuggling end to end (CVE-2023-51764 and kin): a client hides "<LF>.<LF>" (or
// "<CR>.<CR>") followed by a second transaction inside its message. Through a whole
// relay (inbound -> spool -> delivery) to a raw peer that records the exact bytes on its
// wire: exactly one message is relayed, the would-be second MAIL/RCPT/DATA arrives as
// body lines, dot-stuffed, and no bare CR or LF leaves the relay — neither with DATA nor
// with BDAT, so no next hop can read the bytes differently.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scrape, startTestRelay } from '../helpers/relay.ts';
import { startRawServer } from '../peers/raw-server.ts';
import { waitFor } from '../peers/wait.ts';
import { connectWire } from '../peers/wire-client.ts';

const BARE = /\r(?!\n)|(?<!\r)\n/;

for (const [name, eol, chunking] of [
  ['bare LF, delivered with DATA', '\n', false],
  ['bare CR, delivered with DATA', '\r', false],
  ['bare LF, delivered with BDAT', '\n', true],
] as const) {
  test(`smuggling with ${name}: one message leaves the relay, with no bare CR/LF on the outbound wire`, async (t) => {
    const peer = await startRawServer({ capabilities: { chunking } });
    const relay = await startTestRelay(peer.port, { delivery: { chunking } });
    t.after(async () => { await relay.close(); await peer.close(); });

    const c = await connectWire(relay.smtpPort);
    try {
      await c.readReply();
      await c.command('EHLO client.example');
      assert.equal(await c.command('MAIL FROM:<a@example.com>'), '250 2.1.0 Accepted');
      assert.equal(await c.command('RCPT TO:<b@example.org>'), '250 2.1.5 Accepted');
      assert.match(await c.command('DATA'), /^354 /);
      const smuggled = `MAIL FROM:<evil@example.com>${eol}RCPT TO:<victim@example.org>${eol}DATA${eol}Subject: smuggled${eol}${eol}owned`;
      c.write(`Subject: innocent\r\n\r\nhello${eol}.${eol}${smuggled}\r\n.\r\n`);
      assert.match(await c.readReply(), /^250 2\.0\.0 Ok: queued as /);
      assert.equal(await c.command('QUIT'), '221 2.0.0 Bye');
    } finally {
      c.destroy();
    }

    await peer.waitFor((p) => p.transactions.some((tx) => tx.state === 'completed'), 10_000, 'the relayed message');
    // Delivered and counted once by the relay; nothing left in its queue that could follow.
    await waitFor(() => relay.spool.stats().messages === 0, 10_000, 'the spool to empty');
    assert.equal(await scrape(relay.httpPort, 'mailrelay_recipients_total', { outcome: 'delivered' }), 1);
    const done = peer.transactions.filter((tx) => tx.state === 'completed');
    assert.equal(done.length, 1, 'exactly one message relayed');
    assert.equal(peer.transactions.length, 1);
    const tx = done[0]!;
    assert.equal(tx.from, 'a@example.com');
    assert.deepEqual(tx.rcpts.map((r) => r.address), ['b@example.org']);
    const wire = (chunking ? Buffer.concat(tx.chunks.map((ch) => ch.bytes)) : tx.dataRaw!).toString('latin1');
    assert.equal(tx.method, chunking ? 'BDAT' : 'DATA');
    assert.doesNotMatch(wire, BARE, 'no bare CR or LF on the outbound wire');
    const smuggledLines = '\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nowned\r\n';
    // With DATA the lone "." is dot-stuffed (RFC 5321 §4.5.2); with BDAT it needs no escaping.
    assert.ok(wire.includes(`\r\nhello\r\n${chunking ? '.' : '..'}${smuggledLines}`), JSON.stringify(wire.slice(-300)));
    if (!chunking) assert.ok(wire.endsWith(`${smuggledLines}.\r\n`), 'the only end of data is the real one');
  });
}
