import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GroupCommitter } from './commit.ts';

function gate(): { barrier: () => Promise<void>; calls: number; open: (err?: Error) => void } {
  const waiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  const g = {
    calls: 0,
    barrier: () => {
      g.calls++;
      return new Promise<void>((resolve, reject) => waiters.push({ resolve, reject }));
    },
    open: (err?: Error) => {
      const w = waiters.shift();
      if (err) w?.reject(err);
      else w?.resolve();
    },
  };
  return g;
}
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('GroupCommitter', () => {
  it('covers everyone who asked during a barrier with the next single barrier', async () => {
    const g = gate();
    const c = new GroupCommitter(g.barrier);
    const first = c.commit();
    await tick();
    const rest = Array.from({ length: 10 }, () => c.commit());
    await tick();
    assert.equal(g.calls, 1, 'the ten wait: the running barrier may predate their writes');
    g.open();
    await first;
    await tick();
    assert.equal(g.calls, 2);
    g.open();
    await Promise.all(rest);
    assert.deepEqual(c.stats(), { barriers: 2, commits: 11, maxBatch: 10 });
    await c.idle();
  });

  it('maxBatch 1 runs one barrier per caller', async () => {
    let calls = 0;
    const c = new GroupCommitter(async () => { calls++; }, { maxBatch: 1 });
    await Promise.all(Array.from({ length: 5 }, () => c.commit()));
    assert.equal(calls, 5);
  });

  it('rejects exactly the batch whose barrier failed', async () => {
    const g = gate();
    const c = new GroupCommitter(g.barrier);
    const a = c.commit();
    await tick();
    const b = c.commit();
    g.open(Object.assign(new Error('EIO'), { code: 'EIO' }));
    await assert.rejects(a, /EIO/);
    await tick();
    g.open();
    await b;
  });

  it('waits up to maxDelayMs to gather a batch when idle', async () => {
    let calls = 0;
    const c = new GroupCommitter(async () => { calls++; }, { maxDelayMs: 20 });
    const p = [c.commit()];
    await new Promise((r) => setTimeout(r, 5));
    p.push(c.commit(), c.commit());
    await Promise.all(p);
    assert.equal(calls, 1);
  });
});
