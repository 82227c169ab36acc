// The spool's on-disk record format: a PURE codec (bytes in, values out; no fs).
// Design and durability argument: docs/adr/0002-spool-format.md.
//
// The spool is a log of segment files. A segment starts with a 16-byte header:
//     0  'MRSPSEG1'                 magic + format version
//     8  u32 segment sequence number (little-endian, as is everything below)
//    12  u32 crc32(bytes 0..11)
// followed by records, back to back:
//     0  u32 'MRLG' magic
//     4  u8  type (1 message, 2 state, 3 done)   5 u8 flags (0)   6 u16 reserved (0)
//     8  u32 J   length of the JSON part
//    12  u32 B   length of the inline body (message records only, else 0)
//    16  u32 crc32(body)
//    20  u32 crc32(bytes 0..19, then the JSON)
//    24  J bytes of UTF-8 JSON
//  24+J  B bytes of body, exactly as received (after dot-unstuffing)
//
// JSON parts:
//   message  { id, env: Envelope, st?: Snapshot, ext?: { len, crc }, h? }  (ext: body in bodies/<id>)
//   state    { id, st: Snapshot, h? }  the full set of non-pending recipient states
//            h: ms epoch at which an administrator held the message (absent: not held). An
//            older reader drops the unknown key, so a downgrade releases held mail, never loses it.
//   done     { id }                   every recipient final, or purged: forget the message
// A Snapshot lists every recipient that is not plain pending: [{ a: address, s: state, d?: delayNotified }].
//
// A record is valid only if its magic, both crcs and its lengths check out. Records are
// acknowledged only after the fdatasync that follows them, so a crash can only leave
// unacknowledged bytes after the last valid record of a segment: the scanner stops there.

import * as zlib from 'node:zlib';
import { z } from 'zod';
import { CorruptRecordError } from './errors.ts';
import { isMessageId } from './id.ts';

/** Why a recipient was deferred; the scheduler uses it to pick the retry policy. */
export type DeferReason = 'too_many_recipients' | 'temporary_reply' | 'connection' | 'timeout' | 'tls';

/** Where one recipient stands. delivered/failed are final: the spool refuses to move them again. */
export type RecipientState =
  | { state: 'pending' }
  | { state: 'deferred'; attempts: number; nextAttemptAt: number /* ms epoch */; lastReply: string; reason: DeferReason }
  | { state: 'delivered'; at: number; reply: string; attempts: number }
  | { state: 'failed'; at: number; reply: string; attempts: number; reason: 'permanent' | 'expired' };

/** DSN NOTIFY values (RFC 3461 section 4.1). */
export type NotifyKeyword = 'NEVER' | 'SUCCESS' | 'FAILURE' | 'DELAY';

/** One recipient of a spooled message with its current delivery state. */
export interface SpoolRecipient {
  address: string;
  notify?: NotifyKeyword[];
  orcpt?: string;
  state: RecipientState;
  delayNotified?: boolean;
}

/** What inbound hands to the spool for one message. */
export interface Envelope {
  from: string; // '' = null reverse-path (bounces)
  recipients: Omit<SpoolRecipient, 'state'>[];
  receivedAt: number;
  clientAddress?: string;
  heloName?: string;
  authUser?: string;
  ret?: 'FULL' | 'HDRS';
  envid?: string;
  smtputf8?: boolean;
  bodyType?: '7BIT' | '8BITMIME';
  /** The message's Message-ID header, "<...>", for log lines (absent if it had none). */
  messageId?: string;
}

/** A message as stored: envelope, body size in bytes, and every recipient's current state. */
export interface QueuedMessage extends Envelope {
  id: string;
  size: number;
  recipients: SpoolRecipient[];
  /** Set while an administrator holds the message (`mailrelay queue hold`): when, in ms since the epoch. */
  heldAt?: number;
}

/** One recipient's new state, as passed to updateRecipients and stored in snapshots. */
export interface RecipientUpdate {
  address: string;
  state: RecipientState;
  /** Set once a DELAY DSN was sent for this recipient (RFC 3464), so it is not sent twice. */
  delayNotified?: boolean;
}

/** Where an external body lives: its length and crc32 (bodies above the inline limit). */
export interface ExternalBody {
  len: number;
  crc: number;
}

/** The decoded JSON part of a record. */
export type RecordHead =
  | { type: 'message'; id: string; envelope: Envelope; snapshot?: RecipientUpdate[]; external?: ExternalBody; held?: number }
  | { type: 'state'; id: string; snapshot: RecipientUpdate[]; held?: number }
  | { type: 'done'; id: string };

// ---- schemas -------------------------------------------------------------------------------

const msEpoch = z.number().int().nonnegative();
const attempts = z.number().int().nonnegative();
const deferReason = z.enum(['too_many_recipients', 'temporary_reply', 'connection', 'timeout', 'tls']);

