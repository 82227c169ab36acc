// Table tests of the per-session decisions (session.ts), without a socket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { REPLIES } from './policy.ts';
import {
  authAllowed, authFailure, buildEnvelope, checkClientClock, checkCommandCount, classifyReply, clockAfterReply, dataVerdict, greetingDelayFor,
} from './session.ts';
import type { DataFacts } from './session.ts';

const T = { commandTimeoutMs: 300_000, dataTimeoutMs: 600_000 };

test('client clocks: a command is due within commandTimeout of our reply, the message within dataTimeout of the 354; never while it is our turn', () => {
  const clock = { waitingSince: 1_000, dataSince: 5_000 };
  const cases: [string, Parameters<typeof checkClientClock>[0], number, unknown][] = [
    ['client owes a command, time left', 'client', 1_000 + 299_000, { recheckInMs: 1_000 }],
    ['client owes a command, time up', 'client', 1_000 + 300_000, { expire: REPLIES.commandTimeout }],
    ['message data flowing, time left', 'data', 5_000 + 10_000, { recheckInMs: 590_000 }],
    ['message data flowing, time up (however many bytes trickled in)', 'data', 5_000 + 600_001, { expire: REPLIES.dataTimeout }],
    ['our turn (SPF check, sink storing): no clock', 'ours', 10_000_000, null],
  ];
  for (const [name, turn, now, want] of cases) assert.deepEqual(checkClientClock(turn, clock, now, T), want, name);
});

test('a 354 starts the data clock, any other reply the command clock', () => {
  const clock = { waitingSince: 1, dataSince: 2 };
  assert.deepEqual(clockAfterReply(354, clock, 50, T), { clock: { waitingSince: 1, dataSince: 50 }, armMs: 600_000 });
  assert.deepEqual(clockAfterReply(250, clock, 60, T), { clock: { waitingSince: 60, dataSince: 2 }, armMs: 300_000 });
  assert.deepEqual(clockAfterReply(550, clock, 70, T), { clock: { waitingSince: 70, dataSince: 2 }, armMs: 300_000 });
  assert.deepEqual(clock, { waitingSince: 1, dataSince: 2 }, 'the input is not modified');
});

test('commands per session: the one past the limit ends the session with 421 4.7.0', () => {
  assert.equal(checkCommandCount(10, { maxCommandsPerSession: 10 }), null);
  assert.equal(checkCommandCount(11, { maxCommandsPerSession: 10 }), REPLIES.tooManyCommands);
});

test('AUTH failures: the third bad password ends the session; an unavailable store is not counted', () => {
  assert.deepEqual(authFailure('failed', 0), { reply: REPLIES.authFailed, failures: 1 });
  assert.deepEqual(authFailure('failed', 1), { reply: REPLIES.authFailed, failures: 2 });
  assert.deepEqual(authFailure('failed', 2), { reply: REPLIES.tooManyAuthFailures, failures: 3 });
  assert.deepEqual(authFailure('unavailable', 2), { reply: REPLIES.authUnavailable, failures: 2 });
  assert.ok(authAllowed('PLAIN', undefined, 'alice'));
  assert.ok(authAllowed('LOGIN', 'alice', 'alice'));
  assert.ok(!authAllowed('PLAIN', 'bob', 'alice'), 'RFC 4616: acting as someone else');
  assert.ok(!authAllowed('XOAUTH2', undefined, undefined));
});

test('the greeting pause applies to strangers only', () => {
  assert.equal(greetingDelayFor(true, 100), 0);
  assert.equal(greetingDelayFor(false, 100), 100);
  assert.equal(greetingDelayFor(false, 0), 0);
});

test('replies: ours go out verbatim, smtp-server\'s abuse refusals get our codes, its other replies keep its mapping', () => {
  const cases: [number, string, unknown][] = [
    [250, '2.0.0 Ok: queued as X', { kind: 'ours' }],
    [421, '4.3.2 Service shutting down', { kind: 'ours' }],
    [550, '4.7.1 wrong class', { kind: 'library', refusal: null }],
    [421, 'relay.test You talk too soon', { kind: 'library', refusal: REPLIES.earlyTalker }],
    [421, 'Error: too many unrecognized commands', { kind: 'library', refusal: REPLIES.tooManyUnrecognized }],
    [503, 'Error: send HELO/EHLO first', { kind: 'library', refusal: null }],
    [250, 'Accepted', { kind: 'library', refusal: null }],
  ];
  for (const [code, text, want] of cases) assert.deepEqual(classifyReply(code, text), want, `${code} ${text}`);
});

test('the stored envelope folds recipients that only meet after normalisation and drops unset fields', () => {
  const env = buildEnvelope({
    from: 'a@example.com',
    recipients: [
      { address: 'b@xn--bcher-kva.example', notify: ['FAILURE'] },
      { address: 'B@XN--BCHER-KVA.EXAMPLE' },
      { address: 'c@example.org', orcpt: 'rfc822;c@example.org' },
    ],
    ret: 'HDRS', envid: null, smtputf8: false, bodyType: '8bitmime',
  }, { clientAddress: '192.0.2.1', heloName: 'client.example', authUser: undefined }, 42);
  assert.deepEqual(env, {
    from: 'a@example.com',
    recipients: [{ address: 'b@xn--bcher-kva.example', notify: ['FAILURE'] }, { address: 'c@example.org', orcpt: 'rfc822;c@example.org' }],
    receivedAt: 42, clientAddress: '192.0.2.1', heloName: 'client.example', ret: 'HDRS', bodyType: '8BITMIME',
  });
});

test('the reply after the final dot', () => {
  const ok: DataFacts = { outcome: 'complete', stored: true, consumed: true, receivedBytes: 100, failureKind: undefined };
  const L = { maxMessageSize: 1000 };
  const cases: [string, Partial<DataFacts>, unknown][] = [
    ['stored and read to the end: 250', {}, { kind: 'accepted' }],
    ['client gone: nobody to answer', { outcome: 'aborted' }, { kind: 'aborted' }],
    ['too big while streaming', { outcome: 'too_big', stored: false }, { kind: 'rejected', reply: REPLIES.tooBig, storedAnyway: false }],
    ['too big as received, though the sink stored it', { receivedBytes: 1001 }, { kind: 'rejected', reply: REPLIES.tooBig, storedAnyway: true }],
    ['a line over the limit', { outcome: 'line_too_long', stored: false }, { kind: 'rejected', reply: REPLIES.lineTooLong, storedAnyway: false }],
    ['a header over the limit', { outcome: 'header_too_big', stored: false }, { kind: 'rejected', reply: REPLIES.headerTooBig, storedAnyway: false }],
    ['disk full', { stored: false, consumed: true, failureKind: 'no_space' }, { kind: 'tempfail', reply: REPLIES.noSpace, unreadBody: false }],
    ['spool I/O error', { stored: false, failureKind: 'io' }, { kind: 'tempfail', reply: REPLIES.spoolError, unreadBody: false }],
    ['sink resolved without reading the body: never a 250', { consumed: false }, { kind: 'tempfail', reply: REPLIES.spoolError, unreadBody: true }],
  ];
  for (const [name, over, want] of cases) assert.deepEqual(dataVerdict({ ...ok, ...over }, L), want, name);
});
