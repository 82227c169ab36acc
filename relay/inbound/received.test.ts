import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addressLiteral, buildReceivedHeader, formatRfc5322Date, withProtocol } from './received.ts';

const at = Date.UTC(2025, 10, 25, 9, 5, 7);

test('formatRfc5322Date writes RFC 5322 §3.3 date-time in UTC', () => {
  assert.equal(formatRfc5322Date(at), 'Tue, 25 Nov 2025 09:05:07 +0000');
  assert.equal(formatRfc5322Date(Date.UTC(2024, 1, 29, 23, 59, 59)), 'Thu, 29 Feb 2024 23:59:59 +0000');
});

test('addressLiteral: IPv4 in brackets, IPv6 with the IPv6: tag (RFC 5321 §4.1.3)', () => {
  assert.equal(addressLiteral('192.0.2.1'), '[192.0.2.1]');
  assert.equal(addressLiteral('2001:db8::1'), '[IPv6:2001:db8::1]');
});

test('withProtocol follows RFC 3848', () => {
  assert.equal(withProtocol('EHLO', false, false), 'ESMTP');
  assert.equal(withProtocol('EHLO', true, false), 'ESMTPS');
  assert.equal(withProtocol('EHLO', false, true), 'ESMTPA');
  assert.equal(withProtocol('EHLO', true, true), 'ESMTPSA');
  assert.equal(withProtocol('HELO', false, false), 'SMTP');
});

test('Received header: from/by/with/id/for; date, folded, CRLF-terminated', () => {
  const h = buildReceivedHeader({
    heloName: 'client.example', clientAddress: '192.0.2.7', clientHostname: 'mx.client.example',
    hostname: 'relay.test', protocol: 'ESMTPS', tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' },
    id: 'abc-1', recipients: ['rcpt@example.org'], date: at,
  });
  assert.equal(h, [
    'Received: from client.example (mx.client.example [192.0.2.7])',
    '\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)',
    '\tby relay.test (mailrelay) with ESMTPS id abc-1',
    '\tfor <rcpt@example.org>; Tue, 25 Nov 2025 09:05:07 +0000',
    '',
  ].join('\r\n'));
});

test('Received header: no For clause for several recipients, no rDNS, and client text made safe', () => {
  const h = buildReceivedHeader({
    heloName: 'evil;(x)\u00e9', clientAddress: '2001:db8::5', clientHostname: '[2001:db8::5]',
    hostname: 'relay.test', protocol: 'ESMTP', id: 'i', recipients: ['a@example.org', 'b@example.org'], date: at,
  });
  assert.equal(h, [
    'Received: from evil??x?? ([IPv6:2001:db8::5])',
    '\tby relay.test (mailrelay) with ESMTP id i; Tue, 25 Nov 2025 09:05:07 +0000',
    '',
  ].join('\r\n'));
  for (const line of h.split('\r\n')) assert.ok(line.length < 998, 'RFC 5322 §2.1.1 line limit');
});
