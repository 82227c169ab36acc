import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer as collect } from 'node:stream/consumers';
import fc from 'fast-check';
import { Spool } from './spool.ts';
import type { SpoolOptions } from './spool.ts';
import { InvalidTransitionError, MessageNotFoundError, SpoolError } from './errors.ts';
import { FaultFs } from '../../test/helpers/fault-fs.ts';
import type { Envelope, QueuedMessage, RecipientState } from './record.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'spool-test-'));
  dirs.push(d);
  return d;
}

const env = (n = 2, extra: Partial<Envelope> = {}): Envelope => ({
  from: 'sender@example.org',
  recipients: Array.from({ length: n }, (_, i) => ({ address: `r${i}@example.com` })),
  receivedAt: 1_700_000_000_000,
  ...extra,
});
const deferred = (at: number, attempts = 1): RecipientState => ({ state: 'deferred', attempts, nextAttemptAt: at, lastReply: '451 4.7.1 later', reason: 'temporary_reply' });
const delivered: RecipientState = { state: 'delivered', at: 1_700_000_001_000, reply: '250 2.0.0 ok', attempts: 1 };
const failed: RecipientState = { state: 'failed', at: 1_700_000_001_000, reply: '550 5.1.1 no', attempts: 1, reason: 'permanent' };
const body = (n: number, seed = 1): Buffer => {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return b;
};
const readBody = (s: Spool, id: string): Promise<Buffer> => collect(s.openBody(id));

async function open(dir: string, o: SpoolOptions = {}): Promise<Spool> {
  return Spool.open(dir, { fsync: false, ...o });
}

