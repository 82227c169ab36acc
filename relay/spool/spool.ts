// The spool: durable storage for accepted messages and their recipients' delivery states.
//
// Durability rules (docs/adr/0002-spool-format.md):
// - accept resolves only after the message record (envelope + body) is in the segment log and
//   fdatasynced, shared with every other record in the same batch (log.ts). Bodies too big to
//   go inline are written to their own file first (fdatasync + rename + directory fsync).
// - updateRecipients resolves only after its state record (or 'done' record, when every
//   recipient became final) is durable in the same way. So a recipient recorded as delivered
//   is never handed out again after a crash.
// - Anything not acknowledged may be lost or torn on disk; recovery stops each segment at its
//   first invalid record and deletes temp and orphan body files, so none of it becomes visible.

import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { GroupCommitter } from './commit.ts';
import { FLAGS, SourceError, nodeFs, rangeStream, readWhole, stageBody } from './disk.ts';
import type { BodySource, OpenedRange, SpoolFs, StagedBody } from './disk.ts';
import { CorruptRecordError, MessageNotFoundError, SpoolError, toSpoolError } from './errors.ts';
import { createIdGenerator, isMessageId } from './id.ts';
import { SegmentLog, locOffset, locSeq, makeLoc, parseSegmentName, segmentName, segmentSizeFor } from './log.ts';
import type { LogStats, Segment } from './log.ts';
import { QueueIndex } from './queue-index.ts';
import type { IndexEntry, IndexStats } from './queue-index.ts';
import {
  RECORD_PREFIX_SIZE, decodeRecordHead, decodeRecordPrefix, encodeRecord, scanSegment, validateEnvelope, validateUpdate,
} from './record.ts';
import type { Envelope, ExternalBody, QueuedMessage, RecipientUpdate, RecordHead, RecordPrefix, SpoolRecipient } from './record.ts';
import { applyUpdates, restore, snapshotOf, summarize, summarizeSnapshot, withHold } from './state.ts';
import type { MessageKind, MessageSummary } from './state.ts';

/** The subset of a pino logger the spool uses. */
export interface SpoolLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Options for Spool.open. */
export interface SpoolOptions {
  /** fdatasync/fsync before acknowledging (default true); off gives up crash safety, for tests and benchmarks. */
  fsync?: boolean;
  /** Time source for message ids. */
  clock?: () => number;
  /** Wait up to this long for more records before a log write when idle (default 0: none). */
  groupCommitMaxDelayMs?: number;
  /** Most records per log write + fdatasync (default 4096); 1 disables group commit. */
  groupCommitMaxBatch?: number;
  /** Bodies up to this size go inline into the log; bigger ones get their own file (default 256 KiB). */
  inlineBodyMaxBytes?: number;
  /** Segment size at which the log starts a new segment (default: a sixteenth of the volume, 64 KiB to 64 MiB). */
  maxSegmentBytes?: number;
  /**
   * accept answers no_space once free space falls below this, so that state and done records,
   * which record deliveries already made, still fit. Default: 64 MiB or 5% of the filesystem,
   * whichever is smaller; 0 disables.
   */
  reserveBytes?: number;
  /**
   * Bytes of just-accepted inline bodies kept in memory, so the first delivery attempt reads
   * them from here instead of the log (default 16 MiB; 0 disables). Oldest out first; a
   * message's body leaves when the message completes.
   */
  freshBodyCacheBytes?: number;
  /** Where recovery findings and background failures (compaction, segment deletion) go. */
  log?: SpoolLogger;
  /** The file system; tests inject faults through it. */
  fs?: SpoolFs;
}

/** What updateRecipients and remove report back. */
export interface UpdateResult {
  /** The message with every recipient's state after the update. */
  message: QueuedMessage;
  /** True if the message is gone from the spool: every recipient is final, or it was removed. */
  completed: boolean;
}

/** stats(): the index counts plus log counters. */
export interface SpoolStats extends IndexStats {
  log: LogStats;
}

/** What recovery found when the spool was opened. */
export interface RecoveryReport {
  messages: number;
  segments: number;
  /** Unacknowledged bytes after the last valid record of a segment (a batch cut by a crash). */
  tornBytes: number;
  /** Segments moved to corrupt/ because their header was damaged. */
  quarantinedSegments: number;
  /** Body temp files and body files no message refers to (an accept that never resolved). */
  bodyFilesRemoved: number;
  unknownFiles: number;
}

type QueueItem =
  | { op: 'update'; updates: RecipientUpdate[]; resolve: (r: UpdateResult) => void; reject: (e: unknown) => void }
  | { op: 'remove'; resolve: (r: UpdateResult) => void; reject: (e: unknown) => void }
  | { op: 'hold'; heldAt: number | undefined; resolve: (r: UpdateResult) => void; reject: (e: unknown) => void }
  | { op: 'relocate'; seq: number; resolve: (r: UpdateResult) => void; reject: (e: unknown) => void };

/** A message's record head plus its current recipients, as read from the log. */
interface Current {
  prefix: RecordPrefix;
  head: Extract<RecordHead, { type: 'message' }>;
  recipients: SpoolRecipient[];
  /** When an administrator held the message; undefined when it is not held. */
  heldAt?: number;
}

