import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DotStuffer, dotStuff, unstuff } from './dot-stuff.ts';

const wire = (s: string) => dotStuff(Buffer.from(s, 'latin1')).toString('latin1');

test('leading dots are doubled on every line, the first included', () => {
  assert.equal(wire('.hidden\r\nok\r\n.\r\n..two\r\n'), '..hidden\r\nok\r\n..\r\n...two\r\n.\r\n');
});

test('bare LF and bare CR become CRLF; a missing final CRLF is added', () => {
  assert.equal(wire('a\nb\rc'), 'a\r\nb\r\nc\r\n.\r\n');
  assert.equal(wire('a\n.\nb'), 'a\r\n..\r\nb\r\n.\r\n', 'no LF.LF smuggled end of data');
  assert.equal(wire('a\r.\rb'), 'a\r\n..\r\nb\r\n.\r\n', 'no CR.CR smuggled end of data');
  assert.equal(wire(''), '.\r\n');
  assert.equal(wire('x\r'), 'x\r\n.\r\n');
});

test('chunk boundaries inside CRLF and before a leading dot do not matter', () => {
  const s = new DotStuffer();
  const parts = ['line\r', '\n', '.dot', '\r\n.', '\r', '\n'];
  const out = Buffer.concat([...parts.map((p) => s.push(Buffer.from(p))), s.end()]).toString();
  assert.equal(out, 'line\r\n..dot\r\n..\r\n.\r\n');
});

test('BDAT mode normalises line endings but never stuffs or terminates', () => {
  const out = dotStuff(Buffer.from('.a\n.\n'), { stuff: false }).toString();
  assert.equal(out, '.a\r\n.\r\n');
});

test('property: any body split anywhere round-trips through unstuff to its CRLF-normalised form', () => {
  const line = fc.oneof(
    fc.constantFrom('.', '..', '.\r\n', '\r', '\n', '\r\n', 'x'.repeat(998), '\u00e9\u00ff', ''),
    fc.string({ maxLength: 40 }),
  );
  fc.assert(
    fc.property(fc.array(line, { maxLength: 30 }), fc.array(fc.nat(200), { maxLength: 10 }), (lines, cuts) => {
      const body = Buffer.from(lines.join(''), 'latin1');
      const s = new DotStuffer();
      const chunks: Buffer[] = [];
      let pos = 0;
      for (const c of cuts) {
        const end = Math.min(body.length, pos + c);
        chunks.push(s.push(body.subarray(pos, end)));
        pos = end;
      }
      chunks.push(s.push(body.subarray(pos)), s.end());
      const onWire = Buffer.concat(chunks).toString('latin1');
      // Only the terminator may look like end-of-data.
      assert.equal(onWire.indexOf('\r\n.\r\n'), onWire === '.\r\n' ? -1 : onWire.length - 5);
      assert.ok(!/\r(?!\n)|(?<!\r)\n/.test(onWire), 'no bare CR or LF on the wire');
      let expected = body.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n');
      if (expected.length > 0 && !expected.endsWith('\r\n')) expected += '\r\n';
      assert.equal(unstuff(Buffer.from(onWire, 'latin1')).toString('latin1'), expected);
    }),
    { numRuns: 500 },
  );
});

test('property: CRLF-clean bodies (the pass-through path) and mixed ones give exactly the reference encoding, however split', () => {
  // Mostly clean CRLF lines, so whole chunks take the copy-free path, with dots, bare CR/LF
  // and chunk ends inside a CRLF mixed in now and then.
  const piece = fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom('Subject: x\r\n', 'plain line\r\n', '\r\n', 'x'.repeat(70) + '\r\n') },
    { weight: 1, arbitrary: fc.constantFrom('.dot first\r\n', '..\r\n', '.\r\n', 'bare lf\n', 'bare\rcr', 'tail\r') },
  );
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 40 }), fc.array(fc.nat(300), { maxLength: 8 }), fc.boolean(), (pieces, cuts, stuff) => {
      const body = Buffer.from(pieces.join(''), 'latin1');
      const s = new DotStuffer({ stuff });
      const out: Buffer[] = [];
      let pos = 0;
      for (const c of cuts) {
        const end = Math.min(body.length, pos + c);
        out.push(s.push(body.subarray(pos, end)));
        pos = end;
      }
      out.push(s.push(body.subarray(pos)), s.end());
      let expected = body.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n');
      if (expected.length > 0 && !expected.endsWith('\r\n')) expected += '\r\n';
      if (stuff) expected = `${expected.replace(/(^|\r\n)\./g, '$1..')}.\r\n`;
      const wire = Buffer.concat(out);
      assert.equal(wire.toString('latin1'), expected);
      assert.equal(s.bytesOut, wire.length);
    }),
    { numRuns: 2000 },
  );
});
