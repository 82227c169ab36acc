// The session state machine, driven without any socket: writes are asserted exactly and
// replies are fed in the order a server would send them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  initialSession, step, type SessionAction, type SessionEvent, type SessionOptions, type SessionState, type TransactionResult,
} from './client-session.ts';
import { makeReply } from './reply.ts';

const opts: SessionOptions = { heloName: 'relay.test', tls: 'none', pipelining: true, chunking: true, overQuotaPolicy: 'bounce', tlsVerify: 'record' };

class Driver {
  state: SessionState;
  wrote: string[] = [];
  actions: SessionAction[] = [];
  constructor(o: Partial<SessionOptions> = {}) {
    this.state = initialSession({ ...opts, ...o });
  }
  feed(ev: SessionEvent): SessionAction[] {
    const before = JSON.stringify(this.state);
    const { state, actions } = step(this.state, ev);
    assert.equal(JSON.stringify(this.state), before, 'step must not modify its input');
    this.state = state;
    this.actions.push(...actions);
    for (const a of actions) if (a.type === 'write') this.wrote.push(a.text);
    return actions;
  }
  reply(code: number, text = 'ok') {
    return this.feed({ type: 'reply', reply: makeReply(code, text) });
  }
  takeWrites(): string {
    const w = this.wrote.join('');
    this.wrote = [];
    return w;
  }
  result(): TransactionResult {
    const a = this.actions.filter((x) => x.type === 'tx-done').at(-1);
    assert.ok(a && a.type === 'tx-done', 'transaction finished');
    return a.result;
  }
  handshake(caps: string[]) {
    this.reply(220, 'mx.test ESMTP');
    assert.equal(this.takeWrites(), 'EHLO relay.test\r\n');
    this.reply(250, ['mx.test', ...caps].join('\n'));
    assert.equal(this.state.phase, 'ready');
  }
}

const rcpts = (n: number) => Array.from({ length: n }, (_, i) => ({ address: `u${i}@example.com` }));
const summary = (r: TransactionResult) => r.recipients.map((x) => (x.verdict.status === 'deferred' ? `deferred:${x.verdict.reason}${x.verdict.sameConnection ? ':same' : ''}` : x.verdict.status === 'failed' ? `failed:${x.verdict.reason}` : 'accepted'));

test('PIPELINING: MAIL, every RCPT and DATA go out in one write; replies are matched in order', () => {
  const d = new Driver();
  d.handshake(['PIPELINING', 'SIZE 1000000', '8BITMIME']);
  d.feed({ type: 'begin', tx: { from: 'a@x.test', recipients: rcpts(3), size: 42, eightBit: true } });
  assert.deepEqual(d.wrote, ['MAIL FROM:<a@x.test> SIZE=42 BODY=8BITMIME\r\nRCPT TO:<u0@example.com>\r\nRCPT TO:<u1@example.com>\r\nRCPT TO:<u2@example.com>\r\nDATA\r\n']);
  d.takeWrites();
  d.reply(250);
  d.reply(250);
  d.reply(550, '5.1.1 no such user');
  d.reply(250);
  const acts = d.reply(354, 'go ahead');
  assert.ok(acts.some((a) => a.type === 'send-body' && a.mode === 'data'));
  d.feed({ type: 'body-done' });
  d.reply(250, '2.0.0 queued');
  assert.deepEqual(summary(d.result()), ['accepted', 'failed:permanent', 'accepted']);
  assert.equal(d.state.phase, 'ready', 'no RSET needed after a completed transaction');
});

