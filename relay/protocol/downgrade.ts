// PURE 8-bit to 7-bit conversion for a next hop without 8BITMIME (RFC 6152 §3: the client
// either converts the message to 7 bits or bounces it), done as Postfix does it: MIME-aware,
// part by part. Every leaf part whose body holds 8-bit bytes gets a quoted-printable body
// (RFC 2045 §6.7; nodemailer's encoder) and `Content-Transfer-Encoding: quoted-printable`;
// multiparts are walked by their boundaries, message/rfc822 parts recursively, and a
// multipart or message part that said 8bit says 7bit afterwards. Parts that are already
// 7-bit are left byte for byte as they were, so a 7-bit message comes out unchanged.
//
// Decided, and bounced with 5.6.3 ("conversion required but not supported", RFC 3463) rather
// than guessed: 8-bit bytes in a header field (without SMTPUTF8 they break RFC 5322, and no
// charset is known to encode them in), and a part declared binary (BINARYMIME content may
// hold bare CR/LF and NUL that quoted-printable over SMTP cannot carry faithfully).
import { parseHeaderValue } from 'nodemailer/lib/mime-funcs';
import { encode as qpEncode, wrap as qpWrap } from 'nodemailer/lib/qp';

/** The conversion's outcome: the 7-bit message, or why it cannot be made (for a 5.6.3 bounce). */
export type Downgrade = { ok: true; bytes: Buffer; changed: boolean } | { ok: false; reason: string };

const has8bit = (b: Buffer): boolean => {
  for (let i = 0; i < b.length; i++) if (b[i]! >= 0x80) return true;
  return false;
};

interface Field { name: string; raw: string }

function splitEntity(s: string): { fields: Field[]; body: string; sep: string } {
  const at = s.indexOf('\r\n\r\n');
  const head = at < 0 ? s : s.slice(0, at + 2);
  const body = at < 0 ? '' : s.slice(at + 4);
  const fields: Field[] = [];
  for (const line of head.split(/(?<=\r\n)/)) {
    if (line === '') continue;
    if ((line.startsWith(' ') || line.startsWith('\t')) && fields.length > 0) fields[fields.length - 1]!.raw += line;
    else fields.push({ name: line.slice(0, Math.max(0, line.indexOf(':'))).trim().toLowerCase(), raw: line });
  }
  return { fields, body, sep: at < 0 ? '' : '\r\n' };
}

const value = (f: Field | undefined) => (f ? f.raw.slice(f.raw.indexOf(':') + 1).replace(/\r\n[ \t]/g, ' ').trim() : '');

function setCte(fields: Field[], cte: string): Field[] {
  const line = `Content-Transfer-Encoding: ${cte}\r\n`;
  const i = fields.findIndex((f) => f.name === 'content-transfer-encoding');
  if (i >= 0) return fields.map((f, j) => (j === i ? { name: f.name, raw: line } : f));
  return [...fields, { name: 'content-transfer-encoding', raw: line }];
}

const join = (fields: Field[], sep: string, body: string) => fields.map((f) => f.raw).join('') + sep + body;

function convert(entity: string, depth: number): Downgrade & { text?: string } {
  if (depth > 20) return { ok: false, reason: 'MIME nesting deeper than 20 levels' };
  const { fields, body, sep } = splitEntity(entity);
  for (const f of fields) {
    if (has8bit(Buffer.from(f.raw, 'latin1'))) return { ok: false, reason: `the header field ${f.name || '(unnamed)'} has 8-bit characters` };
  }
  const ct = parseHeaderValue(value(fields.find((f) => f.name === 'content-type')) || 'text/plain');
  const type = String(ct.value ?? '').toLowerCase();
  const cte = value(fields.find((f) => f.name === 'content-transfer-encoding')).toLowerCase();
  if (!has8bit(Buffer.from(body, 'latin1'))) return { ok: true, bytes: Buffer.alloc(0), changed: false, text: entity };
  if (cte === 'binary') return { ok: false, reason: 'a body part is declared binary (BINARYMIME) and cannot be sent as 7 bits' };
  const boundary = (ct.params as Record<string, string> | undefined)?.boundary;
  if (type.startsWith('multipart/') && boundary) {
    const delim = `--${boundary}`;
    // Lines that are exactly the delimiter (or the close delimiter) split the parts (RFC 2046 §5.1.1).
    const lines = body.split('\r\n');
    const out: string[] = [];
    let part: string[] | null = null;
    const flush = (): string | null => {
      if (!part) return null;
      const c = convert(part.join('\r\n'), depth + 1);
      if (!c.ok) return c.reason;
      out.push(c.text!);
      return null;
    };
    for (const line of lines) {
      const trimmed = line.replace(/[ \t]+$/, '');
      if (trimmed === delim || trimmed === `${delim}--`) {
        if (part) {
          // The CRLF before a delimiter belongs to the delimiter: the part ends before it.
          const err = flush();
          if (err) return { ok: false, reason: err };
        }
        out.push(line);
        part = trimmed === delim ? [] : null;
        continue;
      }
      if (part) part.push(line);
      else out.push(line);
    }
    if (part) {
      const err = flush();
      if (err) return { ok: false, reason: err };
    }
    const newFields = cte === '8bit' ? setCte(fields, '7bit') : fields;
    return { ok: true, bytes: Buffer.alloc(0), changed: true, text: join(newFields, sep, out.join('\r\n')) };
  }
  if (type === 'message/rfc822' || type === 'message/global') {
    // RFC 2046 §5.2.1: a message part is never quoted-printable; convert the message inside.
    const c = convert(body, depth + 1);
    if (!c.ok) return c;
    return { ok: true, bytes: Buffer.alloc(0), changed: true, text: join(cte === '8bit' ? setCte(fields, '7bit') : fields, sep, c.text!) };
  }
  const encoded = qpWrap(qpEncode(Buffer.from(body, 'latin1')), 76);
  return { ok: true, bytes: Buffer.alloc(0), changed: true, text: join(setCte(fields, 'quoted-printable'), sep || '\r\n', encoded) };
}

/** Converts a message (any line endings) to 7 bits; unchanged when it has no 8-bit body byte. */
export function downgradeTo7bit(message: Buffer): Downgrade {
  const text = message.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n');
  const c = convert(text, 0);
  if (!c.ok) return c;
  return { ok: true, bytes: c.changed ? Buffer.from(c.text!, 'latin1') : message, changed: c.changed };
}
