// A relay with `workers: 2` (relay/cluster.ts, docs/adr/0007-workers.md), run as the real
// CLI: a primary and two worker processes, each on a spool shard of its own.
//  - kill -9 of one worker mid-load: the primary restarts it on its shard; every message a
//    client got a 250 for is delivered;
//  - kill -9 of the whole relay (primary and workers) mid-load: after a restart on the same
//    spool, every acknowledged message is delivered;
//  - /metrics is the sum over the workers (a level such as mailrelay_draining stays 0/1),
//    /readyz and the hold drain cover every worker, SIGTERM drains them all;
//  - lowering `workers` strands nothing: a shard without an accepting worker is delivered by
//    a retiring worker and then removed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import nodemailer from 'nodemailer';
import { stringify } from 'yaml';
import type { RelayConfigInput } from '../../relay/config.ts';
import { startFaultServer } from '../peers/fault-server.ts';
import type { FaultServer } from '../peers/fault-server.ts';
import { waitFor } from '../peers/wait.ts';
import { connectWire } from '../peers/wire-client.ts';
import { scrape, testRelayConfig } from '../helpers/relay.ts';
import { runCli } from '../helpers/cli.ts';

const bin = new URL('../../bin/mailrelay.mjs', import.meta.url).pathname;

interface RelayProc {
  child: ChildProcess;
  smtp: number;
  http: number;
  /** JSON log lines so far. */
  lines: Record<string, unknown>[];
  /** Worker pids by shard index, as last announced. */
  workers: Map<number, number>;
  exited: Promise<number | null>;
}

/** Starts `mailrelay relay` in a process group of its own (so the whole relay can be killed at once). */
function startRelayCli(configFile: string): Promise<RelayProc> {
  const child = spawn(process.execPath, [bin, 'relay', '--config', configFile], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
  const lines: Record<string, unknown>[] = [];
  const workers = new Map<number, number>();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('relay did not start within 60 s')), 60_000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      let o: Record<string, unknown>;
      try {
        o = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      lines.push(o);
      if (o.msg === 'relay worker started') workers.set(Number(o.worker), Number(o.pid));
      if (o.msg === 'relay started' && typeof o.smtp === 'number') {
        clearTimeout(timer);
        resolve({ child, smtp: o.smtp, http: Number(o.http), lines, workers, exited });
      }
    });
    void exited.then((code) => reject(new Error(`relay exited ${code} before starting`)));
  });
}