test('seed 000: a 452 after 10 accepted recipients defers the rest to the same connection and learns the limit', () => {
  const d = new Driver({ chunking: false });
  d.handshake(['PIPELINING']);
  d.feed({ type: 'begin', tx: { from: 'a@x.test', recipients: rcpts(12), size: 1 } });
  d.reply(250);
  for (let i = 0; i < 10; i++) d.reply(250);
  d.reply(452, '4.5.3 Too many recipients');
  d.reply(452, '4.5.3 Too many recipients');
  d.reply(354);
  d.feed({ type: 'body-done' });
  d.reply(250);
  const r = d.result();
  assert.equal(r.learnedLimit, 10);
  assert.deepEqual(summary(r).slice(9), ['accepted', 'deferred:too_many_recipients:same', 'deferred:too_many_recipients:same']);
});

test('Exim bug 2693: a 250 after a 452 is an accepted recipient', () => {
  const d = new Driver({ chunking: false });
  d.handshake(['PIPELINING']);
  d.feed({ type: 'begin', tx: { from: 'a@x.test', recipients: rcpts(3), size: 1 } });
  d.reply(250);
  d.reply(250);
  d.reply(452, '4.5.3 Too many recipients');
  d.reply(250);
  d.reply(354);
  d.feed({ type: 'body-done' });
  d.reply(250);
  assert.deepEqual(summary(d.result()), ['accepted', 'deferred:too_many_recipients:same', 'accepted']);
});

test('RFC 2920 §3.1: 354 with zero accepted recipients gets a lone dot, then RSET — never a body', () => {
  const d = new Driver({ chunking: false });
  d.handshake(['PIPELINING']);
  d.feed({ type: 'begin', tx: { from: 'a@x.test', recipients: rcpts(2), size: 1 } });
  d.takeWrites();
  d.reply(250);
  d.reply(550, '5.1.1 unknown');
  d.reply(552, '5.2.2 full');
  const acts = d.reply(354);
  assert.ok(!acts.some((a) => a.type === 'send-body'));
  assert.equal(d.takeWrites(), '.\r\n');
  d.reply(554, '5.5.1 No valid recipients');
  assert.equal(d.takeWrites(), 'RSET\r\n');
  d.reply(250);
  assert.deepEqual(summary(d.result()), ['failed:permanent', 'failed:over_quota']);
  assert.equal(d.state.phase, 'ready');
});

test('lock-step without PIPELINING stops sending RCPTs after "too many" (seed 001 fix)', () => {
  const d = new Driver({ chunking: false });
  d.handshake([]);
  d.feed({ type: 'begin', tx: { from: '', recipients: rcpts(4), size: 1 } });
  assert.equal(d.takeWrites(), 'MAIL FROM:<>\r\n');
  d.reply(250);
  assert.equal(d.takeWrites(), 'RCPT TO:<u0@example.com>\r\n');
  d.reply(250);
  assert.equal(d.takeWrites(), 'RCPT TO:<u1@example.com>\r\n');
  d.reply(552, 'Too many recipients');
  assert.equal(d.takeWrites(), 'DATA\r\n', 'no further RCPT after the limit');
  d.reply(354);
  d.feed({ type: 'body-done' });
  d.reply(250);
  assert.deepEqual(summary(d.result()), ['accepted', 'deferred:too_many_recipients:same', 'deferred:too_many_recipients:same', 'deferred:too_many_recipients:same']);
  assert.equal(d.result().recipients[2]?.note, 'not sent: recipient limit reached');
});

test('seed 003: a 5xx to the final dot fails only the recipients accepted in that transaction', () => {
  const d = new Driver({ chunking: false });
  d.handshake(['PIPELINING']);
  d.feed({ type: 'begin', tx: { from: 'a@x.test', recipients: rcpts(3), size: 1 } });
  d.reply(250);
  d.reply(250);
  d.reply(450, '4.2.0 greylisted');
  d.reply(250);
  d.reply(354);
  d.feed({ type: 'body-done' });
  d.reply(554, '5.6.0 content rejected');
  assert.deepEqual(summary(d.result()), ['failed:permanent', 'deferred:temporary_reply', 'failed:permanent']);
  assert.equal(d.result().recipients[1]?.reply?.code, 450, 'the greylisted one keeps its own reply');
});

