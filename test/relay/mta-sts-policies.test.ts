// MTA-STS policy discovery and caching (RFC 8461 §3, §5.1) against a real DNS server and
// a real HTTPS policy server on loopback, both made by the test. The relay trusts the
// test CA through its config (never by turning verification off); the policy host's
// address comes from the loopback DNS, its port from delivery.mtaSts.port.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDnsServer, type DnsRecord, type DnsServer } from '../peers/dns-server.ts';
import { startMtaStsServer, policyText, type MtaStsServer } from '../peers/mta-sts-server.ts';
import { makeSelfSigned, makeTestCa } from '../peers/tls-cert.ts';
import { MtaStsPolicies, type MtaStsOptions } from '../../relay/mta-sts/index.ts';
import { makeResolver } from '../../relay/outbound/mx.ts';
import { withDefaultCas } from '../../relay/outbound/ca-file.ts';
import { createRelayMetrics } from '../../relay/metrics.ts';
import { counterValue } from '../helpers/engine.ts';

const ca = makeTestCa('mailrelay MTA-STS test CA');
const DOMAINS = ['example.test', 'other.test', 'bad.test', 'redirect.test', 'html.test', 'slow.test', 'big.test', 'gone.test'];
const httpsCert = ca.issue({ dns: DOMAINS.map((d) => `mta-sts.${d}`) });

const zone = (txt: Record<string, string>): DnsRecord[] => [
  ...DOMAINS.map((d) => ({ name: `mta-sts.${d}`, type: 'A' as const, data: '127.0.0.1' })),
  ...Object.entries(txt).map(([d, id]) => ({ name: `_mta-sts.${d}`, type: 'TXT' as const, data: `v=STSv1; id=${id};` })),
];

interface Env { dns: DnsServer; web: MtaStsServer; now: { t: number }; open(o?: Partial<MtaStsOptions>): Promise<MtaStsPolicies> }

async function env(t: { after(fn: () => Promise<void>): void }, txt: Record<string, string>, cert = httpsCert): Promise<Env> {
  const dns = await startDnsServer(zone(txt));
  const web = await startMtaStsServer(cert);
  const now = { t: Date.UTC(2030, 0, 1) };
  const opened: MtaStsPolicies[] = [];
  t.after(async () => { for (const p of opened) await p.close(); await web.close(); await dns.close(); });
  return {
    dns, web, now,
    async open(o = {}) {
      const p = await MtaStsPolicies.open({
        resolver: makeResolver([dns.server], 2000), port: web.port, fetchTimeoutMs: 2000, cacheSize: 100,
        ca: withDefaultCas(ca.cert), clock: () => now.t, recheckMs: 0, ...o,
      });
      opened.push(p);
      return p;
    },
  };
}

test('a policy is found by TXT, fetched over verified HTTPS from mta-sts.<domain> (SNI and Host), and cached', async (t) => {
  const e = await env(t, { 'example.test': '20300101' });
  e.web.set('example.test', { body: policyText('enforce', ['mx.example.test', '*.mx.example.test'], 86400) });
  const metrics = createRelayMetrics(undefined, { defaultMetrics: false });
  const p = await e.open({ metrics });
  const policy = await p.policyFor('Example.TEST.');
  assert.deepEqual(policy, { id: '20300101', mode: 'enforce', maxAge: 86400, mx: ['mx.example.test', '*.mx.example.test'] });
  assert.deepEqual(e.web.requests, [{ host: 'mta-sts.example.test', path: '/.well-known/mta-sts.txt', servername: 'mta-sts.example.test' }]);
  // Same id: no new fetch, however often it is asked.
  await Promise.all([p.policyFor('example.test'), p.policyFor('example.test')]);
  e.now.t += 3600_000;
  assert.equal((await p.policyFor('example.test'))?.id, '20300101');
  assert.equal(e.web.count('example.test'), 1);
  assert.ok(e.dns.count('_mta-sts.example.test', 'TXT') >= 2, 'the TXT record is looked at again');
  assert.equal(await counterValue(metrics, 'mailrelay_mta_sts_policy_fetches_total', { result: 'fetched' }), 1);
  assert.equal((await metrics.registry.getSingleMetric('mailrelay_mta_sts_policies')!.get()).values.find((v) => v.labels.mode === 'enforce')?.value, 1);
});

