import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { ClientGoneError, MessageTooBigError, openMessageBody } from './body.ts';

const dataStream = (): PassThrough & { sizeExceeded?: boolean } => Object.assign(new PassThrough(), { sizeExceeded: false });

async function readAll(body: AsyncIterable<Buffer>): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of body) parts.push(c);
  return Buffer.concat(parts).toString('latin1');
}

test('the sink reads the prefix, then the normalised message; done says complete', async () => {
  const s = dataStream();
  const m = openMessageBody(s, Buffer.from('Received: x\r\n'));
  const reading = readAll(m.body);
  s.write('a\nb\r');
  s.end('\nc\r\n');
  assert.equal(await reading, 'Received: x\r\na\r\nb\r\nc\r\n');
  assert.equal(await m.done, 'complete');
  assert.equal(m.consumed(), true);
  assert.equal(m.bytes(), 'Received: x\r\na\r\nb\r\nc\r\n'.length);
});

test('over the size limit the sink gets MessageTooBigError, and the rest of the data is still drained', async () => {
  const s = dataStream();
  const m = openMessageBody(s, Buffer.from('H\r\n'));
  const reading = readAll(m.body);
  s.write('first\r\n');
  s.sizeExceeded = true;
  s.write('second\r\n');
  await assert.rejects(reading, MessageTooBigError);
  for (let i = 0; i < 1000; i++) s.write(Buffer.alloc(1024, 0x61));
  s.end();
  assert.equal(await m.done, 'too_big');
  assert.equal(m.consumed(), false);
});

test('a sink that stops reading early leaves the stream drained, not stuck under backpressure', async () => {
  const s = dataStream();
  const m = openMessageBody(s, Buffer.alloc(0));
  const it = m.body[Symbol.asyncIterator]();
  s.write('x'.repeat(10));
  await it.next();
  await it.return?.();
  for (let i = 0; i < 2000; i++) s.write(Buffer.alloc(1024, 0x62));
  s.end();
  assert.equal(await m.done, 'complete');
  assert.equal(m.consumed(), false);
});

test('a sink that never starts reading is drained after discard()', async () => {
  const s = dataStream();
  const m = openMessageBody(s, Buffer.from('H\r\n'));
  let written = 0;
  const writer = (async () => {
    for (let i = 0; i < 500; i++) {
      if (!s.write(Buffer.alloc(1024, 0x63))) await new Promise((resolve) => s.once('drain', resolve));
      written++;
    }
    s.end();
  })();
  m.discard();
  await writer;
  assert.equal(written, 500);
  assert.equal(await m.done, 'complete');
});

test('the client going away mid-DATA fails the sink with ClientGoneError and done says aborted', async () => {
  const s = dataStream();
  const m = openMessageBody(s, Buffer.alloc(0));
  const reading = readAll(m.body);
  s.write('partial');
  s.destroy(new Error('ECONNRESET'));
  await assert.rejects(reading, ClientGoneError);
  assert.equal(await m.done, 'aborted');
});
