import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  extractHeaders, fitsLineLimits, hasEightBit, headerEnd, MAX_HEADER_BYTES, returnedContent, sanitizeHeaders, toCrlf,
} from './original.ts';

const b = (s: string) => Buffer.from(s, 'latin1');

test('headerEnd: the first empty line, CRLF or LF, at the start or never', () => {
  assert.equal(headerEnd(b('A: 1\r\nB: 2\r\n\r\nbody')), 12);
  assert.equal(headerEnd(b('A: 1\nB: 2\n\nbody')), 10);
  assert.equal(headerEnd(b('A: 1\n\r\nbody')), 5, 'mixed line endings');
  assert.equal(headerEnd(b('\r\nbody')), 0);
  assert.equal(headerEnd(b('\nbody')), 0);
  assert.equal(headerEnd(b('A: 1\r\nB: 2\r\n')), -1);
  assert.equal(headerEnd(b('A: 1\r\n B: folded\r\n\r\n')), 18, 'a folded line is not an empty line');
});

test('extractHeaders: everything up to the empty line; all of a message without one', () => {
  assert.equal(extractHeaders(b('A: 1\r\nB: 2\r\n\r\nbody\r\n\r\nmore')).toString(), 'A: 1\r\nB: 2\r\n');
  assert.equal(extractHeaders(b('A: 1\nB: 2\n\nbody')).toString(), 'A: 1\nB: 2\n');
  assert.equal(extractHeaders(b('\r\nbody')).toString(), '');
  assert.equal(extractHeaders(b('A: 1\r\nB: 2')).toString(), 'A: 1\r\nB: 2');
});

test('extractHeaders caps a huge header section at a line end', () => {
  const line = `X-Filler: ${'f'.repeat(88)}\r\n`; // 100 bytes
  const huge = b(line.repeat(Math.ceil(MAX_HEADER_BYTES / 100) + 10));
  const head = extractHeaders(huge);
  assert.ok(head.length <= MAX_HEADER_BYTES);
  assert.ok(head.toString('latin1').endsWith('\r\n'));
  assert.equal(head.length % 100, 0, 'no half line');
});

test('toCrlf: bare CR and bare LF become CRLF, CRLF stays', () => {
  assert.equal(toCrlf(b('a\nb\rc\r\nd')).toString(), 'a\r\nb\r\nc\r\nd');
  fc.assert(fc.property(fc.string({ unit: fc.constantFrom('a', '\r', '\n', 'é') }), (s) => {
    const out = toCrlf(b(s)).toString('latin1');
    assert.doesNotMatch(out, /\r(?!\n)|(?<!\r)\n/);
    assert.equal(out.replace(/\r\n/g, ''), s.replace(/\r\n|\r|\n/g, ''));
  }));
});

test('fitsLineLimits: no NUL, no line over 998 octets', () => {
  assert.equal(fitsLineLimits(b(`${'x'.repeat(998)}\r\nok\r\n`)), true);
  assert.equal(fitsLineLimits(b(`ok\r\n${'x'.repeat(999)}\r\n`)), false);
  assert.equal(fitsLineLimits(b(`ok\r\n${'x'.repeat(999)}`)), false, 'the last line too');
  assert.equal(fitsLineLimits(b('a\0b\r\n')), false);
  assert.equal(hasEightBit(b('plain')), false);
  assert.equal(hasEightBit(Buffer.from('ü')), true);
});

test('sanitizeHeaders: CRLF, no NUL, long lines folded with CRLF SP, ends with CRLF', () => {
  assert.equal(sanitizeHeaders(b('A: 1\nB: \x002')).toString(), 'A: 1\r\nB: 2\r\n');
  assert.equal(sanitizeHeaders(b('')).toString(), '');
  const long = `X-Long: ${'z'.repeat(2500)}`;
  const out = sanitizeHeaders(b(`${long}\r\n`)).toString('latin1');
  const lines = out.split('\r\n');
  assert.ok(lines.every((l) => l.length <= 998));
  assert.ok(lines.slice(1, -1).every((l) => l.startsWith(' ')), 'continuation lines');
  assert.equal(out.replace(/\r\n /g, ''), `${long}\r\n`, 'unfolding (minus the inserted space) restores it');
});

test('returnedContent: FULL within the cap, too big, not returnable, and HDRS', async () => {
  const msg = b('Subject: s\r\n\r\nbody\r\n');
  assert.deepEqual(await returnedContent(msg, { full: true }), { kind: 'full', content: msg, eightBit: false });
  const tooBig = await returnedContent(msg, { full: true, maxBytes: 10 });
  assert.equal(tooBig.kind, 'headers');
  assert.equal(tooBig.kind === 'headers' && tooBig.reason, 'too_big');
  assert.equal(tooBig.content.toString(), 'Subject: s\r\n');
  const nul = await returnedContent(b('Subject: s\r\n\r\nb\0dy\r\n'), { full: true });
  assert.equal(nul.kind === 'headers' && nul.reason, 'not_returnable');
  const hdrs = await returnedContent(msg, { full: false });
  assert.equal(hdrs.kind === 'headers' && hdrs.reason, 'requested');
});

test('returnedContent: any chunking of a streamed original gives the same result as the buffer', async () => {
  const msg = b('From: a@b.example\r\nSubject: s\r\n\r\nline 1\r\n\r\nline 2\r\n');
  const expectFull = await returnedContent(msg, { full: true });
  const expectHdrs = await returnedContent(msg, { full: false });
  await fc.assert(fc.asyncProperty(fc.array(fc.integer({ min: 1, max: msg.length }), { maxLength: 8 }), async (cuts) => {
    const points = [...new Set([0, ...cuts, msg.length])].sort((x, y) => x - y);
    const chunks = points.slice(1).map((p, i) => msg.subarray(points[i], p));
    async function* src() { yield* chunks; }
    assert.deepEqual(await returnedContent(src(), { full: true }), expectFull);
    assert.deepEqual(await returnedContent(src(), { full: false }), expectHdrs);
  }));
});
