// Seed 004 in the small: a sender domain whose DNS never answers delays only the session
// that asked for it; sessions that ask for the same slow domain at once share one query;
// a client that hangs up mid-check leaves nothing running. The big version, with 1,000
// sessions and a trusted client's mail delivered meanwhile, is seed-004-spf-no-stall.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestInbound } from '../helpers/inbound.ts';
import { startDnsServer } from '../peers/dns-server.ts';
import { waitFor } from '../peers/wait.ts';
import { connectWire } from '../peers/wire-client.ts';
import type { WireClient } from '../peers/wire-client.ts';

async function spfRelay(budgetMs: number, dnsTimeoutMs: number) {
  const dns = await startDnsServer([
    { name: 'pass.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.0/8 -all' },
    { name: 'slow.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.0/8 -all' },
    { name: 'never.test', type: 'TXT', data: 'v=spf1 +all' },
  ], { faults: { 'never.test': { mode: 'never' }, 'slow.test': { mode: 'slow', ms: 400 } } });
  const t = await startTestInbound({
    relayNetworks: [],
    spf: { enabled: true, policy: 'reject', checkHelo: false, dnsServers: [dns.server], dnsTimeoutMs, checkBudgetMs: budgetMs },
  });
  return { t, dns, close: async () => { await t.close(); await dns.close(); } };
}

async function greeted(port: number): Promise<WireClient> {
  const c = await connectWire(port);
  await c.readReply();
  await c.command('EHLO client.test');
  return c;
}

test('a MAIL FROM waiting on a DNS server that never answers does not delay other sessions; it gets 451 4.7.24 at its budget', async () => {
  const s = await spfRelay(1500, 5000);
  const clients: WireClient[] = [];
  try {
    const stuck = await greeted(s.t.port);
    clients.push(stuck);
    const t0 = Date.now();
    stuck.send('MAIL FROM:<a@never.test>');
    const stuckReply = stuck.readReply(5000);
    await s.dns.waitFor((d) => d.count('never.test', 'TXT') >= 1, 2000, 'the never-answered query');
    for (let i = 0; i < 5; i++) {
      const other = await greeted(s.t.port);
      clients.push(other);
      const started = Date.now();
      assert.equal(await other.command(`MAIL FROM:<b${i}@pass.test>`, 2000), '250 2.1.0 Accepted');
      assert.ok(Date.now() - started < 500, `other session answered in ${Date.now() - started} ms`);
      assert.equal(await other.command('NOOP'), '250 2.0.0 OK');
    }
    assert.equal(await stuckReply, '451 4.7.24 SPF validation error (temporary DNS failure), try again later');
    const took = Date.now() - t0;
    assert.ok(took >= 1400 && took < 3000, `the stuck session was answered at its 1500 ms budget, after ${took} ms`);
    // Its session goes on: the next transaction works.
    assert.equal(await stuck.command('MAIL FROM:<c@pass.test>', 2000), '250 2.1.0 Accepted');
  } finally {
    for (const c of clients) c.destroy();
    await s.close();
  }
});

test('30 sessions asking for one slow domain at once make one DNS query and all get their answer', async () => {
  const s = await spfRelay(3000, 2000);
  const clients: WireClient[] = [];
  try {
    for (let i = 0; i < 30; i++) clients.push(await greeted(s.t.port));
    const t0 = Date.now();
    const replies = await Promise.all(clients.map((c, i) => c.command(`MAIL FROM:<u${i}@slow.test>`, 5000)));
    assert.deepEqual(new Set(replies), new Set(['250 2.1.0 Accepted']));
    assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
    assert.equal(s.dns.count('slow.test', 'TXT'), 1, 'single-flight: one query for 30 waiters');
    assert.equal(s.t.server.spf?.dns.stats().coalesced, 29);
    assert.equal(s.t.server.spf?.dns.inFlight(), 0);
  } finally {
    for (const c of clients) c.destroy();
    await s.close();
  }
});

test('a client that hangs up during its check leaves no check running and no flight behind', async () => {
  const s = await spfRelay(60_000, 800);
  try {
    const c = await greeted(s.t.port);
    c.send('MAIL FROM:<a@never.test>');
    await waitFor(() => (s.t.server.spf?.checker.active() ?? 0) === 1, 2000, 'the check to start');
    c.destroy();
    // The session's abort ends the check at once; the DNS query itself ends at its own timeout.
    await waitFor(() => s.t.server.spf?.checker.active() === 0, 1000, 'the check to end with the session');
    await waitFor(() => s.t.server.spf?.dns.inFlight() === 0, 3000, 'the DNS query to time out');
    await waitFor(() => s.t.server.sessions() === 0, 2000, 'the session to be released');
  } finally {
    await s.close();
  }
});
