// Limits on the shape of message data, checked while it streams in (PURE apart from its
// own state): the longest line (RFC 5322 §2.1.1: 998 characters plus CRLF; RFC 5321
// §4.5.3.1.6: 1000 octets with the CRLF) and the size of the header section. The header
// section is held back until its blank line (at most maxHeaderSize bytes), so that fields
// can be dropped before the sink sees them: RFC 8601 §5 wants Authentication-Results
// fields that claim our authserv-id removed when they come from outside.
//
// Input must already be CRLF-normalised (line-endings.ts), so a line ends at each LF and
// the byte before it is its CR. Lines in the body are found with Buffer#indexOf, so a
// 25 MiB message costs no per-byte JavaScript; only the header is walked byte by byte.

/** Which limit the data broke. */
export type ContentViolation = 'line_too_long' | 'header_too_big';

/** The limits, and which header fields to drop. */
export interface ContentLimits {
  /** Longest line without its CRLF. */
  maxLineLength: number;
  /** Largest header section in bytes, its ending blank line included. */
  maxHeaderSize: number;
  /** Returns true for a header field to remove; `value` is the raw body after the colon, folding kept. */
  dropField?: (name: string, value: string) => boolean;
}

const LF = 0x0a;
const EMPTY: Buffer = Buffer.alloc(0);

/** Drops the fields `drop` selects from a header section (CRLF-separated, latin1 to keep every byte). */
export function filterHeader(header: Buffer, drop: (name: string, value: string) => boolean): Buffer {
  const text = header.toString('latin1');
  const lines = text.split('\r\n');
  const kept: string[] = [];
  let dropping = false;
  for (const line of lines) {
    const continuation = line.startsWith(' ') || line.startsWith('\t');
    if (!continuation) {
      const colon = line.indexOf(':');
      dropping = line !== '' && colon > 0 && drop(line.slice(0, colon), line.slice(colon + 1));
    } else if (dropping) {
      continue;
    }
    if (!dropping) kept.push(line);
  }
  const out = kept.join('\r\n');
  return out.length === text.length ? header : Buffer.from(out, 'latin1');
}

/** Scans message data chunk by chunk; `push` returns what to pass on (the header only once complete). */
export class MessageScanner {
  /** The first limit broken, if any; from then on nothing more is passed on. */
  violation: ContentViolation | undefined;
  private readonly limits: ContentLimits;
  private inHeader = true;
  private readonly header: Buffer[] = [];
  private headerBytes = 0;
  /** Bytes of the current line so far, its CR included once seen. */
  private lineLen = 0;

  constructor(limits: ContentLimits) {
    this.limits = limits;
  }

  /** Takes the next chunk; returns the bytes to pass on (possibly none). */
  push(chunk: Buffer): Buffer {
    if (this.violation || chunk.length === 0) return EMPTY;
    let pos = 0;
    let out: Buffer = EMPTY;
    if (this.inHeader) {
      const end = this.scanHeader(chunk);
      if (this.violation) return EMPTY;
      if (end < 0) {
        this.header.push(chunk);
        return EMPTY;
      }
      this.header.push(chunk.subarray(0, end));
      out = this.releaseHeader();
      pos = end;
    }
    this.scanBody(chunk, pos);
    if (this.violation) return EMPTY;
    const body = pos === 0 ? chunk : chunk.subarray(pos);
    return out.length === 0 ? body : body.length === 0 ? out : Buffer.concat([out, body]);
  }

  /** The data ended: whatever is still held (a header section without its blank line). */
  end(): Buffer {
    if (this.violation || !this.inHeader) return EMPTY;
    return this.releaseHeader();
  }

  /** Walks header bytes; returns the offset just past the blank line, or -1 if the chunk ends first. */
  private scanHeader(chunk: Buffer): number {
    const { maxLineLength, maxHeaderSize } = this.limits;
    for (let i = 0; i < chunk.length; i++) {
      if (this.headerBytes + i + 1 > maxHeaderSize) {
        this.violation = 'header_too_big';
        return -1;
      }
      if (chunk[i] !== LF) {
        if (++this.lineLen > maxLineLength + 1) {
          this.violation = 'line_too_long';
          return -1;
        }
        continue;
      }
      // At LF the line held its content and the CR.
      const blank = this.lineLen <= 1;
      this.lineLen = 0;
      if (blank) {
        this.headerBytes += i + 1;
        return i + 1;
      }
    }
    this.headerBytes += chunk.length;
    return -1;
  }

  private scanBody(chunk: Buffer, from: number): void {
    const max = this.limits.maxLineLength + 1;
    let pos = from;
    for (;;) {
      const lf = chunk.indexOf(LF, pos);
      if (lf < 0) {
        this.lineLen += chunk.length - pos;
        if (this.lineLen > max) this.violation = 'line_too_long';
        return;
      }
      this.lineLen += lf - pos;
      if (this.lineLen > max) {
        this.violation = 'line_too_long';
        return;
      }
      this.lineLen = 0;
      pos = lf + 1;
    }
  }

  private releaseHeader(): Buffer {
    this.inHeader = false;
    const header = this.header.length === 1 ? this.header[0]! : Buffer.concat(this.header);
    this.header.length = 0;
    return this.limits.dropField ? filterHeader(header, this.limits.dropField) : header;
  }
}
