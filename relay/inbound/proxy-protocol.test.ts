// Table tests of the PROXY header parser: the examples of HAProxy's proxy-protocol.txt,
// what real load balancers send (AWS NLB, GCP, HAProxy send-proxy-v2 with TLVs), and the
// malformed and hostile inputs a listener must refuse.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PROXY_V2_SIGNATURE, ipv6, looksLikeProxyHeader, parseProxyHeader } from './proxy-protocol.ts';

/** A v2 header: signature, ver/cmd, fam/proto, length, then `body`. */
function v2(verCmd: number, famProto: number, body: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(body.length);
  return Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([verCmd, famProto]), len, body]);
}
const ipv4Body = (src: number[], dst: number[], sport: number, dport: number, tlvs = Buffer.alloc(0)): Buffer => {
  const b = Buffer.alloc(12);
  Buffer.from(src).copy(b, 0);
  Buffer.from(dst).copy(b, 4);
  b.writeUInt16BE(sport, 8);
  b.writeUInt16BE(dport, 10);
  return Buffer.concat([b, tlvs]);
};
const ipv6Body = (src: string, dst: string, sport: number, dport: number): Buffer => {
  const bytes = (hex: string) => Buffer.from(hex.replace(/:/g, ''), 'hex');
  const b = Buffer.alloc(36);
  bytes(src).copy(b, 0);
  bytes(dst).copy(b, 16);
  b.writeUInt16BE(sport, 32);
  b.writeUInt16BE(dport, 34);
  return b;
};
// An AWS NLB-style TLV: type 0xEA (PP2_TYPE_AWS), subtype 0x01 (VPC endpoint id).
const awsTlv = Buffer.concat([Buffer.from([0xea, 0x00, 0x17, 0x01]), Buffer.from('vpce-08d2bf15fac5001c9')]);
const latin = (s: string) => Buffer.from(s, 'latin1');

test('v1 and v2 headers give the client address, the header length, or LOCAL', () => {
  const cases: [string, Buffer, unknown][] = [
    ['v1 TCP4', latin('PROXY TCP4 192.0.2.10 198.51.100.1 56324 25\r\n'),
      { kind: 'proxied', version: 1, source: { address: '192.0.2.10', port: 56324 }, destination: { address: '198.51.100.1', port: 25 }, length: 45 }],
    ['v1 TCP6', latin('PROXY TCP6 2001:db8::10 2001:db8::1 40000 2525\r\n'),
      { kind: 'proxied', version: 1, source: { address: '2001:db8::10', port: 40000 }, destination: { address: '2001:db8::1', port: 2525 }, length: 48 }],
    ['v1 UNKNOWN (no addresses)', latin('PROXY UNKNOWN\r\n'), { kind: 'local', version: 1, length: 15 }],
    ['v1 UNKNOWN with addresses, ignored', latin('PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n'), { kind: 'local', version: 1, length: 39 }],
    ['v1 longest legal line (107 bytes)',
      latin('PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n'),
      { kind: 'local', version: 1, length: 107 }],
    ['v2 PROXY TCP4', v2(0x21, 0x11, ipv4Body([203, 0, 113, 7], [10, 0, 0, 5], 61000, 25)),
      { kind: 'proxied', version: 2, source: { address: '203.0.113.7', port: 61000 }, destination: { address: '10.0.0.5', port: 25 }, length: 28 }],
    ['v2 PROXY TCP4 with an AWS TLV after the addresses', v2(0x21, 0x11, ipv4Body([203, 0, 113, 7], [10, 0, 0, 5], 61000, 25, awsTlv)),
      { kind: 'proxied', version: 2, source: { address: '203.0.113.7', port: 61000 }, destination: { address: '10.0.0.5', port: 25 }, length: 28 + awsTlv.length }],
    ['v2 PROXY TCP6', v2(0x21, 0x21, ipv6Body('2001:0db8:0000:0000:0000:0000:0000:0010', 'fd00:0000:0000:0000:0000:0000:0000:0001', 443, 25)),
      { kind: 'proxied', version: 2, source: { address: '2001:db8::10', port: 443 }, destination: { address: 'fd00::1', port: 25 }, length: 52 }],
    ['v2 LOCAL (a health check), address block ignored', v2(0x20, 0x00, Buffer.alloc(0)), { kind: 'local', version: 2, length: 16 }],
    ['v2 LOCAL with a TCP4 block', v2(0x20, 0x11, ipv4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)), { kind: 'local', version: 2, length: 28 }],
    ['v2 PROXY AF_UNSPEC', v2(0x21, 0x00, Buffer.alloc(0)), { kind: 'local', version: 2, length: 16 }],
  ];
  for (const [name, bytes, want] of cases) assert.deepEqual(parseProxyHeader(bytes), want, name);
});

test('the header length leaves the client\'s own bytes after it untouched', () => {
  const header = latin('PROXY TCP4 192.0.2.10 198.51.100.1 56324 25\r\n');
  const r = parseProxyHeader(Buffer.concat([header, latin('EHLO client\r\n')]));
  assert.equal(r.kind, 'proxied');
  assert.equal(r.kind === 'proxied' && r.length, header.length);
  const h2 = v2(0x21, 0x11, ipv4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2));
  const r2 = parseProxyHeader(Buffer.concat([h2, latin('QUIT\r\n')]));
  assert.equal(r2.kind === 'proxied' && r2.length, h2.length);
});

