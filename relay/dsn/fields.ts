// The message/delivery-status body (RFC 3464 §2): per-message fields, then one group of
// per-recipient fields per recipient, each group preceded by an empty line (§2.1). Fields
// use RFC 5322 header syntax, so they may be folded (§2.1.1); their values are US-ASCII
// text, so control characters are replaced and non-ASCII characters are written as RFC 6533
// §3 \x{HEX} escapes, which keeps the part 7bit and stops a reply carrying CRLF from
// forging fields of its own.
import type { DsnAction, DsnInput, DsnRecipient } from './types.ts';

/** Preferred folded line length (RFC 5322 §2.1.1 SHOULD); lines never exceed 998. */
const FOLD_AT = 78;
const MAX_LINE = 998;

/** RFC 3463 §2 status-code syntax: class.subject.detail. */
const STATUS_RE = /^[245]\.\d{1,3}\.\d{1,3}$/;

/** RFC 5322 §3.3 date-time in UTC, e.g. "Tue, 24 Nov 2025 12:10:00 +0000". */
export function rfc5322Date(ms: number): string {
  return new Date(ms).toUTCString().replace(/GMT$/, '+0000');
}

/**
 * A value made safe for one DSN field (RFC 3464 §2.1.1, RFC 5322 *text): CR, LF and other
 * controls (HT kept) become a space, non-ASCII code points become \x{HEX} (RFC 6533 §3).
 */
export function fieldText(value: string): string {
  let out = '';
  for (const ch of value) {
    const cp = ch.codePointAt(0)!;
    if (cp === 0x09 || (cp >= 0x20 && cp < 0x7f)) out += ch;
    else if (cp < 0x20 || cp === 0x7f) out += ' ';
    else out += `\\x{${cp.toString(16).toUpperCase()}}`;
  }
  return out;
}

/** RFC 6533 §3 utf-8-addr-xtext: QCHARs as they are, every other character as \x{HEX}. */
function utf8AddrXtext(address: string): string {
  let out = '';
  for (const ch of address) {
    const cp = ch.codePointAt(0)!;
    const qchar = cp >= 0x21 && cp <= 0x7e && cp !== 0x2b && cp !== 0x3d && cp !== 0x5c;
    out += qchar ? ch : `\\x{${cp.toString(16).toUpperCase()}}`;
  }
  return out;
}

/**
 * "address-type; address" for Final-Recipient and Original-Recipient (RFC 3464 §2.3.1–2).
 * An address with non-ASCII characters (SMTPUTF8) is typed utf-8 instead of rfc822 (RFC 6533 §3).
 */
export function typedAddress(type: string, address: string): string {
  const addr = address.trim();
  const ascii = [...addr].every((ch) => ch.codePointAt(0)! <= 0x7f);
  if (type.toLowerCase() === 'rfc822' && !ascii) return `utf-8; ${utf8AddrXtext(addr)}`;
  return `${fieldText(type)}; ${fieldText(addr)}`;
}

/** Splits "type;value" (ORCPT, Remote-MTA) into its type and value; a value without a type gets `defaultType`. */
export function splitTyped(value: string, defaultType: string): { type: string; value: string } {
  const m = /^\s*([A-Za-z0-9][A-Za-z0-9-]*)\s*;\s*(.*)$/s.exec(value);
  return m ? { type: m[1]!, value: m[2]! } : { type: defaultType, value: value.trim() };
}

/** The status to write: the given RFC 3463 code, or the generic code of the action's class when malformed. */
export function normalizeStatus(status: string, action: DsnAction): string {
  const s = status.trim();
  if (STATUS_RE.test(s)) return s;
  return action === 'failed' ? '5.0.0' : action === 'delayed' ? '4.0.0' : '2.0.0';
}

/**
 * Diagnostic-Code value (RFC 3464 §2.3.6): "smtp; <reply>" when the text is an SMTP reply
 * (it starts with a reply code), kept exactly as the server sent it; anything else (our
 * own description of a connection failure, say) is typed "X-mailrelay".
 */
