// Child for spool-100k.test.ts, run with --expose-gc: opens a filled spool and reports how much
// heap its index takes per message, measured against a baseline taken just before open.
// Usage: node --expose-gc --import tsx test/relay/spool-100k-child.ts <dir>
import { Spool } from '../../relay/spool/index.ts';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: spool-100k-child.ts <dir>');
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with --expose-gc');
const settle = (): number => {
  for (let i = 0; i < 4; i++) gc();
  return process.memoryUsage().heapUsed;
};
const before = settle();
const t0 = performance.now();
const spool = await Spool.open(dir, { fsync: false });
const openMs = performance.now() - t0;
const afterOpen = settle();
const t1 = performance.now();
const due = spool.due(Number.MAX_SAFE_INTEGER, 100).length;
const dueMs = performance.now() - t1;
const stats = spool.stats();
process.stdout.write(`${JSON.stringify({
  size: spool.size, openMs, due, dueMs, stats: { messages: stats.messages, byState: stats.byState, oldestReceivedAt: stats.oldestReceivedAt },
  heapBefore: before, heapAfter: afterOpen, bytesPerMessage: (afterOpen - before) / spool.size,
})}\n`);
await spool.close();
