// Issue 9's attack, end to end: a fake smarthost on loopback with a self-signed
// certificate for CN=attacker.invalid, and the relay set to `tls: required` with SMTP
// AUTH credentials. Before the fix the relay finished STARTTLS without verifying
// anything and sent AUTH PLAIN with the user name and password to the impostor. Now the
// handshake fails verification, the impostor never sees AUTH (nor MAIL), the message
// stays queued (deferred 4.7.5, not lost, not delivered to the wrong host), and the
// log and the recorded reply name the reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import nodemailer from 'nodemailer';
import pino from 'pino';
import { startFaultServer, type FaultServer } from '../peers/fault-server.ts';
import { makeSelfSigned } from '../peers/tls-cert.ts';
import { startTestRelay } from '../helpers/relay.ts';
import { waitFor } from '../peers/wait.ts';

function capturingLog(): { log: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}

function passwordFile(secret: string): string {
  const f = join(mkdtempSync(join(tmpdir(), 'mailrelay-secret-')), 'password');
  writeFileSync(f, `${secret}\n`);
  return f;
}

/** Every command line the peer received on any connection (AUTH continuation lines included). */
const commands = (peer: FaultServer) => peer.connections.flatMap((c) => c.commands);

async function submit(port: number): Promise<string> {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
  try {
    const info = await t.sendMail({ from: 'app@relay.test', to: 'user@example.com', subject: 'secret', text: 'payroll\n' });
    const id = /queued as (\S+)/.exec(info.response)?.[1];
    assert.ok(id, info.response);
    return id;
  } finally {
    t.close();
  }
}

test('an impostor smarthost with a self-signed certificate for CN=attacker.invalid never receives the AUTH credentials', async (t) => {
  const attacker = makeSelfSigned({ commonName: 'attacker.invalid', dns: ['attacker.invalid'] });
  const peer = await startFaultServer({ tls: attacker, auth: { username: 'relay-user', password: 'hunter2' } });
  const { log, lines } = capturingLog();
  const relay = await startTestRelay(peer.port, {
    delivery: {
      smarthost: { host: '127.0.0.1', port: peer.port, tls: 'required', auth: { username: 'relay-user', passwordFile: passwordFile('hunter2') } },
    },
  }, { log });
  t.after(async () => { await relay.close(); await peer.close(); });

  const id = await submit(relay.smtpPort);
  // Two attempts (the test retry schedule is sub-second), so a retry does not leak either.
  // (A relay that leaks delivers the message instead: it leaves the spool.)
  await waitFor(async () => {
    if (!relay.spool.has(id)) return true;
    const st = (await relay.spool.load(id)).recipients[0]!.state;
    return st.state === 'deferred' && st.attempts >= 2;
  }, 15_000, 'the message was deferred twice (or delivered)', 50);

  assert.ok(peer.connections.length >= 1, 'the relay did connect to the impostor');
  const sent = commands(peer);
  assert.deepEqual(sent.filter((c) => /^AUTH\b/i.test(c)), [], 'no AUTH command reached the impostor');
  assert.ok(!sent.some((c) => c.includes(Buffer.from('\0relay-user\0hunter2').toString('base64'))), 'the credentials never went out');
  assert.ok(!sent.some((c) => /^MAIL\b/i.test(c)), 'no mail was handed to the impostor');
  assert.equal(peer.transactions.length, 0);
  assert.ok(relay.spool.has(id), 'the message is still queued');

  const st = (await relay.spool.load(id)).recipients[0]!.state;
  assert.equal(st.state, 'deferred');
  if (st.state === 'deferred') {
    assert.equal(st.reason, 'tls');
    assert.match(st.lastReply, /^4\.7\.5 /, 'recorded with the RFC 3463 status for a cryptographic failure');
    assert.match(st.lastReply, /self-signed certificate/);
  }
  const failures = lines.filter((l) => l.msg === 'connection attempt failed');
  assert.ok(failures.length >= 2);
  assert.match(String(failures[0]!.reason), /certificate verification failed for 127\.0\.0\.1: certificate not trusted \(self-signed certificate\)/);
});

test('an IP smarthost is not accepted on a certificate for DNS:localhost, even from a trusted issuer', async (t) => {
  // The second bug of issue 9: the IP-literal smarthost was checked against the name
  // "localhost". The impostor here holds a self-signed cert for localhost that the relay
  // is told to trust (its own caFile), so only the identity check can stop it.
  const localhostCert = makeSelfSigned({ commonName: 'localhost', dns: ['localhost'] });
  const peer = await startFaultServer({ tls: localhostCert, auth: { username: 'relay-user', password: 'hunter2' } });
  const dir = mkdtempSync(join(tmpdir(), 'mailrelay-ca-'));
  writeFileSync(join(dir, 'ca.crt'), localhostCert.cert);
  const relay = await startTestRelay(peer.port, {
    delivery: {
      smarthost: {
        host: '127.0.0.1', port: peer.port, tls: 'required', caFile: join(dir, 'ca.crt'),
        auth: { username: 'relay-user', passwordFile: passwordFile('hunter2') },
      },
    },
  });
  t.after(async () => { await relay.close(); await peer.close(); });
  const id = await submit(relay.smtpPort);
  await waitFor(async () => !relay.spool.has(id) || (await relay.spool.load(id)).recipients[0]!.state.state === 'deferred', 15_000, 'deferred (or delivered)', 50);
  assert.deepEqual(commands(peer).filter((c) => /^AUTH\b/i.test(c)), [], 'no AUTH command reached the impostor');
  const st = (await relay.spool.load(id)).recipients[0]!.state;
  assert.ok(st.state === 'deferred' && /hostname mismatch/.test(st.lastReply), JSON.stringify(st));
});

test('insecureSkipVerify is an explicit, loud opt-out: a warning at start, and the mail still goes over TLS only', async (t) => {
  const attacker = makeSelfSigned({ commonName: 'attacker.invalid', dns: ['attacker.invalid'] });
  const peer = await startFaultServer({ tls: attacker, auth: { username: 'relay-user', password: 'hunter2' } });
  const { log, lines } = capturingLog();
  const relay = await startTestRelay(peer.port, {
    delivery: {
      smarthost: {
        host: '127.0.0.1', port: peer.port, tls: 'required', insecureSkipVerify: true,
        auth: { username: 'relay-user', passwordFile: passwordFile('hunter2') },
      },
    },
  }, { log });
  t.after(async () => { await relay.close(); await peer.close(); });
  const warning = lines.find((l) => /insecureSkipVerify is on/.test(String(l.msg)));
  assert.ok(warning, 'warned at start');
  assert.equal(warning.level, 40);
  assert.match(String(warning.msg), /NOT verified; anyone who can intercept the connection can read the mail and the credentials/);
  await submit(relay.smtpPort);
  await peer.waitFor((p) => p.deliveries().get('user@example.com') === 1, 15_000, 'delivered');
  assert.equal(peer.transactions[0]!.secure, true);
});