describe('Spool: accept, load, openBody', () => {
  it('serves a just-accepted body from memory (no read of the log), bounded, and from the log once evicted or after a restart', async () => {
    const dir = tmp();
    const fs = new FaultFs();
    const reads = (): number => fs.calls.get('read') ?? 0;
    const s = await Spool.open(dir, { fs, fsync: false, freshBodyCacheBytes: 8000 });
    const bodies = Array.from({ length: 6 }, (_, i) => body(1500, i));
    const ids: string[] = [];
    for (const b of bodies) ids.push((await s.accept(env(1), Readable.from([b.subarray(0, 700), b.subarray(700)]))).id);
    // 9,000 bytes offered to an 8,000-byte cache: the oldest went out.
    let before = reads();
    assert.deepEqual(await readBody(s, ids[5]!), bodies[5]);
    assert.deepEqual(await readBody(s, ids[5]!), bodies[5], 'again, for a second transaction');
    assert.equal(reads(), before, 'the newest body came from memory');
    before = reads();
    assert.deepEqual(await readBody(s, ids[0]!), bodies[0]);
    assert.ok(reads() > before, 'the evicted body was read from the log');
    // A Buffer body handed to accept is copied: changing it afterwards changes nothing stored.
    const mine = body(1000, 9);
    const m = await s.accept(env(1), mine);
    mine.fill(0);
    assert.deepEqual(await readBody(s, m.id), body(1000, 9));
    // Completed: gone, from memory too.
    await s.updateRecipients(m.id, [{ address: 'r0@example.com', state: delivered }]);
    await assert.rejects(readBody(s, m.id), MessageNotFoundError);
    await s.close();
    const s2 = await Spool.open(dir, { fs, fsync: false });
    before = reads();
    assert.deepEqual(await readBody(s2, ids[5]!), bodies[5]);
    assert.ok(reads() > before, 'after a restart, from the log');
    await s2.close();
  });

  it('stores a Buffer body and reads back the exact bytes and envelope', async () => {
    const s = await open(tmp());
    const e = env(3, { envid: 'E1', ret: 'HDRS', smtputf8: true, bodyType: '8BITMIME', clientAddress: '192.0.2.1', heloName: 'h', authUser: 'u' });
    e.recipients[0] = { address: 'r0@example.com', notify: ['FAILURE', 'DELAY'], orcpt: 'rfc822;x@y' };
    const b = body(5000);
    const m = await s.accept(e, b);
    assert.equal(m.size, 5000);
    assert.deepEqual(m.recipients.map((r) => r.state), [{ state: 'pending' }, { state: 'pending' }, { state: 'pending' }]);
    const loaded = await s.load(m.id);
    assert.deepEqual(loaded, m);
    assert.deepEqual(await readBody(s, m.id), b);
    assert.equal(s.size, 1);
    assert.deepEqual(s.due(Date.now(), 10), [m.id]);
    await s.close();
  });

  it('streams bodies from Readables, async iterables and string chunks, including empty ones', async () => {
    const s = await open(tmp());
    const b = body(70_000);
    const chunks = Array.from({ length: 70 }, (_, i) => b.subarray(i * 1000, (i + 1) * 1000));
    const a = await s.accept(env(), Readable.from(chunks));
    async function* gen(): AsyncGenerator<Uint8Array> {
      for (const c of chunks) yield new Uint8Array(c);
    }
    const g = await s.accept(env(), gen());
    async function* strings(): AsyncGenerator<string> {
      yield 'Subject: hi\r\n';
      yield '\r\nhéllo\r\n';
    }
    const t = await s.accept(env(), strings());
    const empty = await s.accept(env(), Readable.from([]));
    assert.deepEqual(await readBody(s, a.id), b);
    assert.deepEqual(await readBody(s, g.id), b);
    assert.equal((await readBody(s, t.id)).toString('utf8'), 'Subject: hi\r\n\r\nhéllo\r\n');
    assert.equal((await readBody(s, empty.id)).length, 0);
    assert.equal(empty.size, 0);
    await s.close();
  });

  it('puts bodies above the inline limit in their own file, streamed, and deletes it on completion', async () => {
    const dir = tmp();
    const s = await open(dir, { inlineBodyMaxBytes: 1024, fsync: true });
    const b = body(300_000, 3);
    async function* gen(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < b.length; i += 777) yield b.subarray(i, i + 777);
    }
    const m = await s.accept(env(1), gen());
    const small = await s.accept(env(1), body(100));
    assert.equal(m.size, 300_000);
    assert.deepEqual(readdirSync(join(dir, 'bodies')), [m.id]);
    assert.deepEqual(await readBody(s, m.id), b);
    await s.close();
    const s2 = await open(dir, { inlineBodyMaxBytes: 1024 });
    assert.deepEqual(await readBody(s2, m.id), b);
    const r = await s2.updateRecipients(m.id, [{ address: 'r0@example.com', state: delivered }]);
    assert.equal(r.completed, true);
    assert.deepEqual(readdirSync(join(dir, 'bodies')), []);
    assert.deepEqual(await readBody(s2, small.id), body(100));
    await s2.close();
  });

  it('passes the body source error through and leaves no trace', async () => {
    const dir = tmp();
    const s = await open(dir, { inlineBodyMaxBytes: 100 });
    const boom = new Error('client went away');
    async function* bad(): AsyncGenerator<Buffer> {
      yield body(500);
      throw boom;
    }
    await assert.rejects(s.accept(env(), bad()), (e) => e === boom);
    async function* badSmall(): AsyncGenerator<Buffer> {
      yield body(5);
      throw boom;
    }
    await assert.rejects(s.accept(env(), badSmall()), (e) => e === boom);
    assert.equal(s.size, 0);
    assert.deepEqual(readdirSync(join(dir, 'bodies')), []);
    await s.close();
    const s2 = await open(dir);
    assert.equal(s2.size, 0);
    await s2.close();
  });

  it('hands out copies: mutating a loaded message changes nothing stored', async () => {
    const s = await open(tmp());
    const m = await s.accept(env(2), body(10));
    m.recipients[0] = { address: 'evil', state: delivered };
    const l = await s.load(m.id);
    (l.recipients[1] as { state: RecipientState }).state = delivered;
    const r = await s.updateRecipients(m.id, [{ address: 'r0@example.com', state: deferred(5) }]);
    r.message.recipients.length = 0;
    assert.deepEqual((await s.load(m.id)).recipients.map((x) => x.state.state), ['deferred', 'pending']);
    // Nested parts too: a state's fields, a NOTIFY list.
    const n = await s.accept({ ...env(1), recipients: [{ address: 'n@example.com', notify: ['FAILURE'] }] }, body(10));
    n.recipients[0]!.notify!.push('SUCCESS');
    const ln = await s.load(n.id);
    (ln.recipients[0]!.state as { state: string }).state = 'delivered';
    ln.recipients[0]!.notify!.length = 0;
    const again = await s.load(n.id);
    assert.deepEqual(again.recipients[0], { address: 'n@example.com', notify: ['FAILURE'], state: { state: 'pending' } });
    await s.close();
  });

  it('reads state from disk once the cache has evicted it', async () => {
    const dir = tmp();
    const s = await open(dir);
    const first = await s.accept(env(2), body(10, 1));
    await s.updateRecipients(first.id, [{ address: 'r1@example.com', state: deferred(77) }]);
    for (let i = 0; i < 2100; i++) await s.accept(env(1), body(5));
    assert.deepEqual((await s.load(first.id)).recipients.map((x) => x.state.state), ['pending', 'deferred']);
    const r = await s.updateRecipients(first.id, [{ address: 'r0@example.com', state: delivered }]);
    assert.deepEqual(r.message.recipients.map((x) => x.state.state), ['delivered', 'deferred']);
    assert.deepEqual(await readBody(s, first.id), body(10, 1));
    await s.close();
  });

  it('lets a body stream that is being read finish across close()', async () => {
    const s = await open(tmp());
    const b = body(200_000, 9);
    const m = await s.accept(env(1), b);
    const stream = s.openBody(m.id);
    const chunks: Buffer[] = [];
    let closing: Promise<void> | undefined;
    for await (const c of stream) {
      chunks.push(c as Buffer);
      closing ??= s.close();
    }
    await closing;
    assert.deepEqual(Buffer.concat(chunks), b);
  });

  it('rejects invalid input without writing', async () => {
    const s = await open(tmp());
    await assert.rejects(s.accept({ ...env(), recipients: [] }, body(1)), TypeError);
    await assert.rejects(s.accept(env(1, { recipients: [{ address: 'a' }, { address: 'a' }] }), body(1)), TypeError);
    await assert.rejects(s.load('nope'), MessageNotFoundError);
    await assert.rejects(s.updateRecipients('../../etc/passwd', [{ address: 'a', state: delivered }]), MessageNotFoundError);
    await assert.rejects(s.updateRecipients('01ARZ3NDEKTSV4RRFFQ69G5FAV', [{ address: 'a', state: delivered }]), MessageNotFoundError);
    await assert.rejects(collect(s.openBody('01ARZ3NDEKTSV4RRFFQ69G5FAV')), MessageNotFoundError);
    const m = await s.accept(env(1), body(1));
    await assert.rejects(s.updateRecipients(m.id, [{ address: 'r0@example.com', state: { state: 'bogus' } as unknown as RecipientState }]), TypeError);
    assert.equal(s.stats().log.records, 1);
    await s.close();
    await assert.rejects(s.accept(env(), body(1)), SpoolError);
  });
});

