import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { dkimSign, dkimVerify } from 'mailauth';
import DKIM from 'nodemailer/lib/dkim';
import { dotStuff, unstuff } from '../protocol/dot-stuff.ts';
import { DkimKeyError, DkimSigner, DkimUnsignableError, loadDkimSigner } from './signer.ts';

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const ed = generateKeyPairSync('ed25519').privateKey;
const NOW = Date.UTC(2025, 0, 2, 3, 4, 5);

/**
 * mailauth's verifier with the signer's TXT record as the only DNS answer; each result is
 * `pass`, `fail`, or `neutral (<why>)`. mailauth cannot parse a message without an empty
 * line (it finds no header end and reports `none`), so one is added to such a message:
 * that changes no field and, under relaxed canonicalization, not the body hash either
 * (RFC 6376 §3.4.4: empty lines at the end of the body are ignored).
 */
async function verify(message: Buffer, signer: DkimSigner): Promise<string[]> {
  if (!message.includes('\r\n\r\n')) message = Buffer.concat([message, Buffer.from('\r\n')]);
  const res = await dkimVerify(message, {
    resolver: async (name: string, rr: string) => {
      if (rr !== 'TXT' || name !== `${signer.selector}._domainkey.${signer.domain}`) throw Object.assign(new Error('NXDOMAIN'), { code: 'ENOTFOUND' });
      return [[signer.dnsRecord]];
    },
    curTime: new Date(NOW + 1000),
  });
  return res.results.map((r) => (r.status.result === 'neutral' ? `neutral (${r.status.comment})` : r.status.result));
}

const MSG = 'From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: hello\r\nDate: Thu, 2 Jan 2025 03:04:05 +0000\r\nMessage-ID: <1@example.com>\r\n\r\nHello Bob.\r\n';
const signers = [['rsa-sha256', rsa], ['ed25519-sha256', ed]] as const;

test('signs with rsa-sha256 and ed25519-sha256; mailauth verifies pass; the TXT record has the RFC 8463 form for Ed25519', async () => {
  for (const [alg, key] of signers) {
    const s = new DkimSigner(key, 'example.com', 'sel1', { clock: () => NOW });
    assert.equal(s.algorithm, alg);
    const signed = await s.sign(Buffer.from(MSG));
    assert.match(signed.toString(), new RegExp(`^DKIM-Signature: v=1; a=${alg}; c=relaxed/relaxed; d=example.com;`));
    assert.match(signed.toString(), /t=1735787045;/);
    assert.deepEqual(await verify(signed, s), ['pass'], alg);
  }
  const edRecord = new DkimSigner(ed, 'example.com', 's').dnsRecord;
  assert.match(edRecord, /^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$/);
  assert.equal(Buffer.from(edRecord.split('p=')[1]!, 'base64').length, 32);
  assert.match(new DkimSigner(rsa, 'example.com', 's').dnsRecord, /^v=DKIM1; k=rsa; p=MIIBIjAN/);
});

test('with over-signing off and the same field list, the signature equals mailauth dkimSign byte for byte (pins the internals we reuse)', async () => {
  const list = 'From:Sender:Reply-To:Subject:Date:Message-ID:To:Cc:MIME-Version:Content-Type:Content-Transfer-Encoding:Content-ID:'
    + 'Content-Description:Resent-Date:Resent-From:Resent-Sender:Resent-To:Resent-Cc:Resent-Message-ID:In-Reply-To:References:'
    + 'List-Id:List-Help:List-Unsubscribe:List-Subscribe:List-Post:List-Owner:List-Archive:BIMI-Selector';
  const message = Buffer.from(`Received: from x\r\n${MSG.replace('\r\n\r\n', '\r\nTo: second@example.org\r\nX-Other:  folded\r\n  value \r\n\r\n')}trailing  space \r\n\r\n\r\n`);
  for (const [alg, key] of signers) {
    const ours = new DkimSigner(key, 'example.com', 'sel1', { clock: () => NOW, signedHeaders: list.split(':'), oversignedHeaders: [] });
    // mailauth's DkimSigner reads the key only from signatureData (its typings put signingDomain,
    // selector and privateKey at the top level, where they are ignored), and headerList only as a
    // colon-separated string (typed string[]; an array is silently replaced by the default list).
    const sigData = {
      signingDomain: 'example.com', selector: 'sel1', privateKey: key.export({ format: 'pem', type: 'pkcs8' }),
      algorithm: alg, canonicalization: 'relaxed/relaxed',
    };
    const theirs = await dkimSign(message, {
      ...sigData, signatureData: [sigData], signTime: new Date(NOW), headerList: list as unknown as string[],
    });
    assert.deepEqual(theirs.errors, []);
    assert.equal((await ours.signatureFor(message)).toString('latin1'), theirs.signatures, alg);
  }
});

