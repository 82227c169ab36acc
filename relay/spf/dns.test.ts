import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DnsLookupError, SpfDns } from './dns.ts';
import type { DnsAnswer, DnsBackend } from './dns.ts';

/** A backend whose answers the test releases by hand, counting queries per name. */
function manualBackend() {
  const pending: { key: string; resolve: (a: DnsAnswer) => void; reject: (e: Error) => void }[] = [];
  const calls: string[] = [];
  const backend: DnsBackend = (name, type) => {
    calls.push(`${type} ${name}`);
    return new Promise<DnsAnswer>((resolve, reject) => pending.push({ key: `${type} ${name}`, resolve, reject }));
  };
  const take = (key: string) => {
    const i = pending.findIndex((p) => p.key === key);
    assert.ok(i >= 0, `a pending query for ${key}`);
    return pending.splice(i, 1)[0]!;
  };
  return { backend, calls, pending, take };
}

const err = (code: string) => Object.assign(new Error(`query failed: ${code}`), { code });

test('concurrent misses for one name make one query; every waiter gets an equal answer of its own', async () => {
  const m = manualBackend();
  const dns = new SpfDns({ backend: m.backend, timeoutMs: 5000, cacheSize: 100, maxTtlMs: 60_000 });
  const waiters = Array.from({ length: 50 }, () => dns.lookup('Example.COM.', 'MX'));
  assert.equal(dns.inFlight(), 1);
  m.take('MX example.com').resolve({ records: [{ exchange: 'b.example.com', priority: 20 }, { exchange: 'a.example.com', priority: 10 }] });
  const answers = await Promise.all(waiters);
  assert.deepEqual(m.calls, ['MX example.com']);
  assert.equal(dns.stats().coalesced, 49);
  for (const a of answers) assert.deepEqual(a, answers[0]);
  // mailauth sorts MX answers in place: one caller's sort must not reach another or the cache.
  (answers[0] as { priority: number }[]).sort((x, y) => x.priority - y.priority);
  (answers[1] as { priority: number }[])[0]!.priority = 99;
  assert.deepEqual(await dns.lookup('example.com', 'MX'), [{ exchange: 'b.example.com', priority: 20 }, { exchange: 'a.example.com', priority: 10 }]);
  assert.equal(dns.inFlight(), 0);
});

test('a failed query reaches every waiter as an error of its own with the same code and message; the flight is gone', async () => {
  const m = manualBackend();
  const dns = new SpfDns({ backend: m.backend, timeoutMs: 5000, cacheSize: 100, maxTtlMs: 60_000 });
  const waiters = Array.from({ length: 10 }, () => dns.lookup('bad.example', 'TXT').then(() => assert.fail('resolved'), (e: unknown) => e));
  m.take('TXT bad.example').reject(err('ESERVFAIL'));
  const errors = await Promise.all(waiters);
  for (const e of errors) {
    assert.ok(e instanceof DnsLookupError);
    assert.equal(e.code, 'ESERVFAIL');
    assert.equal(e.message, 'query failed: ESERVFAIL');
  }
  assert.equal(new Set(errors).size, 10, 'distinct instances: mailauth writes into the errors it gets');
  assert.equal(dns.inFlight(), 0);
});

test('a query that never answers ends with ETIMEOUT at timeoutMs, for every waiter, and leaves no flight behind', async () => {
  const calls: string[] = [];
  const dns = new SpfDns({ backend: (n) => { calls.push(n); return new Promise<DnsAnswer>(() => {}); }, timeoutMs: 40, cacheSize: 10, maxTtlMs: 60_000, errorTtlMs: 1 });
  const t0 = Date.now();
  const results = await Promise.allSettled([dns.lookup('never.example', 'TXT'), dns.lookup('never.example', 'TXT')]);
  const took = Date.now() - t0;
  for (const r of results) {
    assert.equal(r.status, 'rejected');
    assert.equal((r.reason as DnsLookupError).code, 'ETIMEOUT');
  }
  assert.ok(took >= 35 && took < 2000, `took ${took} ms`);
  assert.equal(dns.inFlight(), 0);
  assert.equal(dns.stats().timeouts, 1);
  assert.equal(calls.length, 1);
});

test('a backend that throws synchronously cannot leave a stale flight', async () => {
  let n = 0;
  const dns = new SpfDns({
    backend: () => {
      n++;
      throw err('EBADRESP');
    },
    timeoutMs: 1000, cacheSize: 10, maxTtlMs: 60_000, errorTtlMs: 0,
  });
  await assert.rejects(dns.lookup('x.example', 'TXT'), { code: 'EBADRESP' });
  assert.equal(dns.inFlight(), 0);
  await assert.rejects(dns.lookup('x.example', 'TXT'), { code: 'EBADRESP' });
  assert.equal(n, 2, 'not cached (errorTtlMs 0), not stuck: asked again');
});

