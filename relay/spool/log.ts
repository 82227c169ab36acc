// The segment log with group commit: every durable change (accept, state update, completion)
// is one record appended to the active segment. Appends queue up; one writer takes the whole
// queue, writes it with a single write and makes it durable with a single fdatasync, then
// resolves every caller in the batch. While that fdatasync runs, the next batch accumulates,
// so under load batches grow by themselves and the cost per record falls; when idle, a lone
// caller pays one write + one fdatasync and waits for nobody.
//
// Space: each segment counts the live references the index holds into it (message records
// and latest state records), and their bytes, which decide when compaction pays off. Segments are deleted strictly oldest-first and only when
// unreferenced, so a 'done' record is never deleted while an older segment still holds the
// message record it cancels (deleting out of order could resurrect a delivered message).

import { join } from 'node:path';
import { FIRST_RECORD_OFFSET, createSegment, writeAll } from './disk.ts';
import type { SpoolFs } from './disk.ts';

/** Packs (segment sequence, byte offset) into one number: seq * 2^32 + offset. */
export function makeLoc(seq: number, offset: number): number {
  return seq * 0x1_0000_0000 + offset;
}
/** The segment sequence of a location. */
export function locSeq(loc: number): number {
  return Math.floor(loc / 0x1_0000_0000);
}
/** The byte offset of a location within its segment. */
export function locOffset(loc: number): number {
  return loc % 0x1_0000_0000;
}

/** File name of segment seq: 16 hex digits so that names sort like numbers. */
export function segmentName(seq: number): string {
  return `${seq.toString(16).padStart(16, '0')}.seg`;
}
/** The sequence number in a segment file name, or undefined if it is not one. */
export function parseSegmentName(name: string): number | undefined {
  return /^[0-9a-f]{16}\.seg$/.test(name) ? parseInt(name.slice(0, 16), 16) : undefined;
}

/** Largest segment: the ADR 0002 default, for volumes of 1 GiB and more. */
export const MAX_SEGMENT_BYTES = 64 * 1024 * 1024;
/** Smallest segment a volume size can ask for. */
export const MIN_SEGMENT_BYTES = 64 * 1024;

/**
 * The segment size for a volume of totalBytes: a sixteenth of it, between 64 KiB and
 * 64 MiB. Space comes back a whole segment at a time, so on a small volume a 64 MiB
 * segment would hold all of it (issue 13: a 2 MiB spool never freed its only segment).
 */
export function segmentSizeFor(totalBytes: number): number {
  if (!(totalBytes > 0)) return MAX_SEGMENT_BYTES;
  return Math.max(MIN_SEGMENT_BYTES, Math.min(MAX_SEGMENT_BYTES, Math.floor(totalBytes / 16)));
}

/** One segment file. */
export interface Segment {
  readonly seq: number;
  readonly path: string;
  fd: number;
  /** End of the last durable record. */
  size: number;
  /** References held by index entries (and by appends not yet claimed). */
  live: number;
  /** Records ever written to it. */
  records: number;
  /** Bytes of the records still referenced (the compaction policy: relocating them frees the rest). */
  liveBytes: number;
  /** Reads in progress; the fd is closed only when this drops to 0 after deletion. */
  readers: number;
  /** No more appends (full, failed, or recovered from a previous run). */
  sealed: boolean;
  deleted: boolean;
}

/** Tuning for the log. */
export interface SegmentLogOptions {
  sync: boolean;
  /** Start a new segment once the active one reaches this size. */
  maxSegmentBytes: number;
  /** Most records per write + fdatasync; 1 disables group commit (for comparison). */
  maxBatch: number;
  /** Most bytes per batch (a single larger record still goes alone). */
  maxBatchBytes: number;
  /** Wait this long for more records before writing when idle; 0 writes at once. */
  maxDelayMs: number;
  /** fsyncs the log directory (after creating or deleting a segment). */
  syncDir: () => Promise<void>;
  onError: (msg: string, err: unknown) => void;
}

/** Counters for benchmarks and metrics. */
export interface LogStats {
  /** write + fdatasync rounds. */
  batches: number;
  /** Records they made durable. */
  records: number;
  /** Largest batch. */
  maxBatch: number;
  segments: number;
  /** Sum of segment sizes in bytes. */
  bytes: number;
}

interface Pending {
  buf: Buffer;
  resolve: (loc: number) => void;
  reject: (e: unknown) => void;
}

/** Append-only, group-committed segment log. */
export class SegmentLog {
  /** Segments by sequence, oldest first (insertion order is ascending seq). */
  readonly segments = new Map<number, Segment>();
  private active: Segment | undefined;
  private nextSeq = 1;
  private readonly waiting: Pending[] = [];
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private idleWaiters: Array<() => void> = [];
  private reclaiming: Promise<void> | undefined;
  private reclaimAgain = false;
  private closed = false;
  private readonly counters = { batches: 0, records: 0, maxBatch: 0 };

  constructor(private readonly fs: SpoolFs, private readonly dir: string, private readonly opts: SegmentLogOptions) {}