/** One message as list() reports it: what the index knows, no disk read. */
export interface SpoolListEntry {
  id: string;
  /** Arrival, ms since the epoch. */
  receivedAt: number;
  state: Exclude<MessageKind, 'done'>;
  /** When the message next has work, ms since the epoch (Infinity while held). */
  dueAt: number;
}

const TMP_SUFFIX = '.tmp';
const FREE_CHECK_MS = 1000;
// While short of space, how stale a free-space figure may be before a refusal re-measures.
const SHORT_RECHECK_MS = 50;
const DEFAULT_RESERVE = 64 * 1024 * 1024;
// Directories open in this process: a second Spool on the same directory would interleave
// segments and corrupt both (across processes, the StatefulSet's RWO volume prevents it).
const openDirs = new Set<string>();
const HEAD_GUESS = 4096;
const RELOCATE_CONCURRENCY = 8;
// Decoded current state of the messages touched most recently (the scheduler's load() then
// updateRecipients() of the same message then costs no disk read). Bounded, so the per-message
// index stays the only thing that grows with the queue.
const CACHE_MAX = 2048;
const noopLog: SpoolLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** Durable on-disk queue of accepted messages, with a small in-memory index for scheduling. */
export class Spool {
  private readonly index = new QueueIndex();
  private readonly queues = new Map<string, QueueItem[]>();
  private readonly cache = new Map<string, Current>();
  /** Inline bodies of recent accepts, insertion order (oldest first), at most freshMax bytes in all. */
  private readonly fresh = new Map<string, Buffer>();
  private freshBytes = 0;
  private readonly freshMax: number;
  private readonly newId: () => string;
  private readonly fs: SpoolFs;
  private readonly sync: boolean;
  private readonly logger: SpoolLogger;
  private readonly inlineMax: number;
  private readonly log: SegmentLog;
  private readonly bodiesCommitter: GroupCommitter;
  private readonly logDir: string;
  private readonly bodiesDir: string;
  private readonly corruptDir: string;
  private logDirFd = -1;
  private bodiesDirFd = -1;
  private closed = false;
  private inflight = 0;
  private idleWaiters: Array<() => void> = [];
  private compacting: Promise<void> | undefined;
  private readonly reserveOption: number | undefined;
  private free = { bytes: Infinity, reserve: 0, checkedAt: -Infinity, writtenSince: 0 };
  /** What recovery found when this spool was opened. */
  readonly recovery: RecoveryReport = { messages: 0, segments: 0, tornBytes: 0, quarantinedSegments: 0, bodyFilesRemoved: 0, unknownFiles: 0 };

  private constructor(
    /** The spool's root directory. */
    readonly dir: string,
    options: SpoolOptions,
  ) {
    this.fs = options.fs ?? nodeFs;
    this.sync = options.fsync ?? true;
    this.logger = options.log ?? noopLog;
    this.inlineMax = options.inlineBodyMaxBytes ?? 256 * 1024;
    this.freshMax = Math.max(0, options.freshBodyCacheBytes ?? 16 * 1024 * 1024);
    this.reserveOption = options.reserveBytes === undefined ? undefined : Math.max(0, options.reserveBytes);
    this.newId = createIdGenerator(options.clock ?? Date.now);
    this.logDir = join(dir, 'log');
    this.bodiesDir = join(dir, 'bodies');
    this.corruptDir = join(dir, 'corrupt');
    this.log = new SegmentLog(this.fs, this.logDir, {
      sync: this.sync,
      maxSegmentBytes: options.maxSegmentBytes ?? segmentSizeFor(0),
      maxBatch: Math.max(1, Math.floor(options.groupCommitMaxBatch ?? 4096)),
      maxBatchBytes: 16 * 1024 * 1024,
      maxDelayMs: Math.max(0, options.groupCommitMaxDelayMs ?? 0),
      syncDir: () => this.fs.fsync(this.logDirFd),
      onError: (msg, err) => this.logger.error({ err }, msg),
    });
    this.bodiesCommitter = new GroupCommitter(() => this.fs.fsync(this.bodiesDirFd), {
      maxDelayMs: options.groupCommitMaxDelayMs ?? 0,
      maxBatch: options.groupCommitMaxBatch ?? 4096,
    });
  }

  /** Opens (creating if needed) the spool in dir and recovers its state from disk. */
  static async open(dir: string, options: SpoolOptions = {}): Promise<Spool> {
    const key = resolve(dir);
    if (openDirs.has(key)) throw new SpoolError('io', 'open', { detail: `${key} is already open in this process` });
    openDirs.add(key);
    const spool = new Spool(key, options);
    try {
      if (options.maxSegmentBytes === undefined) await spool.sizeSegments();
      await spool.recover();
    } catch (e) {
      openDirs.delete(key);
      await spool.log.close().catch(() => undefined);
      await spool.closeDirs();
      if (e instanceof CorruptRecordError) throw e;
      throw toSpoolError(e, 'open');
    }
    return spool;
  }

  /** Number of messages held. */
  get size(): number {
    return this.index.size;
  }

