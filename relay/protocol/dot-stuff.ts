// Streaming dot-stuffing and line-ending normalisation (RFC 5321 §4.5.2), correct across
// chunk boundaries. Seed 002: Exchange sent lines starting with "." unstuffed, so the
// server saw an early end of data, the message arrived cut short and was retried forever.
//
//  - a "." at the start of any line (the first line too, and a line whose start falls in
//    a later chunk) is doubled;
//  - bare CR and bare LF become CRLF, so no "\n.\n" or "\r.\r" ever reaches the wire
//    (this also closes the SMTP-smuggling hole: only CRLF.CRLF can end our data);
//  - the body always ends with CRLF before the terminating ".".
// With `stuff: false` it only normalises line endings, for BDAT (RFC 3030 §2: no stuffing).

const CR = 13;
const LF = 10;
const DOT = 46;

/** Pure streaming encoder: push chunks, get wire bytes; end() flushes and closes the body. */
export class DotStuffer {
  private atLineStart = true;
  private pendingCR = false;
  private total = 0;

  constructor(private readonly opts: { stuff: boolean } = { stuff: true }) {}

  /** Bytes emitted so far (the on-the-wire size, for BDAT chunk lengths and SIZE checks). */
  get bytesOut(): number {
    return this.total;
  }

  /** Encodes one chunk. The result may be `chunk` itself (see passThrough): the caller must not change it afterwards. */
  push(chunk: Uint8Array): Buffer {
    const clean = this.passThrough(chunk);
    if (clean) return clean;
    // Worst case: every byte is a bare LF/CR (2 bytes out) or a line-leading dot (2 bytes).
    const out = Buffer.allocUnsafe(chunk.length * 2 + 2);
    const src = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    const n = src.length;
    const stuff = this.opts.stuff;
    let o = 0;
    let i = 0;
    // Runs between line ends are copied natively; only CR, LF and a line's first byte are
    // looked at one by one. The next CR/LF positions are cached so the scan stays linear.
    let nextLf = -2;
    let nextCr = -2;
    while (i < n) {
      if (this.pendingCR) {
        this.pendingCR = false;
        out[o++] = CR;
        out[o++] = LF;
        this.atLineStart = true;
        if (src[i] === LF) {
          i++; // that was a proper CRLF
          continue;
        }
      }
      if (this.atLineStart && stuff && src[i] === DOT) out[o++] = DOT;
      if (nextLf !== -1 && nextLf < i) nextLf = src.indexOf(LF, i);
      if (nextCr !== -1 && nextCr < i) nextCr = src.indexOf(CR, i);
      const stop = nextLf === -1 ? nextCr : nextCr === -1 ? nextLf : Math.min(nextLf, nextCr);
      const runEnd = stop === -1 ? n : stop;
      if (runEnd > i) {
        o += src.copy(out, o, i, runEnd);
        this.atLineStart = false;
      }
      if (stop === -1) break;
      if (src[stop] === CR) {
        this.pendingCR = true; // decide when we see the next byte (it may be in the next chunk)
      } else {
        out[o++] = CR;
        out[o++] = LF;
        this.atLineStart = true;
      }
      i = stop + 1;
    }
    this.total += o;
    return out.subarray(0, o);
  }

  /**
   * The common case, without a copy: a chunk in which every line ends in CRLF, no CR stands
   * alone and (when stuffing) no line starts with a dot comes out as it went in. Bodies
   * from the spool are like that: inbound stored them with CRLF line endings only. Two
   * native searches per line, no per-line copy, no allocation; null when the chunk needs
   * the general encoder (which then starts from the same state).
   */
  private passThrough(chunk: Uint8Array): Buffer | null {
    const n = chunk.length;
    if (this.pendingCR || n === 0) return null;
    const src = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, n);
    const stuff = this.opts.stuff;
    if (stuff && this.atLineStart && src[0] === DOT) return null;
    let pos = 0;
    for (;;) {
      const lf = src.indexOf(LF, pos);
      const cr = src.indexOf(CR, pos);
      if (lf === -1) {
        // The rest is part of a line: fine unless it holds a CR (bare, or one whose LF may be in the next chunk).
        if (cr !== -1) return null;
        break;
      }
      // The only CR before this LF must be the one right before it.
      if (lf === 0 || cr !== lf - 1) return null;
      if (stuff && lf + 1 < n && src[lf + 1] === DOT) return null;
      pos = lf + 1;
    }
    this.atLineStart = src[n - 1] === LF;
    this.total += n;
    return src;
  }

  /** Flushes a trailing CR and makes sure the body ends with CRLF; with `terminate`, appends ".\r\n". */
  end(terminate = this.opts.stuff): Buffer {
    let s = '';
    if (this.pendingCR) {
      this.pendingCR = false;
      s += '\r\n';
      this.atLineStart = true;
    }
    if (!this.atLineStart) {
      s += '\r\n';
      this.atLineStart = true;
    }
    if (terminate) s += '.\r\n';
    const b = Buffer.from(s, 'latin1');
    this.total += b.length;
    return b;
  }
}

/** Encodes a whole body at once (convenience for small messages and tests). */
export function dotStuff(body: Uint8Array, opts: { stuff: boolean; terminate?: boolean } = { stuff: true }): Buffer {
  const s = new DotStuffer({ stuff: opts.stuff });
  return Buffer.concat([s.push(body), s.end(opts.terminate ?? opts.stuff)]);
}

/** Reverses dot-stuffing of a received DATA payload (what a compliant server does; for tests and the inbound side). */
export function unstuff(wire: Uint8Array): Buffer {
  const text = Buffer.from(wire).toString('latin1');
  const body = text.endsWith('\r\n.\r\n') ? text.slice(0, -3) : text === '.\r\n' ? '' : text;
  return Buffer.from(body.replace(/(^|\r\n)\./g, '$1'), 'latin1');
}