test('a new id in the TXT record fetches the policy again; an expired policy is fetched again', async (t) => {
  const e = await env(t, { 'example.test': 'v1' });
  e.web.set('example.test', { body: policyText('testing', ['mx.example.test'], 600) });
  const p = await e.open();
  assert.equal((await p.policyFor('example.test'))?.mode, 'testing');
  e.dns.setRecords(zone({ 'example.test': 'v2' }));
  e.web.set('example.test', { body: policyText('enforce', ['mx.example.test'], 600) });
  const next = await p.policyFor('example.test');
  assert.deepEqual([next?.id, next?.mode], ['v2', 'enforce']);
  assert.equal(e.web.count('example.test'), 2);
  e.now.t += 601_000; // past max_age, same id: refetched, not silently renewed
  assert.equal((await p.policyFor('example.test'))?.id, 'v2');
  assert.equal(e.web.count('example.test'), 3);
});

test('TXT checks are throttled (recheckMs), so a busy domain costs one DNS query per interval', async (t) => {
  const e = await env(t, { 'example.test': '1' });
  e.web.set('example.test', { body: policyText('enforce', ['mx.example.test']) });
  const p = await e.open({ recheckMs: 60_000 });
  for (let i = 0; i < 5; i++) await p.policyFor('example.test');
  assert.equal(e.dns.count('_mta-sts.example.test', 'TXT'), 1);
  e.now.t += 60_001;
  await p.policyFor('example.test');
  assert.equal(e.dns.count('_mta-sts.example.test', 'TXT'), 2);
});

test('a cached policy outlives its TXT record and failed fetches until max_age (RFC 8461 §3.1, §5.1)', async (t) => {
  const e = await env(t, { 'example.test': '1' });
  e.web.set('example.test', { body: policyText('enforce', ['mx.example.test'], 3600) });
  const p = await e.open();
  assert.equal((await p.policyFor('example.test'))?.mode, 'enforce');
  // An attacker who can drop DNS answers or block HTTPS does not switch enforcement off.
  e.dns.setRecords(zone({}));
  assert.equal((await p.policyFor('example.test'))?.mode, 'enforce');
  e.dns.setRecords(zone({ 'example.test': '2' }));
  e.web.set('example.test', { status: 500 });
  assert.equal((await p.policyFor('example.test'))?.id, '1');
  e.dns.setFault('_mta-sts.example.test', { mode: 'servfail' });
  assert.equal((await p.policyFor('example.test'))?.id, '1');
  e.dns.clearFaults();
  e.dns.setRecords(zone({}));
  e.now.t += 3601_000;
  assert.equal(await p.policyFor('example.test'), null, 'expired and not renewed: no policy');
});