  /**
   * Stores a message durably and resolves with it once it would survive a crash. Rejects with
   * SpoolError (storage), TypeError (invalid envelope), or the body source's own error; after
   * any rejection no trace of the message is visible, now or after a restart.
   */
  async accept(envelope: Envelope, body: BodySource): Promise<QueuedMessage> {
    return this.track('accept', async () => {
      const env = validateEnvelope(envelope);
      await this.checkReserve();
      const id = this.newId();
      const bodyPath = join(this.bodiesDir, id);
      let staged: StagedBody;
      try {
        staged = await stageBody(this.fs, body, this.inlineMax, { tmpPath: bodyPath + TMP_SUFFIX, finalPath: bodyPath, sync: this.sync });
      } catch (e) {
        if (e instanceof SourceError) throw e.original;
        throw toSpoolError(e, 'accept');
      }
      let loc: number;
      let rec: Buffer;
      let external: ExternalBody | undefined;
      try {
        if (staged.kind === 'external') {
          if (this.sync) await this.bodiesCommitter.commit();
          external = { len: staged.length, crc: staged.crc };
        }
        rec = staged.kind === 'inline'
          ? encodeRecord({ type: 'message', id, envelope: env }, staged.bytes, staged.crc)
          : encodeRecord({ type: 'message', id, envelope: env, external });
        loc = await this.log.append(rec);
      } catch (e) {
        // Nothing refers to the body file; recovery would delete it too.
        if (staged.kind === 'external') await this.fs.unlink(bodyPath).catch(() => undefined);
        throw toSpoolError(e, 'accept');
      }
      const entry = this.index.set(id, env.receivedAt, 'queued', env.receivedAt) as IndexEntry;
      entry.msgLoc = loc; // the append's reference now belongs to the index
      entry.msgLen = rec.length;
      this.free.writtenSince += staged.kind === 'inline' ? staged.bytes.length : staged.length;
      const head: Current['head'] = external === undefined ? { type: 'message', id, envelope: env } : { type: 'message', id, envelope: env, external };
      const cur: Current = { prefix: decodeRecordPrefix(rec) as RecordPrefix, head, recipients: restore(env.recipients, undefined) };
      this.cachePut(id, cur);
      // The bytes just made durable: the first delivery attempt needs them again at once.
      if (staged.kind === 'inline') {
        // A Uint8Array body is the caller's and may change after we return; our own chunks are copies already.
        const b = staged.bytes;
        this.freshPut(id, body instanceof Uint8Array ? Buffer.from(b) : Buffer.from(b.buffer, b.byteOffset, b.length));
      }
      return toQueued(cur);
    });
  }

