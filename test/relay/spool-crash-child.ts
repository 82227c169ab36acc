// Child process for spool-crash.test.ts: accepts messages with many concurrent writers and
// updates recipients, printing each fact only AFTER the spool acknowledged it:
//   A <id> <seq>      accept resolved
//   D <id> <address>  updateRecipients(delivered) resolved
//   I <id>            about to complete the message (final states for every recipient)
//   C <id>            completion resolved
// It runs until killed (or until it has accepted `count` messages).
// Usage: node --import tsx test/relay/spool-crash-child.ts <dir> <firstSeq> <count> <concurrency>
import { Readable } from 'node:stream';
import { Spool } from '../../relay/spool/index.ts';
import { CRASH_SPOOL_OPTIONS, RECIPIENTS, bodyFor } from './spool-crash-lib.ts';

const [dir, firstArg, countArg, concArg] = process.argv.slice(2);
if (dir === undefined) throw new Error('usage: spool-crash-child.ts <dir> <firstSeq> <count> <concurrency>');
const first = Number(firstArg ?? 0);
const count = Number(countArg ?? 1_000_000);
const concurrency = Number(concArg ?? 32);

// process.stdout is synchronous for pipes on Linux, so a printed line is in the pipe before
// the next statement runs: nothing printed can be lost to the kill.
const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

const spool = await Spool.open(dir, CRASH_SPOOL_OPTIONS);
say(`R ${spool.size}`);
let next = first;
const end = first + count;
const deliveredAt = 1_700_000_000_000;

async function one(seq: number): Promise<void> {
  const b = bodyFor(seq);
  // Alternate Buffer and streamed bodies: both paths must be crash safe.
  const source = seq % 2 === 0 ? b : Readable.from(Array.from({ length: Math.ceil(b.length / 1000) }, (_, i) => b.subarray(i * 1000, (i + 1) * 1000)));
  const m = await spool.accept({ from: 'crash@example.org', recipients: RECIPIENTS.map((address) => ({ address })), receivedAt: deliveredAt, envid: `seq-${seq}` }, source);
  say(`A ${m.id} ${seq}`);
  if (seq % 3 === 0) {
    await spool.updateRecipients(m.id, [{ address: 'a@example.com', state: { state: 'delivered', at: deliveredAt, reply: '250 ok', attempts: 1 } }]);
    say(`D ${m.id} a@example.com`);
  }
  if (seq % 3 === 1) {
    await spool.updateRecipients(m.id, [{ address: 'b@example.net', state: { state: 'deferred', attempts: 1, nextAttemptAt: deliveredAt + 60_000, lastReply: '451 later', reason: 'temporary_reply' } }]);
  }
  if (seq % 4 === 0) {
    say(`I ${m.id}`);
    await spool.updateRecipients(m.id, RECIPIENTS.filter((a) => !(seq % 3 === 0 && a === 'a@example.com'))
      .map((address) => ({ address, state: { state: 'failed', at: deliveredAt, reply: '550 no', attempts: 1, reason: 'permanent' } })));
    say(`C ${m.id}`);
  }
}

await Promise.all(Array.from({ length: concurrency }, async () => {
  while (next < end) await one(next++);
}));
await spool.close();
say('DONE');
