// Implicit TLS (RFC 8314) from the first byte, and certificate renewal without a restart:
// cert-manager rewrites the mounted Secret, and new sessions must get the new certificate.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import tls from 'node:tls';
import { startTestInbound, writeTlsFiles, writeUsersFile } from '../helpers/inbound.ts';
import { waitFor } from '../peers/wait.ts';

/** Opens a TLS connection, reads the greeting and sends EHLO; resolves with both replies and the peer certificate. */
function tlsSession(port: number): Promise<{ greeting: string; ehlo: string; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, servername: 'localhost' });
    let buf = '';
    let greeting = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      if (!greeting) {
        const nl = buf.indexOf('\r\n');
        if (nl < 0) return;
        greeting = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        s.write('EHLO client.example\r\n');
      }
      const end = /(^|\r\n)250 [^\r\n]*\r\n$/.exec(buf);
      if (end) {
        const fingerprint = s.getPeerCertificate().fingerprint256;
        s.end('QUIT\r\n');
        resolve({ greeting, ehlo: buf, fingerprint });
      }
    });
    s.on('error', reject);
    s.setTimeout(5000, () => reject(new Error('TLS session timed out')));
  });
}

test('implicit TLS: greeting over TLS, no STARTTLS offered, AUTH offered since the session is encrypted', async () => {
  const files = writeTlsFiles();
  const users = writeUsersFile({ alice: 'pw' });
  const t = await startTestInbound(
    { implicitTls: true, tls: { certFile: files.certFile, keyFile: files.keyFile }, authUsersFile: users.file },
    { isLocalClient: () => false },
  );
  try {
    const s = await tlsSession(t.port);
    assert.equal(s.greeting, '220 relay.test ESMTP mailrelay');
    assert.match(s.ehlo, /250-AUTH PLAIN LOGIN\r\n/);
    assert.doesNotMatch(s.ehlo, /STARTTLS/);
  } finally {
    await t.close();
    files.cleanup();
    users.cleanup();
  }
});

test('a renewed certificate on disk is served to new sessions without a restart', async () => {
  const files = writeTlsFiles();
  const renewed = writeTlsFiles();
  const t = await startTestInbound({ implicitTls: true, tls: { certFile: files.certFile, keyFile: files.keyFile } }, { tlsReloadMs: 20 });
  try {
    const before = (await tlsSession(t.port)).fingerprint;
    copyFileSync(renewed.keyFile, files.keyFile);
    copyFileSync(renewed.certFile, files.certFile);
    let after = before;
    await waitFor(async () => {
      after = (await tlsSession(t.port)).fingerprint;
      return after !== before;
    }, 10_000, 'the renewed certificate to be served', 50);
    assert.notEqual(after, before);
    assert.ok(t.logs.some((l) => l.msg === 'TLS certificate reloaded'));
  } finally {
    await t.close();
    files.cleanup();
    renewed.cleanup();
  }
});
