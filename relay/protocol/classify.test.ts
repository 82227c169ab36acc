// A table of reply lines seen from real servers, each with the verdict it must get.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classifyRcpt, classifyFailure } from './classify.ts';
import { ReplyParser, type Reply } from './reply.ts';

function reply(line: string): Reply {
  const [ev] = new ReplyParser().push(`${line}\r\n`);
  if (ev?.type !== 'reply') throw new Error(`bad fixture ${line}`);
  return ev.reply;
}

type Row = [line: string, acceptedBefore: number, expected: string, class552?: string];
const rcptTable: Row[] = [
  // Accepted.
  ['250 2.1.5 Ok', 0, 'accepted'],
  ['251 User not local; will forward', 3, 'accepted'],
  // Seed 000 / RFC 5321 §4.5.3.1.10: the recipient limit, after something was accepted.
  ['452 4.5.3 Error: too many recipients', 10, 'deferred:too_many_recipients:same'],            // Postfix
  ['452 Too many recipients received this hour', 1, 'deferred:too_many_recipients:same'],
  ['552 5.5.3 Too many recipients', 10, 'deferred:too_many_recipients:same', 'too_many_recipients'],
  ['552 Too many recipients', 5, 'deferred:too_many_recipients:same', 'too_many_recipients'],  // RFC 821 style, no enhanced code
  ['452 4.5.3 Too many recipients', 0, 'deferred:too_many_recipients:later'],                  // nothing accepted: don't loop on this connection
  ['550 5.5.3 Too many recipients for this sender', 0, 'deferred:too_many_recipients:later'],
  // Seed 001: 552 to the first recipient is about that mailbox.
  ['552 5.2.2 Mailbox full', 0, 'failed:over_quota', 'mailbox'],
  ['552 mailbox quota limit exceeded', 0, 'failed:over_quota', 'mailbox'],                     // seed 003's text, no enhanced code
  ['552-5.2.2 The email account that you tried to reach is over quota.\r\n552 5.2.2 Please direct the recipient to https://support.example', 0, 'failed:over_quota', 'mailbox'],
  // Issue 10: after an accepted RCPT, no enhanced code or text makes a 452/552 final.
  // smtp-server (hideENHANCEDSTATUSCODES: false) prefixes its default code to the app's text:
  ['552 5.2.2 Too many recipients', 10, 'deferred:too_many_recipients:same', 'too_many_recipients'],
  ['552 5.2.2 5.5.3 Too many recipients', 10, 'deferred:too_many_recipients:same', 'too_many_recipients'],
  ['452 4.2.2 4.5.3 Too many recipients', 10, 'deferred:too_many_recipients:same'],
  // ...so even a genuine-looking quota reply is put back first in the next transaction:
  ['552 5.2.2 <bob@example.com>: Recipient address rejected: Mailbox full', 4, 'deferred:too_many_recipients:same', 'too_many_recipients'],
  ['452 4.2.2 Mailbox full', 3, 'deferred:too_many_recipients:same'],
  ['552 5.3.4 Message too big for system', 2, 'deferred:too_many_recipients:same', 'too_many_recipients'],
  // Standing alone (first RCPT, or nothing accepted before it), a 552 is the mailbox's:
  ['552 5.2.2 Too many recipients', 0, 'failed:over_quota', 'mailbox'],
  ['552 5.3.4 Message too big for system', 0, 'failed:permanent', 'mailbox'],
  ['452 4.2.2 Mailbox full', 0, 'deferred:temporary_reply:later'],
  ['452 4.3.1 Insufficient system storage', 0, 'deferred:temporary_reply:later'],
  // Plain per-recipient answers.
  ['550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in virtual mailbox table', 2, 'failed:permanent'],
  ['450 4.2.0 <greylist@example.com>: Recipient address rejected: Greylisted', 0, 'deferred:temporary_reply:later'],
  ['451 4.3.0 Temporary lookup failure', 7, 'deferred:temporary_reply:later'],
  ['554 5.7.1 <spam@example.com>: Relay access denied', 0, 'failed:permanent'],
  ['421 4.7.0 mx.example.com Error: too many errors', 1, 'deferred:temporary_reply:later'],
];

function show(v: ReturnType<typeof classifyRcpt>['verdict']): string {
  if (v.status === 'accepted') return 'accepted';
  if (v.status === 'failed') return `failed:${v.reason}`;
  return `deferred:${v.reason}:${v.sameConnection ? 'same' : 'later'}`;
}

test('RCPT replies from real servers get the right verdict', () => {
  for (const [line, acceptedBefore, expected, class552] of rcptTable) {
    const { verdict, class552: got552 } = classifyRcpt(reply(line), { acceptedBefore, overQuotaPolicy: 'bounce' });
    assert.equal(show(verdict), expected, `${line} (after ${acceptedBefore} accepted)`);
    assert.equal(got552, class552 ?? null, `552 class of ${line}`);
  }
});

test('over-quota policy "retry" turns 5.2.2 into a deferral, nothing else', () => {
  const q = classifyRcpt(reply('552 5.2.2 Mailbox full'), { acceptedBefore: 0, overQuotaPolicy: 'retry' });
  assert.equal(show(q.verdict), 'deferred:temporary_reply:later');
  const u = classifyRcpt(reply('550 5.1.1 User unknown'), { acceptedBefore: 0, overQuotaPolicy: 'retry' });
  assert.equal(show(u.verdict), 'failed:permanent');
});

test('transaction-level replies (DATA, final dot, BDAT)', () => {
  // A success code where a failure was being classified is a reply out of place: retry, never "delivered".
  assert.equal(show(classifyFailure(reply('250 2.0.0 Ok: queued as 4Bc1'))), 'deferred:temporary_reply:later');
  assert.equal(show(classifyFailure(reply('354 go ahead'))), 'deferred:temporary_reply:later');
  assert.equal(show(classifyFailure(reply('554 5.6.0 Content rejected'))), 'failed:permanent');
  assert.equal(show(classifyFailure(reply('451 4.3.0 Error: queue file write error'))), 'deferred:temporary_reply:later');
  assert.equal(show(classifyFailure(reply('552 5.2.2 Over quota'), 'retry')), 'deferred:temporary_reply:later');
  assert.equal(show(classifyFailure(reply('552 5.3.4 Message size exceeds fixed limit'))), 'failed:permanent');
});
