// Postfix's smtp-sink and smtp-source driven as real peers: what they announce, what the
// dump files hold, and that the load generator's count arrives.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import { runSmtpSource, startSmtpSink } from './postfix.ts';
import type { SmtpSink, SmtpSinkOptions } from './postfix.ts';
import { connectWire } from './wire-client.ts';
import type { WireClient } from './wire-client.ts';

const sinks: SmtpSink[] = [];
after(async () => {
  await Promise.all(sinks.map((s) => s.close()));
});

async function start(opts: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const s = await startSmtpSink(opts);
  sinks.push(s);
  return s;
}

async function ehlo(s: SmtpSink): Promise<{ c: WireClient; ehlo: string }> {
  const c = await connectWire(s.port);
  assert.match(await c.readReply(), /^220 /);
  return { c, ehlo: await c.command('EHLO client.test') };
}

/** Sends one message with nodemailer; resolves with the final reply or rejects with nodemailer's error. */
async function nodemailerSend(port: number, to: string[], message: string): Promise<string> {
  const conn = new SMTPConnection({ host: '127.0.0.1', port, ignoreTLS: true, name: 'client.test', connectionTimeout: 5000, socketTimeout: 5000 });
  conn.on('error', () => {
    /* reported through the callbacks */
  });
  try {
    await new Promise<void>((resolve, reject) => conn.connect((err?: Error | null) => (err ? reject(err) : resolve())));
    return await new Promise<string>((resolve, reject) =>
      conn.send({ from: 'sender@src.test', to }, message, (err, info) => (err ? reject(err) : resolve(info.response))),
    );
  } finally {
    conn.close();
  }
}

describe('smtp-sink', () => {
  it('accepts a message from nodemailer and dumps it to a file', async () => {
    const s = await start({ dump: true, hostname: 'sink.test' });
    const message = 'Subject: hello\r\nX-Test: 1\r\n\r\nfirst line\r\n.leading dot\r\n\r\nlast line\r\n';
    assert.equal(await nodemailerSend(s.port, ['a@dst.test', 'b@dst.test'], message), '250 2.0.0 Ok');
    const [m] = await s.waitForMessages(1, 5000);
    assert.ok(m);
    assert.equal(m.clientAddr, '127.0.0.1');
    assert.equal(m.clientProto, 'ESMTP');
    assert.equal(m.heloArgs, 'client.test');
    assert.equal(m.from, 'sender@src.test');
    assert.deepEqual(m.rcpts, ['a@dst.test', 'b@dst.test']);
    assert.equal(m.content, message.replace(/\r/g, ''), 'the dump is the message with CRs removed and dots unstuffed');
    await s.waitForCounters((c) => c.messages === 1, 5000);
  });

  it('an aborted transaction leaves no dump file', async () => {
    const s = await start({ dump: true });
    const { c } = await ehlo(s);
    assert.equal(await c.command('MAIL FROM:<a@src.test>'), '250 2.1.0 Ok');
    assert.equal(await c.command('RCPT TO:<b@dst.test>'), '250 2.1.5 Ok');
    assert.equal(await c.command('RSET'), '250 2.1.0 Ok');
    assert.equal(await c.command('QUIT'), '221 Bye');
    await s.waitForCounters((k) => k.sessions === 1, 5000);
    assert.deepEqual(s.messages(), []);
  });

  it('announces PIPELINING and ENHANCEDSTATUSCODES by default; its last EHLO line is a bare "250 "', async () => {
    const s = await start();
    const { ehlo: reply } = await ehlo(s);
    assert.equal(
      reply,
      ['250-smtp-sink', '250-PIPELINING', '250-8BITMIME', '250-AUTH PLAIN LOGIN', '250-XCLIENT NAME HELO', '250-XFORWARD NAME ADDR PROTO HELO', '250-ENHANCEDSTATUSCODES', '250-DSN', '250 '].join('\r\n'),
    );
  });

  it('pipelining: false and enhancedStatusCodes: false drop the keywords (enhanced codes stay in replies)', async () => {
    const s = await start({ pipelining: false, enhancedStatusCodes: false, auth: false, xclientXforward: false });
    const { c, ehlo: reply } = await ehlo(s);
    assert.equal(reply, ['250-smtp-sink', '250-8BITMIME', '250-DSN', '250 '].join('\r\n'));
    assert.equal(await c.command('MAIL FROM:<a@src.test>'), '250 2.1.0 Ok');
  });

  it('has no CHUNKING: BDAT is an unknown command', async () => {
    const s = await start();
    const { c, ehlo: reply } = await ehlo(s);
    assert.doesNotMatch(reply, /CHUNKING/);
    await c.command('MAIL FROM:<a@src.test>');
    await c.command('RCPT TO:<b@dst.test>');
    assert.equal(await c.command('BDAT 5 LAST'), '500 5.5.1 Error: unknown command');
    await assert.rejects(startSmtpSink({ chunking: true as unknown as false }), /no CHUNKING/);
  });

  it('rejects chosen commands with a chosen reply', async () => {
    const s = await start({ hardReject: ['RCPT'], hardReply: '550 5.1.1 No such user' });
    await assert.rejects(nodemailerSend(s.port, ['a@dst.test'], 'x\r\n'), (e: Error & { response?: string }) => e.response === '550 5.1.1 No such user');
    const t = await start({ softReject: ['.'] });
    await assert.rejects(nodemailerSend(t.port, ['a@dst.test'], 'x\r\n'), (e: Error & { response?: string }) => e.response === '450 4.3.0 Error: command failed');
  });

  it('close() stops the process', async () => {
    const s = await startSmtpSink();
    assert.ok(existsSync(`/proc/${s.pid}`));
    await s.close();
    assert.equal(existsSync(`/proc/${s.pid}`), false);
    await assert.rejects(connectWire(s.port), /ECONNREFUSED/);
  });
});

describe('smtp-source → smtp-sink', () => {
  it('delivers the requested number of messages over parallel sessions', async () => {
    const s = await start();
    const r = await runSmtpSource({ port: s.port, messages: 60, sessions: 4, recipientsPerMessage: 3, sizeBytes: 2000, from: 'load@src.test', to: 'rcpt@dst.test' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.completed, 60);
    assert.ok(r.elapsedMs > 0);
    await s.waitForCounters((c) => c.messages === 60, 10_000);
  });

  it('reuses connections with -d, and the dump (in a given directory) shows its envelope', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'sink-dump-test-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const s = await start({ dumpDir: dir });
    assert.equal(s.dumpDir, dir);
    const r = await runSmtpSource({ port: s.port, messages: 5, sessions: 1, reuseConnection: true, recipientsPerMessage: 2, to: 'to@dst.test', from: 'f@src.test', heloName: 'source.test', subject: 'load' });
    assert.equal(r.code, 0, r.stderr);
    await s.waitForCounters((c) => c.messages === 5 && c.sessions === 1, 10_000);
    const msgs = await s.waitForMessages(5, 5000);
    for (const m of msgs) {
      assert.equal(m.clientProto, 'SMTP', 'smtp-source says HELO');
      assert.equal(m.heloArgs, 'source.test');
      assert.equal(m.from, 'f@src.test');
      assert.deepEqual(m.rcpts, ['2to@dst.test', 'to@dst.test']);
      assert.match(m.content, /^Subject: load$/m);
    }
  });

  it('exits non-zero when the server refuses', async () => {
    const s = await start({ hardReject: ['RCPT'] });
    const r = await runSmtpSource({ port: s.port, messages: 1 });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /recipient rejected: 500 5\.3\.0 Error: command failed/);
  });
});
