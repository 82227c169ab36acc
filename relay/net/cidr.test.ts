import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCidr, networkMatcher } from './cidr.ts';

test('parseCidr accepts v4/v6 networks and bare hosts, rejects junk', () => {
  assert.deepEqual(parseCidr('10.0.0.0/8'), { family: 'ipv4', address: '10.0.0.0', prefix: 8 });
  assert.deepEqual(parseCidr('::1'), { family: 'ipv6', address: '::1', prefix: 128 });
  assert.deepEqual(parseCidr('fd00::/8'), { family: 'ipv6', address: 'fd00::', prefix: 8 });
  for (const bad of ['10.0.0.0/33', '10.0.0/8', 'example.com/24', '10.0.0.0/8/1', '::/129', '1.2.3.4/ 8', '']) {
    assert.equal(parseCidr(bad), null, bad);
  }
});

test('networkMatcher matches members only, including IPv4-mapped IPv6 clients', () => {
  const m = networkMatcher(['127.0.0.0/8', '10.1.0.0/16', '::1/128']);
  assert.equal(m('127.0.0.1'), true);
  assert.equal(m('::ffff:127.0.0.5'), true);
  assert.equal(m('10.1.200.3'), true);
  assert.equal(m('10.2.0.1'), false);
  assert.equal(m('::1'), true);
  assert.equal(m('192.168.1.1'), false);
  assert.equal(m('not-an-ip'), false);
  assert.equal(networkMatcher([])('127.0.0.1'), false, 'an empty list is a closed relay');
});
