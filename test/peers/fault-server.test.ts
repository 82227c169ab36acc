// The fault server's grammar and options, observed on the wire (a raw line client) and
// through a real client library (nodemailer), plus what it records.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { parseRcptGrammar, renderReply, startFaultServer } from './fault-server.ts';
import type { FaultServer, FaultServerOptions } from './fault-server.ts';
import { connectWire } from './wire-client.ts';
import type { WireClient } from './wire-client.ts';
import { makeTestCertificate } from './tls-cert.ts';

const servers: FaultServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

async function start(opts: FaultServerOptions = {}): Promise<FaultServer> {
  const s = await startFaultServer(opts);
  servers.push(s);
  return s;
}

/** Connects, reads the greeting and says EHLO; returns the client and the EHLO reply. */
async function session(s: FaultServer): Promise<{ c: WireClient; ehlo: string }> {
  const c = await connectWire(s.port);
  const greeting = await c.readReply();
  assert.match(greeting, /^220 /);
  const ehlo = await c.command('EHLO client.test');
  assert.match(ehlo, /^250[ -]/);
  return { c, ehlo };
}

interface SendResult {
  accepted: string[];
  rejected: string[];
  rejectedResponses: string[];
  response: string;
}

/** Sends one message with nodemailer's SMTP client; resolves with its outcome or rejects with its error. */
async function nodemailerSend(
  port: number,
  from: string,
  to: string[],
  message: string | Buffer,
  extra: { auth?: { user: string; pass: string }; requireTLS?: boolean } = {},
): Promise<SendResult> {
  const conn = new SMTPConnection({
    host: '127.0.0.1',
    port,
    ignoreTLS: !extra.requireTLS,
    requireTLS: extra.requireTLS ?? false,
    tls: { rejectUnauthorized: false },
    name: 'client.test',
    connectionTimeout: 5000,
    greetingTimeout: 5000,
    socketTimeout: 5000,
  });
  conn.on('error', () => {
    /* reported through the callbacks */
  });
  try {
    await new Promise<void>((resolve, reject) => conn.connect((err?: Error | null) => (err ? reject(err) : resolve())));
    if (extra.auth) {
      const auth = extra.auth;
      await new Promise<void>((resolve, reject) => conn.login(auth, (err?: Error | null) => (err ? reject(err) : resolve())));
    }
    const info = await new Promise<SendResult>((resolve, reject) =>
      conn.send({ from, to }, message, (err, i) => {
        if (err) {
          reject(err);
          return;
        }
        resolve({
          accepted: i.accepted,
          rejected: i.rejected,
          rejectedResponses: (i.rejectedErrors ?? []).map((e) => String(e.response)),
          response: i.response,
        });
      }),
    );
    return info;
  } finally {
    conn.close();
  }
}

