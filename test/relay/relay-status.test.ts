// GET /status on a real relay delivering to a real peer: what the operator's autoscaler
// and healing read (relay/status.ts, docs/adr/0009-autoscaling.md). Queue counts and ages,
// the delivery rate, a recipient limit learned from the peer's "too many recipients",
// a hold drain, and a full spool (on a real tmpfs: CI runs as root, as for
// relay-disk-errors.test.ts) are each checked in the document.
import { describe, it, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import type { RelayStatus } from '../../relay/status.ts';
import { startTestRelay } from '../helpers/relay.ts';
import { startFaultServer, type FaultServer } from '../peers/fault-server.ts';
import { waitFor } from '../kube/testutil.ts';

type Relay = Awaited<ReturnType<typeof startTestRelay>>;

async function status(relay: Relay): Promise<RelayStatus> {
  const res = await fetch(`http://127.0.0.1:${relay.httpPort}/status`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  return await res.json() as RelayStatus;
}

async function send(relay: Relay, to: string | string[], text = 'status\n'): Promise<string> {
  const t = nodemailer.createTransport({ host: '127.0.0.1', port: relay.smtpPort, secure: false, ignoreTLS: true });
  try {
    return (await t.sendMail({ from: 'a@example.com', to, subject: 'status', text })).response;
  } catch (err) {
    return (err as { response?: string; message: string }).response ?? (err as Error).message;
  } finally {
    t.close();
  }
}

describe('relay /status', () => {
  let peer: FaultServer;
  let relay: Relay;
  before(async () => {
    peer = await startFaultServer({ maxRecipientsPerTransaction: 2 });
    relay = await startTestRelay(peer.port, { delivery: { retry: { schedule: [3600], jitter: 0, maxAge: 7200 } } });
  });
  after(async () => {
    await relay.close();
    await peer.close();
  });

  it('an idle relay: empty queue, no ages, writable spool, not draining', async () => {
    const s = await status(relay);
    assert.equal(s.version, 1);
    assert.deepEqual(s.queue, { messages: 0, queued: 0, deferred: 0, inFlight: 0, oldestAgeSeconds: null, oldestQueuedAgeSeconds: null });
    assert.equal(s.draining, false);
    assert.deepEqual(s.spool, { writable: true });
    assert.equal(s.processes, 1);
  });

  it('delivered recipients show in the rate; a limit learned from the peer shows per destination', async () => {
    assert.match(await send(relay, ['r1@example.net', 'r2@example.net', 'r3@example.net', 'r4@example.net', 'r5@example.net']), /^250 /);
    await peer.waitFor((p) => ['r1', 'r2', 'r3', 'r4', 'r5'].every((r) => p.deliveries().get(`${r}@example.net`) === 1), 10_000, 'all five delivered');
    const s = await waitFor('the rate', async () => {
      const x = await status(relay);
      return x.delivery.deliveredPerSecond > 0 ? x : undefined;
    }, 5000, 100);
    assert.equal(s.delivery.windowSeconds, 60);
    assert.ok(s.delivery.acceptedPerSecond > 0);
    assert.deepEqual(s.delivery.learnedLimits, [{ destination: '[smarthost]', maxRecipients: 2 }]);
  });

  it('a deferred message counts as deferred and ages, but not as queued', async () => {
    assert.match(await send(relay, '451-later@example.net'), /^250 /);
    const s = await waitFor('deferred', async () => {
      const x = await status(relay);
      return x.queue.deferred === 1 ? x : undefined;
    }, 10_000, 50);
    assert.equal(s.queue.queued, 0);
    assert.equal(s.queue.messages, 1);
    assert.equal(s.queue.oldestQueuedAgeSeconds, null, 'a message waiting for its retry does not say delivery is behind');
    assert.ok((s.queue.oldestAgeSeconds ?? -1) >= 0);
  });

  it('a hold drain shows as draining', async () => {
    assert.equal((await fetch(`http://127.0.0.1:${relay.httpPort}/drain?hold=true`, { method: 'POST' })).status, 202);
    assert.equal((await status(relay)).draining, true);
    assert.equal((await fetch(`http://127.0.0.1:${relay.httpPort}/drain`, { method: 'DELETE' })).status, 202);
    assert.equal((await status(relay)).draining, false);
  });

  it('only GET', async () => {
    assert.equal((await fetch(`http://127.0.0.1:${relay.httpPort}/status`, { method: 'POST' })).status, 405);
  });
});

describe('relay /status with a full spool', () => {
  it('reports the spool full, with the spool\'s own error', async (t) => {
    const mnt = mkdtempSync(join(tmpdir(), 'mailrelay-tmpfs-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', mnt]);
    t.after(() => {
      try { execFileSync('umount', ['-l', mnt]); } catch { /* already gone */ }
      rmSync(mnt, { recursive: true, force: true });
    });
    const peer = await startFaultServer({});
    const relay = await startTestRelay(peer.port, { spool: { dir: join(mnt, 'spool') } });
    t.after(async () => { await relay.close(); await peer.close(); });
    try { writeFileSync(join(mnt, 'filler'), Buffer.alloc(1024 * 1024)); } catch { /* ENOSPC: partly written, as intended */ }
    assert.match(await send(relay, 'b@example.com', 'x'.repeat(64 * 1024)), /^452 /);
    const s = await status(relay);
    assert.equal(s.spool.writable, false);
    assert.equal(s.spool.problem, 'full');
    assert.match(s.spool.message ?? '', /no_space/);
    assert.equal((await fetch(`http://127.0.0.1:${relay.httpPort}/readyz`)).status, 503);
  });
});