describe('Spool: recipient states', () => {
  it('records deferrals, schedules by the earliest retry, and completes when all are final', async () => {
    const s = await open(tmp());
    const m = await s.accept(env(3), body(10));
    let r = await s.updateRecipients(m.id, [{ address: 'r0@example.com', state: delivered }, { address: 'r1@example.com', state: deferred(5000) }]);
    assert.equal(r.completed, false);
    assert.equal(s.stats().byState.queued, 1, 'r2 still pending');
    r = await s.updateRecipients(m.id, [{ address: 'r2@example.com', state: deferred(3000) }]);
    assert.deepEqual(s.stats().byState, { queued: 0, deferred: 1, held: 0 });
    assert.deepEqual(s.due(2999, 10), []);
    assert.deepEqual(s.due(3000, 10), [m.id]);
    assert.equal(s.nextDueAt(), 3000);
    assert.deepEqual((await s.load(m.id)).recipients.map((x) => x.state.state), ['delivered', 'deferred', 'deferred']);
    await s.updateRecipients(m.id, [{ address: 'r1@example.com', state: deferred(9000, 2) }, { address: 'r2@example.com', state: failed }]);
    assert.deepEqual(s.due(8999, 10), []);
    r = await s.updateRecipients(m.id, [{ address: 'r1@example.com', state: delivered, delayNotified: true }]);
    assert.equal(r.completed, true);
    assert.deepEqual(r.message.recipients.map((x) => x.state.state), ['delivered', 'delivered', 'failed']);
    assert.equal(r.message.recipients[1]?.delayNotified, true);
    assert.equal(s.has(m.id), false);
    assert.equal(s.size, 0);
    await assert.rejects(s.load(m.id), MessageNotFoundError);
    await assert.rejects(s.updateRecipients(m.id, [{ address: 'r0@example.com', state: delivered }]), MessageNotFoundError);
    await s.close();
  });

  it('refuses to move a delivered recipient and writes nothing', async () => {
    const s = await open(tmp());
    const m = await s.accept(env(2), body(10));
    await s.updateRecipients(m.id, [{ address: 'r0@example.com', state: delivered }]);
    const records = s.stats().log.records;
    await assert.rejects(s.updateRecipients(m.id, [{ address: 'r0@example.com', state: deferred(1) }]),
      (e) => e instanceof InvalidTransitionError && e.kind === 'already_final');
    await assert.rejects(s.updateRecipients(m.id, [{ address: 'zz@example.com', state: deferred(1) }]),
      (e) => e instanceof InvalidTransitionError && e.kind === 'unknown_recipient');
    assert.equal(s.stats().log.records, records);
    assert.equal((await s.load(m.id)).recipients[0]?.state.state, 'delivered');
    await s.close();
  });

  it('merges concurrent updates to one message, refusing only the bad caller', async () => {
    const s = await open(tmp());
    const m = await s.accept(env(10), body(10));
    const before = s.stats().log.records;
    const ps = Array.from({ length: 10 }, (_, i) => s.updateRecipients(m.id, [{ address: `r${i}@example.com`, state: deferred(100 + i) }]));
    const bad = assert.rejects(s.updateRecipients(m.id, [{ address: 'nobody', state: delivered }]), InvalidTransitionError);
    const results = await Promise.all(ps);
    await bad;
    assert.ok(s.stats().log.records - before < 10, 'queued updates share records');
    const last = results[9]?.message.recipients ?? [];
    assert.ok(last.every((r) => r.state.state === 'deferred'));
    assert.deepEqual((await s.load(m.id)).recipients, last);
    await s.close();
  });

  it('an empty update writes nothing', async () => {
    const s = await open(tmp());
    const m = await s.accept(env(1), body(1));
    const records = s.stats().log.records;
    const r = await s.updateRecipients(m.id, []);
    assert.equal(r.completed, false);
    assert.equal(s.stats().log.records, records);
    await s.close();
  });

  it('a segment deletion that failed half-way is finished by the next pass', async () => {
    const dir = tmp();
    const fs = new FaultFs();
    const s = await Spool.open(dir, { fs, fsync: true, maxSegmentBytes: 1024 });
    // Log-directory fsyncs after open: creating segment 1, then deleting it (fails here).
    fs.fail({ op: 'fsync', path: /log$/, code: 'EIO', times: 1, after: 1 });
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const m = await s.accept(env(1), body(200, i));
      await s.updateRecipients(m.id, [{ address: 'r0@example.com', state: delivered }]);
      ids.push(m.id);
    }
    await s.close();
    assert.ok(readdirSync(join(dir, 'log')).length <= 2, readdirSync(join(dir, 'log')).join(','));
    const s2 = await open(dir);
    assert.equal(s2.size, 0);
    await s2.close();
  });

  it('remove() purges a message whatever its states', async () => {
    const dir = tmp();
    const s = await open(dir);
    const m = await s.accept(env(2), body(10));
    const keep = await s.accept(env(2), body(10));
    const r = await s.remove(m.id);
    assert.equal(r.completed, true);
    assert.equal(s.has(m.id), false);
    await s.close();
    const s2 = await open(dir);
    assert.deepEqual([...s2.due(Date.now(), 10)], [keep.id]);
    await s2.close();
  });

  it('survives a reopen with every state, body and schedule intact', async () => {
    const dir = tmp();
    const s = await open(dir, { fsync: true });
    const msgs: QueuedMessage[] = [];
    for (let i = 0; i < 40; i++) msgs.push(await s.accept(env(3, { receivedAt: 1000 + i }), body(100 + i * 50, i)));
    for (let i = 0; i < 40; i++) {
      const id = (msgs[i] as QueuedMessage).id;
      if (i % 4 === 0) await s.updateRecipients(id, [{ address: 'r0@example.com', state: delivered }]);
      if (i % 4 === 1) await s.updateRecipients(id, [0, 1, 2].map((k) => ({ address: `r${k}@example.com`, state: deferred(5000 + i) })));
      if (i % 4 === 2) await s.updateRecipients(id, [0, 1, 2].map((k) => ({ address: `r${k}@example.com`, state: delivered })));
    }
    const before = new Map<string, QueuedMessage>();
    for (const m of msgs) if (s.has(m.id)) before.set(m.id, await s.load(m.id));
    const due = s.due(1e15, 100);
    const stats = s.stats();
    await s.close();
    const s2 = await open(dir);
    assert.equal(s2.size, 30);
    for (const [id, m] of before) assert.deepEqual(await s2.load(id), m);
    for (let i = 0; i < 40; i++) {
      const m = msgs[i] as QueuedMessage;
      if (s2.has(m.id)) assert.deepEqual(await readBody(s2, m.id), body(100 + i * 50, i));
    }
    assert.deepEqual(s2.due(1e15, 100), due);
    const { log: _l1, ...a } = stats;
    const { log: _l2, ...b } = s2.stats();
    assert.deepEqual(b, a);
    await s2.close();
  });
});

