// Fuzz properties of the streaming reply parser (relay/protocol/reply.ts), fed valid,
// mutated and random byte streams split at random points.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MAX_REPLY_LINE, MAX_REPLY_LINES, ReplyParser, type ParseEvent } from '../../relay/protocol/reply.ts';
import { bytes, cuts, mutatedReplyStream, split, validReplyStream, type ReplySpec } from './arbitraries.ts';
import type { FuzzTarget } from './harness.ts';

/** The parser's private state, read to check that memory stays bounded. */
interface ParserInternals {
  buf: string;
  pending: { lines: string[] } | null;
  failed: boolean;
}

/** Feeds the reads one by one (as Buffer or string, alternating by `asString`); checks bounds after every push. */
export function parseAll(reads: readonly Buffer[], asString: readonly boolean[] = []): ParseEvent[] {
  const p = new ReplyParser();
  const internals = p as unknown as ParserInternals;
  const events: ParseEvent[] = [];
  reads.forEach((r, i) => {
    const evs = p.push(asString[i % Math.max(1, asString.length)] ? r.toString('latin1') : r);
    events.push(...evs);
    if (!internals.failed) {
      // Between reads the parser holds at most one partial line and one reply's lines.
      assert.ok(internals.buf.length <= MAX_REPLY_LINE + 1, `parser buffers ${internals.buf.length} bytes of an unfinished line`);
      assert.ok((internals.pending?.lines.length ?? 0) <= MAX_REPLY_LINES);
    }
  });
  return events;
}

/** Every event is a well-formed reply or an error, and nothing follows an error. */
export function assertWellFormed(events: readonly ParseEvent[]): void {
  events.forEach((ev, i) => {
    if (ev.type === 'error') {
      assert.equal(i, events.length - 1, 'no event after an error');
      assert.ok(typeof ev.message === 'string' && ev.message.length > 0);
      return;
    }
    const r = ev.reply;
    assert.ok(Number.isInteger(r.code) && r.code >= 200 && r.code <= 599, `code ${r.code}`);
    assert.ok(r.lines.length >= 1 && r.lines.length <= MAX_REPLY_LINES);
    for (const l of r.lines) {
      assert.equal(typeof l, 'string');
      assert.ok(l.length <= MAX_REPLY_LINE);
      assert.ok(!l.includes('\n'), 'no line feed inside a reply line');
    }
    if (r.enhanced) {
      assert.equal(r.enhanced.class, Math.floor(r.code / 100), 'enhanced class matches the code (RFC 3463 §2)');
      assert.ok(r.enhanced.subject >= 0 && r.enhanced.subject <= 999 && r.enhanced.detail >= 0 && r.enhanced.detail <= 999);
    }
    assert.equal(r.command, null);
  });
}

const ENH = /^([245])\.(\d{1,3})\.(\d{1,3})(?:\s+|$)/;

/** What the parser must make of a reply spec (the oracle for valid streams). */
function expected(spec: ReplySpec): { code: number; enhanced: string | null; lines: string[] } {
  const m = ENH.exec(spec.lines[0]!);
  const enh = m && Number(m[1]) === Math.floor(spec.code / 100) ? `${m[1]}.${Number(m[2])}.${Number(m[3])}` : null;
  const strip = (l: string) => {
    const x = ENH.exec(l);
    return x && Number(x[1]) === Math.floor(spec.code / 100) ? l.slice(x[0].length) : l;
  };
  return { code: spec.code, enhanced: enh, lines: spec.lines.map((l, i) => (i === 0 ? (enh ? strip(l) : l) : enh ? strip(l) : l)) };
}

const summary = (events: readonly ParseEvent[]) => events.map((e) => (e.type === 'error' ? { error: true } : {
  code: e.reply.code,
  enhanced: e.reply.enhanced ? `${e.reply.enhanced.class}.${e.reply.enhanced.subject}.${e.reply.enhanced.detail}` : null,
  lines: e.reply.lines,
}));

/** Valid streams give exactly the replies that were written, however they are split. */
export const validStreams: FuzzTarget = {
  name: 'reply-parser/valid-streams',
  ci: { numRuns: 400, timeMs: 5000 },
  property: () => fc.property(validReplyStream, cuts, fc.array(fc.boolean(), { maxLength: 4 }), (stream, lengths, asString) => {
    const all = Buffer.from(stream.text, 'latin1');
    const events = parseAll(split(all, lengths), asString);
    assertWellFormed(events);
    assert.deepEqual(summary(events), stream.replies.map(expected));
  }),
};

/** Mutated and random streams: no exception, bounded buffers, well-formed events, and the same replies for any split. */
export const mutatedStreams: FuzzTarget = {
  name: 'reply-parser/mutated-streams',
  ci: { numRuns: 400, timeMs: 5000 },
  property: () => fc.property(
    fc.oneof({ weight: 4, arbitrary: mutatedReplyStream }, { weight: 1, arbitrary: bytes(300) }),
    cuts,
    (text: string, lengths: number[]) => {
      const all = Buffer.from(text, 'latin1');
      const whole = parseAll([all]);
      const pieces = parseAll(split(all, lengths));
      const bytewise = parseAll(split(all, new Array<number>(all.length).fill(1)));
      for (const evs of [whole, pieces, bytewise]) assertWellFormed(evs);
      // However the bytes arrive, the replies before any error are the same.
      const replies = (evs: ParseEvent[]) => summary(evs.filter((e) => e.type === 'reply'));
      assert.deepEqual(replies(pieces), replies(whole));
      assert.deepEqual(replies(bytewise), replies(whole));
      const failed = (evs: ParseEvent[]) => evs.at(-1)?.type === 'error';
      assert.equal(failed(pieces), failed(whole), 'an error for one split is an error for all');
      assert.equal(failed(bytewise), failed(whole), 'an error for one split is an error for all (byte by byte)');
    },
  ),
};

/** Every reply-parser target. */
export const replyParserTargets: FuzzTarget[] = [validStreams, mutatedStreams];
