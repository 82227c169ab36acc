import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { LineEndingNormaliser, flushLineEndings, normaliseChunk } from './line-endings.ts';

/** Normalises `chunks` as one stream. */
function run(chunks: (string | Buffer)[]): string {
  const state = { pendingCR: false };
  const out = chunks.map((c) => normaliseChunk(Buffer.from(c as string, 'latin1'), state));
  out.push(flushLineEndings(state));
  return Buffer.concat(out).toString('latin1');
}

test('bare LF and bare CR become CRLF; CRLF is left alone', () => {
  const table: [string, string][] = [
    ['a\r\nb\r\n', 'a\r\nb\r\n'],
    ['a\nb\n', 'a\r\nb\r\n'],
    ['a\rb\r', 'a\r\nb\r\n'],
    ['\n.\nMAIL FROM:<x@example.com>\n', '\r\n.\r\nMAIL FROM:<x@example.com>\r\n'],
    ['\r.\r', '\r\n.\r\n'],
    ['\r\r\n', '\r\n\r\n'],
    ['\n\r', '\r\n\r\n'],
    ['', ''],
    ['no newline', 'no newline'],
  ];
  for (const [input, want] of table) assert.equal(run([input]), want, JSON.stringify(input));
});

test('a CRLF split across chunks stays one CRLF; a CR at the end of a chunk before other bytes is bare', () => {
  assert.equal(run(['a\r', '\nb']), 'a\r\nb');
  assert.equal(run(['a\r', 'b']), 'a\r\nb');
  assert.equal(run(['a\r', '', '\n']), 'a\r\n');
  assert.equal(run(['a\r']), 'a\r\n');
});

test('the output never holds a bare CR or LF and does not depend on how the input is split', () => {
  const bytes = fc.array(fc.constantFrom(0x0d, 0x0a, 0x2e, 0x61), { maxLength: 200 });
  fc.assert(fc.property(bytes, fc.array(fc.nat(200), { maxLength: 10 }), (arr, cuts) => {
    const input = Buffer.from(arr);
    const whole = run([input]);
    const points = [...new Set(cuts.map((c) => c % (input.length + 1)))].sort((a, b) => a - b);
    const pieces: Buffer[] = [];
    let prev = 0;
    for (const p of points) {
      pieces.push(input.subarray(prev, p));
      prev = p;
    }
    pieces.push(input.subarray(prev));
    assert.equal(run(pieces), whole);
    assert.doesNotMatch(whole, /\r(?!\n)|(?<!\r)\n/);
    // Every byte other than CR/LF survives, in order.
    assert.equal(whole.replace(/[\r\n]/g, ''), input.toString('latin1').replace(/[\r\n]/g, ''));
    // Exactly: each CRLF, bare CR and bare LF is one CRLF (the model the fast scan must match).
    assert.equal(whole, input.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n'));
  }), { numRuns: 2000 });
});

test('LineEndingNormaliser streams the same bytes and counts them', async () => {
  const n = new LineEndingNormaliser();
  const got: Buffer[] = [];
  n.on('data', (b: Buffer) => got.push(b));
  const done = new Promise((resolve) => n.on('end', resolve));
  n.write(Buffer.from('x\n.'));
  n.write(Buffer.from('\r'));
  n.end(Buffer.from('\ny\r'));
  await done;
  assert.equal(Buffer.concat(got).toString(), 'x\r\n.\r\ny\r\n');
  assert.equal(n.bytesOut, 9);
});