test('CHUNKING: MAIL, RCPTs and BDAT LAST in one round trip; a BDAT error stops further segments', () => {
  const d = new Driver();
  d.handshake(['PIPELINING', 'CHUNKING']);
  const acts = d.feed({ type: 'begin', tx: { from: 'a@x.test', recipients: rcpts(2), size: 10 } });
  assert.deepEqual(acts.filter((a) => a.type === 'send-body'), [{ type: 'send-body', mode: 'bdat', pipelined: true }]);
  assert.ok(!d.takeWrites().includes('DATA'));
  d.feed({ type: 'bdat-chunk', last: false });
  d.reply(250);
  d.reply(250);
  d.reply(250);
  d.reply(452, '4.3.1 out of storage');
  assert.equal(d.state.tx?.bodyAborted, true);
  d.feed({ type: 'body-done' });
  assert.deepEqual(summary(d.result()), ['deferred:temporary_reply', 'deferred:temporary_reply']);
  assert.equal(d.takeWrites(), 'RSET\r\n');
});

test('connection lost before the final reply defers exactly that transaction\'s accepted recipients', () => {
  const d = new Driver({ chunking: false });
  d.handshake(['PIPELINING']);
  d.feed({ type: 'begin', tx: { from: 'a@x.test', recipients: rcpts(3), size: 1 } });
  d.reply(250);
  d.reply(250);
  d.reply(550, '5.1.1 unknown');
  d.reply(250);
  d.reply(354);
  d.feed({ type: 'body-done' });
  d.feed({ type: 'error', kind: 'connection', message: 'reset' });
  assert.deepEqual(summary(d.result()), ['deferred:connection', 'failed:permanent', 'deferred:connection']);
  assert.equal(d.state.phase, 'closed');
});

test('CRLF injection: unsafe addresses are refused before anything is written', () => {
  const d = new Driver();
  d.handshake(['PIPELINING']);
  d.feed({ type: 'begin', tx: { from: 'a@x.test', recipients: [{ address: 'ok@example.com' }, { address: 'x@example.com>\r\nRCPT TO:<evil@example.com' }], size: 1 } });
  const w = d.takeWrites();
  assert.ok(!w.includes('evil'), w);
  assert.equal((w.match(/RCPT TO/g) ?? []).length, 1);
});

test('STARTTLS required but not offered fails the session as a TLS deferral', () => {
  const d = new Driver({ tls: 'required' });
  d.reply(220);
  const acts = d.reply(250, 'mx.test\nPIPELINING');
  const f = acts.find((a) => a.type === 'session-failed');
  assert.ok(f && f.type === 'session-failed');
  assert.equal(f.stage, 'starttls');
  assert.deepEqual(f.verdict, { status: 'deferred', reason: 'tls', sameConnection: false });
});

test('EHLO refused with 5xx falls back to HELO (RFC 5321 §3.2); AUTH LOGIN steps over verified TLS', () => {
  const d = new Driver({ tls: 'opportunistic', auth: { username: 'u', password: 'p' } });
  d.reply(220);
  d.takeWrites();
  d.reply(502, '5.5.2 command not recognized');
  assert.equal(d.takeWrites(), 'HELO relay.test\r\n');
  const acts = d.reply(250);
  assert.ok(acts.some((a) => a.type === 'session-failed'), 'AUTH configured but a HELO server has no STARTTLS');
  assert.equal(d.takeWrites(), '', 'no AUTH after HELO');
  const e = new Driver({ tls: 'required', tlsVerify: 'enforce', auth: { username: 'u', password: 'p' } });
  e.reply(220);
  e.reply(250, 'mx\nSTARTTLS\nAUTH LOGIN');
  e.reply(220, 'go ahead');
  e.feed({ type: 'tls-established', verified: true });
  e.reply(250, 'mx\nAUTH LOGIN');
  assert.equal(e.takeWrites(), 'EHLO relay.test\r\nSTARTTLS\r\nEHLO relay.test\r\nAUTH LOGIN\r\n');
  e.reply(334, 'VXNlcm5hbWU6');
  assert.equal(e.takeWrites(), 'dQ==\r\n');
  e.reply(334, 'UGFzc3dvcmQ6');
  assert.equal(e.takeWrites(), 'cA==\r\n');
  e.reply(235, '2.7.0 ok');
  assert.equal(e.state.phase, 'ready');
});

