import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TurnGate } from './turn-gate.ts';

/** Resolves after `n` event-loop turns (each setImmediate from an immediate runs in the next iteration). */
const turns = async (n: number): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
};

test('a burst goes through perTurn callers per turn, in arrival order; timers run in between', async () => {
  const gate = new TurnGate(3);
  const order: number[] = [];
  const turnOf: number[] = [];
  let turn = 0;
  let timerRanBeforeLast = false;
  const timer = setTimeout(() => {
    timerRanBeforeLast = order.length < 10;
  }, 0);
  const counting = (async () => {
    for (let i = 0; i < 20 && order.length < 10; i++) {
      await new Promise((resolve) => setImmediate(resolve));
      turn++;
    }
  })();
  await Promise.all(Array.from({ length: 10 }, async (_, i) => {
    const wait = gate.pass();
    if (wait) await wait;
    order.push(i);
    turnOf.push(turn);
  }));
  await counting;
  clearTimeout(timer);
  assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(turnOf.slice(0, 3), [0, 0, 0], 'the first three go at once');
  for (let k = 3; k < 10; k++) assert.ok(turnOf[k]! >= Math.floor(k / 3), `caller ${k} in turn ${turnOf[k]}`);
  assert.ok(timerRanBeforeLast, 'a timer ran while the burst was still going through');
  assert.equal(gate.queued(), 0);
});

test('without a burst nobody waits, and an idle gate leaves nothing scheduled behind', async () => {
  const gate = new TurnGate(2);
  for (let i = 0; i < 5; i++) {
    assert.equal(gate.pass(), undefined);
    await turns(2);
  }
  await turns(3);
  assert.equal(process.getActiveResourcesInfo().filter((r) => r === 'Immediate').length, 0);
});

test('many waiters all get through, each exactly once, within ceil(n / perTurn) + 1 turns', async () => {
  const gate = new TurnGate(16);
  let through = 0;
  let turn = 0;
  let done = false;
  const counter = (async () => {
    for (let i = 0; i < 1000 && !done; i++) {
      await new Promise((resolve) => setImmediate(resolve));
      turn++;
    }
  })();
  await Promise.all(Array.from({ length: 1000 }, async () => {
    const wait = gate.pass();
    if (wait) await wait;
    through++;
  }));
  done = true;
  await counter;
  assert.equal(through, 1000);
  assert.ok(turn <= Math.ceil(1000 / 16) + 2, `${turn} turns`);
});
