import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  deliveryStatusBody, diagnosticCode, fieldText, foldField, normalizeStatus, rfc5322Date, splitTyped, typedAddress,
} from './fields.ts';

const unfold = (s: string) => s.replace(/\r\n(?=[ \t])/g, '');

test('rfc5322Date: UTC with a numeric zone', () => {
  assert.equal(rfc5322Date(Date.UTC(2025, 0, 2, 3, 4, 5)), 'Thu, 02 Jan 2025 03:04:05 +0000');
});

test('fieldText: controls become spaces, non-ASCII becomes \\x{HEX}, printable ASCII and HT stay', () => {
  assert.equal(fieldText('a\r\nb\0c\td'), 'a  b c\td');
  assert.equal(fieldText('Grüße 😀'), 'Gr\\x{FC}\\x{DF}e \\x{1F600}');
  assert.equal(fieldText('550 5.1.1 <x@y> said: "no"'), '550 5.1.1 <x@y> said: "no"');
});

test('typedAddress and splitTyped', () => {
  assert.equal(typedAddress('rfc822', 'bob@dest.example'), 'rfc822; bob@dest.example');
  assert.equal(typedAddress('rfc822', 'bö+b=x\\@d.example'), 'utf-8; b\\x{F6}\\x{2B}b\\x{3D}x\\x{5C}@d.example');
  assert.equal(typedAddress('x400', 'c=us;a= ;'), 'x400; c=us;a= ;');
  assert.deepEqual(splitTyped('rfc822;Bob@Dest.example', 'rfc822'), { type: 'rfc822', value: 'Bob@Dest.example' });
  assert.deepEqual(splitTyped(' dns ; mx.example ', 'dns'), { type: 'dns', value: 'mx.example ' });
  assert.deepEqual(splitTyped('mx.example', 'dns'), { type: 'dns', value: 'mx.example' });
  assert.deepEqual(splitTyped('"a;b"@x.example', 'rfc822'), { type: 'rfc822', value: '"a;b"@x.example' });
});

test('normalizeStatus keeps RFC 3463 codes and replaces anything else by the class default', () => {
  assert.equal(normalizeStatus('5.2.2', 'failed'), '5.2.2');
  assert.equal(normalizeStatus(' 4.4.7 ', 'failed'), '4.4.7');
  assert.equal(normalizeStatus('', 'failed'), '5.0.0');
  assert.equal(normalizeStatus('4.4', 'delayed'), '4.0.0');
  assert.equal(normalizeStatus('x', 'delivered'), '2.0.0');
  assert.equal(normalizeStatus('6.0.0', 'relayed'), '2.0.0');
});

test('diagnosticCode: smtp for replies, a private type for our own texts', () => {
  assert.equal(diagnosticCode('552 5.2.2 Mailbox full'), 'smtp; 552 5.2.2 Mailbox full');
  assert.equal(diagnosticCode('550-5.1.1 first / 550 5.1.1 second'), 'smtp; 550-5.1.1 first / 550 5.1.1 second');
  assert.equal(diagnosticCode('421'), 'smtp; 421');
  assert.equal(diagnosticCode('connect timeout'), 'X-mailrelay; connect timeout');
  assert.equal(diagnosticCode('4211 nope'), 'X-mailrelay; 4211 nope');
});

test('foldField: short fields stay on one line', () => {
  assert.equal(foldField('Status', '5.2.2'), 'Status: 5.2.2\r\n');
});

test('foldField: unfolding gives the field back, lines stay within 78 where there is a space, never over 998', () => {
  const word = fc.string({ unit: fc.constantFrom('a', 'b', '.', '-', ';'), minLength: 1, maxLength: 40 });
  const value = fc.array(word, { minLength: 1, maxLength: 80 }).map((ws) => ws.join(' '));
  fc.assert(fc.property(value, (v) => {
    const folded = foldField('Diagnostic-Code', v);
    assert.ok(folded.endsWith('\r\n'));
    assert.equal(unfold(folded), `Diagnostic-Code: ${v}\r\n`);
    for (const line of folded.slice(0, -2).split('\r\n')) {
      assert.ok(line.length <= 78, `"${line}" (${line.length})`);
      assert.notEqual(line.trim(), '', 'no blank continuation line');
    }
  }));
});

test('foldField: a run with no space longer than a line is split hard at 998', () => {
  const v = 'q'.repeat(2500);
  const folded = foldField('Diagnostic-Code', v);
  const lines = folded.slice(0, -2).split('\r\n');
  assert.ok(lines.every((l) => l.length <= 998));
  assert.equal(folded.replace(/\r\n /g, ''), `Diagnostic-Code: ${v}\r\n`, 'each hard split inserted exactly CRLF SP');
});

test('foldField: runs of spaces never leave a whitespace-only line', () => {
  const v = `${'a'.repeat(70)}${' '.repeat(30)}${'b'.repeat(70)}`;
  const folded = foldField('Diagnostic-Code', v);
  assert.equal(unfold(folded), `Diagnostic-Code: ${v}\r\n`);
  for (const line of folded.slice(0, -2).split('\r\n')) assert.notEqual(line.trim(), '');
});

test('deliveryStatusBody: per-message fields, then each group after an empty line, CRLF throughout', () => {
  const body = deliveryStatusBody({
    reportingMta: 'dns; relay.example', arrivalDate: 0,
    recipients: [
      { address: 'a@x.example', action: 'failed', status: '5.1.1' },
      { address: 'b@x.example', action: 'delayed', status: '4.4.1', willRetryUntil: 86_400_000, lastAttemptAt: 0 },
      { address: 'c@x.example', action: 'failed', status: '5.1.1', willRetryUntil: 86_400_000 },
    ],
  });
  assert.equal(body,
    'Reporting-MTA: dns; relay.example\r\nArrival-Date: Thu, 01 Jan 1970 00:00:00 +0000\r\n' +
    '\r\nFinal-Recipient: rfc822; a@x.example\r\nAction: failed\r\nStatus: 5.1.1\r\n' +
    '\r\nFinal-Recipient: rfc822; b@x.example\r\nAction: delayed\r\nStatus: 4.4.1\r\n' +
    'Last-Attempt-Date: Thu, 01 Jan 1970 00:00:00 +0000\r\nWill-Retry-Until: Fri, 02 Jan 1970 00:00:00 +0000\r\n' +
    '\r\nFinal-Recipient: rfc822; c@x.example\r\nAction: failed\r\nStatus: 5.1.1\r\n');
});
