// File I/O for the spool: segment files, external body files, body streams. All system calls
// go through SpoolFs so tests can inject faults at any step; byte layouts live in record.ts.

import * as nodefs from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { SEGMENT_HEADER_SIZE, crc32, encodeSegmentHeader } from './record.ts';
import { CorruptRecordError } from './errors.ts';

/** The system calls the spool uses, with numeric fds; nodeFs is the real one, tests wrap it. */
export interface SpoolFs {
  open(path: string, flags: number, mode?: number): Promise<number>;
  close(fd: number): Promise<void>;
  read(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  write(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  fdatasync(fd: number): Promise<void>;
  fsync(fd: number): Promise<void>;
  ftruncate(fd: number, length: number): Promise<void>;
  fstat(fd: number): Promise<{ size: number }>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  readdir(path: string): Promise<string[]>;
  /** mkdir -p */
  mkdir(path: string): Promise<void>;
  /** Space on the filesystem holding path: bytes available to unprivileged writers, and its size. */
  space(path: string): Promise<{ free: number; total: number }>;
}

function cb<T>(run: (done: (err: NodeJS.ErrnoException | null, v: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => run((err, v) => (err ? reject(err) : resolve(v))));
}
function cbVoid(run: (done: (err: NodeJS.ErrnoException | null) => void) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => run((err) => (err ? reject(err) : resolve())));
}

/**
 * mkdir -p, one component at a time. Node 20's own recursive mkdir loops forever where a
 * parent exists but refuses new entries with ENOENT (e.g. under /proc); this fails with
 * the errno of the first component that cannot be created, and its path.
 */
export async function mkdirp(path: string): Promise<void> {
  const abs = resolve(path);
  const one = (p: string) => cbVoid((d) => nodefs.mkdir(p, (e) => d(e)));
  const isDir = (p: string) => cb<nodefs.Stats>((d) => nodefs.stat(p, d)).then((st) => st.isDirectory(), () => false);
  try {
    await one(abs);
    return;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && await isDir(abs)) return;
    if (code !== 'ENOENT' || dirname(abs) === abs) throw e;
  }
  // Bounded: each level recurses on a strictly shorter path, and tries its own mkdir once more.
  await mkdirp(dirname(abs));
  try {
    await one(abs);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST' && await isDir(abs)) return;
    throw e;
  }
}

// The callback API with numeric fds: cheaper per call than fs/promises FileHandles.
/** The real file system. */
export const nodeFs: SpoolFs = {
  open: (path, flags, mode = 0o600) => cb((d) => nodefs.open(path, flags, mode, d)),
  close: (fd) => cbVoid((d) => nodefs.close(fd, d)),
  read: (fd, buffer, offset, length, position) => cb((d) => nodefs.read(fd, buffer, offset, length, position, d)),
  write: (fd, buffer, offset, length, position) => cb((d) => nodefs.write(fd, buffer, offset, length, position, d)),
  fdatasync: (fd) => cbVoid((d) => nodefs.fdatasync(fd, d)),
  fsync: (fd) => cbVoid((d) => nodefs.fsync(fd, d)),
  ftruncate: (fd, length) => cbVoid((d) => nodefs.ftruncate(fd, length, d)),
  fstat: (fd) => cb((d) => nodefs.fstat(fd, d)),
  rename: (from, to) => cbVoid((d) => nodefs.rename(from, to, d)),
  unlink: (path) => cbVoid((d) => nodefs.unlink(path, d)),
  readdir: (path) => cb<string[]>((d) => nodefs.readdir(path, d)),
  mkdir: mkdirp,
  space: (path) => cb<nodefs.StatsFs>((d) => nodefs.statfs(path, d)).then((st) => ({ free: st.bavail * st.bsize, total: st.blocks * st.bsize })),
};

const C = nodefs.constants;
/** open(2) flags the spool uses. */
export const FLAGS = {
  read: C.O_RDONLY,
  createExclusive: C.O_WRONLY | C.O_CREAT | C.O_EXCL,
  createSegment: C.O_RDWR | C.O_CREAT | C.O_EXCL,
  directory: C.O_RDONLY | (C.O_DIRECTORY ?? 0),
} as const;

function eio(syscall: string, message: string): Error {
  return Object.assign(new Error(message), { code: 'EIO', syscall });
}

/** Writes all of buf at position, looping over short writes. */
export async function writeAll(fs: SpoolFs, fd: number, buf: Uint8Array, position: number): Promise<void> {
  let off = 0;
  // Bounded: each iteration writes at least one byte or throws.
  while (off < buf.length) {
    const n = await fs.write(fd, buf, off, buf.length - off, position + off);
    if (n <= 0) throw eio('write', 'write returned 0 bytes');
    off += n;
  }
}

/** Reads up to buf.length bytes from position; returns how many were read (short only at EOF). */
export async function readAt(fs: SpoolFs, fd: number, buf: Uint8Array, position: number): Promise<number> {
  let off = 0;
  // Bounded: each iteration reads at least one byte or stops at EOF.
  while (off < buf.length) {
    const n = await fs.read(fd, buf, off, buf.length - off, position + off);
    if (n <= 0) break;
    off += n;
  }
  return off;
}

/** Reads a whole file from an open fd. */
export async function readWhole(fs: SpoolFs, fd: number): Promise<Buffer> {
  const { size } = await fs.fstat(fd);
  const buf = Buffer.allocUnsafe(size);
  return buf.subarray(0, await readAt(fs, fd, buf, 0));
}

/** Creates a segment file with its header, made durable if sync; returns its fd (read/write). */
export async function createSegment(fs: SpoolFs, path: string, seq: number, sync: boolean): Promise<number> {
  const fd = await fs.open(path, FLAGS.createSegment, 0o600);
  try {
    await writeAll(fs, fd, encodeSegmentHeader(seq), 0);
    if (sync) await fs.fdatasync(fd);
    return fd;
  } catch (e) {
    await fs.close(fd).catch(() => undefined);
    await fs.unlink(path).catch(() => undefined);
    throw e;
  }
}

/** Offset of the first record in a segment. */
export const FIRST_RECORD_OFFSET = SEGMENT_HEADER_SIZE;

// ---- bodies --------------------------------------------------------------------------------

/** A message body as accepted: whole, or streamed in chunks (a Readable is an AsyncIterable). */
export type BodySource = Uint8Array | AsyncIterable<Uint8Array | string>;

/** Wraps an error thrown by the caller's body source (not a storage error). */
export class SourceError extends Error {
  constructor(readonly original: unknown) {
    super('body source failed');
  }
}

/** Where stageBody put the body. */
export type StagedBody =
  | { kind: 'inline'; bytes: Uint8Array; crc: number }
  /** Written, fdatasynced and renamed to its final path; the directory is not yet fsynced. */
  | { kind: 'external'; length: number; crc: number };

/** Paths and policy for a body too big to go inline into the log. */
export interface ExternalTarget {
  tmpPath: string;
  finalPath: string;
  sync: boolean;
}

const STAGE_SIZE = 64 * 1024;

/**
 * Collects a body: up to inlineMax bytes in memory (it will be one log record); anything
 * bigger is streamed to its own file, never held whole in memory. Source errors are rethrown
 * wrapped in SourceError; on any failure no external file is left behind.
 */
export async function stageBody(fs: SpoolFs, body: BodySource, inlineMax: number, ext: ExternalTarget): Promise<StagedBody> {
  if (body instanceof Uint8Array) {
    const crc = crc32(body);
    if (body.length <= inlineMax) return { kind: 'inline', bytes: body, crc };
    await writeExternal(fs, ext, async (put) => put(body));
    return { kind: 'external', length: body.length, crc };
  }
  const chunks: Buffer[] = [];
  let length = 0;
  let crc = 0;
  const it = body[Symbol.asyncIterator]();
  const next = async (): Promise<Uint8Array | undefined> => {
    let r: IteratorResult<Uint8Array | string>;
    try {
      r = await it.next();
    } catch (e) {
      throw new SourceError(e);
    }
    if (r.done === true) return undefined;
    return typeof r.value === 'string' ? Buffer.from(r.value, 'utf8') : r.value;
  };
  let finished = false;
  try {
    // Bounded by the source's length.
    for (;;) {
      const chunk = await next();
      if (chunk === undefined) {
        finished = true;
        return { kind: 'inline', bytes: chunks.length === 1 ? chunks[0] as Buffer : Buffer.concat(chunks, length), crc };
      }
      crc = crc32(chunk, crc);
      length += chunk.length;
      chunks.push(Buffer.from(chunk)); // copy: the producer may reuse its buffer
      if (length > inlineMax) break;
    }
    await writeExternal(fs, ext, async (put) => {
      for (const c of chunks) await put(c);
      chunks.length = 0;
      // Bounded by the source's length.
      for (;;) {
        const chunk = await next();
        if (chunk === undefined) break;
        crc = crc32(chunk, crc);
        length += chunk.length;
        await put(chunk);
      }
    });
    finished = true;
    return { kind: 'external', length, crc };
  } finally {
    // Stop the source if we stopped early (a write failed); this destroys a Readable.
    if (!finished) await it.return?.().catch(() => undefined);
  }
}

// Writes an external body through a 64 KB staging buffer (sources often yield tiny chunks),
// fdatasyncs it and renames it into place; removes the temp file on failure.
async function writeExternal(fs: SpoolFs, ext: ExternalTarget, produce: (put: (b: Uint8Array) => Promise<void>) => Promise<void>): Promise<void> {
  let fd = await fs.open(ext.tmpPath, FLAGS.createExclusive, 0o600);
  const stage = Buffer.allocUnsafe(STAGE_SIZE);
  let used = 0;
  let pos = 0;
  try {
    await produce(async (src) => {
      if (used === 0 && src.length >= STAGE_SIZE) {
        await writeAll(fs, fd, src, pos);
        pos += src.length;
        return;
      }
      let off = 0;
      while (off < src.length) {
        const n = Math.min(STAGE_SIZE - used, src.length - off);
        stage.set(src.subarray(off, off + n), used);
        used += n;
        off += n;
        if (used === STAGE_SIZE) {
          await writeAll(fs, fd, stage, pos);
          pos += used;
          used = 0;
        }
      }
    });
    if (used > 0) await writeAll(fs, fd, stage.subarray(0, used), pos);
    if (ext.sync) await fs.fdatasync(fd);
    const closing = fd;
    fd = -1;
    await fs.close(closing);
    await fs.rename(ext.tmpPath, ext.finalPath);
  } catch (err) {
    if (fd >= 0) await fs.close(fd).catch(() => undefined);
    await fs.unlink(ext.tmpPath).catch(() => undefined);
    throw err;
  }
}

/** A byte range to stream, with what to do when the stream is done with it. */
export interface OpenedRange {
  fd: number;
  start: number;
  length: number;
  crc: number;
  /** Called exactly once when the stream ends or is destroyed. */
  release: () => Promise<void>;
}

/**
 * A Readable of exactly one byte range. It verifies the crc at the end and errors with
 * CorruptRecordError on mismatch, so a sender never completes a DATA transaction with damaged
 * content. open() runs lazily; its errors are passed through mapError.
 */
export function rangeStream(fs: SpoolFs, open: () => Promise<OpenedRange>, mapError: (e: unknown) => Error, chunkSize = 64 * 1024): Readable {
  let range: OpenedRange | undefined;
  let pos = 0;
  let end = 0;
  let crc = 0;
  // The read in flight, if any: release() must wait for it, or the fd could be closed (and
  // its number reused) under a pending read.
  let reading: Promise<void> | undefined;
  return new Readable({
    highWaterMark: chunkSize,
    construct(done) {
      open().then((r) => {
        range = r;
        pos = r.start;
        end = r.start + r.length;
        done();
      }, (e: unknown) => done(mapError(e)));
    },
    read() {
      const r = range;
      if (r === undefined) return;
      if (pos >= end) {
        if (crc !== r.crc) this.destroy(new CorruptRecordError('body checksum mismatch'));
        else this.push(null);
        return;
      }
      const buf = Buffer.allocUnsafe(Math.min(chunkSize, end - pos));
      reading = fs.read(r.fd, buf, 0, buf.length, pos).then((n) => {
        reading = undefined;
        if (this.destroyed) return;
        if (n <= 0) {
          this.destroy(new CorruptRecordError('body shorter than recorded'));
          return;
        }
        pos += n;
        const chunk = buf.subarray(0, n);
        crc = crc32(chunk, crc);
        this.push(chunk);
      }, (e: unknown) => {
        reading = undefined;
        this.destroy(mapError(e));
      });
    },
    destroy(err, done) {
      const r = range;
      range = undefined;
      if (r === undefined) {
        done(err);
        return;
      }
      const pending = reading ?? Promise.resolve();
      pending.then(() => r.release()).then(() => done(err), () => done(err));
    },
  });
}