test('RFC 6531: a message needing SMTPUTF8 is not sent to a server without it (5.6.7), nothing written', () => {
  const d = new Driver();
  d.handshake(['PIPELINING', '8BITMIME']);
  d.feed({ type: 'begin', tx: { from: 'j\u00f6rg@x.test', recipients: rcpts(2), size: 1, smtputf8: true } });
  assert.equal(d.takeWrites(), '');
  const r = d.result();
  assert.deepEqual(summary(r), ['failed:permanent', 'failed:permanent']);
  assert.equal(r.recipients[0]?.reply?.enhanced?.detail, 7);
  assert.equal(d.state.phase, 'ready', 'the connection stays usable for other messages');
});

test('a reply split in two shifts the rest: nothing is reported delivered without a 2xx to the final dot', () => {
  const d = new Driver({ chunking: false });
  d.handshake(['PIPELINING']);
  d.feed({ type: 'begin', tx: { from: 'a@x.test', recipients: rcpts(1), size: 1 } });
  d.reply(250, 'Ok');          // MAIL
  d.reply(250, 'more');        // an extra line the server sent as a second reply: taken for RCPT
  const acts = d.reply(250);   // the real RCPT reply, taken for DATA: not 354
  assert.ok(!acts.some((a) => a.type === 'send-body'));
  assert.deepEqual(summary(d.result()), ['deferred:temporary_reply']);
  d.reply(354);                // the real DATA reply arrives where RSET's was expected: the session gives up
  assert.equal(d.state.phase, 'closed');
});

// Issue 9: the rule for credentials lives here, in the pure session. Each case is a server
// that would take AUTH; the session must never write it.
const creds = { username: 'relay-user', password: 'hunter2' };
const failure = (d: Driver) => {
  const f = d.actions.find((a) => a.type === 'session-failed');
  assert.ok(f && f.type === 'session-failed', 'the session failed');
  return f;
};

test('credentials are never sent in cleartext, whatever the TLS mode', () => {
  for (const tls of ['opportunistic', 'none'] as const) {
    const d = new Driver({ tls, tlsVerify: 'record', auth: creds });
    d.reply(220);
    d.reply(250, 'mx\nAUTH PLAIN LOGIN'); // no STARTTLS offered: the attacker stripped it, or the server has none
    assert.doesNotMatch(d.wrote.join(''), /AUTH/, `tls ${tls}`);
    const f = failure(d);
    assert.equal(f.stage, 'auth');
    assert.deepEqual(f.verdict, { status: 'deferred', reason: 'tls', sameConnection: false }, 'deferred: the mail is kept, not bounced');
    assert.equal(f.status, '4.7.4');
    assert.match(f.message, /credentials not sent in cleartext/);
    assert.equal(d.state.phase, 'closed');
  }
});

test('a STARTTLS refused by the server under opportunistic TLS does not let AUTH through in cleartext', () => {
  const d = new Driver({ tls: 'opportunistic', tlsVerify: 'record', auth: creds });
  d.reply(220);
  d.reply(250, 'mx\nSTARTTLS\nAUTH PLAIN');
  d.reply(454, '4.7.0 TLS not available');
  assert.doesNotMatch(d.wrote.join(''), /AUTH/);
  assert.equal(failure(d).status, '4.7.4');
});

