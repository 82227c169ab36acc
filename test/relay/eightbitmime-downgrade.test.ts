// RFC 6152 §3 on the wire: an 8-bit message to a next hop without 8BITMIME goes as
// quoted-printable (MIME-aware, part by part); one that cannot be converted bounces 5.6.3;
// to a next hop with 8BITMIME it goes unchanged, declared BODY=8BITMIME.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startFaultServer } from '../peers/fault-server.ts';
import { engineFor, message } from '../helpers/engine.ts';

const body = Buffer.from('Subject: hi\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln\r\n.\r\n', 'utf8');

for (const chunking of [false, true]) {
  test(`8-bit body to a next hop without 8BITMIME arrives as quoted-printable, 7-bit on the wire (chunking ${chunking})`, async (t) => {
    const server = await startFaultServer({ eightBitMime: false });
    const { engine } = engineFor(server.port, { chunking });
    t.after(async () => { await engine.close(); await server.close(); });
    const [r] = await engine.deliver({ ...message('s@relay.test', ['a@example.com'], body), eightBit: true });
    assert.equal(r!.verdict.status, 'accepted');
    const got = server.transactions[0]!.data!;
    assert.ok(got.every((c) => c < 0x80), 'only 7-bit bytes reached the next hop');
    assert.equal(got.toString(), 'Subject: hi\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe aus K=C3=B6ln\r\n.\r\n');
    assert.ok(!server.connections[0]!.commands.some((c) => /BODY=8BITMIME/i.test(c)), 'no BODY=8BITMIME to a server that lacks it');
  });
}

test('an 8-bit header field cannot be converted: the recipients bounce with 5.6.3, nothing is sent', async (t) => {
  const server = await startFaultServer({ eightBitMime: false });
  const { engine } = engineFor(server.port, { chunking: false });
  t.after(async () => { await engine.close(); await server.close(); });
  const results = await engine.deliver({ ...message('s@relay.test', ['a@example.com', 'b@example.com'], Buffer.from('Subject: Grüße\r\n\r\nKöln\r\n', 'utf8')), eightBit: true });
  assert.deepEqual(results.map((r) => `${r.verdict.status} ${r.reply?.code} ${r.reply?.enhanced ? `${r.reply.enhanced.class}.${r.reply.enhanced.subject}.${r.reply.enhanced.detail}` : ''}`), ['failed 554 5.6.3', 'failed 554 5.6.3']);
  assert.equal(server.transactions.length, 0);
});

test('to a next hop with 8BITMIME the 8-bit body goes unchanged, declared BODY=8BITMIME', async (t) => {
  const server = await startFaultServer({});
  const { engine } = engineFor(server.port, { chunking: false });
  t.after(async () => { await engine.close(); await server.close(); });
  const [r] = await engine.deliver({ ...message('s@relay.test', ['a@example.com'], body), eightBit: true });
  assert.equal(r!.verdict.status, 'accepted');
  assert.ok(server.transactions[0]!.data!.equals(body));
  assert.ok(server.connections[0]!.commands.some((c) => /^MAIL FROM:<s@relay.test>.* BODY=8BITMIME/i.test(c)));
});
