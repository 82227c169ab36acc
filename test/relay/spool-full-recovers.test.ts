// A full spool recovers by itself (issue 13 §9). On a small volume (a real 2 MiB tmpfs, as
// a small PVC would be), mail that cannot be delivered fills the spool until the relay
// answers 452 4.3.1, losing nothing. Once the destination is back and every message is
// delivered, the relay must accept mail again without a restart: the space held by
// fully delivered segments, the active one included, is given back. Segments are sized
// to the volume, so one segment never holds most of it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { startFaultServer } from '../peers/fault-server.ts';
import { startTestRelay } from '../helpers/relay.ts';

async function send(port: number, n: number): Promise<{ code: number; response: string }> {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port, ignoreTLS: true });
  try {
    const info = await t.sendMail({ from: 'a@relay.test', to: `r${n}@example.com`, subject: `m${n}`, text: 'y'.repeat(16 * 1024) });
    return { code: Number(info.response.slice(0, 3)), response: info.response };
  } catch (err) {
    const e = err as { responseCode?: number; response?: string; message: string };
    return { code: e.responseCode ?? 0, response: e.response ?? e.message };
  } finally {
    t.close();
  }
}

test('a spool filled on a 2 MiB volume accepts mail again once it is delivered, without a restart', { timeout: 120_000 }, async (t) => {
  const mnt = mkdtempSync(join(tmpdir(), 'mailrelay-small-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt]);
  t.after(() => {
    try { execFileSync('umount', ['-l', mnt]); } catch { /* already gone */ }
    rmSync(mnt, { recursive: true, force: true });
  });
  let down = true;
  const peer = await startFaultServer({ rcptReply: () => (down ? '451 4.4.1 Destination is down, try later' : undefined) });
  const spool = join(mnt, 'spool');
  // One attempt per message while filling (each retry writes a state record); the flush below
  // is what an operator does once the destination is back (`mailrelay queue retry --all`).
  const relay = await startTestRelay(peer.port, { spool: { dir: spool }, delivery: { retry: { schedule: [3600], jitter: 0, maxAge: 7200 } } });
  t.after(async () => { await relay.close(); await peer.close(); });

  // Fill: bounded by the volume (2 MiB / 16 KiB messages), and by a count as a backstop.
  const accepted: number[] = [];
  let refused: { code: number; response: string } | undefined;
  let maxSegments = 0;
  for (let n = 0; n < 400 && refused === undefined; n++) {
    const r = await send(relay.smtpPort, n);
    if (r.code === 250) accepted.push(n);
    else refused = r;
    maxSegments = Math.max(maxSegments, readdirSync(join(spool, 'log')).length);
  }
  assert.ok(refused, 'the spool filled up');
  assert.equal(refused.code, 452, refused.response);
  assert.match(refused.response, /4\.3\.1/);
  assert.ok(accepted.length >= 50, `a 2 MiB volume took ${accepted.length} messages of 16 KiB`);
  assert.ok(maxSegments >= 4, `segments follow the volume size: ${maxSegments} segment files while filling 2 MiB`);

  // Every message tried once and deferred; then the destination comes back: everything
  // acknowledged is delivered, once.
  await peer.waitFor(() => relay.spool.stats().byState.queued === 0, 30_000, 'every message tried once');
  down = false;
  const flushed = await relay.queue.act('retry', { all: true });
  assert.equal(flushed.results.filter((r) => r.result === 'retrying').length, accepted.length, JSON.stringify(flushed.results.filter((r) => r.result !== 'retrying').slice(0, 5)));
  await peer.waitFor((p) => p.deliveries().size === accepted.length, 60_000, 'every accepted message delivered');
  await peer.waitFor(() => relay.spool.size === 0, 10_000, 'the spool is empty');
  for (const n of accepted) assert.equal(peer.deliveries().get(`r${n}@example.com`), 1);

  // No restart: the next message is accepted, and the relay is ready again.
  const again = await send(relay.smtpPort, 1000);
  assert.equal(again.code, 250, `accepting again after the spool emptied: ${again.response}; log ${JSON.stringify(relay.spool.stats().log)}; files:\n${execFileSync('ls', ['-lR', spool]).toString()}`);
  await peer.waitFor((p) => p.deliveries().get('r1000@example.com') === 1, 10_000, 'the new message delivered');
  const deadline = Date.now() + 15_000;
  let ready = 0;
  while (Date.now() < deadline && (ready = (await fetch(`http://127.0.0.1:${relay.httpPort}/readyz`)).status) !== 200) await new Promise((r) => setTimeout(r, 200));
  assert.equal(ready, 200, 'ready again');
});
