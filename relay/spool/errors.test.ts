import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SpoolError, kindForCode, toSpoolError } from './errors.ts';

describe('error mapping', () => {
  it('maps errno names to the kinds inbound answers with', () => {
    const table: Array<[string | undefined, string]> = [
      ['ENOSPC', 'no_space'], ['EDQUOT', 'no_space'],
      ['EROFS', 'read_only'], ['EACCES', 'read_only'], ['EPERM', 'read_only'],
      ['EIO', 'io'], ['ENOTDIR', 'io'], ['EMFILE', 'io'], ['EFBIG', 'io'], [undefined, 'io'],
    ];
    for (const [code, kind] of table) assert.equal(kindForCode(code), kind, String(code));
  });

  it('wraps system errors keeping code, syscall and cause', () => {
    const sys = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write', errno: -28 });
    const e = toSpoolError(sys, 'accept');
    assert.ok(e instanceof SpoolError);
    assert.equal(e.kind, 'no_space');
    assert.equal(e.code, 'ENOSPC');
    assert.equal(e.syscall, 'write');
    assert.equal(e.op, 'accept');
    assert.equal(e.cause, sys);
    assert.match(e.message, /accept.*no_space.*ENOSPC.*write/);
  });

  it('names the file the system call failed on, so a damaged spool says where', () => {
    const sys = Object.assign(new Error('EEXIST: file already exists, mkdir \'/spool/log\''), { code: 'EEXIST', syscall: 'mkdir', path: '/spool/log' });
    const e = toSpoolError(sys, 'open');
    assert.equal(e.path, '/spool/log');
    assert.equal(e.message, 'spool open failed: io (EEXIST in mkdir /spool/log)');
  });

  it('passes SpoolErrors through and classifies non-system errors as io', () => {
    const s = new SpoolError('read_only', 'update');
    assert.equal(toSpoolError(s, 'accept'), s);
    assert.equal(toSpoolError(new Error('boom'), 'accept').kind, 'io');
    assert.equal(toSpoolError('weird', 'accept').kind, 'io');
    assert.equal(toSpoolError(null, 'accept').kind, 'io');
  });
});