describe('fault-server: defaults', () => {
  it('advertises PIPELINING and ENHANCEDSTATUSCODES, accepts a message and records it byte for byte', async () => {
    const s = await start();
    const { c, ehlo } = await session(s);
    assert.match(ehlo, /^250-PIPELINING$/m);
    assert.match(ehlo, /^250[- ]ENHANCEDSTATUSCODES$/m);
    assert.equal(await c.command('QUIT'), '221 2.0.0 Bye');
    const body = Buffer.from('Subject: hi\r\n\r\n8bit \xe9 byte\r\n.leading dot\r\n..two dots\r\n', 'latin1');
    const r = await nodemailerSend(s.port, 'sender@src.test', ['a@dst.test', 'b@dst.test'], body);
    assert.deepEqual(r.accepted, ['a@dst.test', 'b@dst.test']);
    assert.match(r.response, /^250 2\.0\.0 Ok: queued as [0-9A-F]{10}$/);
    await s.waitFor((x) => x.transactions.at(-1)?.dataReply !== undefined, 5000);
    const tx = s.transactions.at(-1);
    assert.ok(tx);
    assert.equal(tx.from, 'sender@src.test');
    assert.deepEqual(tx.rcptAccepted, ['a@dst.test', 'b@dst.test']);
    assert.deepEqual(tx.rcptRejected, []);
    assert.ok(tx.data);
    assert.equal(tx.data.toString('latin1'), body.toString('latin1'), 'dot-unstuffed data equals what was submitted');
    assert.equal(tx.dataReply, r.response);
    assert.equal(tx.secure, false);
    assert.equal(tx.auth, undefined);
    assert.deepEqual([...s.deliveries()], [['a@dst.test', 1], ['b@dst.test', 1]]);
    assert.equal(s.connections.length, 2);
    await s.waitFor((x) => x.connections.every((k) => k.closed), 5000);
  });

  it('records commands and a transcript of what was written', async () => {
    const s = await start();
    const { c } = await session(s);
    assert.equal(await c.command('MAIL FROM:<x@src.test>'), '250 2.1.0 Accepted');
    assert.equal(await c.command('RCPT TO:<y@dst.test>'), '250 2.1.5 Accepted');
    assert.equal(await c.command('RSET'), '250 2.0.0 Flushed');
    c.send('QUIT');
    await c.closed();
    const k = s.connections[0];
    assert.ok(k);
    assert.deepEqual(k.commands, ['EHLO client.test', 'MAIL FROM:<x@src.test>', 'RCPT TO:<y@dst.test>', 'RSET', 'QUIT']);
    const sLines = k.transcript.filter((l) => l.dir === 'S').map((l) => l.line);
    assert.match(sLines[0] ?? '', /^220 fault-server\.test ESMTP fault-server$/);
    assert.deepEqual(sLines.slice(-4), ['250 2.1.0 Accepted', '250 2.1.5 Accepted', '250 2.0.0 Flushed', '221 2.0.0 Bye']);
    assert.equal(
      Buffer.from(sLines.join('\r\n') + '\r\n', 'latin1').toString('latin1'),
      c.received().toString('latin1'),
      'the transcript is exactly what the client received',
    );
  });
});

