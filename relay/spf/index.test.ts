import { test } from 'node:test';
import assert from 'node:assert/strict';
import { identitiesFor, isCheckableHelo } from './index.ts';

test('HELO names that are domains are checked; literals and bare words are not (RFC 7208 §2.3)', () => {
  for (const h of ['mail.example.com', 'mx1.example.co.uk.', 'a-b.example']) assert.ok(isCheckableHelo(h), h);
  for (const h of ['[192.0.2.1]', '[IPv6:2001:db8::1]', 'localhost', 'WIN-PC', '', 'example.123', '-bad.example.com']) assert.ok(!isCheckableHelo(h), h);
});

test('identities: MAIL FROM always, HELO when asked; a null sender is postmaster@HELO and checked once (RFC 7208 §2.4)', () => {
  assert.deepEqual(identitiesFor({ ip: '192.0.2.1', sender: 'a@example.com', helo: 'mx.example.net', checkHelo: true }), {
    mailfrom: { identity: 'mailfrom', ip: '192.0.2.1', sender: 'a@example.com', helo: 'mx.example.net' },
    helo: { identity: 'helo', ip: '192.0.2.1', sender: 'postmaster@mx.example.net', helo: 'mx.example.net' },
  });
  assert.deepEqual(identitiesFor({ ip: '192.0.2.1', sender: '', helo: 'mx.example.net', checkHelo: true }), {
    mailfrom: { identity: 'mailfrom', ip: '192.0.2.1', sender: 'postmaster@mx.example.net', helo: 'mx.example.net' },
  });
  assert.equal(identitiesFor({ ip: '192.0.2.1', sender: 'a@example.com', helo: 'mx.example.net', checkHelo: false }).helo, undefined);
  assert.equal(identitiesFor({ ip: '192.0.2.1', sender: 'a@example.com', helo: '[192.0.2.1]', checkHelo: true }).helo, undefined);
});