  /** The size at which the active segment is sealed and a new one started. */
  get maxSegmentBytes(): number {
    return this.opts.maxSegmentBytes;
  }

  set maxSegmentBytes(bytes: number) {
    this.opts.maxSegmentBytes = bytes;
  }

  /**
   * Seals the active segment early if it is mostly dead (every record delivered, or fewer
   * than half still referenced), so reclaim() can delete it or compaction can empty it;
   * the next append starts a fresh segment. For when space is short: otherwise the active
   * segment keeps the space of delivered mail until it fills up. Returns whether it sealed.
   */
  retireActive(): boolean {
    const seg = this.active;
    if (seg === undefined || seg.records === 0 || !(seg.live === 0 || seg.liveBytes * 2 < seg.size)) return false;
    this.seal(seg);
    return true;
  }

  /** Registers a segment found by recovery (sealed: a new run never appends to old segments). */
  adopt(seq: number, fd: number, size: number, records: number): Segment {
    const seg: Segment = { seq, path: join(this.dir, segmentName(seq)), fd, size, live: 0, records, liveBytes: 0, readers: 0, sealed: true, deleted: false };
    this.segments.set(seq, seg);
    if (seq >= this.nextSeq) this.nextSeq = seq + 1;
    return seg;
  }

  /** Reserves sequence numbers up to seq (e.g. for segments quarantined during recovery). */
  skipTo(seq: number): void {
    if (seq >= this.nextSeq) this.nextSeq = seq + 1;
  }

