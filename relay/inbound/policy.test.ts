import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  REPLIES, authOffered, checkConnect, checkMailFrom, checkMessageSize, checkRcptTo, checkSpf, libraryRefusal, normaliseMailbox,
  replyMessage, sinkFailureReply,
} from './policy.ts';
import type { ConnectFacts, MailFacts, PolicyReply, RcptFacts, SpfFacts, SpfOutcome } from './policy.ts';

const limits = { maxMessageSize: 1000, maxRecipients: 3, maxConnections: 10, maxConnectionsPerIp: 2 };

/** "554 5.7.1" for a reply, or null: what the tables compare. */
const codes = (r: PolicyReply | null): string | null => (r ? `${r.code} ${r.enhanced}` : null);

test('every fixed reply has an enhanced code whose class matches the reply code (RFC 3463 §2)', () => {
  for (const [name, r] of Object.entries(REPLIES)) {
    assert.match(r.enhanced, /^[245]\.\d{1,3}\.\d{1,3}$/, name);
    assert.equal(Number(r.enhanced[0]), Math.floor(r.code / 100), name);
    assert.equal(replyMessage(r), `${r.enhanced} ${r.text}`);
  }
});

test('checkConnect: draining, then the global limit, then the per-IP limit', () => {
  const table: [ConnectFacts, string | null][] = [
    [{ draining: false, open: 0, openFromIp: 0 }, null],
    [{ draining: false, open: 9, openFromIp: 1 }, null],
    [{ draining: true, open: 0, openFromIp: 0 }, '421 4.3.2'],
    [{ draining: false, open: 10, openFromIp: 0 }, '421 4.3.2'],
    [{ draining: false, open: 3, openFromIp: 2 }, '421 4.7.0'],
    [{ draining: false, open: 3, openFromIp: 1, rateLimited: true }, '421 4.7.0'],
    [{ draining: true, open: 3, openFromIp: 1, rateLimited: true }, '421 4.3.2'],
  ];
  for (const [facts, want] of table) assert.equal(codes(checkConnect(facts, limits)), want, JSON.stringify(facts));
  assert.equal(checkConnect({ draining: false, open: 3, openFromIp: 2 }, limits)?.text, 'Too many connections from your address');
});

test('authOffered: only with a users file, and over plaintext only for loopback or when TLS is not required', () => {
  const table: [Parameters<typeof authOffered>[0], boolean][] = [
    [{ usersConfigured: false, secure: true, requireTlsForAuth: false, localClient: true }, false],
    [{ usersConfigured: true, secure: true, requireTlsForAuth: true, localClient: false }, true],
    [{ usersConfigured: true, secure: false, requireTlsForAuth: true, localClient: false }, false],
    [{ usersConfigured: true, secure: false, requireTlsForAuth: true, localClient: true }, true],
    [{ usersConfigured: true, secure: false, requireTlsForAuth: false, localClient: false }, true],
  ];
  for (const [facts, want] of table) assert.equal(authOffered(facts), want, JSON.stringify(facts));
});

test('checkMailFrom: draining, MAIL before EHLO, declared SIZE over the limit', () => {
  const ok: MailFacts = { heloName: 'client.example', draining: false, declaredSize: undefined };
  const table: [Partial<MailFacts>, string | null][] = [
    [{}, null],
    [{ declaredSize: 1000 }, null],
    [{ declaredSize: 1001 }, '552 5.3.4'],
    [{ heloName: '' }, '503 5.5.1'],
    [{ draining: true }, '421 4.3.2'],
    [{ draining: true, heloName: '' }, '421 4.3.2'],
  ];
  for (const [over, want] of table) assert.equal(codes(checkMailFrom({ ...ok, ...over }, limits)), want, JSON.stringify(over));
});

test('checkRcptTo: relay needs a relay network or AUTH (never open by default); then the recipient limit', () => {
  const table: [RcptFacts, string | null][] = [
    [{ inRelayNetworks: false, authenticated: false, recipientsSoFar: 0 }, '554 5.7.1'],
    [{ inRelayNetworks: true, authenticated: false, recipientsSoFar: 0 }, null],
    [{ inRelayNetworks: false, authenticated: true, recipientsSoFar: 0 }, null],
    [{ inRelayNetworks: true, authenticated: false, recipientsSoFar: 2 }, null],
    [{ inRelayNetworks: true, authenticated: false, recipientsSoFar: 3 }, '452 4.5.3'],
    [{ inRelayNetworks: false, authenticated: false, recipientsSoFar: 3 }, '554 5.7.1'],
  ];
  for (const [facts, want] of table) assert.equal(codes(checkRcptTo(facts, limits)), want, JSON.stringify(facts));
  assert.equal(checkRcptTo({ inRelayNetworks: false, authenticated: false, recipientsSoFar: 0 }, limits)?.text, 'Relay access denied');
});

