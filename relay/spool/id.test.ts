import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createIdGenerator, idTime, isMessageId } from './id.ts';

describe('message ids', () => {
  it('are 26 filesystem-safe characters carrying their time', () => {
    const id = createIdGenerator(() => 1_700_000_000_123)();
    assert.ok(isMessageId(id), id);
    assert.match(id, /^[0-9A-Z]{26}$/);
    assert.equal(idTime(id), 1_700_000_000_123);
  });

  it('sort in creation order and never repeat, even within a millisecond or when the clock steps back', () => {
    let t = 1000;
    const clock = (): number => t;
    const next = createIdGenerator(clock);
    const ids: string[] = [];
    for (let i = 0; i < 5000; i++) {
      if (i % 100 === 0) t += 1; // many ids per millisecond
      if (i === 2500) t -= 50; // clock steps back
      ids.push(next());
    }
    assert.equal(new Set(ids).size, ids.length);
    assert.deepEqual([...ids].sort(), ids);
  });

  it('sort across generators by time', () => {
    const a = createIdGenerator(() => 5000)();
    const b = createIdGenerator(() => 5001)();
    assert.ok(a < b);
  });

  it('rejects anything else, including path tricks', () => {
    for (const s of ['', '../etc/passwd', '01ARZ3NDEKTSV4RRFFQ69G5FA', '01ARZ3NDEKTSV4RRFFQ69G5FAVX', '01arz3ndektsv4rrffq69g5fav', '01ARZ3NDEKTSV4RRFFQ69G5FAI', '81ARZ3NDEKTSV4RRFFQ69G5FAV', '01ARZ3NDEKTSV4RRFFQ69G5FA/']) {
      assert.equal(isMessageId(s), false, s);
    }
    assert.equal(isMessageId('01ARZ3NDEKTSV4RRFFQ69G5FAV'), true);
  });
});