  /**
   * Appends one record; resolves with its location once it is durable. The location comes
   * with one live reference that the caller owns (give it back with unref).
   */
  append(buf: Buffer): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.waiting.push({ buf, resolve, reject });
      this.kick();
    });
  }

  /** Adds a live reference to the record of `bytes` at loc. */
  ref(loc: number, bytes: number): void {
    const seg = this.segments.get(locSeq(loc));
    if (seg === undefined || seg.deleted) throw new Error(`spool: reference to missing segment ${locSeq(loc)}`);
    seg.live++;
    seg.liveBytes += bytes;
  }

  /** Drops a live reference to the record of `bytes` at loc; unreferenced segments at the old end are then deleted. */
  unref(loc: number, bytes: number): void {
    if (loc < 0) return;
    const seg = this.segments.get(locSeq(loc));
    if (seg === undefined) return;
    seg.live--;
    seg.liveBytes -= bytes;
    if (seg.live === 0 && seg !== this.active) this.scheduleReclaim();
  }

  /** Pins the segment holding loc for a read; pair with release(). */
  acquire(loc: number): Segment {
    const seg = this.segments.get(locSeq(loc));
    if (seg === undefined || seg.deleted) throw new Error(`spool: read from missing segment ${locSeq(loc)}`);
    seg.readers++;
    return seg;
  }

  /** Ends a read begun with acquire(). */
  async release(seg: Segment): Promise<void> {
    seg.readers--;
    if (seg.readers === 0 && (seg.deleted || this.closed) && seg.fd >= 0) {
      const fd = seg.fd;
      seg.fd = -1;
      await this.fs.close(fd);
    }
  }

  /** The oldest segment that is not the active one, if any. */
  oldestSealed(): Segment | undefined {
    for (const seg of this.segments.values()) return seg === this.active ? undefined : seg;
    return undefined;
  }

  /** Counters. */
  stats(): LogStats {
    let bytes = 0;
    for (const s of this.segments.values()) bytes += s.size;
    return { ...this.counters, segments: this.segments.size, bytes };
  }

  /** Deletes unreferenced segments from the old end (one directory fsync per deletion). */
  reclaim(): Promise<void> {
    if (this.reclaiming !== undefined) {
      // A pass is running and may already have passed the segment that just became free.
      this.reclaimAgain = true;
      return this.reclaiming;
    }
    const run = async (): Promise<void> => {
      // Bounded: another pass only if something became free during this one.
      do {
        this.reclaimAgain = false;
        await this.reclaimLoop();
      } while (this.reclaimAgain && !this.closed);
    };
    this.reclaiming = run().finally(() => {
      this.reclaiming = undefined;
    });
    return this.reclaiming;
  }

  /** Resolves when no batch is queued or being written. */
  idle(): Promise<void> {
    if (!this.running && this.waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Closes every segment fd (after idle()); fds still being read close on their last release. */
  async close(): Promise<void> {
    await this.idle();
    await this.reclaiming;
    this.closed = true;
    for (const seg of this.segments.values()) {
      if (seg.fd >= 0 && seg.readers === 0) {
        const fd = seg.fd;
        seg.fd = -1;
        await this.fs.close(fd).catch(() => undefined);
      }
    }
  }

  private scheduleReclaim(): void {
    void this.reclaim().catch((e: unknown) => this.opts.onError('spool: deleting an old segment failed', e));
  }

  private async reclaimLoop(): Promise<void> {
    // Bounded by the number of segments.
    for (const seg of [...this.segments.values()]) {
      if (seg === this.active || seg.live > 0) return;
      // ENOENT: an earlier pass unlinked it but failed before its directory fsync.
      await this.fs.unlink(seg.path).catch((e: unknown) => {
        if ((e as { code?: unknown }).code !== 'ENOENT') throw e;
      });
      // Durable before the next deletion, so the segments that survive a crash are always a
      // suffix of the log (see the file comment).
      if (this.opts.sync) await this.opts.syncDir();
      seg.deleted = true;
      this.segments.delete(seg.seq);
      if (seg.readers === 0 && seg.fd >= 0) {
        const fd = seg.fd;
        seg.fd = -1;
        await this.fs.close(fd);
      }
    }
  }

  private kick(): void {
    if (this.running || this.waiting.length === 0) return;
    if (this.opts.maxDelayMs > 0 && this.waiting.length < this.opts.maxBatch) {
      this.timer ??= setTimeout(() => {
        this.timer = undefined;
        this.start();
      }, this.opts.maxDelayMs);
      return;
    }
    this.start();
  }

  private start(): void {
    if (this.running || this.waiting.length === 0) return;
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.running = true;
    let n = 0;
    let bytes = 0;
    for (const p of this.waiting) {
      if (n >= this.opts.maxBatch || (n > 0 && bytes + p.buf.length > this.opts.maxBatchBytes)) break;
      n++;
      bytes += p.buf.length;
    }
    const batch = this.waiting.splice(0, n);
    void this.writeBatch(batch, bytes).finally(() => {
      this.running = false;
      if (this.waiting.length > 0) {
        this.start(); // whoever arrived during this batch has waited already
      } else {
        const w = this.idleWaiters;
        this.idleWaiters = [];
        for (const f of w) f();
      }
    });
  }

  private async writeBatch(batch: Pending[], bytes: number): Promise<void> {
    let seg: Segment;
    try {
      seg = await this.activeFor(bytes);
    } catch (e) {
      for (const p of batch) p.reject(e);
      return;
    }
    const base = seg.size;
    const data = batch.length === 1 ? (batch[0] as Pending).buf : Buffer.concat(batch.map((p) => p.buf), bytes);
    try {
      await writeAll(this.fs, seg.fd, data, base);
    } catch (e) {
      // A short write (ENOSPC...) may have left part of the batch: cut it off so the next
      // batch does not land after garbage; if even that fails, retire the segment.
      await this.fs.ftruncate(seg.fd, base).catch((te: unknown) => {
        this.opts.onError('spool: could not cut a failed write off the segment; sealing it', te);
        this.seal(seg);
      });
      for (const p of batch) p.reject(e);
      return;
    }
    if (this.opts.sync) {
      try {
        await this.fs.fdatasync(seg.fd);
      } catch (e) {
        // After a failed fdatasync the kernel may have dropped the dirty pages: what is on disk
        // is unknown, and a later successful fdatasync would prove nothing about them. Never
        // append to this segment again (a hole before acknowledged records would hide them
        // from recovery); try to remove the unacknowledged batch.
        this.seal(seg);
        await this.fs.ftruncate(seg.fd, base).catch(() => undefined);
        for (const p of batch) p.reject(e);
        return;
      }
    }
    seg.size = base + data.length;
    seg.records += batch.length;
    seg.live += batch.length; // one reference per record, owned by its appender
    seg.liveBytes += data.length;
    this.counters.batches++;
    this.counters.records += batch.length;
    if (batch.length > this.counters.maxBatch) this.counters.maxBatch = batch.length;
    let off = base;
    for (const p of batch) {
      p.resolve(makeLoc(seg.seq, off));
      off += p.buf.length;
    }
  }

  private seal(seg: Segment): void {
    seg.sealed = true;
    if (this.active === seg) this.active = undefined;
    if (seg.live === 0) this.scheduleReclaim();
  }

  // The active segment, rotating to a fresh one when it is full (or missing or sealed).
  private async activeFor(bytes: number): Promise<Segment> {
    const cur = this.active;
    if (cur !== undefined && !cur.sealed && (cur.size === FIRST_RECORD_OFFSET || cur.size + bytes <= this.opts.maxSegmentBytes)) return cur;
    if (cur !== undefined) this.seal(cur);
    const seq = this.nextSeq++;
    const path = join(this.dir, segmentName(seq));
    const fd = await createSegment(this.fs, path, seq, this.opts.sync);
    // The new file's directory entry must be durable before any record in it is acknowledged.
    if (this.opts.sync) {
      try {
        await this.opts.syncDir();
      } catch (e) {
        await this.fs.close(fd).catch(() => undefined);
        await this.fs.unlink(path).catch(() => undefined);
        throw e;
      }
    }
    const seg: Segment = { seq, path, fd, size: FIRST_RECORD_OFFSET, live: 0, records: 0, liveBytes: 0, readers: 0, sealed: false, deleted: false };
    this.segments.set(seq, seg);
    this.active = seg;
    return seg;
  }
}