test('credentials are not sent over TLS whose certificate failed verification (opportunistic records, does not trust)', () => {
  const d = new Driver({ tls: 'opportunistic', tlsVerify: 'record', auth: creds });
  d.reply(220);
  d.reply(250, 'mx\nSTARTTLS\nAUTH PLAIN');
  d.reply(220);
  d.feed({ type: 'tls-established', verified: false, problem: { type: 'certificate-host-mismatch', reason: 'certificate verification failed for smtp.example.test: hostname mismatch' } });
  d.reply(250, 'mx\nAUTH PLAIN');
  assert.doesNotMatch(d.wrote.join(''), /AUTH/);
  const f = failure(d);
  assert.equal(f.status, '4.7.5');
  assert.match(f.message, /credentials not sent: certificate verification failed for smtp\.example\.test: hostname mismatch/);
});

test('enforce: an unverified certificate ends the session before EHLO, with the reason', () => {
  const d = new Driver({ tls: 'required', tlsVerify: 'enforce' });
  d.reply(220);
  d.reply(250, 'mx\nSTARTTLS');
  d.reply(220);
  d.takeWrites();
  d.feed({ type: 'tls-established', verified: false, problem: { type: 'certificate-expired', reason: 'certificate verification failed for mx.test: certificate has expired' } });
  assert.equal(d.takeWrites(), '', 'nothing is written over the unverified channel');
  const f = failure(d);
  assert.deepEqual([f.stage, f.status, f.message], ['starttls', '4.7.5', 'certificate verification failed for mx.test: certificate has expired']);
  assert.equal(d.state.tlsProblem?.type, 'certificate-expired');
});

test('implicit TLS: verification is reported before the greeting; AUTH only if it passed', () => {
  const ok = new Driver({ tls: 'implicit', tlsVerify: 'enforce', auth: creds });
  ok.feed({ type: 'tls-established', verified: true });
  ok.reply(220);
  ok.reply(250, 'mx\nAUTH PLAIN');
  assert.match(ok.takeWrites(), /^EHLO relay\.test\r\nAUTH PLAIN AHJlbGF5LXVzZXIAaHVudGVyMg==\r\n$/);
  // The greeting arrives without a handshake report (a driver bug): the session stays safe.
  const none = new Driver({ tls: 'implicit', tlsVerify: 'enforce', auth: creds });
  none.reply(220);
  none.reply(250, 'mx\nAUTH PLAIN');
  assert.doesNotMatch(none.wrote.join(''), /AUTH/);
});

test('insecureSkipVerify (skip) is the one way credentials go over an unverified certificate, and only over TLS', () => {
  const d = new Driver({ tls: 'required', tlsVerify: 'skip', auth: creds });
  d.reply(220);
  d.reply(250, 'mx\nSTARTTLS');
  d.reply(220);
  d.feed({ type: 'tls-established', verified: false, problem: { type: 'certificate-not-trusted', reason: 'self-signed' } });
  d.reply(250, 'mx\nAUTH PLAIN');
  assert.match(d.takeWrites(), /AUTH PLAIN /);
  const clear = new Driver({ tls: 'opportunistic', tlsVerify: 'skip', auth: creds });
  clear.reply(220);
  clear.reply(250, 'mx\nAUTH PLAIN');
  assert.doesNotMatch(clear.wrote.join(''), /AUTH/, 'skip never means cleartext');
});

test('opportunistic without credentials goes on over an unverified certificate, and records why', () => {
  const d = new Driver({ tls: 'opportunistic', tlsVerify: 'record' });
  d.reply(220);
  d.reply(250, 'mx\nSTARTTLS');
  d.reply(220);
  d.feed({ type: 'tls-established', verified: false, problem: { type: 'certificate-not-trusted', reason: 'self-signed' } });
  d.reply(250, 'mx\nPIPELINING');
  assert.equal(d.state.phase, 'ready');
  assert.equal(d.state.tlsProblem?.type, 'certificate-not-trusted');
  const plain = new Driver({ tls: 'opportunistic', tlsVerify: 'record' });
  plain.handshake(['PIPELINING']);
  assert.equal(plain.state.tlsProblem?.type, 'starttls-not-supported');
});