describe('Spool: hold and release (queue tooling)', () => {
  it('a held message is never due, survives a reopen and a relocation held, and is due again once released', async () => {
    const dir = tmp();
    const s = await open(dir, { fsync: true, maxSegmentBytes: 4 * 1024 });
    const held = await s.accept(env(2), body(200));
    const other = await s.accept(env(1), body(200, 2));
    await s.updateRecipients(held.id, [{ address: 'r0@example.com', state: deferred(5000) }]);
    const r = await s.hold(held.id, 1_700_000_123_000);
    assert.equal(r.message.heldAt, 1_700_000_123_000);
    assert.deepEqual(s.due(1e15, 10), [other.id], 'held: not handed to the scheduler');
    assert.equal(s.stats().byState.held, 1);
    // A state update while held keeps it held (the flag rides in every snapshot).
    await s.updateRecipients(held.id, [{ address: 'r1@example.com', state: deferred(6000) }]);
    assert.equal((await s.load(held.id)).heldAt, 1_700_000_123_000);
    // Push it through a relocation: enough delivered traffic to retire its segment.
    for (let i = 0; i < 60; i++) {
      const m = await s.accept(env(1), body(300, i));
      await s.updateRecipients(m.id, [{ address: 'r0@example.com', state: delivered }]);
    }
    await s.close();
    const s2 = await open(dir, { maxSegmentBytes: 4 * 1024 });
    assert.deepEqual(s2.due(1e15, 10), [other.id], 'still held after a restart');
    const loaded = await s2.load(held.id);
    assert.equal(loaded.heldAt, 1_700_000_123_000);
    assert.deepEqual(loaded.recipients.map((x) => x.state), [deferred(5000), deferred(6000)]);
    const rel = await s2.release(held.id);
    assert.equal(rel.message.heldAt, undefined);
    assert.deepEqual(new Set(s2.due(1e15, 10)), new Set([held.id, other.id]));
    assert.equal(s2.stats().byState.held, 0);
    await s2.close();
    const s3 = await open(dir);
    assert.equal((await s3.load(held.id)).heldAt, undefined, 'the release is durable');
    assert.equal(s3.nextDueAt(), 5000);
    await s3.close();
  });

  it('lists every message with its state and arrival, oldest first', async () => {
    const s = await open(tmp());
    const a = await s.accept(env(1, { receivedAt: 2000 }), body(10));
    const b = await s.accept(env(1, { receivedAt: 1000 }), body(10));
    await s.updateRecipients(b.id, [{ address: 'r0@example.com', state: deferred(9000) }]);
    await s.hold(a.id, 3000);
    assert.deepEqual(s.list(), [
      { id: b.id, receivedAt: 1000, state: 'deferred', dueAt: 9000 },
      { id: a.id, receivedAt: 2000, state: 'held', dueAt: Infinity },
    ]);
    await s.close();
  });
});

