import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SpfChecker } from './check.ts';
import type { SpfCheckRequest } from './check.ts';
import { SpfDns } from './dns.ts';
import type { DnsAnswer, DnsBackend } from './dns.ts';

type Zone = Record<string, { TXT?: string[]; A?: string[]; MX?: { exchange: string; priority: number }[] } | 'servfail' | 'never'>;

/** An in-memory DNS backend over `zone`, logging every query. */
function zoneBackend(zone: Zone) {
  const queries: string[] = [];
  const backend: DnsBackend = async (name, type) => {
    queries.push(`${type} ${name}`);
    const z = zone[name];
    if (z === 'never') return new Promise<DnsAnswer>(() => {});
    if (z === 'servfail') throw Object.assign(new Error(`SERVFAIL ${name}`), { code: 'ESERVFAIL' });
    if (!z) throw Object.assign(new Error(`NXDOMAIN ${name}`), { code: 'ENOTFOUND' });
    const rr = (z as Record<string, unknown[] | undefined>)[type];
    if (!rr) throw Object.assign(new Error(`NODATA ${name}`), { code: 'ENODATA' });
    return { records: type === 'TXT' ? (rr as string[]).map((t) => [t]) : rr };
  };
  return { backend, queries };
}

const ZONE: Zone = {
  'pass.example': { TXT: ['v=spf1 ip4:192.0.2.0/24 -all'] },
  'fail.example': { TXT: ['v=spf1 ip4:198.51.100.1 -all'] },
  'soft.example': { TXT: ['v=spf1 ~all'] },
  'neutral.example': { TXT: ['v=spf1 ?all'] },
  'nospf.example': { TXT: ['google-site-verification=abc'] },
  'include.example': { TXT: ['v=spf1 include:pass.example -all'] },
  'mx.example': { TXT: ['v=spf1 mx -all'], MX: [{ exchange: 'mail.mx.example', priority: 10 }] },
  'mail.mx.example': { A: ['192.0.2.7'] },
  'syntax.example': { TXT: ['v=spf1 ip4:300.1.1.1 -all'] },
  'two.example': { TXT: ['v=spf1 -all', 'v=spf1 +all'] },
  'binary.example': { TXT: ['v=spf1 ip4:192.0.2.1 \u00ff\u0000 -all'] },
  'servfail.example': 'servfail',
  'never.example': 'never',
  'slowinclude.example': { TXT: ['v=spf1 include:never.example -all'] },
  'void.example': { TXT: ['v=spf1 a:nx1.example a:nx2.example a:nx3.example -all'] },
  // 11 DNS-querying terms: one more than RFC 7208 §4.6.4 allows
  'eleven.example': { TXT: [`v=spf1 ${Array.from({ length: 11 }, (_, i) => `a:h${i}.eleven.example`).join(' ')} -all`] },
  ...Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`h${i}.eleven.example`, { A: ['203.0.113.1'] }])),
  // a loop of includes: the term limit ends it
  'loop.example': { TXT: ['v=spf1 include:loop2.example -all'] },
  'loop2.example': { TXT: ['v=spf1 include:loop.example -all'] },
  // mx terms whose hosts each need address lookups: many queries under ten terms
  'wide.example': { TXT: [`v=spf1 ${Array.from({ length: 9 }, (_, i) => `mx:m${i}.wide.example`).join(' ')} -all`] },
  ...Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`m${i}.wide.example`, { MX: Array.from({ length: 10 }, (_, j) => ({ exchange: `x${j}.m${i}.wide.example`, priority: j })) }])),
  ...Object.fromEntries(Array.from({ length: 90 }, (_, k) => [`x${k % 10}.m${Math.floor(k / 10)}.wide.example`, { A: ['203.0.113.5'] }])),
};

function checker(zone: Zone = ZONE, opts: { budgetMs?: number; timeoutMs?: number; maxQueries?: number } = {}) {
  const b = zoneBackend(zone);
  const dns = new SpfDns({ backend: b.backend, timeoutMs: opts.timeoutMs ?? 1000, cacheSize: 1000, maxTtlMs: 60_000 });
  const c = new SpfChecker({ dns, budgetMs: opts.budgetMs ?? 2000, hostname: 'relay.test', maxQueries: opts.maxQueries });
  return { c, dns, queries: b.queries };
}

