// A real MTA nobody here wrote as the downstream: Postfix's smtp-sink, with and without
// PIPELINING. Every message and recipient arrives, bodies with dot-lines intact.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSmtpSink } from '../peers/postfix.ts';
import { engineFor, message } from '../helpers/engine.ts';

for (const pipelining of [true, false]) {
  test(`engine -> smtp-sink, PIPELINING ${pipelining ? 'on' : 'off'}: 20 messages x 3 recipients, dot-lines intact`, async (t) => {
    const sink = await startSmtpSink({ pipelining, dump: true });
    const { engine } = engineFor(sink.port, { concurrencyPerDestination: 2 });
    t.after(async () => { await engine.close(); await sink.close(); });
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) =>
      engine.deliver(message('s@relay.test', [`a${i}@sink.test`, `b${i}@sink.test`, `c${i}@sink.test`], `Subject: m${i}\r\n\r\n.\r\n..${i}\r\n.end\r\n`))));
    assert.ok(results.flat().every((r) => r.verdict.status === 'accepted' && r.reply?.code === 250));
    await sink.waitForMessages(20, 10_000);
    const msgs = sink.messages();
    assert.equal(msgs.length, 20);
    const rcpts = msgs.flatMap((m) => m.rcpts).sort();
    assert.equal(rcpts.length, 60);
    assert.equal(new Set(rcpts).size, 60, 'no recipient twice');
    for (const m of msgs) {
      const i = /Subject: m(\d+)/.exec(m.content)?.[1];
      assert.ok(m.content.endsWith(`\n.\n..${i}\n.end\n`), JSON.stringify(m.content.slice(-30)));
      assert.deepEqual(m.rcpts, [`a${i}@sink.test`, `b${i}@sink.test`, `c${i}@sink.test`]);
    }
  });
}