describe('Spool: recovery of damaged files', () => {
  it('drops a half-created newest segment, quarantines a damaged older one, ignores strangers', async () => {
    const dir = tmp();
    const s = await open(dir, { maxSegmentBytes: 1024 });
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push((await s.accept(env(1), body(300, i))).id);
    await s.close();
    const segs = readdirSync(join(dir, 'log')).sort();
    assert.ok(segs.length >= 3);
    const { writeFileSync, readFileSync } = await import('node:fs');
    // The second segment's header is damaged (media error): quarantine, never delete.
    const second = join(dir, 'log', segs[1] as string);
    const bytes = readFileSync(second);
    bytes[3] = 0;
    writeFileSync(second, bytes);
    // A crash while creating the next segment left 5 bytes of header.
    const next = (parseInt((segs[segs.length - 1] as string).slice(0, 16), 16) + 1).toString(16).padStart(16, '0');
    writeFileSync(join(dir, 'log', `${next}.seg`), Buffer.from('MRSPS'));
    writeFileSync(join(dir, 'log', 'README'), 'hello');
    const s2 = await open(dir);
    assert.equal(s2.recovery.quarantinedSegments, 1);
    assert.equal(s2.recovery.unknownFiles, 1);
    assert.equal(readdirSync(join(dir, 'corrupt')).length, 1);
    assert.ok(!readdirSync(join(dir, 'log')).includes(`${next}.seg`));
    // Messages in the intact segments are all there, with their bodies.
    let present = 0;
    for (const [i, id] of ids.entries()) {
      if (!s2.has(id)) continue;
      present++;
      assert.deepEqual(await readBody(s2, id), body(300, i));
    }
    assert.ok(present > 0 && present < ids.length);
    await s2.close();
  });
});