/** Validates a RecipientState (updateRecipients input and the decoder). */
export const recipientStateSchema: z.ZodType<RecipientState> = z.discriminatedUnion('state', [
  z.object({ state: z.literal('pending') }),
  z.object({ state: z.literal('deferred'), attempts, nextAttemptAt: msEpoch, lastReply: z.string(), reason: deferReason }),
  z.object({ state: z.literal('delivered'), at: msEpoch, reply: z.string(), attempts }),
  z.object({ state: z.literal('failed'), at: msEpoch, reply: z.string(), attempts, reason: z.enum(['permanent', 'expired']) }),
]);

const envelopeRecipient = z.object({
  address: z.string(),
  notify: z.array(z.enum(['NEVER', 'SUCCESS', 'FAILURE', 'DELAY'])).optional(),
  orcpt: z.string().optional(),
  delayNotified: z.boolean().optional(),
});

/** Validates what inbound passes to accept(); unknown fields are dropped. */
export const envelopeSchema = z.object({
  from: z.string(),
  recipients: z.array(envelopeRecipient).min(1),
  receivedAt: msEpoch,
  clientAddress: z.string().optional(),
  heloName: z.string().optional(),
  authUser: z.string().optional(),
  ret: z.enum(['FULL', 'HDRS']).optional(),
  envid: z.string().optional(),
  smtputf8: z.boolean().optional(),
  bodyType: z.enum(['7BIT', '8BITMIME']).optional(),
  messageId: z.string().max(998).optional(),
}).superRefine((env, ctx) => {
  // Updates name recipients by address, so an address must be unique within a message.
  const seen = new Set<string>();
  for (const r of env.recipients) {
    if (seen.has(r.address)) ctx.addIssue({ code: 'custom', message: `duplicate recipient ${JSON.stringify(r.address)}` });
    seen.add(r.address);
  }
});

const messageId = z.string().refine(isMessageId, 'not a message id');
const snapshotSchema = z.array(z.object({ a: z.string(), s: recipientStateSchema, d: z.boolean().optional() }));
const u32 = z.number().int().nonnegative().max(0xffff_ffff);
const messageJson = z.object({
  id: messageId, env: envelopeSchema, st: snapshotSchema.optional(),
  ext: z.object({ len: z.number().int().nonnegative(), crc: u32 }).optional(),
  h: msEpoch.optional(),
});
const stateJson = z.object({ id: messageId, st: snapshotSchema, h: msEpoch.optional() });
const doneJson = z.object({ id: messageId });

// ---- checksums -----------------------------------------------------------------------------

let table: Uint32Array | undefined;

