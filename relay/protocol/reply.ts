// The SMTP reply as a value (KumoMTA client_types.rs): parsed once into code,
// RFC 3463 enhanced status code, every line, and the command it answers. Everything
// downstream (classification, metrics, DSNs) works on this value, never on raw text.
import type { ReplyCommand } from '../metrics.ts';

/** An RFC 3463 enhanced status code, e.g. 5.2.2. */
export interface EnhancedCode {
  class: 2 | 4 | 5;
  subject: number;
  detail: number;
}

/** One complete (possibly multi-line) SMTP reply. */
export interface Reply {
  /** 3-digit reply code (RFC 5321 §4.2). */
  code: number;
  /** RFC 3463 code from the first line, if the server sent one whose class matches the reply code. */
  enhanced: EnhancedCode | null;
  /** Text of every line, without the code, separator or enhanced code. */
  lines: string[];
  /** The command this reply answers; set when replies are matched to commands. */
  command: ReplyCommand | null;
}

/** Formats an enhanced code as "5.2.2". */
export function formatEnhanced(e: EnhancedCode | null): string {
  return e ? `${e.class}.${e.subject}.${e.detail}` : '';
}

/** The reply as one line of text, e.g. "552 5.2.2 Mailbox full" (for logs, DSNs and spool records). */
export function replyText(r: Reply): string {
  const enh = r.enhanced ? `${formatEnhanced(r.enhanced)} ` : '';
  return `${r.code} ${enh}${r.lines.join(' / ')}`.trimEnd();
}

/** Builds a Reply by hand (synthetic replies for timeouts, connection loss, and tests). */
export function makeReply(code: number, text: string, command: ReplyCommand | null = null): Reply {
  const lines = text.split('\n');
  const first = lines[0] ?? '';
  const { enhanced, rest } = splitEnhanced(code, first);
  return { code, enhanced, lines: [rest, ...lines.slice(1)], command };
}

const ENHANCED_RE = /^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)/;

function splitEnhanced(code: number, text: string): { enhanced: EnhancedCode | null; rest: string } {
  const m = ENHANCED_RE.exec(text);
  // RFC 3463 §2: the class digit of the enhanced code must match the reply's first digit.
  if (!m || Number(m[1]) !== Math.floor(code / 100)) return { enhanced: null, rest: text };
  return {
    enhanced: { class: Number(m[1]) as 2 | 4 | 5, subject: Number(m[2]), detail: Number(m[3]) },
    rest: text.slice(m[0].length),
  };
}

/** What the streaming parser yields: a reply, or a protocol violation that ends the session. */
export type ParseEvent = { type: 'reply'; reply: Reply } | { type: 'error'; message: string };

/** Maximum reply line length we accept (RFC 5321 §4.5.3.1.5 says 512; we allow slack for real servers). */
export const MAX_REPLY_LINE = 4096;
/** Maximum lines in one multi-line reply, so a hostile server can't grow memory without bound. */
export const MAX_REPLY_LINES = 200;

/**
 * Streaming reply parser: feed it bytes as they come off the socket (split anywhere)
 * and it yields complete replies. Accepts bare LF as well as CRLF; rejects garbage,
 * over-long lines and inconsistent multi-line codes with an error event.
 */
export class ReplyParser {
  private buf = '';
  private pending: { code: number; lines: string[] } | null = null;
  private failed = false;

  /** Consumes a chunk and returns every reply (or error) it completes. */
  push(chunk: Buffer | string): ParseEvent[] {
    if (this.failed) return [];
    // latin1 keeps one char per byte, so lengths are byte counts and nothing throws on 8-bit text.
    this.buf += typeof chunk === 'string' ? chunk : chunk.toString('latin1');
    const out: ParseEvent[] = [];
    for (;;) {
      const nl = this.buf.indexOf('\n');
      if (nl < 0) {
        // The unfinished line may end in the CR of a CRLF split across reads: don't count it.
        const pending = this.buf.endsWith('\r') ? this.buf.length - 1 : this.buf.length;
        if (pending > MAX_REPLY_LINE) return this.fail(out, `reply line longer than ${MAX_REPLY_LINE} bytes`);
        return out;
      }
      let line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line.length > MAX_REPLY_LINE) return this.fail(out, `reply line longer than ${MAX_REPLY_LINE} bytes`);
      const ev = this.line(line);
      if (ev) {
        out.push(ev);
        if (ev.type === 'error') { this.failed = true; return out; }
      }
    }
  }

  /** True while a multi-line reply or a partial line is buffered (a close now cut a reply short). */
  get midReply(): boolean {
    return this.pending !== null || this.buf.length > 0;
  }

  private fail(out: ParseEvent[], message: string): ParseEvent[] {
    this.failed = true;
    out.push({ type: 'error', message });
    return out;
  }

  private line(line: string): ParseEvent | null {
    const m = /^([2-5]\d\d)([ -]|$)(.*)$/.exec(line);
    if (!m) return { type: 'error', message: `malformed reply line: ${JSON.stringify(line.slice(0, 80))}` };
    const code = Number(m[1]);
    const more = m[2] === '-';
    const text = m[3] ?? '';
    if (this.pending && this.pending.code !== code) {
      return { type: 'error', message: `multi-line reply changed code from ${this.pending.code} to ${code}` };
    }
    const p = this.pending ?? { code, lines: [] };
    p.lines.push(text);
    if (p.lines.length > MAX_REPLY_LINES) return { type: 'error', message: `reply has more than ${MAX_REPLY_LINES} lines` };
    if (more) {
      this.pending = p;
      return null;
    }
    this.pending = null;
    const { enhanced, rest } = splitEnhanced(code, p.lines[0] ?? '');
    // Continuation lines often repeat the enhanced code (Postfix, Exchange); strip it there too.
    const lines = [rest, ...p.lines.slice(1).map((l) => (enhanced ? splitEnhanced(code, l).rest : l))];
    return { type: 'reply', reply: { code, enhanced, lines, command: null } };
  }
}