describe('fault-server: recipient grammar on the wire', () => {
  const cases: Array<[string, string]> = [
    ['552-quota@dst.test', '552 5.2.2 Mailbox full, quota exceeded'],
    ['452-full@dst.test', '452 4.2.2 Mailbox full, try again later'],
    ['452-toomany@dst.test', '452 4.5.3 Too many recipients'],
    ['552-toomany-x@dst.test', '552 5.5.3 Too many recipients'],
    ['451-x@dst.test', '451 4.3.0 Local error in processing, try again later'],
    ['451-greylist-1@dst.test', '451 4.7.1 Greylisted, try again later'],
    ['450-busy@dst.test', '450 4.2.1 Mailbox temporarily unavailable'],
    ['550-nobody@dst.test', '550 5.1.1 No such user here'],
    ['553-bad@dst.test', '553 5.1.3 Mailbox name not allowed'],
    ['554-x@dst.test', '554 5.7.1 Recipient address rejected: Access denied'],
    ['RCPT-550-Upper@dst.test', '550 5.1.1 No such user here'],
    ['rcpt-452@dst.test', '452 4.2.2 Mailbox full, try again later'],
    ['599-odd@dst.test', '599 5.0.0 Rejected by test peer'],
  ];

  it('sends each reply exactly, with enhanced codes', async () => {
    const s = await start();
    const { c } = await session(s);
    assert.equal(await c.command('MAIL FROM:<s@src.test>'), '250 2.1.0 Accepted');
    for (const [addr, want] of cases) {
      assert.equal(await c.command(`RCPT TO:<${addr}>`), want, addr);
    }
    assert.equal(await c.command('RCPT TO:<ok@dst.test>'), '250 2.1.5 Accepted');
    assert.equal(await c.command('DATA'), '354 End data with <CR><LF>.<CR><LF>');
    c.write('Subject: x\r\n\r\nbody\r\n.\r\n');
    assert.match(await c.readReply(), /^250 2\.0\.0 Ok: queued as /);
    const tx = s.transactions[0];
    assert.ok(tx);
    assert.deepEqual(tx.rcptAccepted, ['ok@dst.test']);
    assert.deepEqual(tx.rcptRejected, cases.map(([address, reply]) => ({ address, reply })));
    assert.deepEqual([...s.deliveries()], [['ok@dst.test', 1]]);
  });

  it('sends no enhanced code anywhere when enhancedStatusCodes is false', async () => {
    const s = await start({ enhancedStatusCodes: false });
    const { c, ehlo } = await session(s);
    assert.doesNotMatch(ehlo, /ENHANCEDSTATUSCODES/);
    assert.equal(await c.command('MAIL FROM:<s@src.test>'), '250 Accepted');
    for (const [addr] of cases) {
      const b = parseRcptGrammar(addr);
      assert.ok(b.reject);
      assert.equal(await c.command(`RCPT TO:<${addr}>`), renderReply(b.reject, false));
    }
    assert.equal(await c.command('RCPT TO:<552-quota@dst.test>'), '552 Mailbox full, quota exceeded');
    assert.equal(await c.command('RCPT TO:<ok@dst.test>'), '250 Accepted');
    assert.equal(await c.command('DATA'), '354 End data with <CR><LF>.<CR><LF>');
    c.write('x\r\n.\r\n');
    assert.match(await c.readReply(), /^250 Ok: queued as /);
    assert.equal(await c.command('QUIT'), '221 Bye');
    for (const line of c.received().toString('latin1').split('\r\n')) {
      assert.doesNotMatch(line, /^\d{3}[ -][245]\.\d{1,3}\.\d{1,3}\b/, `no enhanced code in ${line}`);
    }
  });

  it('answers pipelined commands in order, each exactly', async () => {
    const s = await start();
    const { c } = await session(s);
    c.write('MAIL FROM:<s@src.test>\r\nRCPT TO:<a@dst.test>\r\nRCPT TO:<552-quota@dst.test>\r\nRCPT TO:<b@dst.test>\r\nDATA\r\n');
    assert.equal(await c.readReply(), '250 2.1.0 Accepted');
    assert.equal(await c.readReply(), '250 2.1.5 Accepted');
    assert.equal(await c.readReply(), '552 5.2.2 Mailbox full, quota exceeded');
    assert.equal(await c.readReply(), '250 2.1.5 Accepted');
    assert.equal(await c.readReply(), '354 End data with <CR><LF>.<CR><LF>');
    c.write('hello\r\n.\r\nQUIT\r\n');
    assert.match(await c.readReply(), /^250 2\.0\.0 /);
    assert.equal(await c.readReply(), '221 2.0.0 Bye');
    assert.deepEqual([...s.deliveries()], [['a@dst.test', 1], ['b@dst.test', 1]]);
  });

  it('421-… at RCPT replies 421 and closes the connection', async () => {
    const s = await start();
    const { c } = await session(s);
    await c.command('MAIL FROM:<s@src.test>');
    assert.equal(await c.command('RCPT TO:<421-bye@dst.test>'), '421 4.3.2 Service shutting down, closing transmission channel');
    await c.closed();
  });

  it('nodemailer sees the grammar replies as per-recipient rejections', async () => {
    const s = await start();
    const r = await nodemailerSend(s.port, 's@src.test', ['ok@dst.test', '552-quota@dst.test', '550-gone@dst.test'], 'Subject: x\r\n\r\nx\r\n');
    assert.deepEqual(r.accepted, ['ok@dst.test']);
    assert.deepEqual(r.rejected, ['552-quota@dst.test', '550-gone@dst.test']);
    assert.deepEqual(r.rejectedResponses, ['552 5.2.2 Mailbox full, quota exceeded', '550 5.1.1 No such user here']);
  });
});