/** CRC-32 (IEEE) in plain JS: the fallback for Node < 20.15, which lacks zlib.crc32. */
export function crc32Js(data: Uint8Array, previous = 0): number {
  if (table === undefined) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let c = (previous ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) c = (table[(c ^ (data[i] as number)) & 0xff] as number) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// zlib.crc32 is native (and far faster) where it exists; the namespace import keeps this
// module loadable on older Node 20 releases, where a named import would fail to link.
const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;

/** CRC-32 (IEEE), chainable: crc32(b, crc32(a)) === crc32(a ++ b). */
export const crc32: (data: Uint8Array, previous?: number) => number = nativeCrc32 === undefined
  ? crc32Js
  : (data, previous = 0) => nativeCrc32(data, previous);

// ---- envelope ------------------------------------------------------------------------------

/** Validates an envelope from inbound; throws TypeError listing what is wrong. */
export function validateEnvelope(input: Envelope): Envelope {
  const r = envelopeSchema.safeParse(input);
  if (!r.success) throw new TypeError(`spool: invalid envelope: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return stripUndefined<Envelope>(r.data);
}

const updateSchema = z.object({ address: z.string(), state: recipientStateSchema, delayNotified: z.boolean().optional() });

/** Validates one recipient update from the delivery engine; throws TypeError. */
export function validateUpdate(u: RecipientUpdate): RecipientUpdate {
  const r = updateSchema.safeParse(u);
  if (!r.success) throw new TypeError(`spool: invalid recipient update: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return stripUndefined<RecipientUpdate>(r.data);
}

// ---- segment header ------------------------------------------------------------------------

/** Size of the header at the start of every segment file. */
export const SEGMENT_HEADER_SIZE = 16;
const SEGMENT_MAGIC = Buffer.from('MRSPSEG1', 'latin1');

/** Encodes a segment header. */
export function encodeSegmentHeader(seq: number): Buffer {
  const b = Buffer.alloc(SEGMENT_HEADER_SIZE);
  SEGMENT_MAGIC.copy(b, 0);
  b.writeUInt32LE(seq, 8);
  b.writeUInt32LE(crc32(b.subarray(0, 12)), 12);
  return b;
}

/** Decodes a segment header; throws CorruptRecordError. */
export function decodeSegmentHeader(b: Uint8Array): number {
  if (b.length < SEGMENT_HEADER_SIZE) throw new CorruptRecordError('segment shorter than its header');
  const buf = Buffer.from(b.buffer, b.byteOffset, SEGMENT_HEADER_SIZE);
  if (!buf.subarray(0, 8).equals(SEGMENT_MAGIC)) throw new CorruptRecordError('bad segment magic');
  if (buf.readUInt32LE(12) !== crc32(buf.subarray(0, 12))) throw new CorruptRecordError('segment header checksum mismatch');
  return buf.readUInt32LE(8);
}

// ---- records -------------------------------------------------------------------------------

/** Size of the fixed prefix of every record. */
export const RECORD_PREFIX_SIZE = 24;
/** Largest JSON part or inline body the decoder will believe (guards against garbage lengths). */
export const MAX_PART_BYTES = 256 * 1024 * 1024;
const RECORD_MAGIC = 0x474c524d; // 'MRLG' little-endian
const TYPE_CODE = { message: 1, state: 2, done: 3 } as const;
const CODE_TYPE: Record<number, RecordHead['type'] | undefined> = { 1: 'message', 2: 'state', 3: 'done' };

function snapshotJson(s: readonly RecipientUpdate[]): unknown[] {
  return s.map((x) => (x.delayNotified === undefined ? { a: x.address, s: x.state } : { a: x.address, s: x.state, d: x.delayNotified }));
}

/** Encodes a record; body only for message records with an inline body. */
export function encodeRecord(head: RecordHead, body?: Uint8Array, bodyCrc?: number): Buffer {
  let json: unknown;
  switch (head.type) {
    case 'message':
      json = {
        id: head.id, env: head.envelope,
        ...(head.snapshot !== undefined && head.snapshot.length > 0 ? { st: snapshotJson(head.snapshot) } : {}),
        ...(head.external !== undefined ? { ext: head.external } : {}),
        ...(head.held !== undefined ? { h: head.held } : {}),
      };
      break;
    case 'state':
      json = { id: head.id, st: snapshotJson(head.snapshot), ...(head.held !== undefined ? { h: head.held } : {}) };
      break;
    case 'done':
      json = { id: head.id };
      break;
  }
  const jsonBytes = Buffer.from(JSON.stringify(json), 'utf8');
  const bodyLen = body?.length ?? 0;
  if (bodyLen > 0 && head.type !== 'message') throw new TypeError('spool: only message records carry a body');
  const out = Buffer.allocUnsafe(RECORD_PREFIX_SIZE + jsonBytes.length + bodyLen);
  out.writeUInt32LE(RECORD_MAGIC, 0);
  out.writeUInt8(TYPE_CODE[head.type], 4);
  out.writeUInt8(0, 5);
  out.writeUInt16LE(0, 6);
  out.writeUInt32LE(jsonBytes.length, 8);
  out.writeUInt32LE(bodyLen, 12);
  out.writeUInt32LE(body === undefined ? 0 : (bodyCrc ?? crc32(body)) >>> 0, 16);
  out.writeUInt32LE(crc32(jsonBytes, crc32(out.subarray(0, 20))), 20);
  jsonBytes.copy(out, RECORD_PREFIX_SIZE);
  if (body !== undefined) out.set(body, RECORD_PREFIX_SIZE + jsonBytes.length);
  return out;
}

/** The fixed fields of a record prefix. */
export interface RecordPrefix {
  type: RecordHead['type'];
  jsonLength: number;
  bodyLength: number;
  bodyCrc: number;
  /** Whole record length: prefix + JSON + body. */
  length: number;
}

/** Decodes a record prefix (does not check the JSON crc); undefined if it is not one. */
export function decodeRecordPrefix(buf: Uint8Array, pos = 0): RecordPrefix | undefined {
  if (pos + RECORD_PREFIX_SIZE > buf.length) return undefined;
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  if (b.readUInt32LE(pos) !== RECORD_MAGIC) return undefined;
  const type = CODE_TYPE[b.readUInt8(pos + 4)];
  const jsonLength = b.readUInt32LE(pos + 8);
  const bodyLength = b.readUInt32LE(pos + 12);
  if (type === undefined || jsonLength > MAX_PART_BYTES || bodyLength > MAX_PART_BYTES) return undefined;
  if (type !== 'message' && bodyLength !== 0) return undefined;
  return { type, jsonLength, bodyLength, bodyCrc: b.readUInt32LE(pos + 16), length: RECORD_PREFIX_SIZE + jsonLength + bodyLength };
}

/**
 * Decodes the JSON part of the record at pos. buf must hold at least prefix + JSON.
 * Throws CorruptRecordError if the prefix, crc or schema is wrong.
 */
export function decodeRecordHead(buf: Uint8Array, pos = 0): { prefix: RecordPrefix; head: RecordHead } {
  const prefix = decodeRecordPrefix(buf, pos);
  if (prefix === undefined) throw new CorruptRecordError('not a record');
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  const jsonEnd = pos + RECORD_PREFIX_SIZE + prefix.jsonLength;
  if (jsonEnd > b.length) throw new CorruptRecordError('record truncated');
  const jsonBytes = b.subarray(pos + RECORD_PREFIX_SIZE, jsonEnd);
  if (crc32(jsonBytes, crc32(b.subarray(pos, pos + 20))) !== b.readUInt32LE(pos + 20)) throw new CorruptRecordError('record checksum mismatch');
  let json: unknown;
  try {
    json = JSON.parse(jsonBytes.toString('utf8'));
  } catch {
    throw new CorruptRecordError('record JSON does not parse');
  }
  return { prefix, head: parseHead(prefix.type, json) };
}

function parseHead(type: RecordHead['type'], json: unknown): RecordHead {
  const fail = (issues: z.core.$ZodIssue[]): never => {
    throw new CorruptRecordError(`${type} record: ${issues[0]?.path.join('.') ?? ''} ${issues[0]?.message ?? 'invalid'}`);
  };
  switch (type) {
    case 'message': {
      const r = messageJson.safeParse(json);
      if (!r.success) return fail(r.error.issues);
      const head: RecordHead = { type, id: r.data.id, envelope: stripUndefined<Envelope>(r.data.env) };
      if (r.data.st !== undefined) head.snapshot = fromSnapshotJson(r.data.st);
      if (r.data.ext !== undefined) head.external = { len: r.data.ext.len, crc: r.data.ext.crc };
      if (r.data.h !== undefined) head.held = r.data.h;
      return head;
    }
    case 'state': {
      const r = stateJson.safeParse(json);
      if (!r.success) return fail(r.error.issues);
      return r.data.h === undefined
        ? { type, id: r.data.id, snapshot: fromSnapshotJson(r.data.st) }
        : { type, id: r.data.id, snapshot: fromSnapshotJson(r.data.st), held: r.data.h };
    }
    case 'done': {
      const r = doneJson.safeParse(json);
      if (!r.success) return fail(r.error.issues);
      return { type, id: r.data.id };
    }
  }
}

function fromSnapshotJson(st: z.infer<typeof snapshotSchema>): RecipientUpdate[] {
  return st.map((x): RecipientUpdate => (x.d === undefined
    ? { address: x.a, state: stripUndefined<RecipientState>(x.s) }
    : { address: x.a, state: stripUndefined<RecipientState>(x.s), delayNotified: x.d }));
}

/** A valid record found by scanSegment. */
export interface ScannedRecord {
  /** Offset of the record in the segment. */
  offset: number;
  prefix: RecordPrefix;
  head: RecordHead;
}

/** What scanSegment found. */
export interface SegmentScan {
  seq: number;
  /** Offset just past the last valid record. */
  validEnd: number;
  /** Bytes after validEnd (a torn, unacknowledged batch cut by a crash). */
  tornBytes: number;
}

/**
 * Walks a whole segment, calling onRecord for every valid record in order, and stops at the
 * first invalid one (see the file comment for why nothing after it was ever acknowledged).
 * Verifies inline body crcs too, so a record whose body was torn is not believed.
 * Throws CorruptRecordError if the segment header itself is bad.
 */
export function scanSegment(seg: Uint8Array, onRecord: (r: ScannedRecord) => void): SegmentScan {
  const seq = decodeSegmentHeader(seg);
  let pos = SEGMENT_HEADER_SIZE;
  // Bounded: every iteration advances pos by a whole record or stops.
  while (pos < seg.length) {
    let decoded: { prefix: RecordPrefix; head: RecordHead };
    try {
      decoded = decodeRecordHead(seg, pos);
    } catch {
      break;
    }
    const { prefix, head } = decoded;
    if (pos + prefix.length > seg.length) break;
    if (prefix.bodyLength > 0) {
      const bodyAt = pos + RECORD_PREFIX_SIZE + prefix.jsonLength;
      if (crc32(seg.subarray(bodyAt, bodyAt + prefix.bodyLength)) !== prefix.bodyCrc) break;
    }
    onRecord({ offset: pos, prefix, head });
    pos += prefix.length;
  }
  return { seq, validEnd: pos, tornBytes: seg.length - pos };
}

// zod leaves absent optionals absent, but callers may pass explicit undefined members: drop
// them so that what is returned deep-equals what a later decode returns.
function stripUndefined<T>(v: unknown): T {
  if (Array.isArray(v)) return v.map((x) => stripUndefined<unknown>(x)) as T;
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = stripUndefined<unknown>(x);
    return out as T;
  }
  return v as T;
}