describe('Spool: space reclamation', () => {
  it('deletes dead segments and relocates long-lived messages out of old ones', async () => {
    const dir = tmp();
    const s = await open(dir, { maxSegmentBytes: 8 * 1024 });
    const keep: Array<{ id: string; n: number }> = [];
    for (let i = 0; i < 300; i++) {
      const m = await s.accept(env(1), body(300, i));
      if (i % 50 === 7) {
        await s.updateRecipients(m.id, [{ address: 'r0@example.com', state: deferred(10_000 + i) }]);
        keep.push({ id: m.id, n: i });
      } else {
        await s.updateRecipients(m.id, [{ address: 'r0@example.com', state: delivered }]);
      }
    }
    await s.close(); // waits for compaction
    const files = readdirSync(join(dir, 'log'));
    assert.ok(files.length <= 4, `expected old segments to be gone, have ${files.length}`);
    const s2 = await open(dir, { maxSegmentBytes: 8 * 1024 });
    assert.equal(s2.size, keep.length);
    for (const k of keep) {
      assert.deepEqual(await readBody(s2, k.id), body(300, k.n));
      assert.deepEqual((await s2.load(k.id)).recipients[0]?.state, deferred(10_000 + k.n));
    }
    await s2.close();
  });
});

describe('Spool: disk failures (injected)', () => {
  const cases: Array<[string, string]> = [['ENOSPC', 'no_space'], ['EDQUOT', 'no_space'], ['EROFS', 'read_only'], ['EACCES', 'read_only'], ['EIO', 'io']];
  const steps: Array<{ name: string; op: 'write' | 'fdatasync' | 'open' | 'fsync' | 'rename'; path: RegExp; partial?: boolean; big?: boolean; fresh?: boolean }> = [
    { name: 'segment write', op: 'write', path: /\.seg$/ },
    { name: 'segment write, half written', op: 'write', path: /\.seg$/, partial: true },
    { name: 'segment fdatasync', op: 'fdatasync', path: /\.seg$/ },
    { name: 'new segment creation', op: 'open', path: /\.seg$/, fresh: true },
    { name: 'log directory fsync after creating a segment', op: 'fsync', path: /log$/, fresh: true },
    { name: 'external body write', op: 'write', path: /bodies/, big: true },
    { name: 'external body fdatasync', op: 'fdatasync', path: /bodies/, big: true },
    { name: 'external body rename', op: 'rename', path: /bodies/, big: true },
    { name: 'bodies directory fsync', op: 'fsync', path: /bodies$/, big: true },
  ];
  for (const step of steps) {
    for (const [code, kind] of cases) {
      it(`accept fails with ${kind} on ${code} in ${step.name}, and nothing shows up`, async () => {
        const dir = tmp();
        const fs = new FaultFs();
        const s = await Spool.open(dir, { fs, fsync: true, inlineBodyMaxBytes: 1000 });
        const ok1 = step.fresh ? undefined : await s.accept(env(1), body(50, 1));
        fs.fail({ op: step.op, path: step.path, code, times: 1, partial: step.partial === true });
        const b = step.big === true ? body(5000, 2) : body(50, 2);
        await assert.rejects(s.accept(env(1), b), (e) => e instanceof SpoolError && e.kind === kind && e.code === code);
        assert.equal(s.size, ok1 ? 1 : 0);
        fs.heal();
        const ok2 = await s.accept(env(1), body(60, 3));
        const ok3 = await s.accept(env(1), body(6000, 4));
        await s.close();
        assert.deepEqual(readdirSync(join(dir, 'bodies')).filter((f) => f !== ok3.id), [], 'no stray body files');
        const s2 = await open(dir);
        const want = [ok1?.id, ok2.id, ok3.id].filter((x): x is string => x !== undefined).sort();
        assert.deepEqual(s2.due(1e15, 10).sort(), want);
        assert.deepEqual(await readBody(s2, ok2.id), body(60, 3));
        assert.deepEqual(await readBody(s2, ok3.id), body(6000, 4));
        await s2.close();
      });
    }
  }

  it('after a failed fdatasync, later acknowledged records are still found by recovery', async () => {
    // The dangerous case: the failed batch may leave a hole in its segment; anything appended
    // after the hole would be invisible to a scanner that stops at the first bad record.
    const dir = tmp();
    const fs = new FaultFs();
    const s = await Spool.open(dir, { fs, fsync: true });
    const a = await s.accept(env(2), body(10, 1));
    fs.fail({ op: 'fdatasync', path: /\.seg$/, code: 'EIO', times: 1 });
    fs.fail({ op: 'ftruncate', code: 'EIO', times: 1 }); // and the clean-up fails too
    await assert.rejects(s.accept(env(1), body(10, 2)), (e) => e instanceof SpoolError && e.kind === 'io');
    const b = await s.accept(env(1), body(10, 3));
    await s.updateRecipients(a.id, [{ address: 'r0@example.com', state: delivered }]);
    await s.close();
    const s2 = await open(dir);
    assert.equal(s2.has(b.id), true);
    assert.equal((await s2.load(a.id)).recipients[0]?.state.state, 'delivered');
    await s2.close();
  });

  it('a failed state update leaves the old state readable, and the next one works', async () => {
    const dir = tmp();
    const fs = new FaultFs();
    const s = await Spool.open(dir, { fs, fsync: true });
    const m = await s.accept(env(2), body(10));
    fs.fail({ op: 'write', path: /\.seg$/, code: 'ENOSPC', times: 1, partial: true });
    await assert.rejects(s.updateRecipients(m.id, [{ address: 'r0@example.com', state: delivered }]), (e) => e instanceof SpoolError && e.kind === 'no_space');
    assert.equal((await s.load(m.id)).recipients[0]?.state.state, 'pending');
    await s.updateRecipients(m.id, [{ address: 'r1@example.com', state: delivered }]);
    await s.close();
    const s2 = await open(dir);
    assert.deepEqual((await s2.load(m.id)).recipients.map((r) => r.state.state), ['pending', 'delivered']);
    await s2.close();
  });

  it('keeps a free-space reserve: new mail is refused, delivery records still fit', async () => {
    const fs = new FaultFs();
    const s = await Spool.open(tmp(), { fs, fsync: true }); // default reserve: min(64 MiB, 5% of the disk)
    const m = await s.accept(env(2), body(10));
    const r = await s.accept(env(1), body(10));
    fs.free = 10 * 1024 * 1024;
    await new Promise((res) => setTimeout(res, 1100)); // the statfs result is cached for a second
    await assert.rejects(s.accept(env(1), body(10)), (e) => e instanceof SpoolError && e.kind === 'no_space' && e.code === 'ENOSPC');
    await s.updateRecipients(m.id, [{ address: 'r0@example.com', state: delivered }]);
    assert.equal((await s.updateRecipients(m.id, [{ address: 'r1@example.com', state: failed }])).completed, true);
    await s.remove(r.id);
    fs.free = undefined;
    await new Promise((res) => setTimeout(res, 1100));
    await s.accept(env(1), body(10));
    await s.close();
  });

  it('does not block mail when free space cannot be measured', async () => {
    const fs = new FaultFs().fail({ op: 'space', code: 'ENOSYS' });
    const s = await Spool.open(tmp(), { fs, fsync: false });
    await s.accept(env(1), body(10));
    await s.close();
  });

  it('refuses to open the same directory twice in one process', async () => {
    const dir = tmp();
    const s = await open(dir);
    await assert.rejects(open(join(dir, '.')), (e) => e instanceof SpoolError && /already open/.test(e.message));
    await s.close();
    await (await open(dir)).close();
  });

  it('open fails with a typed error when the directory cannot be created', async () => {
    const fs = new FaultFs().fail({ op: 'mkdir', code: 'EROFS' });
    await assert.rejects(Spool.open(join(tmp(), 'spool'), { fs }), (e) => e instanceof SpoolError && e.kind === 'read_only' && e.op === 'open');
  });

  it('read errors surface as SpoolError from load and openBody', async () => {
    const dir = tmp();
    const s0 = await open(dir);
    const m = await s0.accept(env(1), body(10));
    await s0.close();
    const fs = new FaultFs();
    const s = await Spool.open(dir, { fs, fsync: false }); // fresh: nothing cached
    fs.fail({ op: 'read', code: 'EIO' });
    await assert.rejects(s.load(m.id), (e) => e instanceof SpoolError && e.kind === 'io');
    await assert.rejects(collect(s.openBody(m.id)), (e) => e instanceof SpoolError && e.kind === 'io');
    fs.heal();
    await s.close();
  });
});