  /**
   * Records new recipient states durably, then resolves. Updates for one message that arrive
   * while one of its updates is being written are merged into its next record. When every
   * recipient is final the message is completed (removed) instead.
   * Rejects with MessageNotFoundError, InvalidTransitionError or TypeError (nothing written),
   * or SpoolError (the update may or may not have reached the disk).
   */
  updateRecipients(id: string, updates: ReadonlyArray<RecipientUpdate>): Promise<UpdateResult> {
    let copy: RecipientUpdate[];
    try {
      copy = updates.map(validateUpdate);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.enqueue(id, 'update', (resolve, reject) => ({ op: 'update', updates: copy, resolve, reject }));
  }

  /** Removes a message whatever its recipients' states (an operator's purge), durably. */
  remove(id: string): Promise<UpdateResult> {
    return this.enqueue(id, 'remove', (resolve, reject) => ({ op: 'remove', resolve, reject }));
  }

  /**
   * Holds a message (an administrator's `queue hold`): it stays spooled, is never due, and
   * survives restarts held (the flag is in every later record of the message), until release().
   */
  hold(id: string, at: number): Promise<UpdateResult> {
    return this.enqueue(id, 'hold', (resolve, reject) => ({ op: 'hold', heldAt: at, resolve, reject }));
  }

  /** Ends a hold: the message is due again by its recipients' own schedule. */
  release(id: string): Promise<UpdateResult> {
    return this.enqueue(id, 'release', (resolve, reject) => ({ op: 'hold', heldAt: undefined, resolve, reject }));
  }

  /** The scheduler bucket of a message (queued, deferred or held); undefined if it is not spooled. */
  stateOf(id: string): Exclude<MessageKind, 'done'> | undefined {
    return this.index.get(id)?.kind;
  }

  /** Every message the index holds, oldest arrival first (ties by id). */
  list(): SpoolListEntry[] {
    const out: SpoolListEntry[] = [];
    for (const e of this.index.entries()) out.push({ id: e.id, receivedAt: e.receivedAt, state: e.kind, dueAt: e.dueAt });
    return out.sort((a, b) => a.receivedAt - b.receivedAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Reads a message's envelope and every recipient's current state. */
  async load(id: string): Promise<QueuedMessage> {
    return this.track('load', async () => {
      const entry = this.index.get(id);
      if (entry === undefined) throw new MessageNotFoundError(id);
      const cur = await this.readCurrent(entry, 'load');
      return toQueued(cur);
    });
  }

  /** Streams exactly the body bytes; errors with MessageNotFoundError, SpoolError or CorruptRecordError. */
  openBody(id: string): Readable {
    const entry = this.index.get(id);
    const fresh = this.closed || entry === undefined ? undefined : this.fresh.get(id);
    // Written, checked and fdatasynced from this very buffer, so it equals what the log holds.
    if (fresh !== undefined) return Readable.from([fresh], { objectMode: false });
    if (this.closed || entry === undefined) {
      const err = this.closed ? new SpoolError('io', 'openBody', { detail: 'spool is closed' }) : new MessageNotFoundError(id);
      const r = new Readable({ read() { /* errors below */ } });
      process.nextTick(() => r.destroy(err));
      return r;
    }
    // Pin the segment now, while the entry's location is current.
    const seg = this.log.acquire(entry.msgLoc);
    const msgLoc = entry.msgLoc;
    const open = async (): Promise<OpenedRange> => {
      let released = false;
      const releaseSeg = async (): Promise<void> => {
        if (!released) {
          released = true;
          await this.log.release(seg);
        }
      };
      try {
        const { prefix, head } = await this.readHeadPinned(seg, msgLoc, id);
        if (head.external === undefined) {
          return { fd: seg.fd, start: locOffset(msgLoc) + RECORD_PREFIX_SIZE + prefix.jsonLength, length: prefix.bodyLength, crc: prefix.bodyCrc, release: releaseSeg };
        }
        await releaseSeg();
        const fd = await this.fs.open(join(this.bodiesDir, id), FLAGS.read);
        return { fd, start: 0, length: head.external.len, crc: head.external.crc, release: () => this.fs.close(fd) };
      } catch (e) {
        await releaseSeg();
        throw e;
      }
    };
    return rangeStream(this.fs, open, (e) => this.mapReadError(e, id, 'openBody'));
  }

  /** Ids due at or before now, earliest due first, at most limit, skipping exclude. */
  due(now: number, limit: number, exclude?: ReadonlySet<string>): string[] {
    return this.index.due(now, limit, exclude);
  }

  /** The earliest due time of any message (for the scheduler's sleep); undefined when empty. */
  nextDueAt(): number | undefined {
    return this.index.nextDueAt();
  }

  /** True if the spool holds the message. */
  has(id: string): boolean {
    return this.index.has(id);
  }

  /** Counts for metrics: messages, by bucket, oldest arrival, log counters. */
  stats(): SpoolStats {
    return { ...this.index.stats(), log: this.log.stats() };
  }

  /** Waits for in-flight operations, then closes every file. Later calls reject. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.inflight > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    await this.compacting;
    await this.bodiesCommitter.idle();
    await this.log.close();
    await this.closeDirs();
    this.fresh.clear();
    this.freshBytes = 0;
    openDirs.delete(this.dir);
  }

  // ---- internals ---------------------------------------------------------------------------

  private async track<T>(op: string, run: () => Promise<T>): Promise<T> {
    if (this.closed) throw new SpoolError('io', op, { detail: 'spool is closed' });
    this.inflight++;
    try {
      return await run();
    } finally {
      this.inflight--;
      if (this.inflight === 0 && this.idleWaiters.length > 0) {
        const w = this.idleWaiters;
        this.idleWaiters = [];
        for (const f of w) f();
      }
    }
  }

  // Segments sized to the volume (segmentSizeFor); the default stays if statfs fails.
  private async sizeSegments(): Promise<void> {
    try {
      const { total } = await this.fs.space(this.dir);
      this.log.maxSegmentBytes = segmentSizeFor(total);
    } catch {
      // the directory may not exist yet; recover() creates it and the default applies
    }
  }

  // Refuses new mail while free space is below the reserve. statfs runs at most once a second
  // (or sooner after a burst of writes), so this costs nothing per message. When the space
  // is short, the space of delivered mail is given back first (at most once per statfs):
  // without that, a small volume filled once stayed full until a restart (issue 13).
  private async checkReserve(): Promise<void> {
    if (this.reserveOption === 0) return;
    const f = this.free;
    await this.measureFree(false);
    // Short by the cached figure: it may be stale (deliveries free space too), so measure
    // again before refusing, then try giving back delivered mail's space. Both are cheap, and
    // only a refused accept pays for them.
    if (f.bytes - f.writtenSince < f.reserve && performance.now() - f.checkedAt > SHORT_RECHECK_MS) await this.measureFree(true);
    if (f.bytes - f.writtenSince < f.reserve && await this.giveBackSpace()) await this.measureFree(true);
    if (f.bytes - f.writtenSince < f.reserve) {
      throw new SpoolError('no_space', 'accept', { code: 'ENOSPC', detail: `free space ${f.bytes - f.writtenSince} bytes is below the ${f.reserve}-byte reserve kept for delivery records` });
    }
  }

  // statfs, if due (or forced); returns whether it ran.
  private async measureFree(force: boolean): Promise<boolean> {
    const now = performance.now();
    const f = this.free;
    if (!force && !(now - f.checkedAt > FREE_CHECK_MS || (f.reserve > 0 && f.writtenSince > f.reserve / 4))) return false;
    f.checkedAt = now;
    f.writtenSince = 0;
    try {
      const { free, total } = await this.fs.space(this.dir);
      f.bytes = free;
      f.reserve = this.reserveOption ?? Math.min(DEFAULT_RESERVE, Math.floor(total / 20));
    } catch (e) {
      f.bytes = Infinity; // cannot tell: let the writes themselves fail
      this.logger.warn({ err: e }, 'spool: statfs failed; free-space reserve not enforced');
    }
    return true;
  }

  // Frees what delivered mail still occupies: seals a mostly dead active segment, deletes
  // unreferenced segments, and lets compaction empty mostly dead old ones. Returns whether
  // anything was tried (then free space is worth measuring again).
  private async giveBackSpace(): Promise<boolean> {
    const before = this.log.stats().bytes;
    const retired = this.log.retireActive();
    await this.log.reclaim();
    this.maybeCompact();
    await this.compacting;
    const after = this.log.stats().bytes;
    if (retired || after < before) this.logger.info({ freedBytes: before - after, retiredActive: retired }, 'spool: space short, gave back the space of delivered mail');
    return retired || after < before;
  }

  private enqueue(
    id: string, op: string,
    make: (resolve: (r: UpdateResult) => void, reject: (e: unknown) => void) => QueueItem,
  ): Promise<UpdateResult> {
    return this.track(op, () => new Promise<UpdateResult>((resolve, reject) => {
      if (!isMessageId(id) || !this.index.has(id)) {
        reject(new MessageNotFoundError(id));
        return;
      }
      const item = make(resolve, reject);
      const q = this.queues.get(id);
      if (q !== undefined) {
        q.push(item); // picked up by the running drain for this id
        return;
      }
      const fresh: QueueItem[] = [item];
      this.queues.set(id, fresh);
      void this.drain(id, fresh);
    }));
  }

  // One writer per message at a time: each round reads the current state once, applies
  // everything queued so far, and makes it durable with one record (which then shares its
  // fdatasync with every other message's records in the same log batch).
  private async drain(id: string, q: QueueItem[]): Promise<void> {
    // Bounded: each round empties q; new items only arrive while a round's I/O is pending.
    while (q.length > 0) {
      const batch = q.splice(0);
      try {
        await this.applyBatch(id, batch);
      } catch (e) {
        for (const item of batch) item.reject(e);
      }
    }
    this.queues.delete(id);
  }

  private async applyBatch(id: string, batch: QueueItem[]): Promise<void> {
    const entry = this.index.get(id);
    if (entry === undefined) {
      for (const item of batch) item.reject(new MessageNotFoundError(id));
      return;
    }
    const cur = await this.readCurrent(entry, 'update');
    let recipients = cur.recipients;
    let heldAt = cur.heldAt;
    const accepted: QueueItem[] = [];
    let removeAll = false;
    let relocate = false;
    for (const item of batch) {
      if (item.op === 'remove') {
        removeAll = true;
      } else if (item.op === 'hold') {
        heldAt = item.heldAt;
      } else if (item.op === 'relocate') {
        // Only if the message still lives in the segment being emptied.
        if (locSeq(entry.msgLoc) === item.seq || (entry.stateLoc >= 0 && locSeq(entry.stateLoc) === item.seq)) relocate = true;
      } else {
        try {
          recipients = applyUpdates(recipients, item.updates, 'strict');
        } catch (e) {
          item.reject(e); // only this caller's updates are refused
          continue;
        }
      }
      accepted.push(item);
    }
    if (accepted.length === 0) return;
    const summary = withHold(summarize(recipients, entry.receivedAt), heldAt);
    const completed = removeAll || summary.kind === 'done';
    const changed = completed || heldAt !== cur.heldAt || accepted.some((i) => i.op === 'update' && i.updates.length > 0);
    const held = heldAt === undefined ? {} : { held: heldAt };
    let rec: Buffer | undefined;
    if (completed) {
      rec = encodeRecord({ type: 'done', id });
    } else if (relocate) {
      // A fresh message record carrying the current states supersedes both old records.
      const body = cur.head.external === undefined ? await this.readInlineBody(entry.msgLoc, cur.prefix) : undefined;
      rec = encodeRecord({ type: 'message', id, envelope: cur.head.envelope, snapshot: snapshotOf(recipients), ...(cur.head.external ? { external: cur.head.external } : {}), ...held },
        body, cur.prefix.bodyCrc);
    } else if (changed) {
      rec = encodeRecord({ type: 'state', id, snapshot: snapshotOf(recipients), ...held });
    }
    if (rec !== undefined) {
      let loc: number;
      try {
        loc = await this.log.append(rec);
      } catch (e) {
        const err = toSpoolError(e, 'update');
        for (const item of accepted) item.reject(err);
        return;
      }
      if (completed) {
        this.index.delete(id);
        this.cache.delete(id);
        this.freshDelete(id);
        this.log.unref(loc, rec.length); // a done record needs no reference: see log.ts on deletion order
        this.log.unref(entry.msgLoc, entry.msgLen);
        this.log.unref(entry.stateLoc, entry.stateLen);
        if (cur.head.external !== undefined) {
          // Not durable, and need not be: recovery deletes body files nobody refers to.
          await this.fs.unlink(join(this.bodiesDir, id)).catch((e: unknown) => this.logger.warn({ queueId: id, err: e }, 'spool: could not delete body file'));
        }
      } else if (relocate) {
        this.log.unref(entry.msgLoc, entry.msgLen);
        this.log.unref(entry.stateLoc, entry.stateLen);
        entry.msgLoc = loc;
        entry.msgLen = rec.length;
        entry.stateLoc = -1;
        entry.stateLen = 0;
        this.index.set(id, entry.receivedAt, summary.kind, summary.dueAt);
        this.cachePut(id, { ...decodeRecordHead(rec) as Pick<Current, 'prefix' | 'head'>, recipients, ...(heldAt === undefined ? {} : { heldAt }) });
      } else {
        this.log.unref(entry.stateLoc, entry.stateLen);
        entry.stateLoc = loc;
        entry.stateLen = rec.length;
        this.index.set(id, entry.receivedAt, summary.kind, summary.dueAt);
        this.cachePut(id, withHeld({ ...cur, recipients }, heldAt));
      }
    }
    const result: UpdateResult = { message: toQueued(withHeld({ ...cur, recipients }, heldAt)), completed };
    for (const item of accepted) item.resolve(result);
    if (rec !== undefined) this.maybeCompact();
  }

  // Reads the message record's head and the latest state record. Both segments are pinned
  // synchronously, before any await, so a concurrent update cannot get them deleted under us.
  private async readCurrent(entry: IndexEntry, op: string): Promise<Current> {
    const cached = this.cache.get(entry.id);
    if (cached !== undefined) {
      this.cachePut(entry.id, cached); // most recently used
      return cached;
    }
    const msgLoc = entry.msgLoc;
    const stateLoc = entry.stateLoc;
    const msgSeg = this.log.acquire(msgLoc);
    let stateSeg: Segment | undefined;
    try {
      stateSeg = stateLoc >= 0 ? this.log.acquire(stateLoc) : undefined;
      const { prefix, head } = await this.readHeadPinned(msgSeg, msgLoc, entry.id);
      let snapshot = head.snapshot;
      let heldAt = head.held;
      if (stateSeg !== undefined) {
        const st = await this.readRecordPinned(stateSeg, stateLoc);
        if (st.head.type !== 'state' || st.head.id !== entry.id) throw new CorruptRecordError(`state record at ${stateLoc} is not ${entry.id}'s`);
        snapshot = st.head.snapshot;
        heldAt = st.head.held;
      }
      const cur: Current = withHeld({ prefix, head, recipients: restore(head.envelope.recipients, snapshot) }, heldAt);
      // Only if nothing changed while we read: an update or relocation that finished meanwhile
      // has cached something newer, or moved the records.
      if (this.index.get(entry.id) === entry && entry.msgLoc === msgLoc && entry.stateLoc === stateLoc && !this.cache.has(entry.id)) {
        this.cachePut(entry.id, cur);
      }
      return cur;
    } catch (e) {
      throw this.mapReadError(e, entry.id, op);
    } finally {
      await this.log.release(msgSeg);
      if (stateSeg !== undefined) await this.log.release(stateSeg);
    }
  }

  private async readHeadPinned(seg: Segment, loc: number, id: string): Promise<{ prefix: RecordPrefix; head: Extract<RecordHead, { type: 'message' }> }> {
    const { prefix, head } = await this.readRecordPinned(seg, loc);
    if (head.type !== 'message' || head.id !== id) throw new CorruptRecordError(`record at ${loc} is not ${id}'s message`);
    return { prefix, head };
  }

  // Reads a record's prefix and JSON (not its body) from a pinned segment.
  private async readRecordPinned(seg: Segment, loc: number): Promise<{ prefix: RecordPrefix; head: RecordHead }> {
    const off = locOffset(loc);
    let buf = await this.readFrom(seg, off, HEAD_GUESS);
    const prefix = decodeRecordPrefix(buf);
    if (prefix === undefined) throw new CorruptRecordError(`no record at ${loc}`);
    const need = RECORD_PREFIX_SIZE + prefix.jsonLength;
    if (buf.length < need) buf = await this.readFrom(seg, off, need);
    return decodeRecordHead(buf);
  }

  private async readFrom(seg: Segment, offset: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(Math.min(length, Math.max(0, seg.size - offset)));
    let got = 0;
    // Bounded: each iteration reads at least one byte or stops.
    while (got < buf.length) {
      const n = await this.fs.read(seg.fd, buf, got, buf.length - got, offset + got);
      if (n <= 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  }

  private async readInlineBody(msgLoc: number, prefix: RecordPrefix): Promise<Buffer> {
    const seg = this.log.acquire(msgLoc);
    try {
      const body = await this.readFrom(seg, locOffset(msgLoc) + RECORD_PREFIX_SIZE + prefix.jsonLength, prefix.bodyLength);
      if (body.length !== prefix.bodyLength) throw new CorruptRecordError('inline body truncated');
      return body;
    } finally {
      await this.log.release(seg);
    }
  }

  private freshPut(id: string, body: Buffer): void {
    // A body worth a large share of the cache would flush everything else out for one message.
    if (body.length === 0 || body.length > this.freshMax / 4) return;
    this.fresh.set(id, body);
    this.freshBytes += body.length;
    for (const [old, b] of this.fresh) {
      if (this.freshBytes <= this.freshMax) break;
      this.fresh.delete(old);
      this.freshBytes -= b.length;
    }
  }

  private freshDelete(id: string): void {
    const b = this.fresh.get(id);
    if (b === undefined) return;
    this.fresh.delete(id);
    this.freshBytes -= b.length;
  }

  private cachePut(id: string, cur: Current): void {
    this.cache.delete(id);
    this.cache.set(id, cur);
    if (this.cache.size > CACHE_MAX) {
      for (const oldest of this.cache.keys()) {
        this.cache.delete(oldest);
        break;
      }
    }
  }

  private mapReadError(e: unknown, id: string, op: string): Error {
    if ((e as { code?: unknown } | null)?.code === 'ENOENT') return new MessageNotFoundError(id);
    if (e instanceof CorruptRecordError || e instanceof MessageNotFoundError || e instanceof SpoolError) return e;
    return toSpoolError(e, op);
  }

  // Space reclamation. Segments are deleted oldest-first once nothing refers to them; a
  // long-deferred message in an old segment would pin every newer segment, so when the oldest
  // segment is mostly dead, or the log as a whole is, its live messages are rewritten at the
  // head (relocated) and the segment is freed. In a pure backlog (everything live) nothing is
  // copied.
  private maybeCompact(): void {
    if (this.compacting !== undefined || this.closed) return;
    const oldest = this.log.oldestSealed();
    if (oldest === undefined || oldest.live === 0) return;
    let size = 0;
    let liveBytes = 0;
    for (const s of this.log.segments.values()) {
      size += s.size;
      liveBytes += s.liveBytes;
    }
    // Bytes, not records: a segment of big live bodies and many small dead state records is
    // mostly live, and copying it would cost space instead of freeing it.
    if (!(oldest.liveBytes * 2 < oldest.size || liveBytes * 2 < size)) return;
    // Relocation writes the live bytes before the segment can go: never start what the free
    // space cannot finish (it would fail half-way and take the reserve kept for delivery records).
    const free = this.free.bytes - this.free.writtenSince;
    if (free - oldest.liveBytes < this.free.reserve / 2) return;
    const seq = oldest.seq;
    this.compacting = this.relocateSegment(seq).then(() => true, (e: unknown) => {
      this.logger.error({ err: e, segment: seq }, 'spool: compaction failed');
      return false;
    }).then((ok) => {
      this.compacting = undefined;
      // Bounded: continue only while each pass frees the oldest segment.
      if (ok && this.log.oldestSealed()?.seq !== seq) this.maybeCompact();
    });
  }

  private async relocateSegment(seq: number): Promise<void> {
    const ids: string[] = [];
    for (const e of this.index.entries()) {
      if (locSeq(e.msgLoc) === seq || (e.stateLoc >= 0 && locSeq(e.stateLoc) === seq)) ids.push(e.id);
    }
    let next = 0;
    const worker = async (): Promise<void> => {
      // Bounded: each iteration takes one id.
      while (next < ids.length && !this.closed) {
        const id = ids[next++] as string;
        await this.enqueue(id, 'relocate', (resolve, reject) => ({ op: 'relocate', seq, resolve, reject }))
          .catch((e: unknown) => {
            if (!(e instanceof MessageNotFoundError)) throw e;
          });
      }
    };
    await Promise.all(Array.from({ length: Math.min(RELOCATE_CONCURRENCY, ids.length) }, worker));
    await this.log.reclaim();
    this.logger.info({ segment: seq, relocated: ids.length }, 'spool: compacted segment');
  }

  private async closeDirs(): Promise<void> {
    for (const fd of [this.logDirFd, this.bodiesDirFd]) if (fd >= 0) await this.fs.close(fd).catch(() => undefined);
    this.logDirFd = -1;
    this.bodiesDirFd = -1;
  }

  private async syncDirAt(path: string): Promise<void> {
    const fd = await this.fs.open(path, FLAGS.directory);
    try {
      await this.fs.fsync(fd);
    } finally {
      await this.fs.close(fd);
    }
  }

  private async recover(): Promise<void> {
    const fs = this.fs;
    const report = this.recovery;
    for (const d of [this.logDir, this.bodiesDir, this.corruptDir]) await fs.mkdir(d);
    // mkdir -p may just have created these: make their entries durable.
    if (this.sync) for (const d of [this.logDir, this.bodiesDir, this.corruptDir, this.dir, dirname(this.dir)]) await this.syncDirAt(d);
    this.logDirFd = await fs.open(this.logDir, FLAGS.directory);
    this.bodiesDirFd = await fs.open(this.bodiesDir, FLAGS.directory);

    const seqs: number[] = [];
    for (const name of await fs.readdir(this.logDir)) {
      const seq = parseSegmentName(name);
      if (seq !== undefined) {
        seqs.push(seq);
      } else {
        report.unknownFiles++;
        this.logger.warn({ file: name }, 'spool: ignoring unknown file in log directory');
      }
    }
    seqs.sort((a, b) => a - b);

    interface Live { msgLoc: number; stateLoc: number; msgLen: number; stateLen: number; receivedAt: number; count: number; summary: MessageSummary; external: boolean; heldAt: number | undefined }
    const live = new Map<string, Live>();
    let changedLogDir = false;
    for (const seq of seqs) {
      const path = join(this.logDir, segmentName(seq));
      const fd = await fs.open(path, FLAGS.read);
      let records = 0;
      let scan: ReturnType<typeof scanSegment>;
      let data: Buffer;
      try {
        data = await readWhole(fs, fd);
        scan = scanSegment(data, (r) => {
          records++;
          const loc = makeLoc(seq, r.offset);
          const h = r.head;
          if (h.type === 'message') {
            const count = h.envelope.recipients.length;
            live.set(h.id, { msgLoc: loc, stateLoc: -1, msgLen: r.prefix.length, stateLen: 0, receivedAt: h.envelope.receivedAt, count, summary: summarizeSnapshot(count, h.snapshot, h.envelope.receivedAt), external: h.external !== undefined, heldAt: h.held });
          } else if (h.type === 'state') {
            const x = live.get(h.id);
            if (x !== undefined) {
              x.stateLoc = loc;
              x.stateLen = r.prefix.length;
              x.summary = summarizeSnapshot(x.count, h.snapshot, x.receivedAt);
              x.heldAt = h.held;
            }
          } else {
            live.delete(h.id);
          }
        });
        if (scan.seq !== seq) throw new CorruptRecordError(`segment ${segmentName(seq)} says it is ${scan.seq}`);
      } catch (e) {
        await fs.close(fd).catch(() => undefined);
        if (!(e instanceof CorruptRecordError)) throw e;
        this.log.skipTo(seq);
        if (seq === seqs[seqs.length - 1] && records === 0) {
          // The newest segment with no valid header: its creation was cut short, and no record
          // is acknowledged before the header is durable.
          await fs.unlink(path);
        } else {
          // Timestamped: a later run may reuse this sequence number and quarantine it again.
          await fs.rename(path, join(this.corruptDir, `${segmentName(seq)}.${Date.now()}`));
          report.quarantinedSegments++;
          this.logger.error({ segment: seq, err: e }, 'spool: quarantined damaged segment');
        }
        changedLogDir = true;
        continue;
      }
      if (scan.tornBytes > 0) {
        report.tornBytes += scan.tornBytes;
        this.logger.warn({ segment: seq, tornBytes: scan.tornBytes }, 'spool: segment ends in an unacknowledged (torn) batch');
      }
      this.log.adopt(seq, fd, scan.validEnd, records);
    }
    for (const [id, x] of live) {
      const summary = withHold(x.summary, x.heldAt);
      const entry = this.index.set(id, x.receivedAt, summary.kind, summary.dueAt);
      if (entry === undefined) continue; // every recipient final: nothing left to do
      entry.msgLoc = x.msgLoc;
      entry.msgLen = x.msgLen;
      this.log.ref(x.msgLoc, x.msgLen);
      if (x.stateLoc >= 0) {
        entry.stateLoc = x.stateLoc;
        entry.stateLen = x.stateLen;
        this.log.ref(x.stateLoc, x.stateLen);
      }
    }
    let changedBodies = false;
    for (const name of await fs.readdir(this.bodiesDir)) {
      const keep = isMessageId(name) && live.get(name)?.external === true && this.index.has(name);
      if (keep) continue;
      // A temp file, or a body whose accept never resolved (or whose message is done).
      await fs.unlink(join(this.bodiesDir, name));
      report.bodyFilesRemoved++;
      changedBodies = true;
    }
    if (this.sync && changedLogDir) await fs.fsync(this.logDirFd);
    if (this.sync && changedBodies) await fs.fsync(this.bodiesDirFd);
    report.messages = this.index.size;
    report.segments = this.log.segments.size;
    await this.log.reclaim();
    if (report.tornBytes + report.quarantinedSegments + report.bodyFilesRemoved + report.unknownFiles > 0) {
      this.logger.info({ ...report }, 'spool: recovered');
    }
    this.maybeCompact();
  }
}

// A fresh copy: what callers get must not alias the cache. Written out by hand (every
// field of an envelope is a primitive except the recipients, their NOTIFY lists and
// states): structuredClone of this small object was 3% of a relay's CPU per message.
// A new nested field of Envelope or SpoolRecipient must be copied here too.
function toQueued(cur: Current): QueuedMessage {
  const size = cur.head.external?.len ?? cur.prefix.bodyLength;
  return { ...cur.head.envelope, id: cur.head.id, size, recipients: cur.recipients.map(copyRecipient), ...(cur.heldAt === undefined ? {} : { heldAt: cur.heldAt }) };
}

function copyRecipient(r: SpoolRecipient): SpoolRecipient {
  const c: SpoolRecipient = { ...r, state: { ...r.state } };
  if (r.notify) c.notify = [...r.notify];
  return c;
}

// cur with heldAt set, or without the key when not held (so copies deep-equal a fresh read).
function withHeld(cur: Current, heldAt: number | undefined): Current {
  const { heldAt: _old, ...rest } = cur;
  return heldAt === undefined ? rest : { ...rest, heldAt };
}
