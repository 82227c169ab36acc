// What the engine puts on the wire, seen by a raw TCP peer: dot-stuffing as sent, BDAT
// groups (RFC 3030), no body for zero accepted recipients (RFC 2920 §3.1), lone-dot + RSET.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startRawServer } from '../peers/raw-server.ts';
import { engineFor, message } from '../helpers/engine.ts';

test('DATA on the wire is dot-stuffed and ends CRLF.CRLF (seed 002)', async (t) => {
  const server = await startRawServer({ capabilities: { chunking: false } });
  const { engine } = engineFor(server.port);
  t.after(async () => { await engine.close(); await server.close(); });
  const [r] = await engine.deliver(message('s@relay.test', ['a@example.com'], '.first\n..second\r\nmid\r.\rend'));
  assert.equal(r!.verdict.status, 'accepted');
  const tx = server.transactions[0]!;
  assert.equal(tx.method, 'DATA');
  assert.equal(tx.dataRaw!.toString('latin1'), '..first\r\n...second\r\nmid\r\n..\r\nend\r\n.\r\n');
});

test('CHUNKING: MAIL, RCPTs and BDAT LAST arrive before the first reply is written: one round trip', async (t) => {
  const server = await startRawServer({ capabilities: { chunking: true, pipelining: true } });
  const { engine } = engineFor(server.port);
  t.after(async () => { await engine.close(); await server.close(); });
  const body = 'Subject: b\r\n\r\n.not stuffed in BDAT\r\n';
  const [r1, r2] = await engine.deliver(message('s@relay.test', ['a@example.com', 'b@example.com'], body));
  assert.equal(r1!.verdict.status, 'accepted');
  assert.equal(r2!.verdict.status, 'accepted');
  const conn = server.connections[0]!;
  const mail = conn.commands.find((c) => c.verb === 'MAIL')!;
  const bdat = conn.commands.find((c) => c.verb === 'BDAT')!;
  assert.equal(bdat.args, `${Buffer.byteLength(body)} LAST`);
  assert.equal(bdat.repliesBefore, mail.repliesBefore, 'no reply was awaited between MAIL and BDAT LAST');
  assert.equal(server.transactions[0]!.data!.toString(), body, 'BDAT data is not dot-stuffed');
  assert.ok(!conn.commands.some((c) => c.verb === 'DATA'));
});

test('CHUNKING: a 5xx to a BDAT segment stops further segments; only accepted recipients fail', async (t) => {
  const server = await startRawServer({
    capabilities: { chunking: true },
    handler: (cmd, ctx) => (cmd.verb === 'BDAT' ? '552 5.3.4 Message too big for system' : ctx.defaultReply()),
  });
  const { engine } = engineFor(server.port, { chunkSize: 1024 });
  t.after(async () => { await engine.close(); await server.close(); });
  const body = 'x'.repeat(200) + '\r\n';
  const big = body.repeat(60); // ~12 KB: 12 segments if nothing stopped us
  const r = await engine.deliver(message('s@relay.test', ['a@example.com'], big));
  assert.equal(r[0]!.verdict.status, 'failed');
  assert.equal(r[0]!.reply?.code, 552);
  const bdats = server.connections[0]!.commands.filter((c) => c.verb === 'BDAT').length;
  assert.ok(bdats < 12, `stopped sending segments after the error (sent ${bdats})`);
  await server.waitFor((s) => s.connections[0]!.commands.some((c) => c.verb === 'RSET'), 2000, 'RSET after the BDAT failure');
});

test('PIPELINING: zero accepted recipients and a 354 anyway -> lone ".", RSET, and no body on the wire', async (t) => {
  const server = await startRawServer({
    capabilities: { chunking: false },
    handler: (cmd, ctx) => (cmd.verb === 'RCPT' ? '550 5.1.1 No such user' : cmd.verb === 'DATA' ? '354 go ahead anyway' : ctx.defaultReply()),
  });
  const { engine } = engineFor(server.port);
  t.after(async () => { await engine.close(); await server.close(); });
  const r = await engine.deliver(message('s@relay.test', ['a@example.com', 'b@example.com'], 'SECRET BODY\r\n'));
  assert.deepEqual(r.map((x) => x.verdict.status), ['failed', 'failed']);
  const conn = server.connections[0]!;
  assert.ok(!conn.rawIn.toString('latin1').includes('SECRET BODY'), 'the body never reached the server');
  assert.equal(server.transactions[0]!.dataRaw?.toString('latin1'), '.\r\n');
  await server.waitFor(() => conn.commands.some((c) => c.verb === 'RSET'), 2000, 'RSET after the lone dot');
});

test('multi-line 354 and replies arriving one byte at a time with bare LF', async (t) => {
  const server = await startRawServer({
    capabilities: { chunking: false },
    handler: (cmd, ctx) => {
      if (cmd.verb === 'DATA') return { reply: ['354-Go ahead', '354 End with .'], split: { chunkSize: 1, intervalMs: 1 } };
      if (cmd.verb === 'RCPT') return { reply: '250 2.1.5 Ok', lineEnding: '\n' };
      return ctx.defaultReply();
    },
  });
  const { engine } = engineFor(server.port);
  t.after(async () => { await engine.close(); await server.close(); });
  const [r] = await engine.deliver(message('s@relay.test', ['a@example.com'], 'hi\r\n'));
  assert.equal(r!.verdict.status, 'accepted');
});
