import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { loadUserStore, parseUsersFile } from './users.ts';
import type { PasswordVerifier } from './users.ts';

// Cost 4 keeps the tests fast; the format is the same as production's cost 10-12.
const hash = (pw: string): string => bcrypt.hashSync(pw, 4);

test('parseUsersFile: user:hash lines, comments, blanks, CRLF; malformed and duplicate lines reported by number', () => {
  const text = [
    '# relay users',
    '',
    'alice:$2b$04$aaaa',
    '  bob : $2y$04$bbbb  \r',
    'no-colon-here',
    ':$2b$04$nouser',
    'carol:',
    'alice:$2b$04$again',
  ].join('\n');
  const { users, problems } = parseUsersFile(text);
  assert.deepEqual([...users], [['alice', '$2b$04$again'], ['bob', '$2y$04$bbbb']]);
  assert.deepEqual(problems.map((p) => p.line), [5, 6, 7, 8]);
  assert.ok(problems.every((p) => !p.message.includes('$2')), 'problems never quote a hash');
});

test('verify: right password ok, wrong password and unknown user bad; $2a$/$2b$/$2y$ all bcrypt', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'inbound-users-'));
  try {
    const file = join(dir, 'users');
    const h = hash('s3cret');
    await writeFile(file, `a:${h}\nb:${h.replace('$2b$', '$2a$')}\ny:${h.replace('$2b$', '$2y$')}\n`);
    const store = await loadUserStore(file);
    assert.equal(store.size(), 3);
    for (const u of ['a', 'b', 'y']) assert.equal(await store.verify(u, 's3cret'), 'ok', u);
    assert.equal(await store.verify('a', 'wrong'), 'bad');
    assert.equal(await store.verify('nobody', 's3cret'), 'bad');
    assert.equal(await store.verify('A', 's3cret'), 'bad', 'usernames are exact');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('verifiers are chosen by hash prefix; a hash with no verifier (argon2 by default) is 454, not a wrong password', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'inbound-users-'));
  try {
    const file = join(dir, 'users');
    await writeFile(file, 'argo:$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2g\nplain:{PLAIN}x\n');
    const without = await loadUserStore(file);
    assert.equal(await without.verify('argo', 'pw'), 'unavailable');
    assert.equal(await without.verify('plain', 'x'), 'unavailable');
    const fake: PasswordVerifier = { name: 'argon2', prefixes: ['$argon2id$'], verify: async (pw) => pw === 'pw' };
    const withArgon = await loadUserStore(file, { verifiers: [fake] });
    assert.equal(await withArgon.verify('argo', 'pw'), 'ok');
    assert.equal(await withArgon.verify('argo', 'nope'), 'bad');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a Kubernetes Secret update (..data symlink swap) is picked up, at most once per recheck interval', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'inbound-users-'));
  try {
    // The layout kubelet writes: users -> ..data/users, ..data -> ..<timestamp>/
    await mkdir(join(dir, '..v1'));
    await writeFile(join(dir, '..v1', 'users'), `alice:${hash('one')}\n`);
    await symlink('..v1', join(dir, '..data'));
    await symlink(join('..data', 'users'), join(dir, 'users'));
    let clock = 1_000_000;
    const store = await loadUserStore(join(dir, 'users'), { now: () => clock });
    assert.equal(await store.verify('alice', 'one'), 'ok');

    await mkdir(join(dir, '..v2'));
    await writeFile(join(dir, '..v2', 'users'), `alice:${hash('two')}\nbob:${hash('b')}\n`);
    await symlink('..v2', join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    await rm(join(dir, '..v1'), { recursive: true });

    clock += 500;
    assert.equal(await store.verify('alice', 'one'), 'ok', 'not re-checked within the interval');
    clock += 600;
    assert.equal(await store.verify('alice', 'one'), 'bad');
    assert.equal(await store.verify('alice', 'two'), 'ok');
    assert.equal(await store.verify('bob', 'b'), 'ok');
    assert.equal(store.size(), 2);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an unreadable users file makes AUTH temporarily unavailable, and it recovers', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'inbound-users-'));
  try {
    const file = join(dir, 'users');
    await writeFile(file, `alice:${hash('pw')}\n`);
    let clock = 0;
    const store = await loadUserStore(file, { now: () => clock });
    await rm(file);
    clock += 2000;
    assert.equal(await store.verify('alice', 'pw'), 'unavailable');
    await writeFile(file, `alice:${hash('pw')}\n`);
    clock += 2000;
    assert.equal(await store.verify('alice', 'pw'), 'ok');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('loadUserStore fails fast when the file cannot be read at start', async () => {
  await assert.rejects(loadUserStore(join(tmpdir(), 'inbound-users-does-not-exist', 'users')), { code: 'ENOENT' });
});
