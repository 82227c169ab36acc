import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StsPolicyCache, isFresh } from './cache.ts';
import type { StsPolicy } from './policy.ts';

const pol = (id: string, maxAge = 3600, mode: StsPolicy['mode'] = 'enforce'): StsPolicy => ({ id, mode, maxAge, mx: ['mx.example.test'] });

test('a policy is fresh for max_age seconds from its fetch', () => {
  const e = { policy: pol('1', 10), fetchedAt: 1000, checkedAt: 1000 };
  assert.equal(isFresh(e, 10_999), true);
  assert.equal(isFresh(e, 11_000), false);
  assert.equal(isFresh({ policy: null, fetchedAt: 0, checkedAt: 0 }, 0), false);
});

test('bounded: the least recently used domain goes first', () => {
  const c = new StsPolicyCache(2);
  c.set('a.test', { policy: pol('a'), fetchedAt: 0, checkedAt: 0 });
  c.set('b.test', { policy: pol('b'), fetchedAt: 0, checkedAt: 0 });
  c.get('a.test');
  c.set('c.test', { policy: pol('c'), fetchedAt: 0, checkedAt: 0 });
  assert.equal(c.size, 2);
  assert.ok(c.get('a.test'));
  assert.equal(c.get('b.test'), undefined);
});

test('saved and loaded: fresh policies only; a damaged or edited entry is dropped', () => {
  const c = new StsPolicyCache(10);
  c.set('a.test', { policy: pol('a', 100), fetchedAt: 0, checkedAt: 0 });
  c.set('old.test', { policy: pol('o', 1), fetchedAt: 0, checkedAt: 0 });
  c.set('none.test', { policy: null, fetchedAt: 0, checkedAt: 0 });
  const file = JSON.parse(JSON.stringify(c.toFile(50_000)));
  assert.deepEqual(file.entries.map((e: { domain: string }) => e.domain), ['a.test']);
  file.entries.push({ domain: 'evil.test', fetchedAt: 0, policy: { id: 'x', mode: 'enforce', maxAge: 100, mx: ['*.*.test'] } });
  file.entries.push({ domain: 'bad.test', fetchedAt: 0, policy: { id: 'bad id', mode: 'enforce', maxAge: 100, mx: ['a.test'] } });
  file.entries.push({ domain: 'future.test', fetchedAt: 1e15, policy: pol('f', 100) });
  const d = new StsPolicyCache(10);
  assert.equal(d.load(file, 50_000), 2);
  assert.equal(d.get('a.test')?.policy?.id, 'a');
  assert.equal(d.get('a.test')?.checkedAt, 0, 'the TXT record is looked at again after a restart');
  assert.equal(d.get('future.test')?.fetchedAt, 50_000, 'a fetch time in the future is clamped to now');
  assert.equal(d.load({ version: 2 }, 0), 0);
  assert.equal(d.load(null, 0), 0);
});
