// Disk failures from the real kernel, not from mocks: the spool must reject accept with the
// SpoolError kind inbound maps to a reply (no_space -> 452 4.3.1, others -> 451 4.3.0) and
// leave nothing visible, now or after a restart.
// - ENOSPC: writes to /dev/full fail with a genuine ENOSPC; the file layer is pointed at it
//   for the one file under test (the only injected part is which path is opened).
// - ENOTDIR: a spool path below a regular file.
// - EPERM: an immutable (chattr +i) directory refuses even root. Needs CAP_LINUX_IMMUTABLE.
// - ENOSPC/EROFS end to end: a 512 KiB tmpfs, filled up, then remounted read-only; and the
//   free-space reserve measured with a real statfs on it. Needs CAP_SYS_ADMIN.
// Tests run as root, where chmod does not stop writes, hence these. When the machine lacks
// the capability, the same assertions run against an injected errno instead (reported with
// t.diagnostic), so the test never silently skips.
import { after, describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Spool, SpoolError } from '../../relay/spool/index.ts';
import type { Envelope } from '../../relay/spool/index.ts';
import { FaultFs } from '../helpers/fault-fs.ts';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'spool-diskerr-'));
  dirs.push(d);
  return d;
}
const env: Envelope = { from: 'a@example.org', recipients: [{ address: 'b@example.com' }], receivedAt: 1 };
const isKind = (kind: string, code?: string) => (e: unknown): boolean => {
  assert.ok(e instanceof SpoolError, `expected SpoolError, got ${String(e)}`);
  assert.equal(e.kind, kind);
  if (code !== undefined) assert.equal(e.code, code);
  return true;
};

function tryRun(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Everything a restarted spool in dir would show. */
async function visibleAfterRestart(dir: string): Promise<{ ids: string[]; bodies: string[] }> {
  const s = await Spool.open(dir, { fsync: false, reserveBytes: 0 });
  try {
    return { ids: s.due(Number.MAX_SAFE_INTEGER, 1000).sort(), bodies: readdirSync(join(dir, 'bodies')) };
  } finally {
    await s.close();
  }
}

describe('spool on failing disks (real kernel errors)', () => {
  it('ENOSPC from /dev/full while creating a log segment: no_space, nothing visible', async () => {
    const dir = tmp();
    const fs = new FaultFs();
    fs.redirect = { from: /\.seg$/, to: '/dev/full' };
    const s = await Spool.open(dir, { fs, fsync: true });
    await assert.rejects(s.accept(env, Buffer.from('hello')), isKind('no_space', 'ENOSPC'));
    assert.equal(s.size, 0);
    fs.heal();
    const ok = await s.accept(env, Buffer.from('after the disk recovered'));
    await s.close();
    assert.deepEqual(await visibleAfterRestart(dir), { ids: [ok.id], bodies: [] });
  });

  it('ENOSPC from /dev/full while streaming a big body to its own file: no_space, no file left', async () => {
    const dir = tmp();
    const fs = new FaultFs();
    fs.redirect = { from: /bodies\/.*\.tmp$/, to: '/dev/full' };
    const s = await Spool.open(dir, { fs, fsync: true, inlineBodyMaxBytes: 1024 });
    async function* big(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 100; i++) yield Buffer.alloc(1000, i);
    }
    await assert.rejects(s.accept(env, big()), isKind('no_space', 'ENOSPC'));
    assert.equal(s.size, 0);
    await s.close();
    assert.deepEqual(await visibleAfterRestart(dir), { ids: [], bodies: [] });
  });

  it('ENOTDIR: a spool directory below a regular file fails to open with io', async () => {
    const dir = tmp();
    writeFileSync(join(dir, 'file'), 'not a directory');
    await assert.rejects(Spool.open(join(dir, 'file', 'spool')), isKind('io', 'ENOTDIR'));
  });

  it('EPERM: an immutable log directory refuses new segments: read_only, nothing visible', async (t: TestContext) => {
    const dir = tmp();
    const fs = new FaultFs();
    const s = await Spool.open(dir, { fs, fsync: true });
    const logDir = join(dir, 'log');
    const real = tryRun('chattr', ['+i', logDir]);
    if (!real) {
      t.diagnostic('chattr +i not permitted here: asserting against an injected EPERM instead');
      fs.fail({ op: 'open', path: /\.seg$/, code: 'EPERM' });
    }
    try {
      await assert.rejects(s.accept(env, Buffer.from('x')), isKind('read_only', 'EPERM'));
      assert.equal(s.size, 0);
    } finally {
      if (real) execFileSync('chattr', ['-i', logDir]);
      fs.heal();
    }
    const ok = await s.accept(env, Buffer.from('y'));
    await s.close();
    assert.deepEqual(await visibleAfterRestart(dir), { ids: [ok.id], bodies: [] });
  });

  it('a full, then read-only filesystem: no_space and read_only, only acknowledged mail after restart', async (t: TestContext) => {
    const base = tmp();
    const mnt = join(base, 'mnt');
    mkdirSync(mnt);
    const mounted = tryRun('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', mnt]);
    const fs = new FaultFs();
    if (!mounted) t.diagnostic('mount not permitted here: asserting against injected ENOSPC/EROFS instead');
    try {
      const dir = join(mnt, 'spool');
      // With a 1 MiB reserve a 512 KiB filesystem is "full" from the start: new mail is
      // refused (delivery records would still go in; see spool.test.ts).
      let s = await Spool.open(dir, { fs, fsync: true, reserveBytes: 1024 * 1024 });
      if (!mounted) fs.free = 400 * 1024;
      await assert.rejects(s.accept(env, Buffer.from('x')), isKind('no_space', 'ENOSPC'));
      await s.close();
      fs.free = undefined;
      // Without a reserve, fill it for real.
      s = await Spool.open(dir, { fs, fsync: true, inlineBodyMaxBytes: 16 * 1024, reserveBytes: 0 });
      const acked: string[] = [];
      const chunk = Buffer.alloc(20_000, 7);
      let full: unknown;
      // Bounded: 512 KiB fills after ~25 messages of 20 kB; 200 is the safety stop.
      for (let i = 0; i < 200 && full === undefined; i++) {
        if (!mounted && i === 10) fs.fail({ op: 'write', code: 'ENOSPC', partial: true });
        try {
          acked.push((await s.accept(env, chunk)).id);
        } catch (e) {
          full = e;
        }
      }
      isKind('no_space', 'ENOSPC')(full);
      assert.equal(s.size, acked.length);
      await s.close();
      fs.heal();
      if (mounted) {
        execFileSync('mount', ['-o', 'remount,ro', mnt]);
      }
      s = await Spool.open(dir, { fs, fsync: true, reserveBytes: 0 });
      assert.equal(s.size, acked.length, 'everything acknowledged before the disk filled is there');
      if (!mounted) fs.fail({ op: 'open', path: /\.seg$/, code: 'EROFS' });
      await assert.rejects(s.accept(env, Buffer.from('x')), isKind('read_only', 'EROFS'));
      await s.close();
      fs.heal();
      const seen = await visibleAfterRestart(dir);
      assert.deepEqual(seen.ids, [...acked].sort());
    } finally {
      if (mounted) execFileSync('umount', [mnt]);
    }
  });
});
