// Test support: a SpoolFs that fails chosen system calls with chosen errnos, so tests can prove
// how the spool behaves when the disk fills up, turns read-only or fails mid-way. Not used in
// production code paths.

import { constants as fsConstants } from 'node:fs';
import { nodeFs } from '../../relay/spool/disk.ts';
import type { SpoolFs } from '../../relay/spool/disk.ts';

/** The calls a FaultRule can target. */
export type FsOp = keyof SpoolFs;

/** One injected failure. */
export interface FaultRule {
  op: FsOp;
  /** Only calls on a matching path (fd calls match the path the fd was opened with). */
  path?: RegExp;
  /** errno name thrown, e.g. 'ENOSPC'. */
  code: string;
  /** Let this many matching calls through first. */
  after?: number;
  /** Fail this many matching calls, then stop (default: forever). */
  times?: number;
  /** For write: really write half of the bytes first, like a disk filling up mid-write. */
  partial?: boolean;
}

/** Builds an Error the way node's fs does for a failed system call. */
export function errnoError(code: string, syscall: string, path?: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: injected failure, ${syscall}${path ? ` '${path}'` : ''}`), { code, syscall, path });
}

/** A SpoolFs that injects failures by rule and can redirect opens (e.g. to /dev/full). */
export class FaultFs implements SpoolFs {
  private rules: Array<FaultRule & { seen: number; fired: number }> = [];
  private readonly paths = new Map<number, string>();
  /** Calls made, by op (for asserting what the spool did). */
  readonly calls = new Map<FsOp, number>();
  /**
   * open() of a path matching `from` really opens `to` (without O_CREAT/O_EXCL), e.g. the
   * kernel's /dev/full, whose writes fail with a genuine ENOSPC.
   */
  redirect: { from: RegExp; to: string } | undefined;

  constructor(private readonly base: SpoolFs = nodeFs) {}

  /** Adds a failure rule. */
  fail(rule: FaultRule): this {
    this.rules.push({ ...rule, seen: 0, fired: 0 });
    return this;
  }

  /** Removes every rule (the disk is healthy again). */
  heal(): this {
    this.rules = [];
    this.redirect = undefined;
    return this;
  }

  private check(op: FsOp, path: string | undefined): FaultRule | undefined {
    this.calls.set(op, (this.calls.get(op) ?? 0) + 1);
    for (const r of this.rules) {
      if (r.op !== op || (r.path !== undefined && (path === undefined || !r.path.test(path)))) continue;
      if (r.times !== undefined && r.fired >= r.times) continue;
      r.seen++;
      if (r.seen <= (r.after ?? 0)) continue;
      r.fired++;
      return r;
    }
    return undefined;
  }

  private guard(op: FsOp, path: string | undefined): void {
    const r = this.check(op, path);
    if (r) throw errnoError(r.code, op, path);
  }

  /** See SpoolFs. */
  async open(path: string, flags: number, mode?: number): Promise<number> {
    this.guard('open', path);
    const redirected = this.redirect?.from.test(path) === true;
    const fd = redirected
      ? await this.base.open((this.redirect as { to: string }).to, flags & ~(fsConstants.O_CREAT | fsConstants.O_EXCL), mode)
      : await this.base.open(path, flags, mode);
    this.paths.set(fd, path);
    return fd;
  }
  /** See SpoolFs. */
  async close(fd: number): Promise<void> {
    const path = this.paths.get(fd);
    this.paths.delete(fd);
    const r = this.check('close', path);
    await this.base.close(fd);
    if (r) throw errnoError(r.code, 'close', path);
  }
  /** See SpoolFs. */
  async read(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    this.guard('read', this.paths.get(fd));
    return this.base.read(fd, buffer, offset, length, position);
  }
  /** See SpoolFs. */
  async write(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    const path = this.paths.get(fd);
    const r = this.check('write', path);
    if (r) {
      if (r.partial && length > 1) await this.base.write(fd, buffer, offset, Math.floor(length / 2), position);
      throw errnoError(r.code, 'write', path);
    }
    return this.base.write(fd, buffer, offset, length, position);
  }
  /** See SpoolFs. */
  async fdatasync(fd: number): Promise<void> {
    this.guard('fdatasync', this.paths.get(fd));
    return this.base.fdatasync(fd);
  }
  /** See SpoolFs. */
  async fsync(fd: number): Promise<void> {
    this.guard('fsync', this.paths.get(fd));
    return this.base.fsync(fd);
  }
  /** See SpoolFs. */
  async ftruncate(fd: number, length: number): Promise<void> {
    this.guard('ftruncate', this.paths.get(fd));
    return this.base.ftruncate(fd, length);
  }
  /** See SpoolFs. */
  async fstat(fd: number): Promise<{ size: number }> {
    this.guard('fstat', this.paths.get(fd));
    return this.base.fstat(fd);
  }
  /** See SpoolFs. */
  async rename(from: string, to: string): Promise<void> {
    this.guard('rename', to);
    return this.base.rename(from, to);
  }
  /** See SpoolFs. */
  async unlink(path: string): Promise<void> {
    this.guard('unlink', path);
    return this.base.unlink(path);
  }
  /** See SpoolFs. */
  async readdir(path: string): Promise<string[]> {
    this.guard('readdir', path);
    return this.base.readdir(path);
  }
  /** See SpoolFs. */
  async mkdir(path: string): Promise<void> {
    this.guard('mkdir', path);
    return this.base.mkdir(path);
  }
  /** If set, the free bytes space() reports instead of the real figure. */
  free: number | undefined;
  /** See SpoolFs. */
  async space(path: string): Promise<{ free: number; total: number }> {
    this.guard('space', path);
    const real = await this.base.space(path);
    return this.free === undefined ? real : { free: this.free, total: real.total };
  }
}