test('fetch failures without a cached policy mean "no policy" (RFC 8461 §3.3), each counted by its RFC 8460 type', async (t) => {
  const e = await env(t, { 'bad.test': '1', 'redirect.test': '1', 'html.test': '1', 'slow.test': '1', 'big.test': '1', 'gone.test': '1', 'other.test': '1' });
  e.web.set('bad.test', { body: 'version: STSv1\nmode: enforce\nmax_age: 10\n' });
  e.web.set('redirect.test', { status: 301, headers: { Location: 'https://mta-sts.example.test/.well-known/mta-sts.txt' } });
  e.web.set('html.test', { body: policyText('enforce', ['mx.html.test']), contentType: 'text/html' });
  e.web.set('slow.test', { body: policyText('enforce', ['mx.slow.test']), delayMs: 3000 });
  e.web.set('big.test', { body: 'x'.repeat(70 * 1024) });
  // gone.test: no policy file (404); other.test: mta-sts.other.test has no address
  e.dns.setRecords(zone({ 'bad.test': '1', 'redirect.test': '1', 'html.test': '1', 'slow.test': '1', 'big.test': '1', 'gone.test': '1', 'other.test': '1' })
    .filter((r) => r.name !== 'mta-sts.other.test'));
  const metrics = createRelayMetrics(undefined, { defaultMetrics: false });
  const lines: { msg?: string; reason?: string; domain?: string }[] = [];
  const log = { info() {}, warn(o: object, msg?: string) { lines.push({ ...o, msg }); } };
  const p = await e.open({ metrics, log, fetchTimeoutMs: 500 });
  for (const d of ['bad.test', 'redirect.test', 'html.test', 'slow.test', 'big.test', 'gone.test', 'other.test']) assert.equal(await p.policyFor(d), null, d);
  assert.equal(await counterValue(metrics, 'mailrelay_mta_sts_policy_fetches_total', { result: 'sts-policy-invalid' }), 1);
  assert.equal(await counterValue(metrics, 'mailrelay_mta_sts_policy_fetches_total', { result: 'sts-policy-fetch-error' }), 6);
  const why = (d: string) => lines.find((l) => l.domain === d)?.reason ?? '';
  assert.match(why('bad.test'), /needs at least one mx/);
  assert.match(why('redirect.test'), /redirect 301 \(not followed/);
  assert.equal(e.web.count('example.test'), 0, 'the redirect was not followed');
  assert.match(why('html.test'), /content type "text\/html", not text\/plain/);
  assert.match(why('slow.test'), /no complete answer within \d+ ms/);
  assert.match(why('big.test'), /larger than 65536 bytes/);
  assert.match(why('gone.test'), /HTTP 404/);
  assert.match(why('other.test'), /mta-sts\.other\.test has no address/);
});

test('the policy host must have a certificate valid for mta-sts.<domain> from a trusted CA (sts-webpki-invalid)', async (t) => {
  const wrongName = ca.issue({ dns: ['www.example.test'] });
  const e = await env(t, { 'example.test': '1' }, wrongName);
  e.web.set('example.test', { body: policyText('enforce', ['mx.example.test']) });
  const metrics = createRelayMetrics(undefined, { defaultMetrics: false });
  const p = await e.open({ metrics });
  assert.equal(await p.policyFor('example.test'), null);
  const e2 = await env(t, { 'example.test': '1' }, makeSelfSigned({ dns: ['mta-sts.example.test'] }));
  e2.web.set('example.test', { body: policyText('enforce', ['mx.example.test']) });
  assert.equal(await (await e2.open({ metrics })).policyFor('example.test'), null);
  assert.equal(await counterValue(metrics, 'mailrelay_mta_sts_policy_fetches_total', { result: 'sts-webpki-invalid' }), 2);
  // Without the test CA in its trust (the default store only), even the right certificate fails.
  const e3 = await env(t, { 'example.test': '1' });
  e3.web.set('example.test', { body: policyText('enforce', ['mx.example.test']) });
  assert.equal(await (await e3.open({ ca: undefined })).policyFor('example.test'), null);
});

test('policies are saved in the spool directory and survive a restart; a damaged file is ignored', async (t) => {
  const e = await env(t, { 'example.test': '1' });
  e.web.set('example.test', { body: policyText('enforce', ['mx.example.test'], 86400) });
  const file = join(mkdtempSync(join(tmpdir(), 'mailrelay-sts-')), 'mta-sts-policies.json');
  const first = await e.open({ file, saveDelayMs: 10 });
  await first.policyFor('example.test');
  await first.close();
  assert.ok(existsSync(file));
  assert.equal(JSON.parse(readFileSync(file, 'utf8')).entries[0].domain, 'example.test');
  // After the restart the policy server is down and DNS drops the record: the saved policy still applies.
  e.web.set('example.test', undefined);
  e.dns.setRecords(zone({}));
  const second = await e.open({ file });
  assert.equal((await second.policyFor('example.test'))?.mode, 'enforce');
  assert.equal(e.web.count('example.test'), 1);
  writeFileSync(file, '{"version":1,"entries":[{"domain":');
  const warned: string[] = [];
  const third = await e.open({ file, log: { info() {}, warn(_o: object, msg?: string) { warned.push(msg ?? ''); } } });
  assert.equal(await third.policyFor('example.test'), null);
  assert.deepEqual(warned, ['MTA-STS cache file ignored']);
});