test('a header cut anywhere short of its end asks for more bytes', () => {
  const headers = [
    latin('PROXY TCP4 192.0.2.10 198.51.100.1 56324 25\r\n'),
    v2(0x21, 0x11, ipv4Body([203, 0, 113, 7], [10, 0, 0, 5], 61000, 25, awsTlv)),
    v2(0x21, 0x21, ipv6Body('20010db8000000000000000000000010', 'fd000000000000000000000000000001', 443, 25)),
  ];
  for (const h of headers) {
    for (let n = 1; n < h.length; n++) assert.deepEqual(parseProxyHeader(h.subarray(0, n)), { kind: 'incomplete' }, `${n} of ${h.length} bytes`);
  }
});

test('malformed, hostile and unsupported headers are refused with a reason', () => {
  const cases: [string, Buffer, string][] = [
    ['an SMTP client talking first', latin('EHLO client.example\r\n'), 'not_proxy'],
    ['an HTTP request', latin('GET / HTTP/1.1\r\n'), 'not_proxy'],
    ['lower-case keyword', latin('proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n'), 'not_proxy'],
    ['v1 without CRLF within 107 bytes', latin(`PROXY TCP4 ${'1'.repeat(120)}`), 'too_long'],
    ['v1 CRLF past byte 107', latin(`PROXY UNKNOWN ${'x'.repeat(100)}\r\n`), 'too_long'],
    ['v1 bare LF', latin('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n'), 'bad_syntax'],
    ['v1 UDP4', latin('PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n'), 'bad_syntax'],
    ['v1 missing port', latin('PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n'), 'bad_syntax'],
    ['v1 double space', latin('PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n'), 'bad_syntax'],
    ['v1 TCP4 with an IPv6 address', latin('PROXY TCP4 ::1 5.6.7.8 1 2\r\n'), 'bad_address'],
    ['v1 TCP6 with an IPv4 address', latin('PROXY TCP6 1.2.3.4 ::1 1 2\r\n'), 'bad_address'],
    ['v1 a host name for an address', latin('PROXY TCP4 evil.example 5.6.7.8 1 2\r\n'), 'bad_address'],
    ['v1 CR injection in the address', latin('PROXY TCP4 1.2.3.4\r5.6.7.8 1 2 3\r\n'), 'bad_address'],
    ['v1 port out of range', latin('PROXY TCP4 1.2.3.4 5.6.7.8 65536 25\r\n'), 'bad_address'],
    ['v1 port with a leading zero', latin('PROXY TCP4 1.2.3.4 5.6.7.8 025 25\r\n'), 'bad_address'],
    ['v1 negative port', latin('PROXY TCP4 1.2.3.4 5.6.7.8 -1 25\r\n'), 'bad_address'],
    ['v2 version 1', v2(0x11, 0x11, ipv4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)), 'bad_version'],
    ['v2 command 2', v2(0x22, 0x11, ipv4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)), 'bad_version'],
    ['v2 UDP over IPv4', v2(0x21, 0x12, ipv4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)), 'unsupported_family'],
    ['v2 UNIX stream', v2(0x21, 0x31, Buffer.alloc(216)), 'unsupported_family'],
    ['v2 TCP4 address block too short', v2(0x21, 0x11, Buffer.alloc(8)), 'bad_address'],
    ['v2 TCP6 address block too short', v2(0x21, 0x21, Buffer.alloc(20)), 'bad_address'],
  ];
  for (const [name, bytes, problem] of cases) {
    const r = parseProxyHeader(bytes);
    assert.equal(r.kind, 'invalid', name);
    assert.equal(r.kind === 'invalid' && r.problem, problem, name);
  }
});

test('looksLikeProxyHeader spots the start of either version, and nothing else', () => {
  assert.ok(looksLikeProxyHeader(latin('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n')));
  assert.ok(looksLikeProxyHeader(latin('PRO')));
  assert.ok(looksLikeProxyHeader(PROXY_V2_SIGNATURE.subarray(0, 5)));
  assert.ok(looksLikeProxyHeader(v2(0x21, 0x11, ipv4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2))));
  assert.ok(!looksLikeProxyHeader(latin('EHLO x\r\n')));
  assert.ok(!looksLikeProxyHeader(latin('\r\nQUIT\r\n')));
  assert.ok(!looksLikeProxyHeader(Buffer.alloc(0)));
});

test('IPv6 addresses come out in RFC 5952 form', () => {
  const cases: [string, string][] = [
    ['00000000000000000000000000000001', '::1'],
    ['00000000000000000000000000000000', '::'],
    ['20010db8000000000001000000000001', '2001:db8::1:0:0:1'],
    ['20010db8000000010000000000000001', '2001:db8:0:1::1'],
    ['20010db8000000000000000100000001', '2001:db8::1:0:1'],
    ['20010db8000100010001000100010001', '2001:db8:1:1:1:1:1:1'],
    ['20010db8000000010001000100010001', '2001:db8:0:1:1:1:1:1'],
    ['00000000000000000000ffffc0000201', '::ffff:192.0.2.1'],
    ['fe800000000000000000000000000000', 'fe80::'],
  ];
  for (const [hex, want] of cases) assert.equal(ipv6(Buffer.from(hex, 'hex')), want, hex);
});
