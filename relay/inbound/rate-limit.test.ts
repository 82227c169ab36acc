import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionRateLimiter, rateKey } from './rate-limit.ts';

test('a burst is allowed, then one connection per 1/rate seconds', () => {
  const l = new ConnectionRateLimiter({ ratePerSecond: 2, burst: 3 });
  const at = (ms: number) => l.take('192.0.2.1', ms);
  assert.deepEqual([at(0), at(0), at(0), at(0)], [true, true, true, false]);
  assert.equal(at(400), false, '0.8 tokens');
  assert.equal(at(500), true, 'one token after 500 ms');
  assert.equal(at(500), false);
  assert.deepEqual([at(10_000), at(10_000), at(10_000), at(10_000)], [true, true, true, false], 'refills to the burst, not beyond');
  assert.equal(l.take('192.0.2.2', 0), true, 'buckets are per client');
});

test('refused attempts do not earn credit, and a clock going backwards does not mint tokens', () => {
  const l = new ConnectionRateLimiter({ ratePerSecond: 1, burst: 1 });
  assert.equal(l.take('192.0.2.1', 1000), true);
  for (let i = 0; i < 10; i++) assert.equal(l.take('192.0.2.1', 1000 + i * 50), false);
  assert.equal(l.take('192.0.2.1', 500), false);
});

test('IPv6 clients are counted per /64, IPv4-mapped ones as IPv4', () => {
  assert.equal(rateKey('2001:db8:1:2:3:4:5:6'), '2001:db8:1:2::/64');
  assert.equal(rateKey('2001:db8:1:2::9'), '2001:db8:1:2::/64');
  assert.equal(rateKey('2001:DB8:0001:0002::9'), '2001:db8:1:2::/64');
  assert.equal(rateKey('::1'), '0:0:0:0::/64');
  assert.equal(rateKey('::ffff:192.0.2.7'), '192.0.2.7');
  assert.equal(rateKey('192.0.2.7'), '192.0.2.7');
  const l = new ConnectionRateLimiter({ ratePerSecond: 1, burst: 1 });
  assert.equal(l.take('2001:db8:1:2::1', 0), true);
  assert.equal(l.take('2001:db8:1:2::ffff', 0), false, 'same /64');
  assert.equal(l.take('2001:db8:1:3::1', 0), true);
});

test('memory stays bounded: at most maxKeys buckets, the least recently used dropped', () => {
  const l = new ConnectionRateLimiter({ ratePerSecond: 1, burst: 1, maxKeys: 100 });
  for (let i = 0; i < 1000; i++) l.take(`10.0.${i >> 8}.${i & 255}`, 0);
  assert.equal(l.size(), 100);
  assert.equal(l.take('10.0.3.231', 0), false, 'the most recent client keeps its empty bucket');
});
