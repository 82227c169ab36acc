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
  // Native searches (memchr) for the next CR and LF instead of a JavaScript loop over every
  // byte: in ordinary CRLF text that is one step per line.
  let nextCR = buf.indexOf(CR, i);
  let nextLF = buf.indexOf(LF, i);
  while (nextCR !== -1 || nextLF !== -1) {
    if (nextLF !== -1 && (nextCR === -1 || nextLF < nextCR)) {
      // A LF with no CR right before it (a CRLF's LF is passed over below).
      parts.push(buf.subarray(start, nextLF), CRLF);
      start = nextLF + 1;
      nextLF = buf.indexOf(LF, start);
      continue;
    }
    const p = nextCR;
    if (p + 1 === len) {
      parts.push(buf.subarray(start, p));
      start = len;
      state.pendingCR = true;
      break;
    }
    if (buf[p + 1] === LF) {
      // CRLF: the next LF is this one (no LF lay between), so search past it.
      nextCR = buf.indexOf(CR, p + 2);
      nextLF = buf.indexOf(LF, p + 2);
      continue;
    }
    parts.push(buf.subarray(start, p), CRLF);
    start = p + 1;
    nextCR = buf.indexOf(CR, start);
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
