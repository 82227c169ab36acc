// MTA-STS end to end: a whole relay in MX mode, a loopback DNS server (MX, A, and the
// _mta-sts TXT records), a loopback HTTPS policy server and smtp-server MX peers, all with
// certificates from a test CA the relay is told to trust in its config (extraCaFile),
// never by switching verification off. Under enforce the relay delivers only to listed MX
// hosts over verified TLS and otherwise keeps the mail deferred (4.7.5) with the reason;
// testing delivers and counts the failure; a domain without a policy gets opportunistic TLS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { startDnsServer, type DnsRecord, type DnsServer } from '../peers/dns-server.ts';
import { startFaultServer, type FaultServer, type FaultServerOptions } from '../peers/fault-server.ts';
import { startMtaStsServer, policyText, type MtaStsServer } from '../peers/mta-sts-server.ts';
import { makeSelfSigned, makeTestCa } from '../peers/tls-cert.ts';
import { scrape, startTestRelay } from '../helpers/relay.ts';
import { waitFor } from '../peers/wait.ts';
import type { RelayConfigInput } from '../../relay/config.ts';

const ca = makeTestCa('mailrelay MTA-STS e2e CA');
const caDir = mkdtempSync(join(tmpdir(), 'mailrelay-ca-'));
writeFileSync(join(caDir, 'ca.crt'), ca.cert);

// domain -> [policy mode or null for no TXT record, MX patterns]
const POLICIES: Record<string, ['enforce' | 'testing' | null, string[]]> = {
  'ok.test': ['enforce', ['mx.ok.test']],
  'wildcard.test': ['enforce', ['*.wildcard.test']],
  'badcert.test': ['enforce', ['mx.badcert.test']],
  'unlisted.test': ['enforce', ['mx.elsewhere.test']],
  'plain.test': ['enforce', ['mx.plain.test']],
  'testing.test': ['testing', ['mx.testing.test']],
  'nopolicy.test': [null, []],
};

let dns: DnsServer;
let web: MtaStsServer;

test.before(async () => {
  const records: DnsRecord[] = [];
  for (const [domain, [mode]] of Object.entries(POLICIES)) {
    const mx = domain === 'wildcard.test' ? 'in1.wildcard.test' : `mx.${domain}`;
    records.push({ name: domain, type: 'MX', data: { preference: 10, exchange: mx } }, { name: mx, type: 'A', data: '127.0.0.1' });
    if (mode) records.push({ name: `_mta-sts.${domain}`, type: 'TXT', data: 'v=STSv1; id=2030a;' }, { name: `mta-sts.${domain}`, type: 'A', data: '127.0.0.1' });
  }
  dns = await startDnsServer(records);
  web = await startMtaStsServer(ca.issue({ dns: Object.keys(POLICIES).map((d) => `mta-sts.${d}`) }));
  for (const [domain, [mode, mx]] of Object.entries(POLICIES)) if (mode) web.set(domain, { body: policyText(mode, mx) });
});
test.after(async () => { await web.close(); await dns.close(); });

async function scenario(t: { after(fn: () => Promise<void>): void }, peerOpts: FaultServerOptions, delivery: RelayConfigInput['delivery'] = {}) {
  const peer = await startFaultServer(peerOpts);
  const relay = await startTestRelay(peer.port, {
    delivery: {
      mode: 'mx', smarthost: undefined, mxPort: peer.port, dnsServers: [dns.server],
      extraCaFile: join(caDir, 'ca.crt'), mtaSts: { port: web.port },
      ...delivery,
    },
  });
  t.after(async () => { await relay.close(); await peer.close(); });
  const send = async (to: string): Promise<string> => {
    const tr = nodemailer.createTransport({ host: '127.0.0.1', port: relay.smtpPort, secure: false, ignoreTLS: true });
    try {
      const info = await tr.sendMail({ from: 'app@relay.test', to, subject: 'sts', text: 'hello\n' });
      return /queued as (\S+)/.exec(info.response)![1]!;
    } finally {
      tr.close();
    }
  };
  const deferred = async (id: string) => {
    await waitFor(async () => !relay.spool.has(id) || (await relay.spool.load(id)).recipients[0]!.state.state === 'deferred', 15_000, 'deferred', 50);
    assert.ok(relay.spool.has(id), 'still queued: not delivered, not bounced');
    const st = (await relay.spool.load(id)).recipients[0]!.state;
    assert.ok(st.state === 'deferred');
    return st;
  };
  const tls = (policy: string, result: string) => scrape(relay.httpPort, 'mailrelay_tls_sessions_total', { policy, result });
  return { peer, relay, send, deferred, tls };
}

