// Crash safety: submit N messages, kill -9 the relay in the middle of delivery, restart it
// on the same spool. Every acknowledged message is delivered (at least once per recipient)
// and no recipient that the spool had recorded as delivered gets a second copy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import nodemailer from 'nodemailer';
import { stringify } from 'yaml';
import { startFaultServer } from '../peers/fault-server.ts';
import { testRelayConfig } from '../helpers/relay.ts';
import { Spool } from '../../relay/spool/index.ts';

const N = 40;
const RCPTS = 3;
const bin = new URL('../../bin/mailrelay.mjs', import.meta.url).pathname;

function startChild(configFile: string): Promise<{ child: ChildProcess; smtpPort: number }> {
  const child = spawn(process.execPath, [bin, 'relay', '--config', configFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('relay did not start')), 20_000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      try {
        const o = JSON.parse(line) as { msg?: string; smtp?: number };
        if (o.msg === 'relay started' && o.smtp) {
          clearTimeout(timer);
          resolve({ child, smtpPort: o.smtp });
        }
      } catch { /* not JSON */ }
    });
    child.once('exit', (code) => reject(new Error(`relay exited ${code} before starting`)));
  });
}

test('kill -9 mid-delivery, restart: every acknowledged message delivered, no recorded delivery repeated', async (t) => {
  const peer = await startFaultServer({ slowMs: 15 });
  const spoolDir = mkdtempSync(join(tmpdir(), 'mailrelay-crash-'));
  const configFile = join(spoolDir, '..', `${spoolDir.split('/').pop()}.yaml`);
  writeFileSync(configFile, stringify(testRelayConfig(peer.port, { log: { level: 'info' }, delivery: { concurrencyPerDestination: 2 } }, join(spoolDir, 'spool'))));
  let current: ChildProcess | null = null;
  t.after(async () => { current?.kill('SIGKILL'); await peer.close(); });

  const first = await startChild(configFile);
  current = first.child;
  const tr = nodemailer.createTransport({ host: '127.0.0.1', port: first.smtpPort, ignoreTLS: true, pool: true, maxConnections: 4 });
  const acked: number[] = [];
  const rcptsOf = (i: number) => Array.from({ length: RCPTS }, (_, j) => `m${i}-r${j}@example.com`);
  await Promise.all(Array.from({ length: N }, async (_, i) => {
    const info = await tr.sendMail({ from: 'crash@relay.test', to: rcptsOf(i), subject: `m${i}`, text: `message ${i}` });
    if (info.response.startsWith('250')) acked.push(i);
  }));
  tr.close();
  assert.equal(acked.length, N);

  // Let delivery get going, then pull the plug.
  await peer.waitFor((p) => p.deliveries().size >= 15, 20_000, 'some deliveries before the crash');
  first.child.kill('SIGKILL');
  await new Promise((r) => first.child.once('exit', r));
  const deliveredBeforeCrash = peer.deliveries().size;
  assert.ok(deliveredBeforeCrash < N * RCPTS, `the crash happened mid-delivery (${deliveredBeforeCrash} delivered)`);

  // What the spool had durably recorded as delivered at the moment of the crash.
  const spool = await Spool.open(join(spoolDir, 'spool'), { fsync: false });
  const recordedDelivered = new Set<string>();
  const stillQueued = new Set<string>();
  for (const id of spool.due(Number.MAX_SAFE_INTEGER, 1_000_000)) {
    const m = await spool.load(id);
    for (const r of m.recipients) {
      stillQueued.add(r.address);
      if (r.state.state === 'delivered') recordedDelivered.add(r.address);
    }
  }
  await spool.close();
  for (const i of acked) for (const a of rcptsOf(i)) if (!stillQueued.has(a)) recordedDelivered.add(a); // completed and removed
  assert.ok(recordedDelivered.size > 0 && recordedDelivered.size < N * RCPTS);

  const second = await startChild(configFile);
  current = second.child;
  const all = acked.flatMap(rcptsOf);
  await peer.waitFor((p) => { const d = p.deliveries(); return all.every((a) => (d.get(a) ?? 0) >= 1); }, 30_000, 'every acknowledged recipient delivered after restart');
  const d = peer.deliveries();
  const repeated = [...recordedDelivered].filter((a) => (d.get(a) ?? 0) !== 1);
  assert.deepEqual(repeated, [], 'a recipient recorded as delivered was sent again');
  second.child.kill('SIGTERM');
  await new Promise((r) => second.child.once('exit', r));
  current = null;
});
