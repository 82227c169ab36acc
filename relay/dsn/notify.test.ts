import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dsnEnvelope, mustNotBounce, shouldNotify } from './notify.ts';
import type { DsnAction } from './types.ts';

const ACTIONS: DsnAction[] = ['failed', 'delayed', 'delivered', 'relayed'];
const notified = (notify: string[] | undefined, opts?: { delayWhenAbsent?: boolean }) =>
  ACTIONS.filter((a) => shouldNotify(notify, a, opts));

test('NOTIFY absent: failures always, delays at our discretion (on by default), successes never', () => {
  assert.deepEqual(notified(undefined), ['failed', 'delayed']);
  assert.deepEqual(notified([]), ['failed', 'delayed']);
  assert.deepEqual(notified(undefined, { delayWhenAbsent: false }), ['failed']);
});

test('NOTIFY=NEVER: nothing at all, even when a client wrongly combines it with others', () => {
  assert.deepEqual(notified(['NEVER']), []);
  assert.deepEqual(notified(['NEVER', 'FAILURE']), []);
});

test('NOTIFY=SUCCESS,DELAY: successes and delays, but no failure DSN', () => {
  assert.deepEqual(notified(['SUCCESS', 'DELAY']), ['delayed', 'delivered', 'relayed']);
});

test('each keyword alone maps to its actions; keywords are case-insensitive', () => {
  assert.deepEqual(notified(['FAILURE']), ['failed']);
  assert.deepEqual(notified(['DELAY']), ['delayed']);
  assert.deepEqual(notified(['SUCCESS']), ['delivered', 'relayed']);
  assert.deepEqual(notified(['failure', ' Delay ']), ['failed', 'delayed']);
  assert.deepEqual(notified(['FAILURE'], { delayWhenAbsent: true }), ['failed'], 'the discretion only applies without NOTIFY');
});

test('mustNotBounce: only the null reverse-path', () => {
  assert.equal(mustNotBounce(''), true);
  assert.equal(mustNotBounce('<>'), true);
  assert.equal(mustNotBounce(' '), true);
  assert.equal(mustNotBounce('alice@client.example'), false);
  assert.equal(mustNotBounce('MAILER-DAEMON@relay.example'), false, 'a named address is a real sender');
});

test('dsnEnvelope: null reverse-path, the original sender as the only recipient', () => {
  assert.deepEqual(dsnEnvelope({ to: 'alice@client.example' }), { from: '', to: ['alice@client.example'] });
});