export function diagnosticCode(diagnostic: string): string {
  const text = fieldText(diagnostic).trim();
  const type = /^[2-5]\d\d(?:[ -]|$)/.test(text) ? 'smtp' : 'X-mailrelay';
  return `${type}; ${text}`;
}

/**
 * One field as CRLF-terminated text, folded (RFC 5322 §2.2.3) before a space so unfolding
 * gives the value back unchanged. A run with no space longer than a line is split hard.
 */
export function foldField(name: string, value: string): string {
  const line = `${name}: ${value}`;
  if (line.length <= FOLD_AT) return `${line}\r\n`;
  const out: string[] = [];
  let rest = line;
  while (rest.length > FOLD_AT) {
    // Fold at the last space within the preferred length, but after the "Name: " of the
    // first line and after some text on a continuation line (never leave a blank line).
    const lead = out.length === 0 ? name.length + 2 : rest.search(/[^ \t]/);
    if (lead === -1) break;
    const min = lead + 1;
    let at = rest.lastIndexOf(' ', FOLD_AT);
    if (at < min) at = rest.indexOf(' ', FOLD_AT); // none early enough: the first one after
    if (at < min || at > MAX_LINE) at = Math.min(rest.length, MAX_LINE); // none usable: hard split
    if (at >= rest.length) break;
    out.push(rest.slice(0, at));
    rest = rest.slice(at);
    if (!rest.startsWith(' ') && !rest.startsWith('\t')) rest = ` ${rest}`;
  }
  out.push(rest);
  return `${out.join('\r\n')}\r\n`;
}

/** The per-message fields (RFC 3464 §2.2): Original-Envelope-Id, Reporting-MTA, Arrival-Date. */
export function perMessageFields(input: Pick<DsnInput, 'reportingMta' | 'envid' | 'arrivalDate'>): string {
  // The order of the RFC 3464 §2.2 ABNF.
  let out = '';
  if (input.envid !== undefined && input.envid !== '') out += foldField('Original-Envelope-Id', fieldText(input.envid));
  const mta = splitTyped(input.reportingMta, 'dns');
  out += foldField('Reporting-MTA', `${fieldText(mta.type)}; ${fieldText(mta.value)}`);
  out += foldField('Arrival-Date', rfc5322Date(input.arrivalDate));
  return out;
}

/** One group of per-recipient fields (RFC 3464 §2.3), in the order of its ABNF. */
export function perRecipientFields(r: DsnRecipient): string {
  let out = '';
  if (r.orcpt !== undefined && r.orcpt.trim() !== '') {
    const o = splitTyped(r.orcpt, 'rfc822');
    out += foldField('Original-Recipient', typedAddress(o.type, o.value));
  }
  out += foldField('Final-Recipient', typedAddress('rfc822', r.address));
  out += foldField('Action', r.action);
  out += foldField('Status', normalizeStatus(r.status, r.action));
  if (r.remoteMta !== undefined && r.remoteMta.trim() !== '') {
    const m = splitTyped(r.remoteMta, 'dns');
    out += foldField('Remote-MTA', `${fieldText(m.type)}; ${fieldText(m.value)}`);
  }
  if (r.diagnostic !== undefined && r.diagnostic.trim() !== '') out += foldField('Diagnostic-Code', diagnosticCode(r.diagnostic));
  if (r.lastAttemptAt !== undefined) out += foldField('Last-Attempt-Date', rfc5322Date(r.lastAttemptAt));
  // §2.3.9: Will-Retry-Until belongs to "delayed" DSNs only.
  if (r.action === 'delayed' && r.willRetryUntil !== undefined) out += foldField('Will-Retry-Until', rfc5322Date(r.willRetryUntil));
  return out;
}

/** The whole message/delivery-status body: per-message fields, then each recipient's group after an empty line. */
export function deliveryStatusBody(input: Pick<DsnInput, 'reportingMta' | 'envid' | 'arrivalDate' | 'recipients'>): string {
  return [perMessageFields(input), ...input.recipients.map(perRecipientFields)].join('\r\n');
}
