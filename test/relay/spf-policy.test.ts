// SPF policies end to end over SMTP, against a loopback DNS server: what `reject`, `tag`
// and `record` answer at MAIL FROM (RFC 7208 §8 with the RFC 7372 codes), what lands in
// the stored message (RFC 8601 Authentication-Results, forged ones removed), and that
// trusted clients are not checked at all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestInbound } from '../helpers/inbound.ts';
import type { TestInbound } from '../helpers/inbound.ts';
import { startDnsServer } from '../peers/dns-server.ts';
import type { DnsRecord, DnsServer } from '../peers/dns-server.ts';
import { connectWire } from '../peers/wire-client.ts';
import type { WireClient } from '../peers/wire-client.ts';

const ZONE: DnsRecord[] = [
  { name: 'pass.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.0/8 -all' },
  { name: 'fail.test', type: 'TXT', data: 'v=spf1 ip4:192.0.2.1 -all' },
  { name: 'soft.test', type: 'TXT', data: 'v=spf1 ~all' },
  { name: 'nospf.test', type: 'TXT', data: 'some-verification=1' },
  { name: 'permerr.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.999 -all' },
  { name: 'servfail.test', type: 'TXT', data: 'v=spf1 +all' },
  { name: 'never.test', type: 'TXT', data: 'v=spf1 +all' },
  { name: 'malformed.test', type: 'TXT', data: 'v=spf1 +all' },
  // HELO names: one that passes (a mechanism), one that fails
  { name: 'mx.pass.test', type: 'TXT', data: 'v=spf1 a -all' },
  { name: 'mx.pass.test', type: 'A', data: '127.0.0.1' },
  { name: 'mx.fail.test', type: 'TXT', data: 'v=spf1 -all' },
];

async function setup(spf: Record<string, unknown>, over: Record<string, unknown> = {}): Promise<{ t: TestInbound; dns: DnsServer; close(): Promise<void> }> {
  const dns = await startDnsServer(ZONE, {
    faults: { 'servfail.test': { mode: 'servfail' }, 'never.test': { mode: 'never' }, 'malformed.test': { mode: 'malformed' } },
  });
  const t = await startTestInbound({
    spf: { enabled: true, skipTrusted: false, dnsServers: [dns.server], dnsTimeoutMs: 300, checkBudgetMs: 2000, ...spf },
    ...over,
  });
  return { t, dns, close: async () => { await t.close(); await dns.close(); } };
}

async function session(port: number, helo = 'mx.pass.test'): Promise<WireClient> {
  const c = await connectWire(port);
  await c.readReply();
  await c.command(`EHLO ${helo}`);
  return c;
}

/** MAIL, RCPT, DATA with `body`; returns the reply to MAIL and, if it was 250, to the final dot. */
async function send(c: WireClient, from: string, body = 'Subject: t\r\n\r\nhello\r\n'): Promise<{ mail: string; dot?: string }> {
  const mail = await c.command(`MAIL FROM:<${from}>`, 5000);
  if (!mail.startsWith('250')) return { mail };
  assert.equal(await c.command('RCPT TO:<rcpt@example.org>'), '250 2.1.5 Accepted');
  assert.match(await c.command('DATA'), /^354 /);
  c.write(`${body}.\r\n`);
  return { mail, dot: await c.readReply() };
}

const spfCount = async (t: TestInbound, result: string): Promise<number> =>
  (await t.metrics.spfResults.get()).values.find((v) => v.labels.result === result)?.value ?? 0;

test('policy reject: 550 5.7.23 for fail, 451 4.7.24 for DNS trouble (SERVFAIL, no answer, garbage), the rest accepted', async () => {
  const s = await setup({ policy: 'reject', checkHelo: false });
  try {
    const want: [string, string][] = [
      ['a@pass.test', '250 2.1.0 Accepted'],
      ['a@fail.test', '550 5.7.23 SPF validation failed'],
      ['a@soft.test', '250 2.1.0 Accepted'],
      ['a@nospf.test', '250 2.1.0 Accepted'],
      ['a@nxdomain.test', '250 2.1.0 Accepted'],
      ['a@permerr.test', '250 2.1.0 Accepted'],
      ['a@servfail.test', '451 4.7.24 SPF validation error (temporary DNS failure), try again later'],
      ['a@never.test', '451 4.7.24 SPF validation error (temporary DNS failure), try again later'],
      ['a@malformed.test', '451 4.7.24 SPF validation error (temporary DNS failure), try again later'],
    ];
    const c = await session(s.t.port);
    for (const [from, reply] of want) {
      const started = Date.now();
      assert.equal(await c.command(`MAIL FROM:<${from}>`, 5000), reply, from);
      assert.ok(Date.now() - started < 2500, `${from} answered within the budget`);
      await c.command('RSET');
    }
    c.destroy();
    assert.equal(await spfCount(s.t, 'pass'), 1);
    assert.equal(await spfCount(s.t, 'fail'), 1);
    assert.equal(await spfCount(s.t, 'permerror'), 1);
    assert.equal(await spfCount(s.t, 'temperror'), 3);
    assert.equal(await spfCount(s.t, 'none'), 2);
    const refused = s.t.logs.filter((l) => String(l.msg).startsWith('rejected: SPF'));
    assert.deepEqual(refused.map((l) => l.reason), ['spf_fail', 'spf_temperror', 'spf_temperror', 'spf_temperror']);
    assert.equal((refused[0]?.spf as { domain: string }[])[0]?.domain, 'fail.test');
  } finally {
    await s.close();
  }
});

