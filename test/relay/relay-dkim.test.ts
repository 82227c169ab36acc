// DKIM through the whole relay, configured the way the operator renders it
// (delivery.dkim with a key file): submitted over SMTP, spooled, signed before the first
// attempt, dot-stuffed on the way out, and verified by mailauth at the peer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dkimVerify } from 'mailauth';
import nodemailer from 'nodemailer';
import { startFaultServer } from '../peers/fault-server.ts';
import { startSmtpSink } from '../peers/postfix.ts';
import { connectWire } from '../peers/wire-client.ts';
import { startTestRelay } from '../helpers/relay.ts';
import { waitFor } from '../kube/testutil.ts';
import { loadDkimSigner } from '../../relay/dkim/index.ts';

/** delivery.dkim for d=relay.test with a new key file, and the public key record it needs. */
function dkimSetup(selector: string, key: KeyObject) {
  const dir = mkdtempSync(join(tmpdir(), 'mailrelay-dkim-'));
  const keyFile = join(dir, 'private.key');
  writeFileSync(keyFile, key.export({ type: 'pkcs8', format: 'pem' }));
  const dkim = { domain: 'relay.test', selector, keyFile };
  return { dir, dkim, record: loadDkimSigner(dkim).dnsRecord };
}

/** mailauth's DKIM results for `message`, with a resolver that answers only the selector's TXT record. */
async function dkimResults(message: Buffer, setup: ReturnType<typeof dkimSetup>): Promise<string[]> {
  const res = await dkimVerify(message, {
    resolver: async (name: string, rr: string) => {
      if (rr === 'TXT' && name === `${setup.dkim.selector}._domainkey.${setup.dkim.domain}`) return [[setup.record]];
      throw Object.assign(new Error(`no ${rr} for ${name}`), { code: 'ENOTFOUND' });
    },
  });
  return res.results.map((r) => r.status.result);
}

test('delivery.dkim: mail relayed with dot-lines verifies at the peer; a bad key stops the relay at start', async (t) => {
  const setup = dkimSetup('mr1', generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);
  const { dir, dkim } = setup;

  const peer = await startFaultServer({});
  const relay = await startTestRelay(peer.port, { delivery: { dkim } });
  t.after(async () => { await relay.close(); await peer.close(); });
  const tr = nodemailer.createTransport({ host: '127.0.0.1', port: relay.smtpPort, ignoreTLS: true });
  await tr.sendMail({ from: 'Alice <alice@relay.test>', to: 'bob@example.com', subject: 'signed', text: 'hi\n.\n..dots\n.end\n' });
  tr.close();
  await peer.waitFor((p) => p.deliveries().has('bob@example.com'), 10_000);
  const data = peer.transactions.find((x) => x.rcptAccepted.includes('bob@example.com'))!.data!;
  assert.match(data.toString(), /^DKIM-Signature: /);
  assert.deepEqual(await dkimResults(data, setup), ['pass']);

  writeFileSync(join(dir, 'weak.key'), generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await assert.rejects(startTestRelay(peer.port, { delivery: { dkim: { ...dkim, keyFile: join(dir, 'weak.key') } } }), /weak\.key.*1024 bits/);
});

// RFC 6376 §5.3 and RFC 6152 §3 together, on the wire, with Postfix's smtp-sink as the next
// hop: an 8-bit message (BODY=8BITMIME) is converted to quoted-printable before it is
// signed, so the signature holds whether or not the next hop offers 8BITMIME (the engine's
// own conversion for a next hop without it would otherwise break the signature).
for (const eightBitMime of [false, true]) {
  test(`delivery.dkim with an 8-bit message, next hop ${eightBitMime ? 'with' : 'without'} 8BITMIME: arrives 7-bit quoted-printable and verifies pass`, async (t) => {
    const setup = dkimSetup('mr8', generateKeyPairSync('ed25519').privateKey);
    const sink = await startSmtpSink({ dump: true, eightBitMime });
    const relay = await startTestRelay(sink.port, { delivery: { dkim: setup.dkim } });
    t.after(async () => { await relay.close(); await sink.close(); });

    const c = await connectWire(relay.smtpPort);
    t.after(() => c.destroy());
    assert.match(await c.readReply(), /^220 /);
    assert.match(await c.command('EHLO client.example'), /8BITMIME/);
    assert.match(await c.command('MAIL FROM:<alice@relay.test> BODY=8BITMIME'), /^250 /);
    assert.match(await c.command('RCPT TO:<bob@example.com>'), /^250 /);
    assert.match(await c.command('DATA'), /^354 /);
    c.write(Buffer.from('From: Alice <alice@relay.test>\r\nTo: bob@example.com\r\nSubject: 8bit\r\nMIME-Version: 1.0\r\n'
      + 'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'
      + 'Grüße aus Köln, été\r\n..a dot-line\r\nEND\r\n.\r\n', 'utf8'));
    assert.match(await c.readReply(), /^250 /);

    // Read the dump once the whole message is in it (smtp-sink writes while DATA runs).
    const got = await waitFor('the whole message at smtp-sink', () => sink.messages().find((m) => m.content.includes('\nEND\n')), 15_000, 100);
    assert.ok(Buffer.from(got.content, 'latin1').every((b) => b < 0x80), 'only 7-bit bytes reached the next hop');
    assert.match(got.content, /^DKIM-Signature: v=1; a=ed25519-sha256;/);
    assert.match(got.content, /\nContent-Transfer-Encoding: quoted-printable\n\nGr=C3=BC=C3=9Fe aus K=C3=B6ln, =C3=A9t=C3=A9\n(?:\.|=2E)a dot-line\nEND\n/);
    // smtp-sink stores LF line ends (it drops every CR); the message had no bare CR or LF.
    assert.deepEqual(await dkimResults(Buffer.from(got.content.replace(/\n/g, '\r\n'), 'latin1'), setup), ['pass']);
  });
}