/** Kills the relay's whole process group (primary and workers), as a container's end would. */
async function killAll(r: RelayProc): Promise<void> {
  try {
    process.kill(-r.child.pid!, 'SIGKILL');
  } catch {
    // already gone
  }
  await r.exited;
  // The workers see their primary go and exit too; give them a moment to be reaped.
  await waitFor(() => [...r.workers.values()].every((pid) => !alive(pid)), 10_000, 'worker processes gone');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function writeConfig(dir: string, peerPort: number, over: RelayConfigInput): string {
  const file = join(dir, 'relay.yaml');
  writeFileSync(file, stringify(testRelayConfig(peerPort, { workers: 2, log: { level: 'info' }, ...over }, join(dir, 'spool'))));
  return file;
}

/**
 * Submits messages 0..n-1 (each to its own recipients) on a pool of connections, retrying a
 * message whose submission failed (a killed worker cuts its sessions) under fresh recipient
 * names, until every message was acknowledged. Returns the acknowledged recipients.
 */
async function submitAll(port: number, n: number, during?: (acked: number) => Promise<void> | void, acked: string[] = []): Promise<string[]> {
  let hooks = 0;
  const send = async (i: number): Promise<void> => {
    for (let attempt = 0; attempt < 10; attempt++) {
      const tr = nodemailer.createTransport({ host: '127.0.0.1', port, ignoreTLS: true, connectionTimeout: 10_000, greetingTimeout: 10_000 });
      const to = [`m${i}-a${attempt}-r0@example.com`, `m${i}-a${attempt}-r1@example.com`];
      try {
        const info = await tr.sendMail({ from: 'workers@relay.test', to, subject: `m${i}`, text: `message ${i}` });
        if (info.response.startsWith('250')) {
          acked.push(...to);
          hooks++;
          await during?.(hooks);
          return;
        }
      } catch {
        await new Promise((r) => setTimeout(r, 200));
      } finally {
        tr.close();
      }
    }
    throw new Error(`message ${i} was never acknowledged`);
  };
  // 6 clients at a time, each message on a connection of its own (round robin spreads them).
  let next = 0;
  await Promise.all(Array.from({ length: 6 }, async () => {
    while (next < n) await send(next++);
  }));
  return acked;
}

const allDelivered = (peer: FaultServer, rcpts: string[]) => (): boolean => {
  const d = peer.deliveries();
  return rcpts.every((a) => (d.get(a) ?? 0) >= 1);
};

test('two workers: kill -9 of one mid-load, it comes back on its shard, and every acknowledged message is delivered', { timeout: 240_000 }, async (t) => {
  const peer = await startFaultServer({ slowMs: 10 });
  const dir = mkdtempSync(join(tmpdir(), 'mailrelay-workers-'));
  t.after(async () => {
    await peer.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const r = await startRelayCli(writeConfig(dir, peer.port, {}));
  t.after(() => killAll(r));
  assert.equal(r.workers.size, 2);
  const first = r.workers.get(1)!;
  let killed = false;
  const acked = await submitAll(r.smtp, 60, async (n) => {
    if (n === 20 && !killed) {
      killed = true;
      process.kill(first, 'SIGKILL');
    }
  });
  assert.ok(killed);
  await waitFor(() => r.workers.get(1) !== first, 30_000, 'worker 1 restarted');
  await waitFor(allDelivered(peer, acked), 60_000, 'every acknowledged recipient delivered');
  const restarted = r.lines.find((l) => l.msg === 'relay worker exited unexpectedly; restarting it on its shard');
  assert.equal(restarted?.worker, 1);
  assert.equal(restarted?.signal, 'SIGKILL');
  assert.equal(await scrape(r.http, 'mailrelay_worker_restarts_total'), 1);
  assert.equal(await scrape(r.http, 'mailrelay_workers', { role: 'accepting' }), 2);
  // Both workers took mail: each shard has its own spool.
  const accepted = new Set(r.lines.filter((l) => l.msg === 'message accepted').map((l) => l.worker));
  assert.deepEqual([...accepted].sort(), [0, 1]);
  assert.ok(existsSync(join(dir, 'spool', 'log')) && existsSync(join(dir, 'spool', 'shard-1', 'log')));
});

test('kill -9 of the whole relay mid-load: after a restart on the same spool, every acknowledged message is delivered', { timeout: 240_000 }, async (t) => {
  // A peer slow enough that much of the mail is still spooled when the relay dies.
  const peer = await startFaultServer({ slowMs: 40 });
  const dir = mkdtempSync(join(tmpdir(), 'mailrelay-workers-'));
  let relay: RelayProc | undefined;
  t.after(async () => {
    if (relay) await killAll(relay);
    await peer.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const config = writeConfig(dir, peer.port, { delivery: { concurrencyPerDestination: 2 } });
  relay = await startRelayCli(config);
  const before = relay;
  const acked: string[] = [];
  let cut: Promise<void> | undefined;
  // Sessions die with the relay: submitAll gives up on those messages, which were never acknowledged.
  await submitAll(before.smtp, 40, (n) => {
    if (n === 25) cut ??= killAll(before);
  }, acked).catch(() => undefined);
  // Everything after the kill fails until the restart: resubmit the rest there.
  await cut;
  const deliveredAtKill = peer.deliveries().size;
  relay = await startRelayCli(config);
  const after = relay;
  const rest = await submitAll(after.smtp, 15);
  const all = [...acked, ...rest];
  assert.ok(acked.length >= 2 * 25, `${acked.length / 2} messages acknowledged before the kill`);
  assert.ok(deliveredAtKill < acked.length, `the kill came with mail still spooled (${deliveredAtKill} of ${acked.length} delivered)`);
  await waitFor(allDelivered(peer, all), 90_000, 'every acknowledged recipient delivered after the restart');
});

test('metrics are summed over the workers; /readyz, the hold drain and SIGTERM cover every worker', { timeout: 180_000 }, async (t) => {
  const peer = await startFaultServer({});
  const dir = mkdtempSync(join(tmpdir(), 'mailrelay-workers-'));
  let relay: RelayProc | undefined;
  t.after(async () => {
    if (relay) await killAll(relay);
    await peer.close();
    rmSync(dir, { recursive: true, force: true });
  });
  relay = await startRelayCli(writeConfig(dir, peer.port, {}));
  const r = relay;
  const acked = await submitAll(r.smtp, 20);
  await waitFor(allDelivered(peer, acked), 30_000, 'delivered');
  await waitFor(async () => (await scrape(r.http, 'mailrelay_queue_messages')) === 0, 10_000, 'queue empty');
  assert.equal(await scrape(r.http, 'mailrelay_inbound_messages_total', { result: 'accepted' }), 20);
  assert.equal(await scrape(r.http, 'mailrelay_recipients_total', { outcome: 'delivered' }), 40);
  assert.equal(await scrape(r.http, 'mailrelay_draining'), 0);
  assert.equal(await scrape(r.http, 'mailrelay_workers', { role: 'accepting' }), 2);
  assert.equal((await fetch(`http://127.0.0.1:${r.http}/readyz`)).status, 200);

  // Hold drain: every worker refuses new mail, the gauge says 1 (not one per worker).
  const hold = await fetch(`http://127.0.0.1:${r.http}/drain?hold=true`, { method: 'POST' });
  assert.equal(hold.status, 202, await hold.text());
  const ready = await fetch(`http://127.0.0.1:${r.http}/readyz`);
  assert.equal(ready.status, 503);
  assert.match(await ready.text(), /draining/);
  assert.equal(await scrape(r.http, 'mailrelay_draining'), 1);
  for (let i = 0; i < 4; i++) {
    // Round robin: four connections reach both workers.
    const c = await connectWire(r.smtp);
    assert.equal(await c.readReply(), '421 4.3.2 Service shutting down');
    c.destroy();
  }
  assert.ok(existsSync(join(dir, 'spool', 'DRAINING')));
  const undo = await fetch(`http://127.0.0.1:${r.http}/drain`, { method: 'DELETE' });
  assert.equal(undo.status, 202, await undo.text());
  assert.equal((await fetch(`http://127.0.0.1:${r.http}/readyz`)).status, 200);
  assert.equal(await scrape(r.http, 'mailrelay_draining'), 0);
  const more = await submitAll(r.smtp, 4);
  await waitFor(allDelivered(peer, more), 30_000, 'delivered after the hold');

  r.child.kill('SIGTERM');
  assert.equal(await r.exited, 0);
  relay = undefined;
  await waitFor(() => [...r.workers.values()].every((pid) => !alive(pid)), 10_000, 'workers gone after the drain');
  assert.ok(r.lines.some((l) => l.msg === 'relay stopped'));
  assert.equal(r.lines.filter((l) => l.msg === 'drain complete').length, 2);
});

test('lowering workers strands nothing: the extra shard is delivered by a retiring worker, then removed', { timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mailrelay-workers-'));
  // First run: nowhere to deliver (nothing listens on the smarthost port), so the mail stays spooled.
  const closed = await new Promise<number>((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
  let relay: RelayProc | undefined;
  t.after(async () => {
    if (relay) await killAll(relay);
    rmSync(dir, { recursive: true, force: true });
  });
  relay = await startRelayCli(writeConfig(dir, closed, { drain: { timeout: 1 } }));
  const acked = await submitAll(relay.smtp, 12);
  const shard1 = join(dir, 'spool', 'shard-1');
  assert.ok(relay.lines.some((l) => l.msg === 'message accepted' && l.worker === 1), 'worker 1 took some of the mail');
  relay.child.kill('SIGTERM');
  assert.equal(await relay.exited, 0);
  relay = undefined;
  assert.ok(existsSync(shard1));

  // Second run: one worker, and a destination.
  const peer = await startFaultServer({});
  t.after(() => peer.close());
  relay = await startRelayCli(writeConfig(dir, peer.port, { workers: 1 }));
  const r = relay;
  assert.deepEqual([...r.workers.keys()].sort(), [0, 1], 'shard 1 got a worker of its own');
  await waitFor(allDelivered(peer, acked), 60_000, 'every message of both shards delivered');
  await waitFor(() => r.lines.some((l) => l.msg === 'relay worker retired: its shard is delivered and removed'), 30_000, 'shard 1 retired');
  await waitFor(() => !existsSync(shard1), 10_000, 'shard-1 removed');
  assert.deepEqual(readdirSync(join(dir, 'spool')).filter((n) => n.startsWith('shard-')), []);
  assert.equal(await scrape(r.http, 'mailrelay_workers', { role: 'retiring' }), 0);
  // A later start finds one shard and runs as one process again.
  r.child.kill('SIGTERM');
  assert.equal(await r.exited, 0);
  relay = await startRelayCli(writeConfig(dir, peer.port, { workers: 1 }));
  assert.equal(relay.workers.size, 0);
  assert.ok(!relay.lines.some((l) => l.msg === 'relay worker started'));
});

test('the queue API of a two-worker relay covers both shards: list, show and delete through `mailrelay queue`', { timeout: 180_000 }, async (t) => {
  // Every recipient deferred, retries an hour apart: the messages stay in the shards.
  const peer = await startFaultServer({ rcptReply: () => '451 4.4.1 Destination is down, try later' });
  const dir = mkdtempSync(join(tmpdir(), 'mailrelay-workers-'));
  t.after(async () => {
    await peer.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const r = await startRelayCli(writeConfig(dir, peer.port, { delivery: { retry: { schedule: [3600], jitter: 0, maxAge: 86400 } } }));
  t.after(() => killAll(r));
  const url = `http://127.0.0.1:${r.http}`;
  await submitAll(r.smtp, 8);
  await waitFor(async () => (await scrape(r.http, 'mailrelay_queue_messages', { state: 'deferred' })) === 8, 30_000, 'eight deferred');
  // Round robin put messages in both shards.
  const shards = readdirSync(join(dir, 'spool'), { withFileTypes: true }).filter((e) => e.isDirectory() && /^shard-/.test(e.name));
  assert.ok(shards.length >= 1, `a second shard directory in ${readdirSync(join(dir, 'spool')).join(', ')}`);

  const run = async (args: string[]): Promise<{ code: number | null; out: string; err: string }> => {
    const r = await runCli(['queue', ...args, '--url', url]);
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  const list = await run(['list', '--json']);
  assert.equal(list.code, 0, list.err);
  const listed = JSON.parse(list.out) as { messages: { id: string; receivedAt: string }[]; counts: Record<string, number> };
  assert.equal(listed.messages.length, 8);
  assert.deepEqual(listed.counts, { queued: 0, deferred: 8, held: 0 });
  const times = listed.messages.map((m) => m.receivedAt);
  assert.deepEqual(times, [...times].sort(), 'oldest first across shards');

  // Each message is found whichever worker holds it.
  for (const m of listed.messages) {
    const show = await run(['show', m.id, '--json']);
    assert.equal(show.code, 0, show.err);
    assert.equal((JSON.parse(show.out) as { id: string }).id, m.id);
  }
  const missing = await run(['show', '01ARZ3NDEKTSV4RRFFQ69G5FAV']);
  assert.notEqual(missing.code, 0);
  assert.match(missing.err, /no such message in the queue/);

  // Deleting by id: one outcome per id, from the shard that holds it (not not_found from the other).
  const del = await run(['delete', listed.messages[0]!.id, listed.messages[1]!.id, '--json']);
  assert.equal(del.code, 0, del.err);
  const results = (JSON.parse(del.out) as { results: { id: string; result: string }[] }).results;
  assert.deepEqual(results.map((x) => x.result).sort(), ['deleted', 'deleted']);
  await waitFor(async () => (await scrape(r.http, 'mailrelay_queue_messages', { state: 'deferred' })) === 6, 10_000, 'six left');
});
