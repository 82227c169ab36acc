// Smarthost certificate verification against real smtp-server peers holding certificates
// made by the test (a test CA, leaf certificates with chosen SANs and dates). For each
// failing case the peer would take AUTH; the assertion is on what it received: no AUTH
// command, no MAIL. The mail is deferred (kept for a retry), never sent elsewhere, and the
// result names the reason. The smarthost name is resolved through a loopback DNS server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startDnsServer, type DnsServer } from '../peers/dns-server.ts';
import { startFaultServer, type FaultServer, type FaultServerOptions } from '../peers/fault-server.ts';
import { makeSelfSigned, makeTestCa } from '../peers/tls-cert.ts';
import { counterValue, engineFor, message } from '../helpers/engine.ts';
import { makeResolver } from '../../relay/outbound/mx.ts';
import type { EngineOptions } from '../../relay/outbound/engine.ts';
import type { DeliveryResult } from '../../relay/outbound/engine.ts';

const ca = makeTestCa('mailrelay smarthost test CA');
const otherCa = makeTestCa('some other CA');
const CREDS = { username: 'relay-user', password: 'hunter2' };
const NAME = 'smtp.example.test';

let dns: DnsServer;
test.before(async () => {
  dns = await startDnsServer([{ name: NAME, type: 'A', data: '127.0.0.1' }]);
});
test.after(async () => { await dns.close(); });

/** Starts a peer that wants AUTH, and an engine whose smarthost is `host` (a name resolved via the loopback DNS, or an address). */
async function setup(
  t: { after(fn: () => Promise<void>): void },
  peerOpts: FaultServerOptions,
  smarthost: Partial<NonNullable<EngineOptions['smarthost']>> = {},
): Promise<{ peer: FaultServer; send: () => Promise<DeliveryResult>; metrics: ReturnType<typeof engineFor>['metrics'] }> {
  const peer = await startFaultServer({ auth: CREDS, ...peerOpts });
  const { engine, metrics } = engineFor(peer.port, {
    chunking: false,
    resolver: makeResolver([dns.server], 2000),
    smarthost: { host: NAME, port: peer.port, tls: 'required', auth: CREDS, ca: ca.cert, ...smarthost },
  });
  t.after(async () => { await engine.close(); await peer.close(); });
  return { peer, metrics, send: async () => (await engine.deliver(message('s@relay.test', ['a@example.com'], 'x\r\n')))[0]! };
}

const commands = (peer: FaultServer) => peer.connections.flatMap((c) => c.commands);

function assertRefused(peer: FaultServer, r: DeliveryResult, status: string, reason: RegExp): void {
  assert.deepEqual(commands(peer).filter((c) => /^(AUTH|MAIL)\b/i.test(c)), [], 'the peer got neither AUTH nor MAIL');
  assert.equal(peer.transactions.length, 0);
  assert.deepEqual(r.verdict, { status: 'deferred', reason: 'tls', sameConnection: false }, 'deferred, not bounced');
  assert.equal(r.status, status);
  assert.match(r.note ?? '', reason);
}

test('good chain: a certificate from the configured CA for the smarthost name is accepted; AUTH over TLS; SNI names the host', async (t) => {
  const { peer, send, metrics } = await setup(t, { tls: ca.issue({ dns: [NAME] }) });
  const r = await send();
  assert.equal(r.verdict.status, 'accepted');
  assert.equal(peer.transactions[0]!.secure, true);
  assert.equal(peer.transactions[0]!.auth, 'relay-user');
  assert.deepEqual(peer.sniNames, [NAME]);
  assert.equal(await counterValue(metrics, 'mailrelay_tls_sessions_total', { policy: 'smarthost', result: 'success' }), 1);
});

test('unknown CA: refused before AUTH, "unable to verify the first certificate"', async (t) => {
  const { peer, send, metrics } = await setup(t, { tls: otherCa.issue({ dns: [NAME] }) });
  assertRefused(peer, await send(), '4.7.5', /certificate verification failed for smtp\.example\.test: certificate not trusted \(unable to verify the first certificate\)/);
  assert.equal(await counterValue(metrics, 'mailrelay_tls_sessions_total', { policy: 'smarthost', result: 'certificate-not-trusted' }), 1);
});

test('default trust store: a private CA is not trusted unless caFile names it', async (t) => {
  const { peer, send } = await setup(t, { tls: ca.issue({ dns: [NAME] }) }, { ca: undefined });
  assertRefused(peer, await send(), '4.7.5', /certificate not trusted/);
});

