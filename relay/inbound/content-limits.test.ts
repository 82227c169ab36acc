import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MessageScanner, filterHeader } from './content-limits.ts';
import type { ContentLimits } from './content-limits.ts';

const scanAll = (limits: ContentLimits, pieces: Buffer[]): { out: string; violation: string | undefined } => {
  const s = new MessageScanner(limits);
  const out: Buffer[] = [];
  for (const p of pieces) out.push(s.push(p));
  out.push(s.end());
  return { out: Buffer.concat(out).toString('latin1'), violation: s.violation };
};
const one = (text: string, limits: ContentLimits) => scanAll(limits, [Buffer.from(text, 'latin1')]);
const limits: ContentLimits = { maxLineLength: 998, maxHeaderSize: 1024 };

test('a line of 998 characters passes, 999 is line_too_long (RFC 5322 §2.1.1), in the header and in the body', () => {
  const ok = `Subject: x\r\n\r\n${'a'.repeat(998)}\r\n`;
  assert.deepEqual(one(ok, limits), { out: ok, violation: undefined });
  assert.equal(one(`Subject: x\r\n\r\n${'a'.repeat(999)}\r\n`, limits).violation, 'line_too_long');
  assert.equal(one(`X: ${'a'.repeat(996)}\r\n\r\nbody\r\n`, { ...limits, maxHeaderSize: 4096 }).violation, 'line_too_long');
  // A long last line without CRLF is caught without waiting for its end.
  assert.equal(one(`Subject: x\r\n\r\n${'a'.repeat(2000)}`, limits).violation, 'line_too_long');
});

test('a header section over maxHeaderSize is header_too_big, with or without its blank line', () => {
  const field = `X-Pad: ${'p'.repeat(70)}\r\n`;
  assert.equal(one(`${field.repeat(12)}\r\nbody\r\n`, limits).violation, undefined, '12 x 79 + 2 bytes');
  assert.equal(one(`${field.repeat(13)}\r\nbody\r\n`, limits).violation, 'header_too_big', '13 x 79 bytes');
  // exactly at the limit, its blank line included
  const wide = { maxLineLength: 2000, maxHeaderSize: 1024 };
  assert.equal(one(`X: ${'p'.repeat(1017)}\r\n\r\nbody\r\n`, wide).violation, undefined);
  assert.equal(one(`X: ${'p'.repeat(1018)}\r\n\r\nbody\r\n`, wide).violation, 'header_too_big');
  assert.equal(one(field.repeat(20), limits).violation, 'header_too_big');
  assert.equal(one(`Subject: x\r\n\r\n${field.repeat(100)}`, limits).violation, undefined, 'the body does not count');
});

test('a message without a header section, or without a blank line, passes through whole', () => {
  for (const text of ['\r\nbody only\r\n', 'Subject: no body\r\n', '']) assert.deepEqual(one(text, limits), { out: text, violation: undefined });
});

test('header fields chosen by dropField are removed with their continuation lines; the body is never touched', () => {
  const drop = (name: string, value: string) => name.toLowerCase() === 'authentication-results' && value.trim().startsWith('relay.test');
  const text = [
    'Authentication-Results: relay.test; spf=pass', '\tsmtp.mailfrom=forged@example.com',
    'Authentication-Results: other.test; spf=fail',
    'Subject: hi',
    'authentication-results: relay.test; dkim=pass',
    '',
    'Authentication-Results: relay.test; in the body',
    '',
  ].join('\r\n');
  assert.equal(one(text, { ...limits, dropField: drop }).out, [
    'Authentication-Results: other.test; spf=fail',
    'Subject: hi',
    '',
    'Authentication-Results: relay.test; in the body',
    '',
  ].join('\r\n'));
  const untouched = Buffer.from('A: 1\r\n\r\n', 'latin1');
  assert.equal(filterHeader(untouched, () => false), untouched, 'no copy when nothing is dropped');
});

test('property: however the data is cut into chunks, the output and the verdict are those of the whole', () => {
  const line = fc.oneof(
    fc.constantFrom('', 'Subject: s', 'Authentication-Results: relay.test; spf=pass', '\tfolded', '.', 'x'.repeat(60), 'y'.repeat(120)),
    fc.string({ maxLength: 40 }).map((s) => s.replace(/[\r\n]/g, '')),
  );
  fc.assert(fc.property(fc.array(line, { maxLength: 40 }), fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 20 }), (lines, cuts) => {
    const text = lines.map((l) => `${l}\r\n`).join('');
    const l: ContentLimits = {
      maxLineLength: 100, maxHeaderSize: 600,
      dropField: (name, value) => name === 'Authentication-Results' && value.trim().startsWith('relay.test'),
    };
    const whole = one(text, l);
    const buf = Buffer.from(text, 'latin1');
    const pieces: Buffer[] = [];
    let pos = 0;
    for (const c of cuts) {
      pieces.push(buf.subarray(pos, Math.min(buf.length, pos + c)));
      pos = Math.min(buf.length, pos + c);
    }
    pieces.push(buf.subarray(pos));
    const chunked = scanAll(l, pieces);
    assert.equal(chunked.violation, whole.violation);
    if (!whole.violation) assert.equal(chunked.out, whole.out);
  }), { numRuns: 300 });
});
