import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WorkQueue, type RunOutcome } from './workqueue.ts';

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, fn: () => boolean, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await tick();
  }
}

describe('WorkQueue', () => {
  it('deduplicates a key while it waits', async () => {
    const runs: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const q = new WorkQueue({ workers: 1, process: async (k) => { runs.push(k); await gate; return { kind: 'done' }; } });
    q.start();
    q.add('blocker');
    q.add('a'); q.add('a'); q.add('a');
    assert.equal(q.depth, 1);
    release();
    await until('both ran', () => runs.length === 2);
    await tick(20);
    assert.deepEqual(runs, ['blocker', 'a']);
    await q.stop();
  });

  it('runs one key at a time, and runs it again if it changed meanwhile', async () => {
    let active = 0;
    let maxActive = 0;
    let runs = 0;
    let release!: () => void;
    let gate = new Promise<void>((r) => { release = r; });
    const q = new WorkQueue({
      workers: 4,
      process: async () => {
        active++; runs++;
        maxActive = Math.max(maxActive, active);
        await gate;
        active--;
        return { kind: 'done' };
      },
    });
    q.start();
    q.add('k');
    await until('first run', () => runs === 1);
    q.add('k'); q.add('k');
    await tick(20);
    assert.equal(runs, 1, 'not in parallel with itself');
    const first = release;
    gate = new Promise<void>((r) => { release = r; });
    first();
    await until('second run', () => runs === 2);
    release();
    await tick(20);
    assert.equal(runs, 2, 'the two adds during the run make one more run');
    assert.equal(maxActive, 1);
    await q.stop();
  });

  it('backs off exponentially per key, capped, and resets on success', async () => {
    const times: number[] = [];
    let fail = 4;
    const q = new WorkQueue({
      baseDelayMs: 10, maxDelayMs: 40,
      process: async (): Promise<RunOutcome> => { times.push(Date.now()); return fail-- > 0 ? { kind: 'retry' } : { kind: 'done' }; },
    });
    assert.deepEqual([1, 2, 3, 4, 5].map((n) => q.backoffFor(n)), [10, 20, 40, 40, 40]);
    q.start();
    q.add('k');
    await until('five runs', () => times.length === 5);
    assert.equal(q.failuresOf('k'), 0, 'reset by the success');
    const gaps = times.slice(1).map((t, i) => t - (times[i] ?? 0));
    assert.ok(gaps[0]! >= 9 && gaps[1]! >= 19 && gaps[2]! >= 39 && gaps[3]! >= 39, `gaps ${gaps.join(',')}`);
    await q.stop();
  });

  it('treats an exception as a retry and reports it', async () => {
    const errors: unknown[] = [];
    let n = 0;
    const q = new WorkQueue({ baseDelayMs: 5, process: async () => { if (n++ === 0) throw new Error('boom'); return { kind: 'done' }; }, onError: (_k, e) => errors.push(e) });
    q.start();
    q.add('k');
    await until('retried', () => n === 2);
    assert.equal((errors[0] as Error).message, 'boom');
    await q.stop();
  });

  it('requeueAfter schedules a later run; an add brings it forward', async () => {
    const runs: number[] = [];
    const q = new WorkQueue({ process: async () => { runs.push(Date.now()); return { kind: 'done', requeueAfterMs: 60_000 }; } });
    q.start();
    q.add('k');
    await until('first', () => runs.length === 1);
    q.add('k');
    await until('second, without waiting a minute', () => runs.length === 2);
    await q.stop();
  });

  it('stop aborts runs in flight, drops the queue and ignores later adds', async () => {
    let aborted = false;
    const depths: number[] = [];
    const q = new WorkQueue({
      workers: 1,
      onDepth: (d) => depths.push(d),
      process: (_k, signal) => new Promise((resolve) => signal.addEventListener('abort', () => { aborted = true; resolve({ kind: 'done' }); })),
    });
    q.start();
    q.add('a'); q.add('b');
    await until('a running', () => q.depth === 1);
    await q.stop();
    assert.equal(aborted, true);
    assert.equal(q.depth, 0);
    assert.equal(depths.at(-1), 0);
    q.add('c');
    assert.equal(q.depth, 0);
  });
});
