import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  crc32, crc32Js, RECORD_PREFIX_SIZE, SEGMENT_HEADER_SIZE, decodeRecordHead, decodeRecordPrefix, decodeSegmentHeader, encodeRecord,
  encodeSegmentHeader, scanSegment, validateEnvelope, validateUpdate,
} from './record.ts';
import type { Envelope, RecipientState, RecipientUpdate, RecordHead } from './record.ts';
import { CorruptRecordError } from './errors.ts';
import { createIdGenerator } from './id.ts';

const newId = createIdGenerator();
const ms = fc.integer({ min: 0, max: 2 ** 45 });
const text = fc.string({ unit: 'binary', maxLength: 40 });

const stateArb: fc.Arbitrary<RecipientState> = fc.oneof(
  fc.constant({ state: 'pending' as const }),
  fc.record({
    state: fc.constant('deferred' as const), attempts: fc.nat(1000), nextAttemptAt: ms, lastReply: text,
    reason: fc.constantFrom('too_many_recipients', 'temporary_reply', 'connection', 'timeout', 'tls' as const),
  }, { noNullPrototype: true }),
  fc.record({ state: fc.constant('delivered' as const), at: ms, reply: text, attempts: fc.nat(1000) }, { noNullPrototype: true }),
  fc.record({ state: fc.constant('failed' as const), at: ms, reply: text, attempts: fc.nat(1000), reason: fc.constantFrom('permanent', 'expired' as const) }, { noNullPrototype: true }),
);

const envelopeArb: fc.Arbitrary<Envelope> = fc.record({
  from: text,
  recipients: fc.uniqueArray(
    fc.record({
      address: text,
      notify: fc.subarray(['NEVER', 'SUCCESS', 'FAILURE', 'DELAY'] as const),
      orcpt: text,
      delayNotified: fc.boolean(),
    }, { requiredKeys: ['address'], noNullPrototype: true }),
    { minLength: 1, maxLength: 6, selector: (r) => r.address },
  ),
  receivedAt: ms,
  clientAddress: text, heloName: text, authUser: text,
  ret: fc.constantFrom('FULL', 'HDRS' as const), envid: text, smtputf8: fc.boolean(),
  bodyType: fc.constantFrom('7BIT', '8BITMIME' as const),
}, { requiredKeys: ['from', 'recipients', 'receivedAt'], noNullPrototype: true });

const snapshotArb: fc.Arbitrary<RecipientUpdate[]> = fc.uniqueArray(
  fc.record({ address: text, state: stateArb, delayNotified: fc.boolean() }, { requiredKeys: ['address', 'state'], noNullPrototype: true }),
  { maxLength: 5, selector: (u) => u.address },
);

const headArb: fc.Arbitrary<{ head: RecordHead; body?: Uint8Array }> = fc.oneof(
  fc.record({ envelope: envelopeArb, snapshot: snapshotArb, ext: fc.option(fc.record({ len: fc.nat(), crc: fc.nat({ max: 0xffff_ffff }) }, { noNullPrototype: true }), { nil: undefined }), body: fc.uint8Array({ maxLength: 300 }) })
    .map(({ envelope, snapshot, ext, body }) => {
      const head: RecordHead = { type: 'message', id: newId(), envelope };
      if (snapshot.length > 0) head.snapshot = snapshot;
      if (ext !== undefined) head.external = ext;
      return ext === undefined ? { head, body } : { head };
    }),
  snapshotArb.map((snapshot) => ({ head: { type: 'state' as const, id: newId(), snapshot } })),
  fc.constant(null).map(() => ({ head: { type: 'done' as const, id: newId() } })),
);

function segment(records: Buffer[]): Buffer {
  return Buffer.concat([encodeSegmentHeader(7), ...records]);
}