test('over-signing: a second From, Subject, Reply-To or Content-Type added after signing fails; a new trace field does not', async () => {
  for (const [, key] of signers) {
    const s = new DkimSigner(key, 'example.com', 'sel1', { clock: () => NOW });
    const signed = (await s.sign(Buffer.from(MSG))).toString('latin1');
    assert.match(signed, /h=Message-ID: Date: Subject: To: From: From: Reply-To: Subject: To: Cc:/);
    const addField = (field: string) => Buffer.from(signed.replace('\r\n\r\n', `\r\n${field}\r\n\r\n`), 'latin1');
    const atTop = (field: string) => Buffer.from(`${field}\r\n${signed}`, 'latin1');
    assert.deepEqual(await verify(addField('From: Mallory <ceo@example.com>'), s), ['fail']);
    assert.deepEqual(await verify(atTop('From: Mallory <ceo@example.com>'), s), ['fail']);
    assert.deepEqual(await verify(addField('Subject: urgent wire transfer'), s), ['fail']);
    assert.deepEqual(await verify(addField('Reply-To: mallory@evil.test'), s), ['fail']);
    assert.deepEqual(await verify(addField('Content-Type: text/html'), s), ['fail']);
    assert.deepEqual(await verify(atTop('Received: from mx.example.org by mx2'), s), ['pass']);
    assert.deepEqual(await verify(addField('X-Spam-Score: 0'), s), ['pass']);
  }
});

test('a changed body or a changed signed field fails', async () => {
  const s = new DkimSigner(rsa, 'example.com', 'sel1', { clock: () => NOW });
  const signed = (await s.sign(Buffer.from(MSG))).toString('latin1');
  assert.deepEqual(await verify(Buffer.from(signed.replace('Hello Bob.', 'Hello Bob!'), 'latin1'), s), ['neutral (body hash did not verify)']);
  assert.deepEqual(await verify(Buffer.from(signed.replace('Subject: hello', 'Subject: hallo'), 'latin1'), s), ['fail']);
  // Relaxed canonicalization: whitespace changes inside a line and at its end are allowed.
  assert.deepEqual(await verify(Buffer.from(signed.replace('Hello Bob.', 'Hello   Bob.  '), 'latin1'), s), ['pass']);
});

test('what is signed is what the wire carries: bare LF/CR, dot-lines, 8-bit, no final newline survive stuffing and unstuffing', async () => {
  const s = new DkimSigner(ed, 'example.com', 'sel1', { clock: () => NOW });
  const raw = Buffer.from('From: a@example.com\nSubject: caf\xe9\r\n\n.\n..two\r.cr line\r\n\xff\xfe 8-bit \x80\n.\r\nlast line, no newline', 'latin1');
  // Send the signature field followed by the message as it sits in the spool, through the
  // same encoder the connection uses, and read it back as a server would.
  const wire = dotStuff(Buffer.concat([await s.signatureFor(raw), raw]), { stuff: true });
  const received = unstuff(wire);
  assert.deepEqual(await verify(received, s), ['pass']);
  assert.deepEqual(received, await s.sign(raw).then((b) => Buffer.from(b)), 'sign() returns exactly the received bytes');
});

test('property: the signature does not depend on how the message is split into chunks, and always verifies after the wire', async () => {
  const s = new DkimSigner(rsa, 'example.com', 'sel1', { clock: () => NOW });
  const piece = fc.constantFrom('\r\n', '\n', '\r', '\r\n\r\n', '\n\n', '.', '..', ' ', '\t', 'x', 'From: a@b.example', 'Subject: s', ' folded', '\xe9', '\xff', 'To: t@example.org');
  await fc.assert(
    fc.asyncProperty(fc.array(piece, { maxLength: 40 }), fc.array(fc.integer({ min: 1, max: 20 }), { maxLength: 10 }), async (pieces, cuts) => {
      const raw = Buffer.from(pieces.join(''), 'latin1');
      const chunks: Buffer[] = [];
      let pos = 0;
      for (const c of cuts) { chunks.push(raw.subarray(pos, pos + c)); pos += c; }
      chunks.push(raw.subarray(pos));
      if (raw[0] === 0x20 || raw[0] === 0x09) {
        // An indented first line would become part of the prepended field: refused, whole or split.
        await assert.rejects(s.signatureFor(raw), DkimUnsignableError);
        await assert.rejects(s.signatureFor(Readable.from(chunks.filter((c) => c.length > 0))), DkimUnsignableError);
        return;
      }
      const whole = await s.signatureFor(raw);
      const split = await s.signatureFor(Readable.from(chunks.filter((c) => c.length > 0)));
      assert.equal(split.toString('latin1'), whole.toString('latin1'));
      const received = unstuff(dotStuff(Buffer.concat([whole, raw]), { stuff: true }));
      assert.deepEqual(await verify(received, s), ['pass']);
    }),
    { numRuns: 60 },
  );
});