test('answers live for their TTL (capped by maxTtl), NXDOMAIN for the negative TTL, failures for the error TTL', async () => {
  let clock = 1_000_000;
  const answers: Record<string, () => Promise<DnsAnswer>> = {
    'A short.example': async () => ({ records: ['192.0.2.1'], ttl: 10 }),
    'A long.example': async () => ({ records: ['192.0.2.2'], ttl: 86_400 }),
    'TXT txt.example': async () => ({ records: [['v=spf1 -all']] }),
    'TXT nx.example': async () => { throw err('ENOTFOUND'); },
    'TXT fail.example': async () => { throw err('ESERVFAIL'); },
  };
  const calls: string[] = [];
  const dns = new SpfDns({
    backend: (name, type) => { calls.push(`${type} ${name}`); return answers[`${type} ${name}`]!(); },
    timeoutMs: 1000, cacheSize: 100, maxTtlMs: 300_000, negativeTtlMs: 60_000, errorTtlMs: 5_000, now: () => clock,
  });
  const all = async () => {
    for (const k of Object.keys(answers)) {
      const [type, name] = k.split(' ') as [string, string];
      await dns.lookup(name, type).catch(() => undefined);
    }
  };
  const queried = async (at: number) => {
    clock = 1_000_000 + at;
    calls.length = 0;
    await all();
    return [...calls].sort();
  };
  assert.equal((await queried(0)).length, 5);
  assert.deepEqual(await queried(4_999), []);
  assert.deepEqual(await queried(5_000), ['TXT fail.example']);
  assert.deepEqual(await queried(10_000), ['A short.example', 'TXT fail.example']);
  // re-fetched at 10 s: cached until 20 s, so nothing new at 15 s except the error
  assert.deepEqual(await queried(15_000), ['TXT fail.example']);
  assert.deepEqual(await queried(60_000), ['A short.example', 'TXT fail.example', 'TXT nx.example']);
  assert.deepEqual(await queried(300_000), ['A long.example', 'A short.example', 'TXT fail.example', 'TXT nx.example', 'TXT txt.example']);
});

test('the cache holds at most cacheSize entries and drops the least recently used', async () => {
  const calls: string[] = [];
  const dns = new SpfDns({ backend: async (n) => { calls.push(n); return { records: [n] }; }, timeoutMs: 1000, cacheSize: 2, maxTtlMs: 60_000 });
  await dns.lookup('a.example', 'A');
  await dns.lookup('b.example', 'A');
  await dns.lookup('a.example', 'A'); // a is now the most recent
  await dns.lookup('c.example', 'A'); // pushes out b
  assert.equal(dns.cached(), 2);
  calls.length = 0;
  await dns.lookup('a.example', 'A');
  await dns.lookup('c.example', 'A');
  assert.deepEqual(calls, []);
  await dns.lookup('b.example', 'A');
  assert.deepEqual(calls, ['b.example']);
});

test('property: any interleaving of lookups, answers, failures and clock steps settles every lookup, coalesces per name, and leaves no flight', async () => {
  const names = ['a.example', 'b.example', 'c.example'];
  const step = fc.oneof(
    fc.record({ kind: fc.constant('lookup' as const), name: fc.constantFrom(...names) }),
    fc.record({ kind: fc.constant('answer' as const), name: fc.constantFrom(...names), ok: fc.boolean() }),
    fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 20_000 }) }),
  );
  await fc.assert(fc.asyncProperty(fc.array(step, { maxLength: 60 }), async (steps) => {
    let clock = 0;
    const m = manualBackend();
    const dns = new SpfDns({ backend: m.backend, timeoutMs: 60_000, cacheSize: 2, maxTtlMs: 10_000, negativeTtlMs: 3_000, errorTtlMs: 1_000, now: () => clock });
    const lookups: { name: string; p: Promise<string> }[] = [];
    for (const s of steps) {
      if (s.kind === 'lookup') {
        lookups.push({ name: s.name, p: dns.lookup(s.name, 'TXT').then((r) => JSON.stringify(r), (e: DnsLookupError) => e.code) });
      } else if (s.kind === 'answer') {
        const i = m.pending.findIndex((p) => p.key === `TXT ${s.name}`);
        if (i >= 0) {
          const q = m.pending.splice(i, 1)[0]!;
          if (s.ok) q.resolve({ records: [[`v=spf1 ${s.name}`]] });
          else q.reject(err('ENOTFOUND'));
        }
      } else {
        clock += s.ms;
      }
      // never two queries in flight for one name
      const keys = m.pending.map((p) => p.key);
      assert.equal(new Set(keys).size, keys.length);
      await Promise.resolve();
    }
    for (const q of m.pending.splice(0)) q.resolve({ records: [['late']] });
    const settled = await Promise.all(lookups.map((l) => l.p));
    assert.equal(settled.length, lookups.length);
    for (const [i, v] of settled.entries()) assert.ok(v === 'ENOTFOUND' || v.startsWith('[['), `lookup ${i} of ${lookups[i]!.name}: ${v}`);
    assert.equal(dns.inFlight(), 0);
    assert.ok(dns.cached() <= 2);
  }), { numRuns: 200 });
});

test('peek answers from the cache synchronously: records, the cached error, or undefined on a miss', async () => {
  const dns = new SpfDns({
    backend: async (name) => {
      if (name === 'nx.example') throw err('ENOTFOUND');
      return { records: [['v=spf1 -all']] };
    },
    timeoutMs: 1000, cacheSize: 10, maxTtlMs: 60_000,
  });
  assert.equal(dns.peek('a.example', 'TXT'), undefined);
  await dns.lookup('a.example', 'TXT');
  await dns.lookup('nx.example', 'TXT').catch(() => undefined);
  assert.deepEqual(dns.peek('A.EXAMPLE.', 'TXT'), [['v=spf1 -all']]);
  assert.throws(() => dns.peek('nx.example', 'TXT'), { code: 'ENOTFOUND' });
  assert.equal(dns.stats().hits, 2);
});
