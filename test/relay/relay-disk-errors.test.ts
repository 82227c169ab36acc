// A spool that is full or read-only gives 4xx on the way in (or, read-only from the
// start, a relay that refuses to start and says why), never a 250 that is then lost.
// The spool sits on a real tmpfs, which CI can mount because it runs as root. (EROFS in
// the middle of a run can't be produced on a mount with files open for writing; the
// spool's own tests inject it through its fs layer, and inbound's tests map it to 451.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { startFaultServer } from '../peers/fault-server.ts';
import { startTestRelay } from '../helpers/relay.ts';

async function send(port: number, text: string): Promise<{ code: number; response: string }> {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port, ignoreTLS: true });
  try {
    const info = await t.sendMail({ from: 'a@relay.test', to: 'b@example.com', subject: 'disk', text });
    return { code: Number(info.response.slice(0, 3)), response: info.response };
  } catch (err) {
    const e = err as { responseCode?: number; response?: string; message: string };
    return { code: e.responseCode ?? 0, response: e.response ?? e.message };
  } finally {
    t.close();
  }
}

test('full spool -> 452 4.3.1, never 250; only acknowledged mail is delivered', async (t) => {
  const mnt = mkdtempSync(join(tmpdir(), 'mailrelay-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', mnt]);
  t.after(() => {
    try { execFileSync('umount', ['-l', mnt]); } catch { /* already gone */ }
    rmSync(mnt, { recursive: true, force: true });
  });
  const peer = await startFaultServer({});
  const relay = await startTestRelay(peer.port, { spool: { dir: join(mnt, 'spool') } });
  t.after(async () => { await relay.close(); await peer.close(); });

  const ok = await send(relay.smtpPort, 'fits');
  assert.equal(ok.code, 250, ok.response);

  // Fill the file system, leaving less than one message.
  try { writeFileSync(join(mnt, 'filler'), Buffer.alloc(1024 * 1024)); } catch { /* ENOSPC: partly written, as intended */ }
  const full = await send(relay.smtpPort, 'x'.repeat(64 * 1024));
  assert.equal(full.code, 452, full.response);
  assert.match(full.response, /4\.3\.1/);

  assert.equal((await fetch(`http://127.0.0.1:${relay.httpPort}/readyz`)).status, 503, 'not ready while the spool cannot take writes');
  rmSync(join(mnt, 'filler'));

  await peer.waitFor((p) => p.deliveries().size === 1, 10_000);
  assert.deepEqual([...peer.deliveries()], [['b@example.com', 1]], 'only the acknowledged message was delivered');
});

test('a read-only spool volume: the relay refuses to start and names the problem', async (t) => {
  const mnt = mkdtempSync(join(tmpdir(), 'mailrelay-rofs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', mnt]);
  t.after(() => {
    try { execFileSync('umount', ['-l', mnt]); } catch { /* already gone */ }
    rmSync(mnt, { recursive: true, force: true });
  });
  await assert.rejects(startTestRelay(1, { spool: { dir: join(mnt, 'spool') } }), /spool directory .* is not writable \(read-only file system: EROFS\)/);
});

test('a spool directory under /proc: the relay refuses to start at once and names the problem (Node 20 mkdir -p hangs there)', { timeout: 15_000 }, async () => {
  const started = Date.now();
  await assert.rejects(startTestRelay(1, { spool: { dir: '/proc/mailrelay-no-such-dir/spool' } }),
    /spool directory \/proc\/mailrelay-no-such-dir\/spool is not writable \(cannot create \/proc\/mailrelay-no-such-dir: ENOENT\)/);
  assert.ok(Date.now() - started < 5000, 'fails fast');
});
