// 8-bit to 7-bit conversion for next hops without 8BITMIME (RFC 6152 §3), part by part.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { downgradeTo7bit } from './downgrade.ts';

const utf8 = (s: string) => Buffer.from(s, 'utf8');
const is7bit = (b: Buffer) => b.every((c) => c < 0x80);
// RFC 2045 §6.7 decoding, written out here so the check does not share code with the encoder.
const unQp = (s: string) => Buffer.from(s.replace(/=\r\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8');

test('a 7-bit message comes out byte for byte unchanged', () => {
  const m = utf8('Subject: plain\r\n\r\nhello\r\n.\r\n');
  const d = downgradeTo7bit(m);
  assert.ok(d.ok);
  assert.equal(d.changed, false);
  assert.ok(d.bytes.equals(m));
});

test('an 8-bit single-part body becomes quoted-printable; the text reads the same', () => {
  const m = utf8('Subject: hi\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln, ça va ? ' + 'é'.repeat(60) + '\r\n');
  const d = downgradeTo7bit(m);
  assert.ok(d.ok && d.changed);
  assert.ok(is7bit(d.bytes));
  assert.match(d.bytes.toString(), /Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe/);
  assert.ok(d.bytes.toString().split('\r\n').every((l) => l.length <= 78));
  assert.equal(unQp(d.bytes.toString().split('\r\n\r\n')[1]!), 'Grüße aus Köln, ça va ? ' + 'é'.repeat(60) + '\r\n');
});

test('multipart: only the 8-bit part is converted; the 7-bit part and the boundaries stay as they were', () => {
  const m = utf8([
    'Subject: mp', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="b1"', '', 'preamble',
    '--b1', 'Content-Type: text/plain; charset=us-ascii', '', 'plain part', '.', '--b1',
    'Content-Type: text/plain; charset=utf-8', 'Content-Transfer-Encoding: 8bit', '', 'naïve café', '--b1--', 'epilogue', '',
  ].join('\r\n'));
  const d = downgradeTo7bit(m);
  assert.ok(d.ok && d.changed);
  assert.ok(is7bit(d.bytes));
  const text = d.bytes.toString();
  assert.ok(text.includes('--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nplain part\r\n.\r\n--b1\r\n'), text);
  assert.ok(text.includes('Content-Transfer-Encoding: quoted-printable\r\n\r\nna=C3=AFve caf=C3=A9\r\n--b1--\r\nepilogue'), text);
  assert.equal(unQp(text), m.toString('utf8').replace('Content-Transfer-Encoding: 8bit', 'Content-Transfer-Encoding: quoted-printable'));
});

test('8-bit header fields and binary parts cannot be converted: 5.6.3 material', () => {
  const h = downgradeTo7bit(utf8('Subject: Grüße\r\n\r\nbody é\r\n'));
  assert.equal(h.ok, false);
  const b = downgradeTo7bit(Buffer.concat([utf8('Content-Transfer-Encoding: binary\r\n\r\n'), Buffer.from([0xff, 0x00, 0x0d, 0x41])]));
  assert.equal(b.ok, false);
  assert.match(!b.ok ? b.reason : '', /binary/);
});
