// Seed 002 (Exchange 2000, KB843401): lines starting with "." were sent unstuffed, the
// server saw an early end of data, the message arrived cut short — and was retried and
// delivered again and again. Here: bodies full of dot-lines, split into random chunks,
// arrive byte-identical (CRLF-normalised) in exactly one transaction.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { startFaultServer } from '../peers/fault-server.ts';
import { engineFor } from '../helpers/engine.ts';

const normalised = (b: Buffer) => {
  let s = b.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n');
  if (s.length > 0 && !s.endsWith('\r\n')) s += '\r\n';
  return Buffer.from(s, 'latin1');
};

function chunked(bytes: Buffer, cuts: number[]): () => Readable {
  return () => {
    const parts: Buffer[] = [];
    let pos = 0;
    for (const c of cuts) {
      const end = Math.min(bytes.length, pos + c);
      parts.push(bytes.subarray(pos, end));
      pos = end;
    }
    parts.push(bytes.subarray(pos));
    return Readable.from(parts.filter((p) => p.length > 0));
  };
}

test('a body full of dot-lines arrives byte-identical, once', async (t) => {
  const server = await startFaultServer({});
  const { engine } = engineFor(server.port, { chunking: false });
  t.after(async () => { await engine.close(); await server.close(); });
  const body = Buffer.from('Subject: dots\r\n\r\n.\r\n..\r\n...\r\n.hidden\r\n. \r\nend\r\n.', 'latin1');
  const [r] = await engine.deliver({ id: 'd', from: 's@relay.test', recipients: [{ address: 'a@example.com' }], size: body.length, body: chunked(body, [17, 1, 1, 3]) });
  assert.equal(r!.verdict.status, 'accepted');
  assert.equal(server.transactions.length, 1, 'exactly one transaction: no retry loop');
  assert.equal(server.transactions[0]!.data!.toString('latin1'), normalised(body).toString('latin1'));
});

test('property: random messages with ".", "..", bare CR/LF, 998-byte lines and 8-bit bytes, in random chunks, arrive identical', async (t) => {
  const server = await startFaultServer({ size: 10 * 1024 * 1024 });
  const { engine } = engineFor(server.port, { chunking: false });
  t.after(async () => { await engine.close(); await server.close(); });
  const line = fc.oneof(
    fc.constantFrom('.', '..', '.\r\n', '\r\n.\r\n', '\n.\n', '\r.\r', '\r', '\n', '\r\n', 'x'.repeat(998), '\u00e9\u00ff\u0080', '.\u00ff'),
    fc.string({ maxLength: 60 }),
  );
  let n = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(line, { minLength: 1, maxLength: 40 }), fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 12 }), async (lines, cuts) => {
      const body = Buffer.from(`Subject: p${n++}\r\n\r\n${lines.join('')}`, 'latin1');
      const before = server.transactions.length;
      const [r] = await engine.deliver({ id: `p${n}`, from: 's@relay.test', recipients: [{ address: 'a@example.com' }], size: body.length, eightBit: true, body: chunked(body, cuts) });
      assert.equal(r!.verdict.status, 'accepted');
      assert.equal(server.transactions.length, before + 1);
      assert.equal(server.transactions.at(-1)!.data!.toString('latin1'), normalised(body).toString('latin1'));
    }),
    { numRuns: 150 },
  );
});
