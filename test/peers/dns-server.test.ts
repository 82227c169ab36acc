// The DNS peer, queried by Node's own resolver (c-ares) the way the relay will query it.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { Resolver } from 'node:dns/promises';
import { startDnsServer } from './dns-server.ts';
import type { DnsRecord, DnsServer } from './dns-server.ts';

const zone: DnsRecord[] = [
  { name: 'example.test', type: 'MX', data: { preference: 10, exchange: 'mx1.example.test' }, ttl: 120 },
  { name: 'example.test', type: 'MX', data: { preference: 20, exchange: 'mx2.example.test' } },
  { name: 'example.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all', ttl: 60 },
  { name: 'mx1.example.test', type: 'A', data: '127.0.0.1', ttl: 30 },
  { name: 'mx1.example.test', type: 'AAAA', data: '::1' },
  { name: 'mx2.example.test', type: 'CNAME', data: 'mx1.example.test' },
  { name: 'deep.sub.example.test', type: 'A', data: '127.0.0.2' },
  { name: 'multi.example.test', type: 'TXT', data: ['part one ', 'part two'] },
];

const servers: DnsServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

async function start(records: DnsRecord[] = zone): Promise<DnsServer> {
  const s = await startDnsServer(records);
  servers.push(s);
  return s;
}

/** A fresh resolver (its own c-ares channel and cache) pointed at `s`. */
function resolverFor(s: DnsServer, opts: { timeout?: number; tries?: number } = {}): Resolver {
  const r = new Resolver({ timeout: opts.timeout ?? 2000, tries: opts.tries ?? 1 });
  r.setServers([s.server]);
  return r;
}

describe('dns-server: answers', () => {
  it('resolves MX, A, AAAA and TXT with their TTLs', async () => {
    const s = await start();
    const r = resolverFor(s);
    const mx = await r.resolveMx('example.test');
    assert.deepEqual(mx.sort((a, b) => a.priority - b.priority), [
      { exchange: 'mx1.example.test', priority: 10 },
      { exchange: 'mx2.example.test', priority: 20 },
    ]);
    assert.deepEqual(await r.resolve4('mx1.example.test', { ttl: true }), [{ address: '127.0.0.1', ttl: 30 }]);
    assert.deepEqual(await r.resolve6('mx1.example.test', { ttl: true }), [{ address: '::1', ttl: 300 }]);
    assert.deepEqual(await r.resolveTxt('example.test'), [['v=spf1 ip4:127.0.0.1 -all']]);
    assert.deepEqual(await r.resolveTxt('multi.example.test'), [['part one ', 'part two']]);
    assert.deepEqual(
      s.queries.map((q) => [q.name, q.type, q.transport, q.outcome]),
      [
        ['example.test', 'MX', 'udp', 'answer'],
        ['mx1.example.test', 'A', 'udp', 'answer'],
        ['mx1.example.test', 'AAAA', 'udp', 'answer'],
        ['example.test', 'TXT', 'udp', 'answer'],
        ['multi.example.test', 'TXT', 'udp', 'answer'],
      ],
    );
    assert.equal(s.count('example.test'), 2);
    assert.equal(s.count('EXAMPLE.test.', 'MX'), 1);
  });

  it('follows a CNAME inside the zone and answers CNAME queries', async () => {
    const s = await start();
    const r = resolverFor(s);
    assert.deepEqual(await r.resolve4('mx2.example.test'), ['127.0.0.1']);
    assert.deepEqual(await r.resolveCname('mx2.example.test'), ['mx1.example.test']);
  });

  it('answers NXDOMAIN for unknown names and NODATA for known names without that type', async () => {
    const s = await start();
    const r = resolverFor(s);
    await assert.rejects(r.resolve4('nope.example.test'), { code: 'ENOTFOUND' });
    await assert.rejects(r.resolveMx('mx1.example.test'), { code: 'ENODATA' });
    await assert.rejects(r.resolve4('sub.example.test'), { code: 'ENODATA' }, 'an empty non-terminal exists');
    assert.deepEqual(s.queries.map((q) => q.outcome), ['nxdomain', 'nodata', 'nodata']);
  });

  it('sets TC for a UDP answer over 512 bytes and gives it in full over TCP', async () => {
    const big = Array.from({ length: 6 }, (_, i) => `chunk-${i}-${'z'.repeat(120)}`);
    const s = await start([{ name: 'big.example.test', type: 'TXT', data: big }]);
    const r = resolverFor(s);
    assert.deepEqual(await r.resolveTxt('big.example.test'), [big]);
    assert.deepEqual(s.queries.map((q) => [q.transport, q.outcome]), [
      ['udp', 'truncated (too big for UDP)'],
      ['tcp', 'answer'],
    ]);
  });

  it('setRecords changes answers at runtime', async () => {
    const s = await start();
    assert.deepEqual(await resolverFor(s).resolve4('mx1.example.test'), ['127.0.0.1']);
    s.setRecords([{ name: 'mx1.example.test', type: 'A', data: '127.0.0.9' }]);
    assert.deepEqual(await resolverFor(s).resolve4('mx1.example.test'), ['127.0.0.9']);
    await assert.rejects(resolverFor(s).resolveMx('example.test'), { code: 'ENODATA' });
  });
});