test('policy reject: an accepted message carries Authentication-Results on top; forged ones claiming our authserv-id are gone', async () => {
  const s = await setup({ policy: 'reject' });
  try {
    const c = await session(s.t.port);
    const body = [
      'Authentication-Results: relay.test; spf=pass smtp.mailfrom=ceo@bank.example',
      'Authentication-Results: other.example; spf=fail smtp.mailfrom=x@y',
      'Subject: t', '', 'hello', '',
    ].join('\r\n');
    const r = await send(c, 'a@pass.test', body);
    assert.equal(r.dot, '250 2.0.0 Ok: queued as MEM1');
    c.destroy();
    const stored = s.t.sink.messages[0]!.body.toString('latin1');
    assert.ok(stored.startsWith([
      'Authentication-Results: relay.test;',
      '\tspf=pass (relay.test: domain of a@pass.test designates 127.0.0.1 as permitted sender)',
      '\tsmtp.mailfrom=a@pass.test;',
      '\tspf=pass (relay.test: domain of postmaster@mx.pass.test designates 127.0.0.1 as permitted sender)',
      '\tsmtp.helo=mx.pass.test',
      'Received: from mx.pass.test',
    ].join('\r\n')), stored);
    assert.equal(stored.match(/^Authentication-Results: relay\.test/gm)?.length, 1, 'only ours');
    assert.match(stored, /^Authentication-Results: other\.example; spf=fail/m);
  } finally {
    await s.close();
  }
});

test('policy reject with rejectPermerror: a broken record gets 550 5.7.24', async () => {
  const s = await setup({ policy: 'reject', rejectPermerror: true, checkHelo: false });
  try {
    const c = await session(s.t.port);
    assert.equal(await c.command('MAIL FROM:<a@permerr.test>', 5000), '550 5.7.24 SPF validation error (the sender domain publishes an invalid SPF record)');
    c.destroy();
  } finally {
    await s.close();
  }
});

test('a HELO identity that fails is refused like a MAIL FROM that fails (RFC 7208 §2.3); a null sender is checked as postmaster@HELO', async () => {
  const s = await setup({ policy: 'reject' });
  try {
    const bad = await session(s.t.port, 'mx.fail.test');
    assert.equal(await bad.command('MAIL FROM:<a@pass.test>', 5000), '550 5.7.23 SPF validation failed');
    assert.equal(await bad.command('MAIL FROM:<>', 5000), '550 5.7.23 SPF validation failed');
    bad.destroy();
    const good = await session(s.t.port, 'mx.pass.test');
    const r = await send(good, '');
    assert.equal(r.dot, '250 2.0.0 Ok: queued as MEM1');
    good.destroy();
    assert.match(s.t.sink.messages[0]!.body.toString('latin1'), /^\tspf=pass \(relay\.test: domain of postmaster@mx\.pass\.test designates 127\.0\.0\.1 as permitted sender\)\r\n\tsmtp\.mailfrom=postmaster@mx\.pass\.test\r\nReceived:/m);
    // Asked once: the session keeps its HELO result, and the cache answers the null sender's check.
    assert.equal(s.dns.count('mx.fail.test', 'TXT'), 1);
  } finally {
    await s.close();
  }
});

test('policy tag: a fail is accepted and tagged; a temperror still defers', async () => {
  const s = await setup({ policy: 'tag', checkHelo: false });
  try {
    const c = await session(s.t.port);
    const r = await send(c, 'a@fail.test');
    assert.equal(r.dot, '250 2.0.0 Ok: queued as MEM1');
    assert.match(s.t.sink.messages[0]!.body.toString('latin1'), /^Authentication-Results: relay\.test;\r\n\tspf=fail \(relay\.test: domain of a@fail\.test does not designate 127\.0\.0\.1 as permitted sender\)\r\n\tsmtp\.mailfrom=a@fail\.test\r\nReceived: /);
    assert.equal((await send(c, 'a@servfail.test')).mail, '451 4.7.24 SPF validation error (temporary DNS failure), try again later');
    c.destroy();
  } finally {
    await s.close();
  }
});

test('policy record: nothing changes for the client and no header is added; the result is counted and logged', async () => {
  const s = await setup({ policy: 'record', checkHelo: false });
  try {
    const c = await session(s.t.port);
    assert.equal((await send(c, 'a@fail.test')).dot, '250 2.0.0 Ok: queued as MEM1');
    assert.equal((await send(c, 'a@never.test')).dot, '250 2.0.0 Ok: queued as MEM2');
    c.destroy();
    for (const m of s.t.sink.messages) assert.match(m.body.toString('latin1'), /^Received: /);
    assert.equal(await spfCount(s.t, 'fail'), 1);
    assert.equal(await spfCount(s.t, 'temperror'), 1);
    const logged = s.t.logs.filter((l) => l.msg === 'SPF checked').map((l) => (l.spf as { result: string }[])[0]?.result);
    assert.deepEqual(logged, ['fail', 'temperror']);
  } finally {
    await s.close();
  }
});

test('skipTrusted (the default): clients in relayNetworks are not checked, not a single DNS query', async () => {
  const s = await setup({ policy: 'reject', skipTrusted: true });
  try {
    const c = await session(s.t.port, 'mx.fail.test');
    assert.equal((await send(c, 'a@fail.test')).dot, '250 2.0.0 Ok: queued as MEM1');
    c.destroy();
    assert.equal(s.dns.queries.length, 0);
    assert.equal((await s.t.metrics.spfResults.get()).values.length, 0);
  } finally {
    await s.close();
  }
});
