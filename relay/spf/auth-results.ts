// The Authentication-Results header field (RFC 8601) that records SPF results in the
// message, and the test for fields a client forged with our authserv-id, which RFC 8601
// §5 says we MUST remove before adding ours. PURE.
//
//   Authentication-Results: relay.example;
//   	spf=pass (relay.example: domain of a@example.com designates 192.0.2.1 as permitted sender)
//   	smtp.mailfrom=a@example.com;
//   	spf=none (relay.example: mx.example.com does not designate permitted sender hosts)
//   	smtp.helo=mx.example.com
import type { SpfCheckResult } from './check.ts';

const ATEXT_ADDRESS = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/;
const DOMAIN = /^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/;
const TOKEN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

/** RFC 5322 §3.2.2 comment text: printable ASCII without the characters that end or escape a comment; bounded. */
function commentText(s: string): string {
  const clean = s.replace(/[^\x20-\x7e]|[()\\]/g, ' ').replace(/\s+/g, ' ').trim();
  return clean.length > 200 ? `${clean.slice(0, 197)}...` : clean;
}

/** RFC 2045 quoted-string (printable ASCII only), used when a value is neither a token nor an address. */
function quoted(s: string): string {
  return `"${s.replace(/[^\x20-\x7e]/g, '').replace(/(["\\])/g, '\\$1')}"`;
}

/**
 * RFC 8601 §2.2 pvalue for smtp.mailfrom / smtp.helo: the address or domain as is when
 * its syntax allows, else the domain alone (RFC 8601 §2.7.2: SPF evaluates the domain),
 * else a quoted-string.
 */
export function propertyValue(value: string): string {
  if (ATEXT_ADDRESS.test(value) || DOMAIN.test(value)) return value;
  const domain = value.slice(value.lastIndexOf('@') + 1);
  if (DOMAIN.test(domain)) return domain;
  return quoted(value);
}

/** RFC 8601 §2.5 authserv-id as a value: a token when it is one, else quoted. */
function authservValue(id: string): string {
  return TOKEN.test(id) ? id : quoted(id);
}

/** Builds an Authentication-Results field for SPF results, folded, ending in CRLF. */
export function buildAuthResultsHeader(authservId: string, results: readonly SpfCheckResult[]): string {
  const lines = [`Authentication-Results: ${authservValue(authservId)}${results.length === 0 ? '; none' : ''}`];
  for (const r of results) {
    const prop = r.identity === 'helo' ? `smtp.helo=${propertyValue(r.domain)}` : `smtp.mailfrom=${propertyValue(r.sender)}`;
    lines[lines.length - 1] += ';';
    lines.push(`\tspf=${r.result} (${commentText(r.comment)})`, `\t${prop}`);
  }
  return `${lines.join('\r\n')}\r\n`;
}

/**
 * Whether a header field is an Authentication-Results field claiming to come from
 * `authservId` (RFC 8601 §5: an MTA MUST delete those that did not come from a trusted
 * MTA of its own boundary). `value` is the field body after the colon, possibly folded.
 */
export function claimsAuthservId(name: string, value: string, authservId: string): boolean {
  if (name.trim().toLowerCase() !== 'authentication-results') return false;
  // The authserv-id is the first value, after any CFWS; comments may nest (RFC 5322 §3.2.2).
  let s = value.replace(/\r\n/g, '');
  for (let i = 0; i < 20; i++) {
    s = s.trimStart();
    if (!s.startsWith('(')) break;
    let depth = 0;
    let j = 0;
    for (; j < s.length; j++) {
      if (s[j] === '\\') j++;
      else if (s[j] === '(') depth++;
      else if (s[j] === ')' && --depth === 0) break;
    }
    s = s.slice(j + 1);
  }
  s = s.trimStart();
  let id: string;
  if (s.startsWith('"')) {
    const m = /^"((?:[^"\\]|\\.)*)"/.exec(s);
    id = m ? (m[1] ?? '').replace(/\\(.)/g, '$1') : '';
  } else {
    id = /^[^\s;()]*/.exec(s)?.[0] ?? '';
  }
  return id.toLowerCase() === authservId.toLowerCase();
}