describe('fault-server: recipient limit', () => {
  for (const limitReply of ['452 4.5.3 Too many recipients', '552 5.5.3 Too many recipients', '552 Too many recipients', '452 Too many recipients']) {
    it(`answers RCPTs beyond the limit with exactly "${limitReply}", per transaction`, async () => {
      const s = await start({ maxRecipientsPerTransaction: 2, limitReply });
      const { c } = await session(s);
      for (let round = 0; round < 2; round++) {
        await c.command('MAIL FROM:<s@src.test>');
        assert.equal(await c.command('RCPT TO:<550-x@dst.test>'), '550 5.1.1 No such user here', 'refusals do not count');
        assert.equal(await c.command(`RCPT TO:<r${round}a@dst.test>`), '250 2.1.5 Accepted');
        assert.equal(await c.command(`RCPT TO:<r${round}b@dst.test>`), '250 2.1.5 Accepted');
        assert.equal(await c.command(`RCPT TO:<r${round}c@dst.test>`), limitReply);
        assert.equal(await c.command('RCPT TO:<550-y@dst.test>'), limitReply, 'the limit is checked before the grammar');
        await c.command('DATA');
        c.write('x\r\n.\r\n');
        assert.match(await c.readReply(), /^250 /);
      }
      assert.deepEqual(
        [...s.deliveries().keys()],
        ['r0a@dst.test', 'r0b@dst.test', 'r1a@dst.test', 'r1b@dst.test'],
      );
      assert.deepEqual(s.transactions.map((t) => t.rcptRejected.map((x) => x.reply)), [
        ['550 5.1.1 No such user here', limitReply, limitReply],
        ['550 5.1.1 No such user here', limitReply, limitReply],
      ]);
    });
  }

  it('defaults to 452 4.5.3, or 452 without enhanced codes', async () => {
    const a = await start({ maxRecipientsPerTransaction: 1 });
    const b = await start({ maxRecipientsPerTransaction: 1, enhancedStatusCodes: false });
    for (const [s, want] of [[a, '452 4.5.3 Too many recipients'], [b, '452 Too many recipients']] as const) {
      const { c } = await session(s);
      await c.command('MAIL FROM:<s@src.test>');
      await c.command('RCPT TO:<one@dst.test>');
      assert.equal(await c.command('RCPT TO:<two@dst.test>'), want);
    }
  });
});

