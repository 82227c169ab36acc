import { test } from 'node:test';
import assert from 'node:assert/strict';
import { messageIdOf, peekHeader } from './message-id.ts';

test('Message-ID from a header section: any case, folded, only in the header', () => {
  assert.equal(messageIdOf('From: a@b\r\nMessage-ID: <x1@client.test>\r\n\r\nbody'), '<x1@client.test>');
  assert.equal(messageIdOf('message-id:\r\n <x2@client.test>\r\nSubject: s\r\n\r\n'), '<x2@client.test>');
  assert.equal(messageIdOf('Subject: s\r\n\r\nMessage-ID: <in-body@x>\r\n'), undefined);
  assert.equal(messageIdOf('Subject: s\n\n'), undefined);
  assert.equal(messageIdOf('Message-Id: no-brackets@x\n\n'), 'no-brackets@x');
});

test('peekHeader buffers only the header and gives back every byte in order', async () => {
  async function* src(): AsyncGenerator<Buffer> {
    yield Buffer.from('Subject: s\r\nMessage-ID: <p@x>\r');
    yield Buffer.from('\n\r\nline 1\r\n');
    yield Buffer.from('line 2\r\n');
  }
  const { header, body } = await peekHeader(src(), 1024);
  assert.equal(messageIdOf(header), '<p@x>');
  const all: Buffer[] = [];
  for await (const c of body) all.push(c);
  assert.equal(Buffer.concat(all).toString(), 'Subject: s\r\nMessage-ID: <p@x>\r\n\r\nline 1\r\nline 2\r\n');
});
