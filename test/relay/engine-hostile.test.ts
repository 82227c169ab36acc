// Hostile or broken servers get a clear temporary classification within the configured
// timeouts: never a crash, never a hang, never a recipient reported delivered.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startRawServer, hostile, type RawServerOptions } from '../peers/raw-server.ts';
import { engineFor, message } from '../helpers/engine.ts';

const fast = { connect: 1000, greeting: 600, command: 600, dataInit: 600, dataBlock: 600, dataTerm: 600, idle: 1000 };

async function attempt(t: import('node:test').TestContext, opts: RawServerOptions) {
  const server = await startRawServer(opts);
  const { engine } = engineFor(server.port, { timeouts: fast });
  t.after(async () => { await engine.close(); await server.close(); });
  const started = Date.now();
  const results = await engine.deliver(message('s@relay.test', ['a@example.com', 'b@example.com'], 'x\r\n'));
  return { results, ms: Date.now() - started, server };
}

const cases: [string, RawServerOptions, string][] = [
  ['garbage instead of a greeting', { greeting: hostile.garbage() }, 'connection'],
  ['a 554 greeting (no service here)', { greeting: '554 5.7.1 go away' }, 'temporary_reply'],
  ['a greeting that never comes', { greeting: hostile.neverAnswer() }, 'timeout'],
  ['an endless EHLO line', { handler: (c, ctx) => (c.verb === 'EHLO' ? hostile.endlessLine({ durationMs: 3000 }) : ctx.defaultReply()) }, 'connection'],
  ['a disconnect in the middle of the EHLO reply', { handler: (c, ctx) => (c.verb === 'EHLO' ? hostile.disconnectMidReply() : ctx.defaultReply()) }, 'connection'],
  ['garbage in answer to RCPT', { handler: (c, ctx) => (c.verb === 'RCPT' ? hostile.garbage('OK GO\r\n') : ctx.defaultReply()) }, 'connection'],
  ['no answer to RCPT', { handler: (c, ctx) => (c.verb === 'RCPT' ? hostile.neverAnswer() : ctx.defaultReply()) }, 'timeout'],
  ['no answer to the final dot', { capabilities: { chunking: false }, handler: (c, ctx) => (c.verb === '.' ? hostile.neverAnswer() : ctx.defaultReply()) }, 'timeout'],
  ['a drop after the data', { capabilities: { chunking: false }, handler: (c, ctx) => (c.verb === '.' ? { close: 'destroy' } : ctx.defaultReply()) }, 'connection'],
  ['a 1xx reply to MAIL', { handler: (c, ctx) => (c.verb === 'MAIL' ? '150 what' : ctx.defaultReply()) }, 'connection'],
  // Out of step in a lock-step session: one reply too many, in the same packet. Taken in order,
  // each later command would get the reply of the one before, and BDAT LAST a RCPT's 250
  // (the fuzzer's find: mail marked delivered that the server never received the end of).
  ['two replies to MAIL (lost synchronization), with CHUNKING', { capabilities: { pipelining: false }, handler: (c, ctx) => (c.verb === 'MAIL' ? '250 2.1.0 Ok\r\n250 2.1.0 Ok again' : ctx.defaultReply()) }, 'connection'],
  ['two replies to MAIL (lost synchronization), with DATA', { capabilities: { chunking: false, pipelining: false }, handler: (c, ctx) => (c.verb === 'MAIL' ? '250 2.1.0 Ok\r\n250 2.1.0 Ok again' : ctx.defaultReply()) }, 'connection'],
];

for (const [name, opts, reason] of cases) {
  test(`hostile server: ${name} -> deferred (${reason}), bounded in time`, async (t) => {
    const { results, ms } = await attempt(t, opts);
    for (const r of results) {
      assert.equal(r.verdict.status, 'deferred', `${r.address}: ${JSON.stringify(r.verdict)} ${r.note ?? ''}`);
      assert.equal(r.verdict.status === 'deferred' && r.verdict.reason, reason, r.note);
    }
    assert.ok(ms < 5000, `gave up after ${ms} ms`);
  });
}