const req = (sender: string, ip = '192.0.2.10', extra: Partial<SpfCheckRequest> = {}): SpfCheckRequest =>
  ({ identity: 'mailfrom', ip, sender, helo: 'client.example', ...extra });

test('RFC 7208 results for plain records', async () => {
  const { c } = checker();
  const cases: [string, string, string][] = [
    ['a@pass.example', '192.0.2.10', 'pass'],
    ['a@fail.example', '192.0.2.10', 'fail'],
    ['a@soft.example', '192.0.2.10', 'softfail'],
    ['a@neutral.example', '192.0.2.10', 'neutral'],
    ['a@nospf.example', '192.0.2.10', 'none'],
    ['a@nxdomain.example', '192.0.2.10', 'none'],
    ['a@include.example', '192.0.2.10', 'pass'],
    ['a@include.example', '203.0.113.9', 'fail'],
    ['a@mx.example', '192.0.2.7', 'pass'],
    ['a@mx.example', '192.0.2.8', 'fail'],
    // §4.4: an IPv4-mapped client is checked as IPv4
    ['a@pass.example', '::ffff:192.0.2.10', 'pass'],
  ];
  for (const [sender, ip, want] of cases) {
    const r = await c.check(req(sender, ip));
    assert.equal(r.result, want, `${sender} from ${ip}: ${r.comment}`);
    assert.equal(r.domain, sender.split('@')[1]);
  }
});

test('broken records are permerror: bad syntax, two records, bytes outside ASCII, 11 DNS terms, 3 void lookups, include loops', async () => {
  const { c } = checker();
  for (const d of ['syntax', 'two', 'binary', 'eleven', 'void', 'loop']) {
    const r = await c.check(req(`a@${d}.example`));
    assert.equal(r.result, 'permerror', `${d}: ${r.comment}`);
  }
});

test('DNS failures are temperror: SERVFAIL, and a name that never answers (after the DNS timeout, not the budget)', async () => {
  const { c } = checker(ZONE, { timeoutMs: 50, budgetMs: 5000 });
  assert.equal((await c.check(req('a@servfail.example'))).result, 'temperror');
  const t0 = Date.now();
  const r = await c.check(req('a@slowinclude.example'));
  assert.equal(r.result, 'temperror', r.comment);
  assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
});

test('the time budget ends a check that waits on DNS, and the abandoned evaluation stops asking', async () => {
  const { c, queries } = checker(ZONE, { timeoutMs: 60_000, budgetMs: 60 });
  const t0 = Date.now();
  const r = await c.check(req('a@slowinclude.example'));
  const took = Date.now() - t0;
  assert.equal(r.result, 'temperror');
  assert.match(r.comment, /budget/);
  assert.ok(took >= 50 && took < 2000, `took ${took} ms`);
  assert.equal(c.active(), 0);
  const asked = queries.length;
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(queries.length, asked, 'no lookups after the deadline');
});

test('an aborted session ends its check at once with temperror', async () => {
  const { c } = checker(ZONE, { timeoutMs: 60_000, budgetMs: 60_000 });
  const ac = new AbortController();
  const p = c.check(req('a@slowinclude.example', '192.0.2.10', { signal: ac.signal }));
  ac.abort();
  const r = await p;
  assert.equal(r.result, 'temperror');
  assert.match(r.comment, /session closed/);
  assert.equal(c.active(), 0);
});

test('a check that would make more DNS queries than maxQueries is a permerror', async () => {
  const { c, queries } = checker(ZONE, { maxQueries: 30 });
  const r = await c.check(req('a@wide.example', '198.51.100.200'));
  assert.equal(r.result, 'permerror', r.comment);
  assert.match(r.comment, /more than 30 DNS lookups/);
  assert.ok(queries.length <= 31, `${queries.length} queries`);
});

test('200 concurrent checks of one domain share its lookups and all agree', async () => {
  const { c, queries } = checker();
  const results = await Promise.all(Array.from({ length: 200 }, () => c.check(req('x@mx.example', '192.0.2.7'))));
  assert.ok(results.every((r) => r.result === 'pass'));
  const counts = new Map<string, number>();
  for (const q of queries) counts.set(q, (counts.get(q) ?? 0) + 1);
  for (const [q, n] of counts) assert.equal(n, 1, `${q} asked ${n} times`);
  assert.equal(c.active(), 0);
});
