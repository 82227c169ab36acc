import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { Readable } from 'node:stream';
import { dkimBodyFor } from './body-for.ts';
import { DkimSigner } from './signer.ts';

const signer = new DkimSigner(generateKeyPairSync('ed25519').privateKey, 'example.com', 'sel');

/** A fake spool: bodies by id, counting every open. */
function spool(bodies: Record<string, string>) {
  const opens: string[] = [];
  let failing = new Set<string>();
  return {
    opens,
    failOn(ids: string[]) { failing = new Set(ids); },
    open(id: string): Readable {
      opens.push(id);
      if (failing.has(id)) {
        const r = new Readable({ read() { /* errors below */ } });
        process.nextTick(() => r.destroy(new Error(`EIO reading ${id}`)));
        return r;
      }
      const b = Buffer.from(bodies[id] ?? '');
      // Several chunks, so the body really streams.
      return Readable.from([b.subarray(0, 5), b.subarray(5)].filter((c) => c.length > 0));
    },
  };
}

async function collect(src: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of src) out.push(Buffer.from(c));
  return Buffer.concat(out);
}

const BODY = 'From: a@example.com\r\nSubject: s\r\n\r\nhello\r\n';

test('yields the signature field then the spooled body unchanged; signs once per message across transactions and attempts', async () => {
  const sp = spool({ m1: BODY });
  const bodyFor = dkimBodyFor(signer, (id) => sp.open(id));
  const attempt1 = bodyFor({ id: 'm1' });
  // Two transactions of one attempt at once (two destinations): one signing read between them.
  const [a, b] = await Promise.all([collect(attempt1()), collect(attempt1())]);
  assert.equal(a.toString(), b.toString());
  assert.match(a.toString(), /^DKIM-Signature: v=1; a=ed25519-sha256;[^]*\r\nFrom: a@example\.com\r\nSubject: s\r\n\r\nhello\r\n$/);
  assert.equal(sp.opens.length, 3, 'one read to sign, one per transaction to send');
  // A retry (a new bodyFor call) reuses the signature: the same bytes, no signing read.
  const retry = await collect(bodyFor({ id: 'm1' })());
  assert.equal(retry.toString(), a.toString());
  assert.equal(sp.opens.length, 4);
});

test('a body that cannot be read fails before any byte is yielded, and the next attempt signs again', async () => {
  const sp = spool({ m2: BODY });
  const bodyFor = dkimBodyFor(signer, (id) => sp.open(id));
  sp.failOn(['m2']);
  const it = bodyFor({ id: 'm2' })()[Symbol.asyncIterator]();
  await assert.rejects(it.next(), /EIO reading m2/);
  sp.failOn([]);
  const ok = await collect(bodyFor({ id: 'm2' })());
  assert.match(ok.toString(), /^DKIM-Signature: [^]*hello\r\n$/);
});

test('the signature cache is bounded: an evicted message is signed again on its next attempt', async () => {
  const sp = spool({ a: BODY, b: BODY, c: BODY });
  const bodyFor = dkimBodyFor(signer, (id) => sp.open(id), { cacheEntries: 2 });
  for (const id of ['a', 'b', 'c']) await collect(bodyFor({ id })());
  assert.equal(sp.opens.length, 6);
  await collect(bodyFor({ id: 'c' })()); // cached
  assert.equal(sp.opens.length, 7);
  await collect(bodyFor({ id: 'a' })()); // evicted: sign + send
  assert.equal(sp.opens.length, 9);
});

test('a message that cannot be signed (indented first line) goes out unsigned, once reported, and is not re-read to sign on retries', async () => {
  const sp = spool({ bad: ' indented: first line\r\n\r\nbody\r\n' });
  const unsigned: string[] = [];
  const bodyFor = dkimBodyFor(signer, (id) => sp.open(id), { onUnsigned: (id) => unsigned.push(id) });
  const first = await collect(bodyFor({ id: 'bad' })());
  assert.equal(first.toString(), ' indented: first line\r\n\r\nbody\r\n');
  assert.deepEqual(unsigned, ['bad']);
  const again = await collect(bodyFor({ id: 'bad' })());
  assert.equal(again.toString(), first.toString());
  assert.deepEqual(unsigned, ['bad']);
  assert.equal(sp.opens.length, 3, 'sign attempt + send, then send only');
});
