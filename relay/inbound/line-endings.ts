// Bare CR and bare LF in message data become CRLF before the message is stored.
//
// Why: RFC 5321 §2.3.8 allows CR and LF in data only together as CRLF. smtp-server ends
// DATA on CRLF.CRLF alone (smtp-stream.js compares against "\r\n.\r\n"), so "\n.\n" or
// "\r.\r" inside a message is content to it, but other servers have taken those as the
// end of data. Relaying such bytes as they are lets a sender smuggle a second message
// ("SMTP smuggling", CVE-2023-51764/51765/51766) past whichever hop reads them differently.
//
// Choice: normalise, as Postfix does (smtpd_forbid_bare_newline = normalize), instead of
// rejecting with a 5xx: old clients and scripts that send bare LF keep working, and a
// smuggling attempt turns into an ordinary line holding ".", which the outbound side
// dot-stuffs (RFC 5321 §4.5.2) so that it can never end the data on the next hop either.
// Done on the stored body, so every later reader (outbound, DSNs with RET=FULL) sees
// only CRLF line endings.
import { Transform } from 'node:stream';
import type { TransformCallback } from 'node:stream';

const CR = 0x0d;
const LF = 0x0a;
const CRLF = Buffer.from('\r\n');

/** State carried between chunks: whether the previous chunk ended in a CR not yet known to be bare. */
export interface LineEndingState {
  pendingCR: boolean;
}

/** Normalises one chunk (PURE apart from `state`); the result is the same however the input is split. */
export function normaliseChunk(chunk: Uint8Array, state: LineEndingState): Buffer {
  const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  const len = buf.length;
  if (len === 0) return buf;
  const parts: Buffer[] = [];
  let start = 0;
  let i = 0;
  if (state.pendingCR) {
    state.pendingCR = false;
    parts.push(CRLF);
    // The CR from the last chunk pairs with a leading LF; otherwise it was bare.
    if (buf[0] === LF) i = start = 1;
  }
  for (; i < len; i++) {
    const b = buf[i];
    if (b === LF) {
      // A LF reached here had no CR before it (a CRLF pair is skipped below).
      parts.push(buf.subarray(start, i), CRLF);
      start = i + 1;
    } else if (b === CR) {
      if (i + 1 === len) {
        parts.push(buf.subarray(start, i));
        start = len;
        state.pendingCR = true;
      } else if (buf[i + 1] === LF) {
        i++;
      } else {
        parts.push(buf.subarray(start, i), CRLF);
        start = i + 1;
      }
    }
  }
  if (start < len) parts.push(buf.subarray(start));
  if (parts.length === 1 && parts[0]) return parts[0];
  return Buffer.concat(parts);
}

/** What is left at the end of the data: CRLF if it ended in a CR, else nothing. */
export function flushLineEndings(state: LineEndingState): Buffer {
  if (!state.pendingCR) return Buffer.alloc(0);
  state.pendingCR = false;
  return Buffer.from(CRLF);
}

/** A stream that normalises line endings; counts the bytes it emits. */
export class LineEndingNormaliser extends Transform {
  private readonly state: LineEndingState = { pendingCR: false };
  /** Bytes emitted so far. */
  bytesOut = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const out = normaliseChunk(chunk, this.state);
    this.bytesOut += out.length;
    done(null, out.length > 0 ? out : undefined);
  }

  override _flush(done: TransformCallback): void {
    const out = flushLineEndings(this.state);
    this.bytesOut += out.length;
    done(null, out.length > 0 ? out : undefined);
  }
}
