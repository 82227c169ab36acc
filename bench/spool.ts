// Spool throughput with fsync ON: accepts of 4 KB messages from 64 concurrent writers, then
// recipient updates (a state record each) and completions (a done record each), with group
// commit on and off (batch size 1: one write + fdatasync per record), median of 3 interleaved runs.
// Usage: npx tsx bench/spool.ts [--messages 6000] [--concurrency 64] [--size 4096] [--runs 3]

import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Spool } from '../relay/spool/index.ts';
import type { Envelope } from '../relay/spool/index.ts';

const { values } = parseArgs({
  options: {
    messages: { type: 'string', default: '6000' },
    concurrency: { type: 'string', default: '64' },
    size: { type: 'string', default: '4096' },
    runs: { type: 'string', default: '3' },
  },
});
const N = Number(values.messages);
const C = Number(values.concurrency);
const SIZE = Number(values.size);
const RUNS = Number(values.runs);

interface RunResult { accept: number; update: number; complete: number; batch: number }

async function pool(n: number, c: number, work: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: c }, async () => {
    while (next < n) await work(next++);
  }));
  return n / ((performance.now() - t0) / 1000);
}

async function run(groupCommit: boolean): Promise<RunResult> {
  const dir = mkdtempSync(join(tmpdir(), 'spool-bench-'));
  try {
    const spool = await Spool.open(dir, { fsync: true, groupCommitMaxBatch: groupCommit ? 4096 : 1 });
    const body = Buffer.alloc(SIZE, 'x');
    const ids: string[] = new Array<string>(N);
    const env = (i: number): Envelope => ({
      from: 'sender@example.org', recipients: [{ address: `a${i}@example.com` }, { address: `b${i}@example.net` }], receivedAt: Date.now(),
    });
    const accept = await pool(N, C, async (i) => { ids[i] = (await spool.accept(env(i), body)).id; });
    const batch = spool.stats().log;
    const update = await pool(N, C, (i) => spool.updateRecipients(ids[i] as string, [
      { address: `a${i}@example.com`, state: { state: 'deferred', attempts: 1, nextAttemptAt: Date.now() + 60_000, lastReply: '451 4.7.1 try later', reason: 'temporary_reply' } },
    ]));
    const complete = await pool(N, C, (i) => spool.updateRecipients(ids[i] as string, [
      { address: `a${i}@example.com`, state: { state: 'delivered', at: Date.now(), reply: '250 ok', attempts: 2 } },
      { address: `b${i}@example.net`, state: { state: 'delivered', at: Date.now(), reply: '250 ok', attempts: 1 } },
    ]));
    if (spool.size !== 0) throw new Error(`bench: ${spool.size} messages left`);
    await spool.close();
    return { accept, update, complete, batch: batch.records / batch.batches };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// The disk's own pace right now (this machine is shared): 4 KiB appends, each fdatasynced,
// one at a time; i.e. what any design pays per fsync.
function rawFsyncRate(): number {
  const dir = mkdtempSync(join(tmpdir(), 'spool-bench-raw-'));
  try {
    const fd = openSync(join(dir, 'f'), 'w');
    const b = Buffer.alloc(4096, 1);
    const t0 = performance.now();
    for (let i = 0; i < 300; i++) {
      writeSync(fd, b);
      fdatasyncSync(fd);
    }
    closeSync(fd);
    return 300 / ((performance.now() - t0) / 1000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

const rawBefore = rawFsyncRate();
const loadBefore = loadavg()[0] ?? 0;
const on: RunResult[] = [];
const off: RunResult[] = [];
for (let r = 0; r < RUNS; r++) {
  // Interleaved so that drift in the disk's state affects both modes alike.
  on.push(await run(true));
  off.push(await run(false));
  process.stderr.write(`run ${r + 1}/${RUNS}: group commit ${on[r]?.accept.toFixed(0)}/s, batch size 1 ${off[r]?.accept.toFixed(0)}/s\n`);
}
const row = (name: string, k: keyof RunResult, unit: string): void => {
  const a = median(on.map((x) => x[k]));
  const b = median(off.map((x) => x[k]));
  console.log(`${name.padEnd(34)} ${a.toFixed(0).padStart(8)} ${b.toFixed(0).padStart(12)} ${(a / b).toFixed(2).padStart(7)}x  ${unit}`);
};
const rawAfter = rawFsyncRate();
console.log(`spool bench: fsync ON, ${N} messages of ${SIZE} B, ${C} concurrent writers, median of ${RUNS} runs, ${tmpdir()}`);
console.log(`context: raw 4 KiB write+fdatasync one at a time ${rawBefore.toFixed(0)}/s before, ${rawAfter.toFixed(0)}/s after; load average ${loadBefore.toFixed(1)} -> ${(loadavg()[0] ?? 0).toFixed(1)}`);
console.log(`${''.padEnd(34)} ${'group'.padStart(8)} ${'batch=1'.padStart(12)} ${'ratio'.padStart(8)}`);
row('accept (messages/s)', 'accept', '');
row('update, state record (updates/s)', 'update', '');
row('complete, done record (messages/s)', 'complete', '');
row('mean records per fdatasync (accept)', 'batch', '');
