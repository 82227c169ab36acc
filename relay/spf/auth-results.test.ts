import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildAuthResultsHeader, claimsAuthservId, propertyValue } from './auth-results.ts';
import type { SpfCheckResult } from './check.ts';

const result = (over: Partial<SpfCheckResult>): SpfCheckResult => ({
  identity: 'mailfrom', sender: 'a@example.com', domain: 'example.com', ip: '192.0.2.1', result: 'pass',
  comment: 'relay.test: domain of a@example.com designates 192.0.2.1 as permitted sender', ms: 3, lookups: 1, ...over,
});

test('RFC 8601 field with one resinfo per identity, folded, comment and ptype.property', () => {
  const h = buildAuthResultsHeader('relay.test', [
    result({}),
    result({ identity: 'helo', sender: 'postmaster@mx.example.com', domain: 'mx.example.com', result: 'none', comment: 'relay.test: mx.example.com does not designate permitted sender hosts' }),
  ]);
  assert.equal(h, [
    'Authentication-Results: relay.test;',
    '\tspf=pass (relay.test: domain of a@example.com designates 192.0.2.1 as permitted sender)',
    '\tsmtp.mailfrom=a@example.com;',
    '\tspf=none (relay.test: mx.example.com does not designate permitted sender hosts)',
    '\tsmtp.helo=mx.example.com',
    '',
  ].join('\r\n'));
  for (const line of h.split('\r\n')) assert.ok(line.length <= 998);
});

test('client-chosen text cannot break out of the comment or the field', () => {
  const h = buildAuthResultsHeader('relay.test', [result({
    sender: '"x y"@example.com',
    comment: 'evil) spf=pass (\\\r\nInjected: yes',
  })]);
  assert.doesNotMatch(h, /\r\nInjected/);
  assert.match(h, /spf=pass \(evil spf=pass Injected: yes\)/);
  assert.match(h, /smtp\.mailfrom=example\.com\r\n$/, 'a quoted local part falls back to the domain (RFC 8601 §2.7.2)');
  assert.equal(propertyValue('[192.0.2.1]'), '"[192.0.2.1]"');
  assert.equal(propertyValue('a.b+tag@sub.example.org'), 'a.b+tag@sub.example.org');
});

test('forged fields are recognised by their authserv-id only', () => {
  const yes = [' relay.test; spf=pass smtp.mailfrom=x@y', ' RELAY.TEST;spf=pass', ' (comment (nested)) relay.test; dkim=pass', ' "relay.test"; none', '\r\n\trelay.test 1; none'];
  const no = [' other.test; spf=pass', ' relay.test.evil; spf=pass', ' relay; none'];
  for (const v of yes) assert.ok(claimsAuthservId('Authentication-Results', v, 'relay.test'), v);
  for (const v of no) assert.ok(!claimsAuthservId('Authentication-Results', v, 'relay.test'), v);
  assert.ok(!claimsAuthservId('X-Authentication-Results', ' relay.test; none', 'relay.test'));
  assert.ok(claimsAuthservId('authentication-results ', ' relay.test; none', 'relay.test'));
});
