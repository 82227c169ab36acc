// Builds a delivery status notification (RFC 3464) as a complete RFC 5322 message: a
// multipart/report; report-type=delivery-status (RFC 6522, formerly RFC 3462) with
//   1. text/plain            what happened, for people, with each remote reply;
//   2. message/delivery-status  the machine-readable fields (fields.ts);
//   3. message/rfc822 (RET=FULL) or text/rfc822-headers (RET=HDRS, too big, or not
//      returnable as 7bit/8bit), see original.ts.
//
// The tree is built with nodemailer's MailComposer. MailComposer has no multipart/report
// layout, but given a text alternative plus two attachments it builds a multipart/mixed
// root whose children are exactly the three report parts in order; the root's Content-Type
// is then replaced with multipart/report (MimeNode re-derives multipart-ness and the
// boundary from the Content-Type header when it writes the headers). The headers-only part
// is written as a `raw` part because MimeNode would quoted-printable-encode a text/* part
// with long lines, and text/rfc822-headers should carry the header as it was.
import { randomUUID } from 'node:crypto';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import type { MailComposerAttachment } from 'nodemailer/lib/mail-composer/index.js';
import { deliveryStatusBody, normalizeStatus, rfc5322Date, splitTyped } from './fields.ts';
import { returnedContent } from './original.ts';
import type { ReturnedContent } from './original.ts';
import type { DsnAction, DsnInput, DsnRecipient } from './types.ts';

/** Subject of a DSN that reports at least one failure. */
export const SUBJECT_FAILED = 'Undelivered Mail Returned to Sender';
/** Subject of a DSN that reports delays (and no failure). */
export const SUBJECT_DELAYED = 'Delayed Mail (still being retried)';
/** Subject of a DSN that reports only successful delivery or relay (NOTIFY=SUCCESS). */
export const SUBJECT_DELIVERED = 'Successful Mail Delivery Report';

/** Why buildDsn refused its input: it would bounce a bounce, or there is nothing to report. */
export class DsnInputError extends Error {
  override readonly name = 'DsnInputError';
}

/** Wrap width for the human-readable part (RFC 5322 §2.1.1 recommends 78; 76 keeps it 7bit in MimeNode). */
const WRAP = 76;

/** The DSN's Subject for its recipients: failures first, then delays, then successes. */
export function dsnSubject(recipients: readonly Pick<DsnRecipient, 'action'>[]): string {
  if (recipients.some((r) => r.action === 'failed')) return SUBJECT_FAILED;
  if (recipients.some((r) => r.action === 'delayed')) return SUBJECT_DELAYED;
  return SUBJECT_DELIVERED;
}

/**
 * Builds the DSN for `input` as an RFC 5322 message with CRLF line endings (RFC 3464,
 * RFC 6522). Send it with dsnEnvelope(input) (null reverse-path). The message is 7bit
 * unless the returned original has 8-bit content; dsnBodyType tells which.
 */
export async function buildDsn(input: DsnInput): Promise<Buffer> {
  if (input.to.trim() === '' || input.to.trim() === '<>') {
    throw new DsnInputError('a DSN is never sent to the null reverse-path (RFC 5321 §4.5.5): do not bounce a bounce');
  }
  if (input.recipients.length === 0) throw new DsnInputError('a DSN needs at least one recipient to report on');

  // RFC 3461 §4.3: RET=FULL returns the whole message in a "failed" DSN; other DSNs, and
  // RET=HDRS, carry the header only.
  const returnFull = input.ret === 'FULL' && input.recipients.some((r) => r.action === 'failed');
  const returned = await returnedContent(input.originalMessage, { full: returnFull, maxBytes: input.maxReturnBytes });

  const now = input.now ?? Date.now();
  const messageId = input.messageId ?? `<${randomUUID()}@${splitTyped(input.reportingMta, 'dns').value}>`;

  const composer = new MailComposer({
    from: { name: 'Mail Delivery System', address: input.from },
    to: input.to,
    subject: dsnSubject(input.recipients),
    date: new Date(now),
    messageId,
    // RFC 3834 §5: an automatic response; well-behaved responders do not answer it.
    headers: { 'Auto-Submitted': 'auto-replied' },
    newline: 'win',
    text: { content: humanReadable(input, returned), headers: { 'Content-Description': 'Notification' } },
    attachments: [
      {
        contentType: 'message/delivery-status',
        content: deliveryStatusBody(input),
        headers: { 'Content-Description': 'Delivery report' },
      },
      returnedPart(returned),
    ],
  });
  const root = composer.compile();
  // RFC 6522 (multipart/report): the report-type parameter names the second part's subtype.
  root.setHeader('Content-Type', 'multipart/report; report-type=delivery-status');
  return root.build();
}