describe('Spool: model check', () => {
  type Op =
    | { k: 'accept'; n: number; size: number }
    | { k: 'update'; pick: number; rcpt: number; to: 'deferred' | 'delivered' | 'failed'; at: number }
    | { k: 'remove'; pick: number }
    | { k: 'hold'; pick: number; at: number }
    | { k: 'release'; pick: number }
    | { k: 'reopen' };
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    { weight: 3, arbitrary: fc.record({ k: fc.constant('accept' as const), n: fc.integer({ min: 1, max: 3 }), size: fc.nat(600) }) },
    { weight: 5, arbitrary: fc.record({ k: fc.constant('update' as const), pick: fc.nat(), rcpt: fc.nat(2), to: fc.constantFrom('deferred', 'delivered', 'failed' as const), at: fc.nat(1000) }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('remove' as const), pick: fc.nat() }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('hold' as const), pick: fc.nat(), at: fc.nat(1000) }) },
    { weight: 1, arbitrary: fc.record({ k: fc.constant('release' as const), pick: fc.nat() }) },
    { weight: 1, arbitrary: fc.constant({ k: 'reopen' as const }) },
  );

  it('agrees with an in-memory model across random operations and reopens (property)', async () => {
    await fc.assert(fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 40 }), async (ops) => {
      const dir = tmp();
      const o: SpoolOptions = { maxSegmentBytes: 2048, inlineBodyMaxBytes: 400 };
      let s = await open(dir, o);
      const model = new Map<string, { msg: QueuedMessage; body: Buffer }>();
      let seq = 0;
      try {
        for (const op of ops) {
          const ids = [...model.keys()];
          if (op.k === 'accept') {
            const b = body(op.size, seq++);
            const m = await s.accept(env(op.n, { receivedAt: seq }), b);
            model.set(m.id, { msg: m, body: b });
          } else if (op.k === 'update' && ids.length > 0) {
            const id = ids[op.pick % ids.length] as string;
            const cur = model.get(id) as { msg: QueuedMessage; body: Buffer };
            const r = cur.msg.recipients[op.rcpt % cur.msg.recipients.length];
            if (r === undefined) continue;
            const state: RecipientState = op.to === 'deferred' ? deferred(op.at) : op.to === 'delivered' ? delivered : failed;
            const final = r.state.state === 'delivered' || r.state.state === 'failed';
            const p = s.updateRecipients(id, [{ address: r.address, state }]);
            if (final) {
              await assert.rejects(p, InvalidTransitionError);
              continue;
            }
            const res = await p;
            const recipients: QueuedMessage['recipients'] = cur.msg.recipients.map((x) => (x.address === r.address ? { ...x, state } : x));
            const done = recipients.every((x) => x.state.state === 'delivered' || x.state.state === 'failed');
            assert.equal(res.completed, done);
            if (done) model.delete(id);
            else model.set(id, { msg: { ...cur.msg, recipients }, body: cur.body });
          } else if (op.k === 'remove' && ids.length > 0) {
            const id = ids[op.pick % ids.length] as string;
            await s.remove(id);
            model.delete(id);
          } else if ((op.k === 'hold' || op.k === 'release') && ids.length > 0) {
            const id = ids[op.pick % ids.length] as string;
            const cur = model.get(id) as { msg: QueuedMessage; body: Buffer };
            const { heldAt: _h, ...rest } = cur.msg;
            const msg: QueuedMessage = op.k === 'hold' ? { ...rest, heldAt: op.at } : rest;
            assert.deepEqual((op.k === 'hold' ? await s.hold(id, op.at) : await s.release(id)).message, msg);
            model.set(id, { msg, body: cur.body });
          } else if (op.k === 'reopen') {
            await s.close();
            s = await open(dir, o);
          }
          assert.equal(s.size, model.size);
          for (const [id, { msg }] of model) assert.deepEqual(await s.load(id), msg);
        }
        await s.close();
        s = await open(dir, o);
        assert.equal(s.size, model.size);
        for (const [id, { msg, body: b }] of model) {
          assert.deepEqual(await s.load(id), msg);
          assert.deepEqual(await readBody(s, id), b);
        }
        const want = [...model.values()].filter(({ msg }) => msg.heldAt === undefined).map(({ msg }) => {
          const pending = msg.recipients.some((r) => r.state.state === 'pending');
          const due = pending ? msg.receivedAt : Math.min(...msg.recipients.map((r) => (r.state.state === 'deferred' ? r.state.nextAttemptAt : Infinity)));
          return { id: msg.id, due };
        }).filter((x) => x.due <= 500).sort((a, b) => a.due - b.due || (a.id < b.id ? -1 : 1)).map((x) => x.id);
        assert.deepEqual(s.due(500, 1000), want);
      } finally {
        await s.close();
      }
    }), { numRuns: 40 });
  });
});

describe('Spool: segment size', () => {
  it('follows the volume: a sixteenth of it, between 64 KiB and 64 MiB', async () => {
    const { segmentSizeFor } = await import('./log.ts');
    assert.equal(segmentSizeFor(2 * 1024 * 1024), 128 * 1024);
    assert.equal(segmentSizeFor(256 * 1024), 64 * 1024);
    assert.equal(segmentSizeFor(100 * 1024 * 1024 * 1024), 64 * 1024 * 1024);
    assert.equal(segmentSizeFor(0), 64 * 1024 * 1024, 'unknown size: the ADR default');
  });
});
