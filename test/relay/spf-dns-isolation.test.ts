// The real DNS backend (node:dns / c-ares) against the loopback DNS server: garbage
// answered for one name does not fail a lookup of another name in flight at the same
// time (c-ares fails every query of a shared socket on an undecodable answer; we give
// each query a channel of its own), a timed-out query is cancelled rather than left
// pending, and a truncated UDP answer is fetched again over TCP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SpfDns, nodeDnsBackend } from '../../relay/spf/dns.ts';
import { startDnsServer } from '../peers/dns-server.ts';
import { delay, waitFor } from '../peers/wait.ts';

const queries = (): number => process.getActiveResourcesInfo().filter((r) => r === 'QueryReqWrap').length;

test('garbage for other names while a slow lookup is in flight does not touch it', async () => {
  const dns = await startDnsServer([
    { name: 'slow.test', type: 'TXT', data: 'v=spf1 -all' },
    { name: 'ok.test', type: 'TXT', data: 'v=spf1 +all' },
  ], { faults: { 'slow.test': { mode: 'slow', ms: 500 } } });
  try {
    const cache = new SpfDns({ backend: nodeDnsBackend({ servers: [dns.server], timeoutMs: 2000 }), timeoutMs: 2000, cacheSize: 100, maxTtlMs: 60_000, errorTtlMs: 0 });
    const slow = cache.lookup('slow.test', 'TXT');
    for (let i = 0; i < 5; i++) {
      dns.setFault(`bad${i}.test`, { mode: 'malformed' });
      await assert.rejects(cache.lookup(`bad${i}.test`, 'TXT'), { code: 'EBADRESP' });
      assert.deepEqual(await cache.lookup('ok.test', 'TXT'), [['v=spf1 +all']]);
      await delay(40);
    }
    assert.deepEqual(await slow, [['v=spf1 -all']]);
    assert.equal(dns.count('slow.test', 'TXT'), 1);
  } finally {
    await dns.close();
  }
});

test('a query that times out is cancelled: nothing stays pending in c-ares', async () => {
  const dns = await startDnsServer([], { faults: { 'never.test': { mode: 'never' } } });
  try {
    const before = queries();
    const cache = new SpfDns({ backend: nodeDnsBackend({ servers: [dns.server], timeoutMs: 10_000 }), timeoutMs: 150, cacheSize: 100, maxTtlMs: 60_000 });
    const t0 = Date.now();
    await assert.rejects(cache.lookup('never.test', 'TXT'), { code: 'ETIMEOUT' });
    assert.ok(Date.now() - t0 < 1000, `${Date.now() - t0} ms`);
    await waitFor(() => queries() === before, 1000, 'the c-ares query to be cancelled');
  } finally {
    await dns.close();
  }
});

test('a TXT answer too big for UDP is fetched over TCP', async () => {
  // Seven TXT records of ~100 bytes each: over the 512 bytes of a plain UDP answer.
  const big = ['v=spf1 ip4:192.0.2.0/24 -all', ...Array.from({ length: 6 }, (_, i) => `filler-${i}-${'x'.repeat(90)}`)];
  const dns = await startDnsServer(big.map((data) => ({ name: 'big.test', type: 'TXT' as const, data })));
  try {
    const cache = new SpfDns({ backend: nodeDnsBackend({ servers: [dns.server], timeoutMs: 2000 }), timeoutMs: 2000, cacheSize: 100, maxTtlMs: 60_000 });
    const records = await cache.lookup('big.test', 'TXT');
    assert.deepEqual(records.map((r) => (r as string[]).join('')).sort(), [...big].sort());
    assert.deepEqual(dns.queries.map((q) => q.transport), ['udp', 'tcp']);
  } finally {
    await dns.close();
  }
});
