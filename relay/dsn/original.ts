// The third part of a DSN: the original message (message/rfc822, RFC 2046 §5.2.1) or only
// its header (text/rfc822-headers, RFC 6522, formerly RFC 3462), chosen per RFC 3461 §4.3
// (RET=FULL|HDRS). The spooled message is read only as far as needed, and whatever is
// returned is made to fit the 7bit or 8bit transfer encoding such a part must use (message/*
// is never base64 or quoted-printable, RFC 2046 §5.2.1): CRLF line endings, no NUL, no line
// over 998 octets (RFC 5322 §2.1.1).

/** Default RET=FULL cap: a bigger original comes back as its header only. */
export const DEFAULT_MAX_RETURN_BYTES = 10 * 1024 * 1024;

/** Largest header section returned; a longer one (or a message with no body separator) is cut at a line end. */
export const MAX_HEADER_BYTES = 1024 * 1024;

/** RFC 5322 §2.1.1 hard line limit, without the CRLF. */
const MAX_LINE = 998;

/** Why the whole message was not returned although RET=FULL asked for it. */
export type HeadersOnlyReason = 'requested' | 'too_big' | 'not_returnable';

/** What goes into the third DSN part. */
export type ReturnedContent =
  | { kind: 'full'; content: Buffer; eightBit: boolean }
  | { kind: 'headers'; content: Buffer; eightBit: boolean; reason: HeadersOnlyReason };

/**
 * Offset just past the header section: past the line terminator of the last header line,
 * i.e. the start of the empty line (CRLF CRLF or LF LF, mixed forms too). 0 when the message
 * starts with an empty line; -1 when no empty line was found (all of it may be header).
 * `from` resumes a scan over a growing buffer: line ends before it were already looked at.
 */
export function headerEnd(buf: Buffer, from = 0): number {
  if (from === 0 && (buf[0] === 0x0a || (buf[0] === 0x0d && buf[1] === 0x0a))) return 0;
  let i = buf.indexOf(0x0a, from);
  while (i !== -1) {
    const next = buf[i + 1];
    if (next === 0x0a || (next === 0x0d && buf[i + 2] === 0x0a)) return i + 1;
    i = buf.indexOf(0x0a, i + 1);
  }
  return -1;
}

/** The header section of a message: everything up to the first empty line, capped at MAX_HEADER_BYTES. */
export function extractHeaders(buf: Buffer): Buffer {
  const end = headerEnd(buf);
  const head = end === -1 ? buf : buf.subarray(0, end);
  if (head.length <= MAX_HEADER_BYTES) return head;
  // Cut at the last line end inside the cap, so no header line is returned half.
  const lastLf = head.lastIndexOf(0x0a, MAX_HEADER_BYTES - 1);
  return head.subarray(0, lastLf + 1);
}

/** Bare CR and bare LF become CRLF (RFC 5322 §2.3: CR and LF only occur together). */
export function toCrlf(buf: Buffer): Buffer {
  if (!buf.includes(0x0d) && !buf.includes(0x0a)) return buf;
  return Buffer.from(buf.toString('latin1').replace(/\r\n|\r|\n/g, '\r\n'), 'latin1');
}

/** True if the bytes hold something above 0x7f (the part, and so the DSN, needs 8BITMIME). */
export function hasEightBit(buf: Buffer): boolean {
  for (const b of buf) if (b > 0x7f) return true;
  return false;
}

/** True if CRLF-normalised content can travel as 7bit/8bit: no NUL and no line over 998 octets. */
export function fitsLineLimits(buf: Buffer): boolean {
  if (buf.includes(0x00)) return false;
  let start = 0;
  for (;;) {
    const lf = buf.indexOf(0x0a, start);
    const lineEnd = lf === -1 ? buf.length : lf - 1; // CRLF-normalised: the CR is before the LF
    if (lineEnd - start > MAX_LINE) return false;
    if (lf === -1) return true;
    start = lf + 1;
  }
}

/**
 * A header section made safe for text/rfc822-headers: CRLF line endings, NULs dropped, a
 * line over 998 octets folded by inserting CRLF SP (RFC 5322 §2.2.3: unfolding restores it
 * apart from the added space), and ending with CRLF.
 */
export function sanitizeHeaders(raw: Buffer): Buffer {
  let text = toCrlf(raw).toString('latin1').replace(/\0/g, '');
  if (text !== '' && !text.endsWith('\r\n')) text += '\r\n';
  const lines = text.split('\r\n');
  const out: string[] = [];
  for (const line of lines) {
    let rest = line;
    let first = true;
    while (rest.length > MAX_LINE - (first ? 0 : 1)) {
      const take = MAX_LINE - (first ? 0 : 1);
      out.push((first ? '' : ' ') + rest.slice(0, take));
      rest = rest.slice(take);
      first = false;
    }
    out.push((first ? '' : ' ') + rest);
  }
  return Buffer.from(out.join('\r\n'), 'latin1');
}

function asBuffer(chunk: Buffer | string | Uint8Array): Buffer {
  return typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
}

/**
 * Reads the spooled message as far as the DSN needs it. With `wholeUpTo` the whole message
 * is read unless it grows past that many bytes; without it, only up to the end of the header
 * section. Leaving the loop early closes a stream source (for await calls return()).
 */
async function readOriginal(
  source: Buffer | AsyncIterable<Buffer | string>,
  wholeUpTo: number | undefined,
): Promise<{ bytes: Buffer; complete: boolean }> {
  if (Buffer.isBuffer(source)) return { bytes: source, complete: true };
  const chunks: Buffer[] = [];
  let size = 0;
  let scanFrom = 0;
  for await (const raw of source) {
    const chunk = asBuffer(raw);
    chunks.push(chunk);
    size += chunk.length;
    if (wholeUpTo !== undefined) {
      if (size > wholeUpTo) return { bytes: Buffer.concat(chunks, size), complete: false };
      continue;
    }
    // Headers only: stop once the empty line is in, or once the header cap is passed. The
    // scan resumes two bytes back: an LF there may start an empty line this chunk completes.
    const sofar = Buffer.concat(chunks, size);
    chunks.length = 0;
    chunks.push(sofar);
    if (headerEnd(sofar, Math.max(0, scanFrom - 2)) !== -1 || size > MAX_HEADER_BYTES) {
      return { bytes: sofar, complete: false };
    }
    scanFrom = size;
  }
  return { bytes: Buffer.concat(chunks, size), complete: true };
}

/**
 * Decides and prepares the returned content (RFC 3461 §4.3): the whole message only if
 * RET=FULL was asked for, the DSN reports a failure, the message is within `maxBytes`, and it
 * fits the line limits of a message/rfc822 part; otherwise its header section.
 */
export async function returnedContent(
  source: Buffer | AsyncIterable<Buffer | string>,
  opts: { full: boolean; maxBytes?: number },
): Promise<ReturnedContent> {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_RETURN_BYTES;
  const { bytes, complete } = await readOriginal(source, opts.full ? maxBytes : undefined);
  let reason: HeadersOnlyReason = 'requested';
  if (opts.full) {
    if (!complete || bytes.length > maxBytes) {
      reason = 'too_big';
    } else {
      const content = toCrlf(bytes);
      if (fitsLineLimits(content)) return { kind: 'full', content, eightBit: hasEightBit(content) };
      reason = 'not_returnable';
    }
  }
  const content = sanitizeHeaders(extractHeaders(bytes));
  return { kind: 'headers', content, eightBit: hasEightBit(content), reason };
}
