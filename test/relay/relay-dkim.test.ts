// DKIM through the whole relay, configured the way the operator renders it
// (delivery.dkim with a key file): submitted over SMTP, spooled, signed before the first
// attempt, dot-stuffed on the way out, and verified by mailauth at the peer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dkimVerify } from 'mailauth';
import nodemailer from 'nodemailer';
import { startFaultServer } from '../peers/fault-server.ts';
import { startTestRelay } from '../helpers/relay.ts';
import { loadDkimSigner } from '../../relay/dkim/index.ts';

test('delivery.dkim: mail relayed with dot-lines verifies at the peer; a bad key stops the relay at start', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mailrelay-dkim-'));
  const keyFile = join(dir, 'private.key');
  writeFileSync(keyFile, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  const dkim = { domain: 'relay.test', selector: 'mr1', keyFile };
  const record = loadDkimSigner(dkim).dnsRecord;

  const peer = await startFaultServer({});
  const relay = await startTestRelay(peer.port, { delivery: { dkim } });
  t.after(async () => { await relay.close(); await peer.close(); });
  const tr = nodemailer.createTransport({ host: '127.0.0.1', port: relay.smtpPort, ignoreTLS: true });
  await tr.sendMail({ from: 'Alice <alice@relay.test>', to: 'bob@example.com', subject: 'signed', text: 'hi\n.\n..dots\n.end\n' });
  tr.close();
  await peer.waitFor((p) => p.deliveries().has('bob@example.com'), 10_000);
  const data = peer.transactions.find((x) => x.rcptAccepted.includes('bob@example.com'))!.data!;
  assert.match(data.toString(), /^DKIM-Signature: /);
  const res = await dkimVerify(data, {
    resolver: async (name: string, rr: string) => {
      if (rr === 'TXT' && name === 'mr1._domainkey.relay.test') return [[record]];
      throw Object.assign(new Error(`no ${rr} for ${name}`), { code: 'ENOTFOUND' });
    },
  });
  assert.deepEqual(res.results.map((r) => r.status.result), ['pass']);

  writeFileSync(join(dir, 'weak.key'), generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await assert.rejects(startTestRelay(peer.port, { delivery: { dkim: { ...dkim, keyFile: join(dir, 'weak.key') } } }), /weak\.key.*1024 bits/);
});
