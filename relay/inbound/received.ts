// The Received trace header a relay MUST prepend to every message it accepts
// (RFC 5321 §4.4), built PURELY from session facts. Shape, as Postfix writes it:
//
//   Received: from <helo> (<rdns> [<ip>])
//   	(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)
//   	by <hostname> (mailrelay) with ESMTPSA id <id>
//   	for <rcpt>; Tue, 25 Nov 2025 10:00:00 +0000
import { isIPv6 } from 'node:net';

/** What goes into one Received header. */
export interface ReceivedFacts {
  /** Name from EHLO/HELO (RFC 5321 §4.4 From-domain). */
  heloName: string;
  /** Client IP address. */
  clientAddress: string;
  /** Reverse DNS name of the client, if it had one. */
  clientHostname?: string;
  /** Our own name (By-domain). */
  hostname: string;
  /** RFC 3848 "with" keyword: SMTP, ESMTP, ESMTPS, ESMTPA, ESMTPSA. */
  protocol: string;
  /** TLS parameters of the session, if it was encrypted. */
  tls?: { version?: string; cipher?: string };
  /** Our id for this transaction (ID clause). */
  id: string;
  /** Accepted recipients; the For clause names one only when there is exactly one (RFC 5321 §7.2: it would disclose the others). */
  recipients: readonly string[];
  /** When the message was received (ms since the epoch). */
  date: number;
}

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const two = (n: number): string => String(n).padStart(2, '0');

/** RFC 5322 §3.3 date-time in UTC, e.g. "Tue, 25 Nov 2025 10:00:00 +0000". */
export function formatRfc5322Date(ms: number): string {
  const d = new Date(ms);
  return `${DAYS[d.getUTCDay()]}, ${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} `
    + `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} +0000`;
}

/** RFC 5321 §4.1.3 address literal: [192.0.2.1] or [IPv6:2001:db8::1]. */
export function addressLiteral(ip: string): string {
  return isIPv6(ip) ? `[IPv6:${ip}]` : `[${ip}]`;
}

// Client-chosen text (the HELO name, a PTR record) goes into a header: keep it to
// visible ASCII without the characters that would end a comment or the clause.
const unsafe = (s: string): string => s.replace(/[^\x21-\x7e]|[();\\]/g, '?');

/** Builds the Received header field, folded, ending in CRLF. */
export function buildReceivedHeader(f: ReceivedFacts): string {
  const literal = addressLiteral(f.clientAddress);
  const rdns = f.clientHostname && !f.clientHostname.startsWith('[') ? `${unsafe(f.clientHostname)} ` : '';
  const lines = [`Received: from ${unsafe(f.heloName) || literal} (${rdns}${literal})`];
  if (f.tls?.version || f.tls?.cipher) {
    lines.push(`\t(using ${unsafe(f.tls.version ?? 'TLS')}${f.tls.cipher ? ` with cipher ${unsafe(f.tls.cipher)}` : ''})`);
  }
  lines.push(`\tby ${unsafe(f.hostname)} (mailrelay) with ${f.protocol} id ${unsafe(f.id)}`);
  const only = f.recipients.length === 1 ? f.recipients[0] : undefined;
  const date = formatRfc5322Date(f.date);
  // An SMTPUTF8 recipient is UTF-8 here, which RFC 6532 allows in such a message's header.
  if (only !== undefined) lines.push(`\tfor <${only.replace(/[\r\n]/g, '')}>; ${date}`);
  else lines[lines.length - 1] += `; ${date}`;
  return `${lines.join('\r\n')}\r\n`;
}

/** RFC 3848 "with" keyword for a session: ESMTP or SMTP, plus S for TLS and A for AUTH. */
export function withProtocol(opening: 'EHLO' | 'HELO' | string, secure: boolean, authenticated: boolean): string {
  return `${opening === 'HELO' ? 'SMTP' : 'ESMTP'}${secure ? 'S' : ''}${authenticated ? 'A' : ''}`;
}
