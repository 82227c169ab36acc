// Generators shared by the fuzz properties: SMTP replies as real servers write them, the
// ways they get mangled (truncation, stray bytes, endless lines, odd line endings), and the
// ways a byte stream gets split into reads.
import fc from 'fast-check';
import { MAX_REPLY_LINE } from '../../relay/protocol/reply.ts';

/** One reply as a server means it: code, and the text of each line. */
export interface ReplySpec {
  code: number;
  lines: string[];
}

/** Random bytes as a latin1 string (one char per byte), the form the parsers work on. */
export const bytes = (maxLength: number) => fc.uint8Array({ maxLength }).map((b) => Buffer.from(b).toString('latin1'));

const CAPABILITY_LINES = [
  'PIPELINING', 'CHUNKING', 'SIZE 10240000', 'SIZE', 'SIZE abc', '8BITMIME', 'SMTPUTF8', 'STARTTLS', 'AUTH PLAIN LOGIN',
  'AUTH=LOGIN', 'AUTH', 'DSN', 'ENHANCEDSTATUSCODES', 'BINARYMIME', 'X-UNKNOWN-EXT 1 2 3', '', ' ', 'pipelining',
];

/** Printable reply text, sometimes with an enhanced code (matching or not), 8-bit bytes or control characters. */
export const replyText = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 40, unit: 'grapheme-ascii' }) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom('2', '4', '5', '3', '9'), fc.nat(999), fc.nat(999), fc.string({ maxLength: 20 })).map(([c, s, d, t]) => `${c}.${s}.${d} ${t}`) },
  { weight: 1, arbitrary: bytes(30).map((s) => s.replace(/[\r\n]/g, '')) },
  { weight: 1, arbitrary: fc.constantFrom(...CAPABILITY_LINES) },
);

/** A reply spec with a plausible code (any 2xx-5xx, weighted to the ones sessions branch on). */
export const replySpec: fc.Arbitrary<ReplySpec> = fc.record({
  code: fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(220, 221, 235, 250, 251, 252, 334, 354, 421, 450, 451, 452, 500, 501, 503, 530, 550, 552, 553, 554) },
    { weight: 1, arbitrary: fc.integer({ min: 200, max: 599 }) },
  ),
  lines: fc.array(replyText, { minLength: 1, maxLength: 6 }),
});

/** Line endings a server might use: RFC 5321's CRLF, bare LF (tolerated), and the broken ones. */
export const lineEnding = fc.oneof(
  { weight: 8, arbitrary: fc.constant('\r\n') },
  { weight: 3, arbitrary: fc.constant('\n') },
  { weight: 1, arbitrary: fc.constantFrom('\r', '\r\r\n', '\n\r', '') },
);

/** Renders a reply: `<code>-text` for every line but the last, `<code> text` (or a bare code) for the last. */
export function renderReply(r: ReplySpec, eol: string | ((i: number) => string) = '\r\n'): string {
  const end = typeof eol === 'string' ? () => eol : eol;
  return r.lines.map((t, i) => {
    const last = i === r.lines.length - 1;
    const sep = last ? (t === '' ? '' : ' ') : '-';
    return `${r.code}${sep}${t}${end(i)}`;
  }).join('');
}

/** A well-formed reply stream (CRLF or bare LF endings only) with the replies it encodes. */
export const validReplyStream = fc.array(fc.tuple(replySpec, fc.constantFrom('\r\n', '\n')), { minLength: 1, maxLength: 8 })
  .map((rs) => ({ replies: rs.map(([r]) => r), text: rs.map(([r, eol]) => renderReply(r, eol)).join('') }));

/** One mutation of a byte string. */
export type Mutation =
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: string }
  | { kind: 'replace'; at: number; byte: number }
  | { kind: 'delete'; at: number; len: number }
  | { kind: 'hugeLine'; at: number; len: number; newline: boolean }
  | { kind: 'duplicate'; from: number; len: number }
  | { kind: 'eol'; eol: string };

/** Mutations, with positions as fractions of the length (so they apply to any input). */
export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat(10_000) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(10_000), bytes: fc.oneof(bytes(12), fc.constantFrom('\r', '\n', '\r\n', '\0', '250 ', '250-', '354 go\r\n', '\xff', '-', ' ')) }),
  fc.record({ kind: fc.constant('replace' as const), at: fc.nat(10_000), byte: fc.nat(255) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(10_000), len: fc.integer({ min: 1, max: 8 }) }),
  fc.record({
    kind: fc.constant('hugeLine' as const), at: fc.nat(10_000),
    // Lengths of the whole line (with its "250-") around the parser's limit, and anywhere up to 3x it.
    len: fc.oneof(fc.integer({ min: MAX_REPLY_LINE - 4 - 3, max: MAX_REPLY_LINE - 4 + 3 }), fc.integer({ min: 1, max: 3 * MAX_REPLY_LINE })),
    newline: fc.boolean(),
  }),
  fc.record({ kind: fc.constant('duplicate' as const), from: fc.nat(10_000), len: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant('eol' as const), eol: fc.constantFrom('\n', '\r', '\r\r\n', '\n\r') }),
);

/** Applies mutations to a latin1 string (one char per byte). */
export function mutate(s: string, ms: readonly Mutation[]): string {
  let out = s;
  const pos = (n: number) => (out.length === 0 ? 0 : n % (out.length + 1));
  for (const m of ms) {
    switch (m.kind) {
      case 'truncate': out = out.slice(0, pos(m.at)); break;
      case 'insert': { const p = pos(m.at); out = out.slice(0, p) + m.bytes + out.slice(p); break; }
      case 'replace': { const p = pos(m.at); out = out.slice(0, p) + String.fromCharCode(m.byte) + out.slice(p + 1); break; }
      case 'delete': { const p = pos(m.at); out = out.slice(0, p) + out.slice(p + m.len); break; }
      case 'hugeLine': {
        // A whole line of its own: after the next line feed (or at the start).
        const nl = out.indexOf('\n', pos(m.at));
        const p = nl < 0 ? 0 : nl + 1;
        out = out.slice(0, p) + '250-' + 'x'.repeat(m.len) + (m.newline ? '\r\n' : '') + out.slice(p);
        break;
      }
      case 'duplicate': { const p = pos(m.from); out = out.slice(0, p) + out.slice(p, p + m.len) + out.slice(p); break; }
      case 'eol': out = out.replace(/\r\n/g, m.eol); break;
    }
  }
  return out;
}

/** A reply stream that may be broken: valid replies, then zero or more mutations. */
export const mutatedReplyStream = fc.tuple(validReplyStream, fc.array(mutation, { maxLength: 4 }))
  .map(([v, ms]) => mutate(v.text, ms));

/** Cut points (lengths of successive reads); the rest of the input is the last read. */
export const cuts = fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 16 });

/** Splits bytes into reads at the given lengths. */
export function split(bytes: Buffer, lengths: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  let p = 0;
  for (const n of lengths) {
    if (p >= bytes.length) break;
    out.push(bytes.subarray(p, p + n));
    p += n;
  }
  if (p < bytes.length) out.push(bytes.subarray(p));
  return out;
}