describe('dns-server: faults', () => {
  it('slow: answers after the delay, or the resolver times out first', async () => {
    const s = await start();
    s.setFault('example.test', { mode: 'slow', ms: 300 });
    const t0 = Date.now();
    assert.equal((await resolverFor(s, { timeout: 3000 }).resolveMx('example.test')).length, 2);
    assert.ok(Date.now() - t0 >= 290, 'answer was delayed');
    // c-ares 1.34 does not time out at exactly `timeout`: it waits at least ~300 ms, so
    // the delay here is far beyond that.
    s.setFault('example.test', { mode: 'slow', ms: 3000 });
    await assert.rejects(resolverFor(s, { timeout: 100, tries: 1 }).resolveMx('example.test'), { code: 'ETIMEOUT' });
    assert.deepEqual(await resolverFor(s, { timeout: 100 }).resolve4('mx1.example.test'), ['127.0.0.1'], 'other names are not slow');
  });

  it('never: the resolver times out, after `tries` attempts', async () => {
    const s = await start();
    s.setFault('example.test', { mode: 'never' }, 'MX');
    await assert.rejects(resolverFor(s, { timeout: 100, tries: 3 }).resolveMx('example.test'), { code: 'ETIMEOUT' });
    assert.equal(s.count('example.test', 'MX'), 3);
    assert.deepEqual(await resolverFor(s).resolveTxt('example.test'), [['v=spf1 ip4:127.0.0.1 -all']], 'only MX is faulted');
  });

  it('servfail and refused give those errors', async () => {
    const s = await start();
    s.setFault('example.test', { mode: 'servfail' });
    await assert.rejects(resolverFor(s).resolveMx('example.test'), { code: 'ESERVFAIL' });
    s.setFault('example.test', { mode: 'refused' });
    await assert.rejects(resolverFor(s).resolveMx('example.test'), { code: 'EREFUSED' });
    s.setFault('example.test', undefined);
    assert.equal((await resolverFor(s).resolveMx('example.test')).length, 2);
  });

  it('a fault limited by `times` clears itself', async () => {
    const s = await start();
    s.setFault('example.test', { mode: 'never', times: 1 });
    await assert.rejects(resolverFor(s, { timeout: 100, tries: 1 }).resolveMx('example.test'), { code: 'ETIMEOUT' });
    assert.equal((await resolverFor(s).resolveMx('example.test')).length, 2);
    assert.deepEqual(s.queries.map((q) => q.outcome), ['never', 'answer']);
  });

  it('malformed: the resolver rejects the response as EBADRESP, retrying per `tries`', async () => {
    const s = await start();
    s.setFault('example.test', { mode: 'malformed' });
    await assert.rejects(resolverFor(s, { timeout: 500, tries: 2 }).resolveMx('example.test'), { code: 'EBADRESP' });
    assert.deepEqual(s.queries.map((q) => q.outcome), ['malformed', 'malformed']);
  });

  it('truncated: TC over UDP makes the resolver retry over TCP, which answers', async () => {
    const s = await start();
    s.setFault('example.test', { mode: 'truncated' });
    assert.equal((await resolverFor(s).resolveMx('example.test')).length, 2);
    assert.deepEqual(s.queries.map((q) => [q.transport, q.outcome]), [
      ['udp', 'truncated'],
      ['tcp', 'answer'],
    ]);
  });

  it('listens on ::1 too', async () => {
    const s = await startDnsServer(zone, { host: '::1' });
    servers.push(s);
    assert.equal(s.server, `[::1]:${s.port}`);
    assert.deepEqual(await resolverFor(s).resolve4('mx1.example.test'), ['127.0.0.1']);
  });
});