test('edge shapes: no body, no header, empty message', async () => {
  const s = new DkimSigner(rsa, 'example.com', 'sel1', { clock: () => NOW });
  for (const m of ['From: a@example.com\r\nSubject: only headers', '\r\nbody without a header', '', 'From: a@example.com\r\n\r\n']) {
    const received = unstuff(dotStuff(Buffer.concat([await s.signatureFor(Buffer.from(m)), Buffer.from(m)]), { stuff: true }));
    assert.deepEqual(await verify(received, s), ['pass'], JSON.stringify(m));
  }
  // RFC 5322 §2.2.3: a first line that starts with a space or tab would unfold into our field.
  for (const m of [' Subject: indented', '\tFrom: a@example.com\r\n\r\nbody']) {
    await assert.rejects(s.signatureFor(Buffer.from(m)), DkimUnsignableError);
  }
});

test('bh= agrees with nodemailer\'s independent relaxed body canonicalization', async () => {
  const s = new DkimSigner(rsa, 'example.com', 'sel1', { clock: () => NOW });
  const pem = rsa.export({ format: 'pem', type: 'pkcs8' }).toString();
  const nm = new DKIM({ domainName: 'example.com', keySelector: 'sel1', privateKey: pem });
  const bh = (b: Buffer) => /bh=([^;]+);/.exec(b.toString('latin1').replace(/\r\n\s+/g, ''))?.[1];
  for (const body of ['', 'x', 'a  b\t\tc  \r\n\r\n\r\n', ' \r\n \r\n', 'line\r\n\r\nline2 \t\r\n', '\xe9\xff  \x80\r\n', 'no final crlf']) {
    const m = Buffer.from(`From: a@example.com\r\n\r\n${body}`, 'latin1');
    const theirs = await new Promise<Buffer>((resolve, reject) => {
      const out: Buffer[] = [];
      nm.sign(m).on('data', (c: Buffer) => out.push(c)).on('end', () => resolve(Buffer.concat(out))).on('error', reject);
    });
    assert.equal(bh(await s.signatureFor(m)), bh(theirs), JSON.stringify(body));
  }
});

function keyFile(contents: string | Buffer): string {
  const f = join(mkdtempSync(join(tmpdir(), 'dkim-key-')), 'dkim.key');
  writeFileSync(f, contents);
  return f;
}
const pemOf = (k: KeyObject) => k.export({ format: 'pem', type: 'pkcs8' });

test('loadDkimSigner reads RSA-2048 and Ed25519 PEM keys', () => {
  assert.equal(loadDkimSigner({ domain: 'example.com', selector: 's', keyFile: keyFile(pemOf(rsa)) }).algorithm, 'rsa-sha256');
  assert.equal(loadDkimSigner({ domain: 'example.com', selector: 's', keyFile: keyFile(pemOf(ed)) }).algorithm, 'ed25519-sha256');
  // PKCS#1 ("BEGIN RSA PRIVATE KEY"), as openssl genrsa writes it, works too.
  assert.equal(loadDkimSigner({ domain: 'example.com', selector: 's', keyFile: keyFile(rsa.export({ format: 'pem', type: 'pkcs1' })) }).algorithm, 'rsa-sha256');
});

test('loadDkimSigner refuses unusable keys with an error that names the key file', () => {
  const small = keyFile(pemOf(generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey));
  const ec = keyFile(pemOf(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey));
  const pub = keyFile(generateKeyPairSync('ed25519').publicKey.export({ format: 'pem', type: 'spki' }));
  const garbage = keyFile('not a key\n');
  const encrypted = keyFile(rsa.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'x' }));
  const cases: Array<[string, RegExp]> = [
    [small, /RSA key has 1024 bits; at least 2048 are required/],
    [ec, /key type ec cannot sign DKIM/],
    [pub, /not a usable PEM private key/],
    [garbage, /not a usable PEM private key/],
    [encrypted, /not a usable PEM private key/],
    ['/nonexistent/dkim.key', /cannot read the key file \(ENOENT\)/],
  ];
  for (const [file, why] of cases) {
    assert.throws(() => loadDkimSigner({ domain: 'example.com', selector: 's', keyFile: file }), (err: Error) => {
      assert.ok(err instanceof DkimKeyError, err.message);
      assert.ok(err.message.startsWith(`DKIM key ${file}: `), err.message);
      assert.match(err.message, why);
      return true;
    });
  }
});

test('refuses a d= or s= that could break the tag list', () => {
  assert.throws(() => new DkimSigner(ed, 'example.com; h=x', 's'), /d= domain/);
  assert.throws(() => new DkimSigner(ed, 'example.com', 's;x'), /s= selector/);
  assert.throws(() => new DkimSigner(ed, 'example.com', 'a b'), /s= selector/);
  assert.doesNotThrow(() => new DkimSigner(ed, 'mail.example.co.uk', '2025-01.rotation'));
});
