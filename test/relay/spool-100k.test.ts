// Scale: 100,000 queued messages must reopen into an index of 100,000 entries that costs well
// under 1 KB of heap each (the index holds no recipient lists). Filled with fsync off, since
// this is about memory and recovery, not durability (see spool-crash.test.ts for that).
import { after, describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Spool } from '../../relay/spool/index.ts';

const here = fileURLToPath(new URL('.', import.meta.url));
const N = 100_000;
const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('spool at 100k messages', () => {
  it('reopens 100k messages into a small index', async (t: TestContext) => {
    const dir = mkdtempSync(join(tmpdir(), 'spool-100k-'));
    dirs.push(dir);
    const t0 = performance.now();
    const spool = await Spool.open(dir, { fsync: false });
    const body = Buffer.from('Subject: load\r\n\r\nsmall body\r\n');
    let next = 0;
    await Promise.all(Array.from({ length: 64 }, async () => {
      while (next < N) {
        const i = next++;
        const m = await spool.accept({
          from: 'bulk@example.org',
          recipients: i % 10 === 0 ? [{ address: `x${i}@example.com` }, { address: `y${i}@example.net` }] : [{ address: `x${i}@example.com` }],
          receivedAt: 1_700_000_000_000 + i,
        }, body);
        if (i % 10 === 0) {
          // Both recipients deferred: the message moves to the deferred bucket.
          await spool.updateRecipients(m.id, m.recipients.map((r) => ({
            address: r.address, state: { state: 'deferred', attempts: 1, nextAttemptAt: 1_800_000_000_000 + i, lastReply: '451 later', reason: 'temporary_reply' },
          })));
        }
      }
    }));
    assert.equal(spool.size, N);
    await spool.close();
    const fillMs = performance.now() - t0;

    const out = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', join(here, 'spool-100k-child.ts'), dir], { encoding: 'utf8', maxBuffer: 1 << 20 });
    const r = JSON.parse(out.trim().split('\n').pop() as string) as {
      size: number; openMs: number; due: number; dueMs: number; bytesPerMessage: number;
      stats: { messages: number; byState: { queued: number; deferred: number; held: number }; oldestReceivedAt: number };
    };
    t.diagnostic(`fill ${N} (fsync off): ${fillMs.toFixed(0)} ms; reopen: ${r.openMs.toFixed(0)} ms; index heap: ${r.bytesPerMessage.toFixed(0)} bytes/message; due(100): ${r.dueMs.toFixed(2)} ms`);
    assert.equal(r.size, N);
    assert.deepEqual(r.stats, { messages: N, byState: { queued: N - N / 10, deferred: N / 10, held: 0 }, oldestReceivedAt: 1_700_000_000_000 });
    assert.equal(r.due, 100);
    assert.ok(r.bytesPerMessage < 1024, `index uses ${r.bytesPerMessage.toFixed(0)} bytes per message`);
  });
});
