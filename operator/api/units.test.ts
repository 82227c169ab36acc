// Durations and quantities: the parsers agree with the schema patterns, and values
// that the pattern admits parse to the numbers the relay config needs.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DURATION_PATTERN, parseDuration } from './duration.ts';
import { QUANTITY_PATTERN, parseQuantity } from './quantity.ts';

describe('parseDuration', () => {
  const cases: [string, number | null][] = [
    ['90s', 90], ['5m', 300], ['120h', 432000], ['1h30m', 5400], ['1.5s', 1.5], ['500ms', 0.5], ['0s', 0],
    ['5', null], ['5d', null], ['-5m', null], ['', null], ['1 h', null], ['m', null],
  ];
  for (const [text, want] of cases) {
    it(`${JSON.stringify(text)} -> ${want}`, () => {
      assert.equal(parseDuration(text), want);
      assert.equal(new RegExp(DURATION_PATTERN).test(text), want !== null);
    });
  }
});

describe('parseQuantity', () => {
  const cases: [string, number | null][] = [
    ['25Mi', 25 * 2 ** 20], ['10Gi', 10 * 2 ** 30], ['1.5G', 1.5e9], ['100', 100], ['500m', 0.5], ['1e3', 1000], ['2k', 2000],
    ['25MB', null], ['Mi', null], ['1.2.3', null], ['', null], ['ten', null],
  ];
  for (const [text, want] of cases) {
    it(`${JSON.stringify(text)} -> ${want}`, () => {
      assert.equal(parseQuantity(text), want);
      assert.equal(new RegExp(QUANTITY_PATTERN).test(text), want !== null);
    });
  }
});
