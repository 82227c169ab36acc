import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReplyParser, replyText, type ParseEvent } from './reply.ts';

const replies = (evs: ParseEvent[]) => evs.map((e) => (e.type === 'reply' ? e.reply : e));

test('single and multi-line replies, enhanced codes stripped from every line', () => {
  const p = new ReplyParser();
  const out = replies(p.push('250-mx.example.com Hello\r\n250-PIPELINING\r\n250 8BITMIME\r\n552 5.2.2 Mailbox full\r\n'));
  assert.deepEqual(out, [
    { code: 250, enhanced: null, lines: ['mx.example.com Hello', 'PIPELINING', '8BITMIME'], command: null },
    { code: 552, enhanced: { class: 5, subject: 2, detail: 2 }, lines: ['Mailbox full'], command: null },
  ]);
  const [r] = replies(p.push('550-5.1.1 The email account does not exist.\r\n550 5.1.1 https://support.example/?p=NoSuchUser\r\n'));
  assert.equal(r && 'code' in r ? replyText(r) : '', '550 5.1.1 The email account does not exist. / https://support.example/?p=NoSuchUser');
});

test('a multi-line 354 is one reply', () => {
  const p = new ReplyParser();
  const out = replies(p.push('354-Start mail input\r\n354 End with <CRLF>.<CRLF>\r\n'));
  assert.equal(out.length, 1);
  assert.deepEqual(out[0] && 'code' in out[0] ? out[0].lines : [], ['Start mail input', 'End with <CRLF>.<CRLF>']);
});

test('replies split across reads at every byte, and bare LF line ends', () => {
  const wire = '250-first\n250 second\r\n452 4.5.3 Too many recipients\n';
  const p = new ReplyParser();
  const out: ParseEvent[] = [];
  for (const ch of wire) out.push(...p.push(ch));
  assert.deepEqual(replies(out).map((r) => ('code' in r ? r.code : r)), [250, 452]);
  assert.equal(p.midReply, false);
  p.push('250-half');
  assert.equal(p.midReply, true, 'a close now would cut a reply short');
});

test('enhanced code whose class does not match the reply code is not taken as one', () => {
  const [r] = replies(new ReplyParser().push('452 5.5.3 odd server\r\n'));
  assert.ok(r && 'code' in r);
  assert.equal(r.enhanced, null);
  assert.deepEqual(r.lines, ['5.5.3 odd server']);
});

test('garbage, code changes mid-reply and endless lines are protocol errors', () => {
  assert.equal(new ReplyParser().push('hello there\r\n')[0]?.type, 'error');
  assert.equal(new ReplyParser().push('250-a\r\n220 b\r\n')[0]?.type, 'error');
  const p = new ReplyParser();
  let ev: ParseEvent[] = [];
  for (let i = 0; i < 10 && ev.length === 0; i++) ev = p.push('x'.repeat(1000));
  assert.equal(ev[0]?.type, 'error');
  assert.deepEqual(p.push('250 ok\r\n'), [], 'a failed parser stays failed');
});

test('a line of exactly MAX_REPLY_LINE bytes is accepted whether or not its CRLF is split across reads', async () => {
  const { MAX_REPLY_LINE } = await import('./reply.ts');
  const line = `250 ${'x'.repeat(MAX_REPLY_LINE - 4)}`;
  assert.equal(new ReplyParser().push(`${line}\r\n`)[0]?.type, 'reply');
  const p = new ReplyParser();
  assert.deepEqual(p.push(`${line}\r`), []);
  assert.equal(p.push('\n')[0]?.type, 'reply');
});