describe('fault-server: stateful and data-phase faults', () => {
  it('tempfail-once refuses an address the first time this server sees it, then accepts it', async () => {
    const s = await start();
    const { c } = await session(s);
    await c.command('MAIL FROM:<s@src.test>');
    assert.equal(await c.command('RCPT TO:<tempfail-once-a@dst.test>'), '451 4.3.0 Temporary failure, try again later');
    assert.equal(await c.command('RCPT TO:<TempFail-Once-A@dst.test>'), '250 2.1.5 Accepted', 'same address, any case');
    assert.equal(await c.command('RCPT TO:<tempfail-once-b@dst.test>'), '451 4.3.0 Temporary failure, try again later');
    await c.command('RSET');
    await c.command('MAIL FROM:<s@src.test>');
    assert.equal(await c.command('RCPT TO:<tempfail-once-b@dst.test>'), '250 2.1.5 Accepted');
    const other = await start();
    const o = await session(other);
    await o.c.command('MAIL FROM:<s@src.test>');
    assert.equal(await o.c.command('RCPT TO:<tempfail-once-a@dst.test>'), '451 4.3.0 Temporary failure, try again later', 'state is per server');
  });

  it('data-554-… makes the final-dot reply 554 5.6.0 for the whole transaction', async () => {
    const s = await start();
    const { c } = await session(s);
    await c.command('MAIL FROM:<s@src.test>');
    assert.equal(await c.command('RCPT TO:<a@dst.test>'), '250 2.1.5 Accepted');
    assert.equal(await c.command('RCPT TO:<data-554-b@dst.test>'), '250 2.1.5 Accepted');
    await c.command('DATA');
    c.write('Subject: x\r\n\r\nspam\r\n.\r\n');
    assert.equal(await c.readReply(), '554 5.6.0 Content rejected');
    assert.equal(s.transactions[0]?.dataReply, '554 5.6.0 Content rejected');
    assert.equal(s.transactions[0]?.data?.toString(), 'Subject: x\r\n\r\nspam\r\n');
    assert.equal(s.deliveries().size, 0);
    // The connection stays usable: the next transaction is accepted.
    await c.command('MAIL FROM:<s@src.test>');
    await c.command('RCPT TO:<a@dst.test>');
    await c.command('DATA');
    c.write('x\r\n.\r\n');
    assert.match(await c.readReply(), /^250 /);
    assert.deepEqual([...s.deliveries()], [['a@dst.test', 1]]);
  });

  it('data-451-… gives a temporary final-dot reply', async () => {
    const s = await start();
    const r = nodemailerSend(s.port, 's@src.test', ['data-451-x@dst.test'], 'x\r\n');
    await assert.rejects(r, (e: Error & { response?: string }) => e.response === '451 4.3.0 Error processing message, try again later');
  });

  it('the dataReply option is sent verbatim', async () => {
    const s = await start({ dataReply: '554 5.6.0 Content rejected' });
    await assert.rejects(
      nodemailerSend(s.port, 's@src.test', ['a@dst.test'], 'x\r\n'),
      (e: Error & { response?: string }) => e.response === '554 5.6.0 Content rejected',
    );
    const t = await start({ dataReply: '250 custom accepted text', enhancedStatusCodes: false });
    const r = await nodemailerSend(t.port, 's@src.test', ['a@dst.test'], 'x\r\n');
    assert.equal(r.response, '250 custom accepted text');
    assert.equal(t.deliveries().get('a@dst.test'), 1);
  });

  for (const how of ['recipient', 'option'] as const) {
    it(`drop-after-data (${how}) closes the connection after the body without replying`, async () => {
      const s = await start(how === 'option' ? { dropAfterData: true } : {});
      const { c } = await session(s);
      await c.command('MAIL FROM:<s@src.test>');
      await c.command(`RCPT TO:<${how === 'option' ? 'a' : 'drop-after-data-a'}@dst.test>`);
      await c.command('DATA');
      const before = c.received().length;
      c.write('Subject: x\r\n\r\nbody\r\n.\r\n');
      await c.closed();
      assert.equal(c.received().length, before, 'no reply to the final dot');
      const tx = s.transactions[0];
      assert.ok(tx);
      assert.equal(tx.dropped, true);
      assert.equal(tx.dataReply, undefined);
      assert.equal(tx.data?.toString(), 'Subject: x\r\n\r\nbody\r\n');
      assert.equal(s.deliveries().size, 0);
    });
  }

  it('mail-<code>-… refuses MAIL FROM', async () => {
    const s = await start();
    const { c } = await session(s);
    assert.equal(await c.command('MAIL FROM:<mail-550-x@src.test>'), '550 5.7.1 Sender rejected');
    assert.equal(await c.command('MAIL FROM:<mail-451-x@src.test>'), '451 4.3.0 Temporary failure, try again later');
    assert.equal(await c.command('RCPT TO:<a@dst.test>'), '503 5.5.1 Error: need MAIL command');
    assert.equal(await c.command('MAIL FROM:<ok@src.test>'), '250 2.1.0 Accepted');
    assert.deepEqual(s.mailRejected.map((m) => m.reply), ['550 5.7.1 Sender rejected', '451 4.3.0 Temporary failure, try again later']);
    assert.equal(s.transactions.length, 1);
  });

  it('rcptReply overrides the grammar with a verbatim line', async () => {
    const s = await start({ rcptReply: (a) => (a.startsWith('vip') ? '550-5.7.1 first line\r\n550 5.7.1 second line' : undefined) });
    const { c } = await session(s);
    await c.command('MAIL FROM:<s@src.test>');
    assert.equal(await c.command('RCPT TO:<vip@dst.test>'), '550-5.7.1 first line\r\n550 5.7.1 second line');
    assert.equal(await c.command('RCPT TO:<552-quota@dst.test>'), '552 5.2.2 Mailbox full, quota exceeded');
  });
});

describe('fault-server: timing', () => {
  it('slow-<ms>-… delays only that RCPT reply', async () => {
    const s = await start();
    const { c } = await session(s);
    await c.command('MAIL FROM:<s@src.test>');
    let t0 = Date.now();
    assert.equal(await c.command('RCPT TO:<slow-300-a@dst.test>'), '250 2.1.5 Accepted');
    assert.ok(Date.now() - t0 >= 290, `delayed ${Date.now() - t0} ms`);
    t0 = Date.now();
    assert.equal(await c.command('RCPT TO:<slow-200-552-quota@dst.test>'), '552 5.2.2 Mailbox full, quota exceeded', 'slow- combines');
    assert.ok(Date.now() - t0 >= 190);
    assert.deepEqual(s.transactions[0]?.rcptAccepted, ['slow-300-a@dst.test']);
  });

  it('slowMs delays every reply, greeting included', async () => {
    const s = await start({ slowMs: 150 });
    const t0 = Date.now();
    const c = await connectWire(s.port);
    await c.readReply();
    assert.ok(Date.now() - t0 >= 140, 'greeting delayed');
    for (const cmd of ['EHLO c.test', 'MAIL FROM:<s@src.test>', 'RCPT TO:<a@dst.test>', 'DATA']) {
      const t = Date.now();
      await c.command(cmd);
      assert.ok(Date.now() - t >= 140, `${cmd} delayed`);
    }
    const t = Date.now();
    c.write('x\r\n.\r\n');
    assert.match(await c.readReply(), /^250 /);
    assert.ok(Date.now() - t >= 140, 'final dot delayed');
  });
});

