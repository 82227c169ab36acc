// The reverse-DNS cache: one query per address per TTL, shared by concurrent sessions,
// failures kept briefly, bounded in size; callers cannot change what others get.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cachingReverseResolver } from './reverse-dns.ts';
import type { ReverseResolver } from './adapter.ts';

/** A resolver that answers when told to, counting queries per address. */
function fakeResolver(): ReverseResolver & { calls: Map<string, number>; answer(ip: string, err: Error | null, names?: string[]): void } {
  const calls = new Map<string, number>();
  const pending = new Map<string, ((err: Error | null, names?: string[]) => void)[]>();
  return {
    calls,
    reverse(ip, cb) {
      calls.set(ip, (calls.get(ip) ?? 0) + 1);
      pending.set(ip, [...(pending.get(ip) ?? []), cb]);
    },
    answer(ip, err, names) {
      const cbs = pending.get(ip) ?? [];
      pending.delete(ip);
      for (const cb of cbs) cb(err, names);
    },
  };
}

const lookup = (r: ReverseResolver, ip: string): Promise<{ err: Error | null; names?: string[] }> =>
  new Promise((resolve) => r.reverse(ip, (err, names) => resolve({ err, names })));

test('one query per address per TTL, shared by concurrent lookups; a fresh copy for each caller', async () => {
  let t = 0;
  const base = fakeResolver();
  const r = cachingReverseResolver(base, { ttlMs: 1000, now: () => t });
  const a = lookup(r, '192.0.2.1');
  const b = lookup(r, '192.0.2.1');
  base.answer('192.0.2.1', null, ['app.example.com']);
  const [ra, rb] = await Promise.all([a, b]);
  assert.deepEqual(ra.names, ['app.example.com']);
  ra.names.shift(); // smtp-server does this to the array it gets
  assert.deepEqual(rb.names, ['app.example.com']);
  t = 999;
  assert.deepEqual((await lookup(r, '192.0.2.1')).names, ['app.example.com']);
  assert.equal(base.calls.get('192.0.2.1'), 1);
  t = 1000;
  const c = lookup(r, '192.0.2.1');
  base.answer('192.0.2.1', null, ['renamed.example.com']);
  assert.deepEqual((await c).names, ['renamed.example.com']);
  assert.equal(base.calls.get('192.0.2.1'), 2);
});

test('a failure is kept for the shorter error TTL', async () => {
  let t = 0;
  const base = fakeResolver();
  const r = cachingReverseResolver(base, { ttlMs: 60_000, errorTtlMs: 100, now: () => t });
  const a = lookup(r, '192.0.2.2');
  base.answer('192.0.2.2', Object.assign(new Error('queryPtr ENOTFOUND'), { code: 'ENOTFOUND' }));
  assert.match(String((await a).err), /ENOTFOUND/);
  t = 50;
  assert.match(String((await lookup(r, '192.0.2.2')).err), /ENOTFOUND/);
  assert.equal(base.calls.get('192.0.2.2'), 1);
  t = 100;
  void lookup(r, '192.0.2.2');
  assert.equal(base.calls.get('192.0.2.2'), 2);
});

test('at most maxEntries addresses, the least recently used dropped first; a resolver that throws is a failure', async () => {
  const base = fakeResolver();
  const r = cachingReverseResolver(base, { maxEntries: 2 });
  for (const ip of ['192.0.2.1', '192.0.2.2']) {
    const p = lookup(r, ip);
    base.answer(ip, null, [`h${ip}`]);
    await p;
  }
  await lookup(r, '192.0.2.1'); // now the most recent
  const p3 = lookup(r, '192.0.2.3');
  base.answer('192.0.2.3', null, ['h3']);
  await p3;
  assert.equal(r.size(), 2);
  await lookup(r, '192.0.2.1');
  assert.equal(base.calls.get('192.0.2.1'), 1, 'kept');
  void lookup(r, '192.0.2.2');
  assert.equal(base.calls.get('192.0.2.2'), 2, 'dropped, asked again');
  const throwing = cachingReverseResolver({ reverse: () => { throw new TypeError('not an IP'); } });
  assert.match(String((await lookup(throwing, 'bogus')).err), /not an IP/);
});