const mail = (peer: FaultServer) => peer.connections.flatMap((c) => c.commands).filter((c) => /^MAIL\b/i.test(c));

test('enforce: a listed MX host with a valid certificate gets the mail over verified TLS', async (t) => {
  const s = await scenario(t, { tls: ca.issue({ dns: ['mx.ok.test', 'in1.wildcard.test'] }) });
  await s.send('user@ok.test');
  await s.peer.waitFor((p) => p.deliveries().get('user@ok.test') === 1, 15_000, 'delivered');
  assert.equal(s.peer.transactions[0]!.secure, true);
  assert.deepEqual(s.peer.sniNames, ['mx.ok.test'], 'the MX name, checked and sent as SNI');
  assert.equal(await s.tls('sts-enforce', 'success'), 1);
  assert.equal(await scrape(s.relay.httpPort, 'mailrelay_mta_sts_policy_fetches_total', { result: 'fetched' }), 1);
  assert.ok(web.requests.some((r) => r.host === 'mta-sts.ok.test' && r.servername === 'mta-sts.ok.test'));
  // "*.wildcard.test" covers in1.wildcard.test.
  await s.send('user@wildcard.test');
  await s.peer.waitFor((p) => p.deliveries().get('user@wildcard.test') === 1, 15_000, 'delivered (wildcard)');
});

test('enforce: an MX certificate for another name is refused; the mail stays deferred 4.7.5, nothing is sent', async (t) => {
  const s = await scenario(t, { tls: ca.issue({ dns: ['mx.ok.test'] }) });
  const id = await s.send('user@badcert.test');
  const st = await s.deferred(id);
  assert.equal(st.reason, 'tls');
  assert.match(st.lastReply, /^4\.7\.5 .*certificate verification failed for mx\.badcert\.test: hostname mismatch/);
  assert.deepEqual(mail(s.peer), []);
  assert.equal(await s.tls('sts-enforce', 'certificate-host-mismatch'), 1);
});

test('enforce: an MX host the policy does not list is not even connected to', async (t) => {
  const s = await scenario(t, { tls: ca.issue({ dns: ['mx.unlisted.test'] }) });
  const id = await s.send('user@unlisted.test');
  const st = await s.deferred(id);
  assert.match(st.lastReply, /^4\.7\.5 MX host mx\.unlisted\.test is not listed in the domain's MTA-STS policy \(mode enforce, mx mx\.elsewhere\.test\)/);
  assert.equal(s.peer.connections.length, 0);
  assert.equal(await s.tls('sts-enforce', 'validation-failure'), 1);
});

test('enforce: an MX without STARTTLS gets no mail in cleartext (4.7.4)', async (t) => {
  const s = await scenario(t, {});
  const id = await s.send('user@plain.test');
  const st = await s.deferred(id);
  assert.match(st.lastReply, /^4\.7\.4 .*TLS is required but the server does not offer STARTTLS/);
  assert.deepEqual(mail(s.peer), []);
  assert.equal(await s.tls('sts-enforce', 'starttls-not-supported'), 1);
});

test('testing: the mail is delivered over the unverified TLS, and the failure is counted (TLS-RPT)', async (t) => {
  const s = await scenario(t, { tls: ca.issue({ dns: ['mx.ok.test'] }) });
  await s.send('user@testing.test');
  await s.peer.waitFor((p) => p.deliveries().get('user@testing.test') === 1, 15_000, 'delivered');
  assert.equal(s.peer.transactions[0]!.secure, true);
  assert.equal(await s.tls('sts-testing', 'certificate-host-mismatch'), 1);
});

test('no policy: opportunistic TLS to an MX with a self-signed certificate still delivers (RFC 7435)', async (t) => {
  const s = await scenario(t, { tls: makeSelfSigned({ dns: ['whatever.invalid'] }) });
  await s.send('user@nopolicy.test');
  await s.peer.waitFor((p) => p.deliveries().get('user@nopolicy.test') === 1, 15_000, 'delivered');
  assert.equal(s.peer.transactions[0]!.secure, true);
  assert.equal(await s.tls('no-policy', 'success'), 1);
});

test('mtaSts.enabled: false ignores policies (the mail goes to the badly certified MX, as before MTA-STS)', async (t) => {
  const s = await scenario(t, { tls: ca.issue({ dns: ['mx.ok.test'] }) }, { mtaSts: { enabled: false, port: web.port } });
  await s.send('user@badcert.test');
  await s.peer.waitFor((p) => p.deliveries().get('user@badcert.test') === 1, 15_000, 'delivered');
  assert.equal(await scrape(s.relay.httpPort, 'mailrelay_mta_sts_policy_fetches_total', { result: 'fetched' }), 0);
});