/** The third part: message/rfc822 for the whole message, a raw text/rfc822-headers part otherwise. */
function returnedPart(returned: ReturnedContent): MailComposerAttachment {
  const cte = returned.eightBit ? '8bit' : '7bit';
  if (returned.kind === 'full') {
    return {
      contentType: 'message/rfc822',
      content: returned.content,
      contentTransferEncoding: cte, // RFC 2046 §5.2.1: never base64/QP; original.ts checked the line limits
      headers: { 'Content-Description': 'Undelivered Message' },
    };
  }
  const head = Buffer.from(
    'Content-Type: text/rfc822-headers\r\n' +
      `Content-Transfer-Encoding: ${cte}\r\n` +
      'Content-Description: Undelivered Message Headers\r\n' +
      '\r\n',
    'latin1',
  );
  return { contentType: 'text/rfc822-headers', filename: false, raw: Buffer.concat([head, returned.content]) };
}

/** Whether a built DSN must be sent with BODY=8BITMIME (RFC 6152): true if any octet is above 0x7f. */
export function dsnBodyType(raw: Buffer): '7BIT' | '8BITMIME' {
  for (const b of raw) if (b > 0x7f) return '8BITMIME';
  return '7BIT';
}

// ---- the human-readable part ----------------------------------------------------------------

/** Text for people: controls become spaces, everything else stays as the server sent it. */
function plain(value: string): string {
  let out = '';
  for (const ch of value) {
    const cp = ch.codePointAt(0)!;
    out += (cp < 0x20 && cp !== 0x09) || cp === 0x7f ? ' ' : ch;
  }
  return out;
}

/** Word-wraps `text` to WRAP columns; every line starts with `indent`, continuation lines with `indent` + 2. */
function wrap(text: string, indent: string): string[] {
  const words = text.split(/ +/).filter((w) => w !== '');
  const lines: string[] = [];
  let line = indent;
  let fresh = true;
  for (const word of words) {
    if (!fresh && line.length + 1 + word.length > WRAP) {
      lines.push(line);
      line = `${indent}  ${word}`;
    } else {
      line += fresh ? word : ` ${word}`;
    }
    fresh = false;
  }
  lines.push(line);
  return lines;
}

const SECTION_TITLE: Record<DsnAction, string> = {
  failed: 'Your message could not be delivered to these recipients:',
  delayed: 'Delivery to these recipients has been delayed; we are still trying:',
  delivered: 'Your message was delivered to these recipients:',
  relayed: 'Your message was passed on to these recipients (the next mail system will not confirm delivery):',
};

/** The text/plain first part: one section per action, each recipient with the remote server's reply. */
function humanReadable(input: DsnInput, returned: ReturnedContent): string {
  const mta = plain(splitTyped(input.reportingMta, 'dns').value);
  const out: string[] = [...wrap(`This is the mail system at host ${mta}.`, ''), ''];
  const failed = input.recipients.some((r) => r.action === 'failed');
  if (failed) {
    out.push(...wrap('Your message could not be delivered to one or more recipients, and the mail system has given up on them.', ''), '');
  }
  for (const action of ['failed', 'delayed', 'delivered', 'relayed'] as const) {
    const group = input.recipients.filter((r) => r.action === action);
    if (group.length === 0) continue;
    out.push(...wrap(SECTION_TITLE[action], ''), '');
    for (const r of group) {
      out.push(`  <${plain(r.address)}>`);
      const host = r.remoteMta ? plain(splitTyped(r.remoteMta, 'dns').value) : undefined;
      if (r.diagnostic !== undefined && r.diagnostic.trim() !== '') {
        out.push(...wrap(`${host ? `host ${host} said` : 'reason'}: ${plain(r.diagnostic).trim()}`, '    '));
      } else {
        out.push(...wrap(`status ${normalizeStatus(r.status, r.action)}${host ? ` at host ${host}` : ''}`, '    '));
      }
      if (action === 'failed' && normalizeStatus(r.status, r.action).startsWith('4.')) {
        out.push(...wrap('The message stayed in the queue for too long without being delivered, so the mail system gave up.', '    '));
      }
      if (action === 'delayed' && r.willRetryUntil !== undefined) {
        out.push(...wrap(`The mail system will keep trying until ${rfc5322Date(r.willRetryUntil)}.`, '    '));
      }
      out.push('');
    }
  }
  out.push(...wrap(returnedNote(returned), ''));
  return `${out.join('\r\n')}\r\n`;
}

/** The closing sentence of the text part: what the third part holds, and why only the header if so. */
function returnedNote(returned: ReturnedContent): string {
  if (returned.kind === 'full') return 'Your message is attached below.';
  switch (returned.reason) {
    case 'too_big':
      return 'Your message was too big to return whole; its header is attached below.';
    case 'not_returnable':
      return 'Your message could not be returned whole (it has lines too long or bytes not allowed in mail); its header is attached below.';
    case 'requested':
      return 'The header of your message is attached below.';
  }
}