test('wrong name: a valid certificate for another host is refused, "hostname mismatch"', async (t) => {
  const { peer, send, metrics } = await setup(t, { tls: ca.issue({ dns: ['other.example.test'] }) });
  assertRefused(peer, await send(), '4.7.5', /certificate verification failed for smtp\.example\.test: hostname mismatch \(Host: smtp\.example\.test\. is not in the cert's altnames: DNS:other\.example\.test\)/);
  assert.equal(await counterValue(metrics, 'mailrelay_tls_sessions_total', { policy: 'smarthost', result: 'certificate-host-mismatch' }), 1);
});

test('IP smarthost: a certificate with that IP as an IP SAN is accepted, and no SNI is sent (RFC 6066 §3)', async (t) => {
  const { peer, send } = await setup(t, { tls: ca.issue({ commonName: 'relay peer', ips: ['127.0.0.1'] }) }, { host: '127.0.0.1' });
  const r = await send();
  assert.equal(r.verdict.status, 'accepted');
  assert.equal(peer.transactions[0]!.auth, 'relay-user');
  assert.deepEqual(peer.sniNames, []);
});

test('IP smarthost: a certificate for DNS:localhost (or with the IP only in the CN) is refused', async (t) => {
  const { peer, send } = await setup(t, { tls: ca.issue({ commonName: '127.0.0.1', dns: ['localhost'] }) }, { host: '127.0.0.1' });
  assertRefused(peer, await send(), '4.7.5', /certificate verification failed for 127\.0\.0\.1: hostname mismatch \(IP: 127\.0\.0\.1 is not in the cert's list: \)/);
});

test('serverName: an address as host, the certificate checked for (and SNI sent as) the configured name', async (t) => {
  const { peer, send } = await setup(t, { tls: ca.issue({ dns: [NAME] }) }, { host: '127.0.0.1', serverName: NAME });
  assert.equal((await send()).verdict.status, 'accepted');
  assert.deepEqual(peer.sniNames, [NAME]);
});

test('expired certificate: refused, "certificate has expired"', async (t) => {
  const day = 86_400_000;
  const { peer, send, metrics } = await setup(t, { tls: ca.issue({ dns: [NAME], notBefore: new Date(Date.now() - 10 * day), notAfter: new Date(Date.now() - day) }) });
  assertRefused(peer, await send(), '4.7.5', /certificate verification failed for smtp\.example\.test: certificate has expired/);
  assert.equal(await counterValue(metrics, 'mailrelay_tls_sessions_total', { policy: 'smarthost', result: 'certificate-expired' }), 1);
});

test('a self-signed certificate for the right name is refused when a CA bundle is configured', async (t) => {
  const { peer, send } = await setup(t, { tls: makeSelfSigned({ dns: [NAME] }) });
  assertRefused(peer, await send(), '4.7.5', /certificate not trusted \(self-signed certificate\)/);
});

test('a certificate with the name only in its CN (no subjectAltName) is refused (RFC 6125 §6.4.4)', async (t) => {
  const { peer, send } = await setup(t, { tls: ca.issue({ commonName: NAME }) });
  assertRefused(peer, await send(), '4.7.5', /hostname mismatch \(certificate has no subjectAltName.*CN=smtp\.example\.test is not used\)/);
});

test('valid certificate but no STARTTLS offered: required defers 4.7.4, opportunistic defers too; AUTH never goes in cleartext', async (t) => {
  // The peer has a good certificate but does not advertise STARTTLS, and offers AUTH in plaintext.
  for (const tls of ['required', 'opportunistic'] as const) {
    const { peer, send, metrics } = await setup(t, {}, { tls });
    const r = await send();
    assertRefused(peer, r, '4.7.4', tls === 'required' ? /TLS is required but the server does not offer STARTTLS/ : /credentials not sent in cleartext: the server does not offer STARTTLS/);
    assert.ok(commands(peer).some((c) => /^EHLO\b/i.test(c)), 'the session got as far as EHLO');
    assert.equal(await counterValue(metrics, 'mailrelay_tls_sessions_total', { policy: 'smarthost', result: 'starttls-not-supported' }), 1, tls);
  }
});

test('opportunistic with credentials: a verified certificate is used; an unverified one gets no AUTH', async (t) => {
  const good = await setup(t, { tls: ca.issue({ dns: [NAME] }) }, { tls: 'opportunistic' });
  assert.equal((await good.send()).verdict.status, 'accepted');
  assert.equal(good.peer.transactions[0]!.auth, 'relay-user');
  const bad = await setup(t, { tls: ca.issue({ dns: ['attacker.invalid'] }) }, { tls: 'opportunistic' });
  assertRefused(bad.peer, await bad.send(), '4.7.5', /credentials not sent: certificate verification failed for smtp\.example\.test: hostname mismatch/);
  assert.equal(bad.peer.connections.length, 1, 'no plaintext retry with credentials');
});

test('implicit TLS (port 465 style): verified the same way', async (t) => {
  const good = await setup(t, { tls: ca.issue({ dns: [NAME] }), implicitTls: true }, { tls: 'implicit' });
  assert.equal((await good.send()).verdict.status, 'accepted');
  assert.equal(good.peer.transactions[0]!.secure, true);
  const bad = await setup(t, { tls: ca.issue({ dns: ['other.example.test'] }), implicitTls: true }, { tls: 'implicit' });
  const r = await bad.send();
  assertRefused(bad.peer, r, '4.7.5', /hostname mismatch/);
  assert.deepEqual(commands(bad.peer), [], 'not even EHLO over the unverified channel');
});

test('insecureSkipVerify: the explicit opt-out takes any certificate, credentials included, but still only over TLS', async (t) => {
  const { peer, send, metrics } = await setup(t, { tls: makeSelfSigned({ dns: ['attacker.invalid'] }) }, { insecureSkipVerify: true });
  assert.equal((await send()).verdict.status, 'accepted');
  assert.equal(peer.transactions[0]!.secure, true);
  assert.equal(await counterValue(metrics, 'mailrelay_tls_sessions_total', { policy: 'smarthost', result: 'success' }), 1);
  const plain = await setup(t, {}, { insecureSkipVerify: true, tls: 'opportunistic' });
  assertRefused(plain.peer, await plain.send(), '4.7.4', /credentials not sent in cleartext/);
});