describe('record codec', () => {
  it('round-trips every record type (property)', () => {
    fc.assert(fc.property(headArb, ({ head, body }) => {
      const buf = encodeRecord(head, body);
      const { prefix, head: back } = decodeRecordHead(buf);
      assert.deepEqual(back, head);
      assert.equal(prefix.length, buf.length);
      assert.equal(prefix.bodyLength, body?.length ?? 0);
      if (body !== undefined) {
        assert.deepEqual(buf.subarray(RECORD_PREFIX_SIZE + prefix.jsonLength), Buffer.from(body));
      }
    }), { numRuns: 300 });
  });

  it('round-trips envelopes through validateEnvelope, dropping undefined members', () => {
    fc.assert(fc.property(envelopeArb, (env) => {
      const v = validateEnvelope({ ...env, authUser: undefined });
      const rest: Envelope = { ...env };
      delete rest.authUser;
      assert.deepEqual(v, rest);
      const id = newId();
      const { head } = decodeRecordHead(encodeRecord({ type: 'message', id, envelope: v }, Buffer.alloc(0)));
      assert.deepEqual(head, { type: 'message', id, envelope: v });
    }), { numRuns: 200 });
  });

  it('refuses envelopes the state machine cannot address', () => {
    const ok: Envelope = { from: '', recipients: [{ address: 'a@x' }], receivedAt: 1 };
    assert.doesNotThrow(() => validateEnvelope(ok));
    assert.throws(() => validateEnvelope({ ...ok, recipients: [] }), TypeError);
    assert.throws(() => validateEnvelope({ ...ok, recipients: [{ address: 'a@x' }, { address: 'a@x' }] }), /duplicate recipient/);
    assert.throws(() => validateEnvelope({ ...ok, receivedAt: -1 }), TypeError);
    assert.throws(() => validateEnvelope({ ...ok, ret: 'ALL' } as unknown as Envelope), TypeError);
    assert.throws(() => validateUpdate({ address: 'a', state: { state: 'deferred' } } as unknown as RecipientUpdate), TypeError);
    assert.throws(() => validateUpdate({ address: 'a', state: { state: 'delivered', at: 1, reply: '250', attempts: -1 } }), TypeError);
  });

  it('detects damage anywhere in a record', () => {
    const buf = encodeRecord({ type: 'state', id: newId(), snapshot: [{ address: 'a', state: { state: 'pending' } }] });
    for (let i = 0; i < buf.length; i++) {
      const bad = Buffer.from(buf);
      bad[i] = (bad[i] as number) ^ 0x40;
      assert.throws(() => decodeRecordHead(bad), CorruptRecordError, `flip at byte ${i}`);
    }
    assert.equal(decodeRecordPrefix(buf.subarray(0, RECORD_PREFIX_SIZE - 1)), undefined);
  });

  it('the JS crc32 fallback matches zlib, chained too (property)', () => {
    assert.equal(crc32Js(Buffer.from('123456789')), 0xcbf43926); // the standard check value
    fc.assert(fc.property(fc.uint8Array({ maxLength: 2000 }), fc.uint8Array({ maxLength: 100 }), (a, b) => {
      assert.equal(crc32Js(a), crc32(a));
      assert.equal(crc32Js(b, crc32Js(a)), crc32(Buffer.concat([a, b])));
    }), { numRuns: 200 });
  });

  it('encodes and checks segment headers', () => {
    assert.equal(decodeSegmentHeader(encodeSegmentHeader(123456)), 123456);
    const bad = encodeSegmentHeader(5);
    bad[9] = 1;
    assert.throws(() => decodeSegmentHeader(bad), CorruptRecordError);
    assert.throws(() => decodeSegmentHeader(Buffer.alloc(3)), CorruptRecordError);
  });
});

describe('scanSegment', () => {
  const recs = (n: number): Buffer[] => Array.from({ length: n }, (_, i) => i % 3 === 0
    ? encodeRecord({ type: 'message', id: newId(), envelope: { from: 'f', recipients: [{ address: `r${i}` }], receivedAt: i } }, Buffer.alloc(50 + i, i))
    : encodeRecord({ type: 'state', id: newId(), snapshot: [] }));

  it('returns every record of an intact segment', () => {
    const r = recs(10);
    const seen: number[] = [];
    const scan = scanSegment(segment(r), (x) => seen.push(x.offset));
    assert.equal(seen.length, 10);
    assert.equal(scan.seq, 7);
    assert.equal(scan.tornBytes, 0);
  });

  it('a segment cut at any byte yields exactly the records wholly before the cut (property)', () => {
    const r = recs(8);
    const seg = segment(r);
    const ends: number[] = [];
    let off = SEGMENT_HEADER_SIZE;
    for (const x of r) ends.push((off += x.length));
    fc.assert(fc.property(fc.integer({ min: SEGMENT_HEADER_SIZE, max: seg.length }), (cut) => {
      let n = 0;
      const scan = scanSegment(seg.subarray(0, cut), () => n++);
      assert.equal(n, ends.filter((e) => e <= cut).length);
      assert.equal(scan.validEnd + scan.tornBytes, cut);
    }), { numRuns: 400 });
  });

  it('stops at the first damaged record, even if later bytes look valid (torn batch)', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 7 }), fc.nat(), (victim, where) => {
      const r = recs(8);
      const v = r[victim] as Buffer;
      v[where % v.length] = (v[where % v.length] as number) ^ 0xff;
      let n = 0;
      const scan = scanSegment(segment(r), () => n++);
      assert.equal(n, victim);
      assert.ok(scan.tornBytes > 0);
    }), { numRuns: 200 });
  });

  it('treats zero-fill after the last record as torn, not as records', () => {
    let n = 0;
    const scan = scanSegment(Buffer.concat([segment(recs(2)), Buffer.alloc(4096)]), () => n++);
    assert.equal(n, 2);
    assert.equal(scan.tornBytes, 4096);
  });
});