describe('fault-server: session options', () => {
  it('pipelining: false hides PIPELINING', async () => {
    const s = await start({ pipelining: false });
    const { ehlo } = await session(s);
    assert.doesNotMatch(ehlo, /PIPELINING/);
    assert.match(ehlo, /8BITMIME/);
  });

  it('a custom greeting is sent verbatim; a refusing one closes the connection', async () => {
    const s = await start({ greeting: '554 5.7.1 No SMTP service here' });
    const c = await connectWire(s.port);
    assert.equal(await c.readReply(), '554 5.7.1 No SMTP service here');
    await c.closed();
    const t = await start({ greeting: '220-mx.test first\r\n220 mx.test ESMTP ready' });
    const d = await connectWire(t.port);
    assert.equal(await d.readReply(), '220-mx.test first\r\n220 mx.test ESMTP ready');
    assert.match(await d.command('EHLO c.test'), /^250-fault-server\.test /);
  });

  it('size advertises SIZE and the 552 for a bigger message is recorded as sent', async () => {
    const s = await start({ size: 100 });
    const { c, ehlo } = await session(s);
    assert.match(ehlo, /^250[- ]SIZE 100$/m);
    await c.command('MAIL FROM:<s@src.test>');
    await c.command('RCPT TO:<a@dst.test>');
    await c.command('DATA');
    c.write(`${'x'.repeat(200)}\r\n.\r\n`);
    const reply = await c.readReply();
    assert.equal(reply, '552 5.3.4 Error: message exceeds fixed maximum message size 100');
    assert.equal(s.transactions[0]?.dataReply, reply);
    assert.equal(s.deliveries().size, 0);
  });

  it('auth requires AUTH before MAIL and records the user', async () => {
    const s = await start({ auth: { username: 'relay', password: 's3cret' } });
    const { c, ehlo } = await session(s);
    assert.match(ehlo, /^250[- ]AUTH PLAIN LOGIN$/m);
    assert.match(await c.command('MAIL FROM:<s@src.test>'), /^530 /);
    assert.equal(await c.command(`AUTH PLAIN ${Buffer.from('\0relay\0wrong').toString('base64')}`), '535 5.7.8 Authentication credentials invalid');
    await assert.rejects(nodemailerSend(s.port, 's@src.test', ['a@dst.test'], 'x\r\n', { auth: { user: 'relay', pass: 'nope' } }));
    await nodemailerSend(s.port, 's@src.test', ['a@dst.test'], 'x\r\n', { auth: { user: 'relay', pass: 's3cret' } });
    assert.equal(s.transactions.at(-1)?.auth, 'relay');
  });

  it('tls offers STARTTLS and records the transaction as secure', async () => {
    const s = await start({ tls: makeTestCertificate() });
    const { c, ehlo } = await session(s);
    assert.match(ehlo, /^250[- ]STARTTLS$/m);
    assert.equal(await c.command('STARTTLS'), '220 2.0.0 Ready to start TLS');
    await c.startTls();
    const again = await c.command('EHLO client.test');
    assert.doesNotMatch(again, /STARTTLS/);
    await c.command('QUIT');
    await nodemailerSend(s.port, 's@src.test', ['a@dst.test'], 'x\r\n', { requireTLS: true });
    assert.equal(s.transactions.at(-1)?.secure, true);
  });

  it('listens on ::1 when asked', async () => {
    const s = await start({ host: '::1' });
    assert.equal(s.host, '::1');
    const c = await connectWire(s.port, '::1');
    assert.match(await c.readReply(), /^220 /);
    c.destroy();
  });

  it('without tls there is no STARTTLS', async () => {
    const s = await start();
    const { c, ehlo } = await session(s);
    assert.doesNotMatch(ehlo, /STARTTLS/);
    assert.match(await c.command('STARTTLS'), /^50[02] /);
  });
});