test('normaliseMailbox: A-label domains, SMTPUTF8 for non-ASCII local parts, null sender, syntax', () => {
  type Row = [address: string, role: 'sender' | 'recipient', smtputf8: boolean, want: string];
  const table: Row[] = [
    ['user@example.com', 'recipient', false, 'user@example.com'],
    ['User@EXAMPLE.com', 'recipient', false, 'User@example.com'],
    ['user@bücher.example', 'recipient', false, 'user@xn--bcher-kva.example'],
    ['user@bücher.example', 'recipient', true, 'user@xn--bcher-kva.example'],
    ['jöran@example.com', 'recipient', true, 'jöran@example.com'],
    ['jöran@example.com', 'recipient', false, '553 5.6.7'],
    ['jöran@example.com', 'sender', false, '553 5.6.7'],
    ['', 'sender', false, ''],
    ['', 'recipient', false, '501 5.1.3'],
    ['postmaster', 'recipient', false, '501 5.1.3'],
    ['nobody', 'sender', false, '501 5.1.7'],
    ['user@[192.0.2.1]', 'recipient', false, 'user@[192.0.2.1]'],
    ['a b@example.com', 'recipient', false, '501 5.1.3'],
    ['user@exa mple.com', 'sender', false, '501 5.1.7'],
    ['user@ex!ample.com', 'recipient', false, '501 5.1.3'],
  ];
  for (const [address, role, smtputf8, want] of table) {
    const r = normaliseMailbox(address, role, smtputf8);
    assert.equal(r.ok ? r.address : codes(r.reply), want, `${role} ${JSON.stringify(address)} smtputf8=${smtputf8}`);
  }
  const unq = normaliseMailbox('postmaster', 'recipient', false);
  assert.equal(unq.ok ? '' : unq.reply.reason, 'unqualified_recipient');
});

test('checkMessageSize: the received size counts, at the limit is fine', () => {
  assert.equal(checkMessageSize(1000, limits), null);
  assert.equal(codes(checkMessageSize(1001, limits)), '552 5.3.4');
});

test('sinkFailureReply: no_space is 452 4.3.1, every other storage failure 451 4.3.0, never 2xx or 5xx', () => {
  const table: [Parameters<typeof sinkFailureReply>[0], string][] = [
    ['no_space', '452 4.3.1'],
    ['read_only', '451 4.3.0'],
    ['io', '451 4.3.0'],
    [undefined, '451 4.3.0'],
  ];
  for (const [kind, want] of table) assert.equal(codes(sinkFailureReply(kind)), want, String(kind));
});

test('checkConnect: a client over its connection rate gets its own 421 4.7.0 text', () => {
  assert.equal(checkConnect({ draining: false, open: 0, openFromIp: 0, rateLimited: true }, limits), REPLIES.connectionRate);
});

test('libraryRefusal: smtp-server\'s abuse-related 421s get enhanced codes and reasons; other replies are left alone', () => {
  const table: [number, string, string | null][] = [
    [421, 'relay.test You talk too soon', '421 4.5.0 early_talker'],
    [421, 'Error: Command line too long', '421 4.5.2 command_too_long'],
    [421, 'Error: too many unrecognized commands', '421 4.7.0 too_many_unrecognized_commands'],
    [421, 'Timeout - closing connection', '421 4.4.2 idle_timeout'],
    [421, 'HTTP requests not allowed', '421 4.7.0 http_request'],
    [421, 'relay.test Too many connected clients, try again in a moment', null],
    [503, 'Error: send HELO/EHLO first', null],
    [500, 'Error: command not recognized', null],
  ];
  for (const [code, text, want] of table) {
    const r = libraryRefusal(code, text);
    assert.equal(r ? `${r.code} ${r.enhanced} ${r.reason}` : null, want, text);
  }
});

test('checkSpf: fail refuses under reject (either identity), temperror defers under reject and tag, record changes nothing', () => {
  const all: SpfOutcome[] = ['pass', 'fail', 'softfail', 'neutral', 'none', 'temperror', 'permerror'];
  const table: [SpfFacts, 'reject' | 'tag' | 'record', boolean, string | null, boolean][] = [
    [{ mailfrom: 'pass' }, 'reject', false, null, true],
    [{ mailfrom: 'fail' }, 'reject', false, '550 5.7.23', false],
    [{ mailfrom: 'pass', helo: 'fail' }, 'reject', false, '550 5.7.23', false],
    [{ mailfrom: 'softfail' }, 'reject', false, null, true],
    [{ mailfrom: 'temperror' }, 'reject', false, '451 4.7.24', false],
    [{ mailfrom: 'pass', helo: 'temperror' }, 'reject', false, null, true],
    [{ mailfrom: 'permerror' }, 'reject', false, null, true],
    [{ mailfrom: 'permerror' }, 'reject', true, '550 5.7.24', false],
    [{ mailfrom: 'permerror' }, 'tag', true, null, true],
    [{ mailfrom: 'fail' }, 'tag', false, null, true],
    [{ mailfrom: 'temperror' }, 'tag', false, '451 4.7.24', false],
  ];
  for (const [facts, policy, rejectPermerror, reply, tag] of table) {
    const d = checkSpf(facts, { policy, rejectPermerror });
    assert.equal(codes(d.reply), reply, `${JSON.stringify(facts)} ${policy}`);
    assert.equal(d.tag, tag, `${JSON.stringify(facts)} ${policy} tag`);
  }
  for (const mailfrom of all) for (const helo of [...all, undefined]) {
    assert.deepEqual(checkSpf({ mailfrom, helo }, { policy: 'record', rejectPermerror: true }), { reply: null, tag: false });
  }
});
