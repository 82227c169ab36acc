// The delivery loop against a real spool: an unexpected error while delivering a message
// leaves it queued and does not turn into a hot loop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Spool } from '../spool/index.ts';
import { Scheduler } from './scheduler.ts';
import type { DeliveryEngine } from '../outbound/engine.ts';

test('a message whose delivery throws stays queued and is not retried in a hot loop', async (t) => {
  const spool = await Spool.open(mkdtempSync(join(tmpdir(), 'mailrelay-sched-')), { fsync: false });
  t.after(() => spool.close());
  const msg = await spool.accept({ from: 'a@x.test', recipients: [{ address: 'b@y.test' }], receivedAt: Date.now() }, Buffer.from('hi\r\n'));
  let calls = 0;
  // eslint-disable-next-line require-yield -- it throws before it has anything to yield
  const engine = { attempt: async function* () { calls++; throw new Error('boom'); } } as unknown as DeliveryEngine;
  const errors: string[] = [];
  const scheduler = new Scheduler({
    spool, engine, hostname: 'relay.test', dsnFrom: 'MAILER-DAEMON', concurrency: 4,
    retry: { schedule: [1], jitter: 0, maxAge: 3600 }, delayNotice: { enabled: false, afterSeconds: 3600 },
    log: { info: () => undefined, warn: () => undefined, error: (o) => errors.push(JSON.stringify(o)) },
  });
  scheduler.start();
  const deadline = Date.now() + 5000;
  while (calls === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  await new Promise((r) => setTimeout(r, 500));
  await scheduler.stop(1000);
  assert.equal(calls, 1, 'tried once, then left alone for the cooldown');
  assert.ok(spool.has(msg.id), 'still queued');
  assert.match(errors[0] ?? '', /boom/);
});
