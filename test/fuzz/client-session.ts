// Fuzz properties of the pure client session (relay/protocol/client-session.ts): a driver
// that behaves like relay/outbound/connection.ts runs random transactions against a random
// server script (replies of any code in any phase, EHLO capability sets, garbage that the
// reply parser turns into protocol errors, timeouts, connection loss, TLS failures).
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  type SessionAction, type SessionEvent, type SessionOptions, type SessionState, type TransactionRequest, type TransactionResult,
  bodyAborted, initialSession, mayAuthenticate, step,
} from '../../relay/protocol/client-session.ts';
import { ReplyParser } from '../../relay/protocol/reply.ts';
import { mutatedReplyStream, renderReply, replySpec, type ReplySpec } from './arbitraries.ts';
import type { FuzzTarget } from './harness.ts';

/** One thing the server (or the network) does next. */
export type ScriptItem =
  | { kind: 'reply'; spec: ReplySpec }
  | { kind: 'ehlo'; caps: string[] }
  | { kind: 'raw'; text: string }
  | { kind: 'error'; err: 'connection' | 'timeout' | 'tls' }
  | { kind: 'quit' }
  | { kind: 'deliver-pending' };

const CAPS = ['PIPELINING', 'CHUNKING', 'SIZE 1000', '8BITMIME', 'SMTPUTF8', 'STARTTLS', 'AUTH PLAIN LOGIN', 'AUTH LOGIN', 'DSN', 'ENHANCEDSTATUSCODES'];

const scriptItem: fc.Arbitrary<ScriptItem> = fc.oneof(
  { weight: 10, arbitrary: replySpec.map((spec) => ({ kind: 'reply' as const, spec })) },
  { weight: 8, arbitrary: fc.constantFrom(220, 250, 250, 250, 354, 235, 334).map((code) => ({ kind: 'reply' as const, spec: { code, lines: ['ok'] } })) },
  { weight: 3, arbitrary: fc.subarray(CAPS).map((caps) => ({ kind: 'ehlo' as const, caps })) },
  { weight: 1, arbitrary: mutatedReplyStream.map((text) => ({ kind: 'raw' as const, text })) },
  { weight: 1, arbitrary: fc.constantFrom('connection', 'timeout', 'tls').map((err) => ({ kind: 'error' as const, err })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'quit' as const }) },
  { weight: 4, arbitrary: fc.constant({ kind: 'deliver-pending' as const }) },
);

/** Envelope addresses, including ones that must never reach the wire (CRLF injection, spaces, brackets). */
const address = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('a@example.com', 'b@example.org', '552-quota@example.net', 'x.y+tag@example.com', 'm\u00fcller@example.de') },
  { weight: 1, arbitrary: fc.constantFrom('', 'evil@x\r\nRCPT TO:<victim@y>', 'sp ace@x', '<a@b>', 'nul\0@x', 'a@b\n', 'x'.repeat(1200)) },
);

const txRequest: fc.Arbitrary<TransactionRequest> = fc.record({
  from: address,
  recipients: fc.array(fc.record({ address, notify: fc.option(fc.constantFrom(['SUCCESS', 'FAILURE'], ['NEVER']), { nil: undefined }), orcpt: fc.option(fc.constantFrom('rfc822;a@b', 'x y', '+='), { nil: undefined }) }), { minLength: 1, maxLength: 5 }),
  size: fc.nat(100_000),
  eightBit: fc.boolean(),
  smtputf8: fc.boolean(),
  ret: fc.option(fc.constantFrom('FULL' as const, 'HDRS' as const), { nil: undefined }),
  envid: fc.option(fc.constantFrom('env-1', 'with space', '\u00e9\r\n'), { nil: undefined }),
});

const sessionOptions: fc.Arbitrary<SessionOptions> = fc.record({
  heloName: fc.constant('relay.test'),
  tls: fc.constantFrom('opportunistic' as const, 'required' as const, 'implicit' as const, 'none' as const),
  pipelining: fc.boolean(),
  chunking: fc.boolean(),
  overQuotaPolicy: fc.constantFrom('bounce' as const, 'retry' as const),
  tlsVerify: fc.constantFrom('enforce' as const, 'record' as const, 'skip' as const),
  auth: fc.option(fc.constant({ username: 'u', password: 'p' }), { nil: undefined }),
});

/** What one simulated connection did. */
export interface SessionRun {
  begun: TransactionRequest[];
  done: TransactionResult[];
  writes: string[];
  steps: number;
}

/** Checks one step's output against the rules every step must keep. */
function checkStep(before: SessionState, snapshot: SessionState, ev: SessionEvent, after: SessionState, actions: SessionAction[], closedBefore: boolean): void {
  assert.deepEqual(before, snapshot, `step modified its input state (event ${ev.type})`);
  for (const a of actions) {
    if (a.type === 'write') {
      assert.ok(!closedBefore, `write after close: ${JSON.stringify(a.text)}`);
      // Every command is one line: CRLF only as the terminator (no injection from envelope values).
      const lines = a.text.split('\r\n');
      assert.equal(lines.pop(), '', 'a write ends with CRLF');
      for (const l of lines) assert.ok(!/[\r\n\0]/.test(l), `CR, LF or NUL inside a command line: ${JSON.stringify(l)}`);
      // Issue 9: credentials only over TLS whose certificate was verified (or explicitly not checked).
      if (lines.some((l) => /^AUTH /.test(l)) || before.phase === 'auth') {
        assert.ok(mayAuthenticate(before), `AUTH written without verified TLS (tls=${before.tls}, verified=${before.tlsVerified}, mode=${before.opts.tlsVerify})`);
      }
    }
    if (a.type === 'send-body' && a.mode === 'data') {
      assert.ok((before.tx?.accepted ?? 0) > 0, 'DATA body sent with zero accepted recipients');
    }
  }
  assert.ok(after.expect.length <= 64, `expectation queue grew to ${after.expect.length}`);
}

/** Checks a transaction result against its request. */
export function checkResult(req: TransactionRequest, r: TransactionResult): void {
  assert.deepEqual(r.recipients.map((x) => x.address), req.recipients.map((x) => x.address), 'one result per recipient, in order');
  for (const x of r.recipients) {
    assert.ok(['accepted', 'deferred', 'failed'].includes(x.verdict.status));
    if (x.verdict.status === 'accepted') {
      // Accepted only on a 2xx to the final dot / BDAT LAST of this very transaction.
      assert.ok(x.reply && x.reply.code >= 200 && x.reply.code < 300, `accepted without a 2xx: ${JSON.stringify(x.reply)}`);
      assert.ok(x.reply.command === 'dot' || x.reply.command === 'bdat', `accepted on a reply to ${x.reply.command}`);
      assert.equal(x.reply, r.finalReply);
      assert.ok(x.rcptReply && x.rcptReply.code >= 200 && x.rcptReply.code < 300, 'accepted recipient had its RCPT accepted');
    }
  }
}

/** Runs the session with a connection-like driver over the script. */
export function runSession(options: SessionOptions, requests: readonly TransactionRequest[], script: readonly ScriptItem[], certVerified = true): SessionRun {
  // fast-check builds records without a prototype; plain copies keep the purity check exact.
  const opts: SessionOptions = { ...options };
  const txs = requests.map((t) => ({ ...t, recipients: t.recipients.map((r) => ({ ...r })) }));
  let s = initialSession(opts);
  const parser = new ReplyParser();
  const pending: SessionEvent[] = [];
  const run: SessionRun = { begun: [], done: [], writes: [], steps: 0 };
  let closed = false;
  let inTx = false;
  let next = 0;
  let parserDead = false;

  const dispatch = (ev: SessionEvent): void => {
    const snapshot = structuredClone(s);
    const before = s;
    const { state, actions } = step(s, ev);
    checkStep(before, snapshot, ev, state, actions, closed);
    s = state;
    run.steps++;
    for (const a of actions) {
      switch (a.type) {
        case 'write': run.writes.push(a.text); break;
        case 'send-body':
          // The connection writes the body asynchronously, then reports it (bdat: per segment).
          if (a.mode === 'bdat') pending.push({ type: 'bdat-chunk', last: true });
          pending.push({ type: 'body-done' });
          break;
        case 'start-tls': pending.push(certVerified ? { type: 'tls-established', verified: true } : { type: 'tls-established', verified: false, problem: { type: 'certificate-not-trusted', reason: 'fuzz: not trusted' } }); break;
        case 'tx-done': {
          const req = run.begun[run.done.length];
          assert.ok(req, 'tx-done without a transaction');
          checkResult(req, a.result);
          run.done.push(a.result);
          inTx = false;
          break;
        }
        case 'close': closed = true; break;
        default: break;
      }
    }
  };

  const deliverPending = (): void => {
    const ev = pending.shift();
    if (!ev || closed) return;
    // As connection.ts: no BDAT segment after a failed one; no body events once closed.
    if (ev.type === 'bdat-chunk' && bodyAborted(s)) return;
    dispatch(ev);
  };

  // Implicit TLS: the handshake ends before the greeting, as connection.ts reports it.
  if (opts.tls === 'implicit') dispatch(certVerified ? { type: 'tls-established', verified: true } : { type: 'tls-established', verified: false });

  for (let guard = 0; guard < 1000; guard++) {
    if (!closed && !inTx && s.phase === 'ready' && !s.dead && run.begun.length < txs.length) {
      const tx = txs[run.begun.length]!;
      run.begun.push(tx);
      inTx = true;
      dispatch({ type: 'begin', tx });
      continue;
    }
    const item = script[next++];
    if (!item) {
      if (pending.length > 0 && !closed) { deliverPending(); continue; }
      break;
    }
    switch (item.kind) {
      case 'deliver-pending': deliverPending(); break;
      case 'reply': case 'ehlo': case 'raw': {
        if (parserDead) break;
        const text = item.kind === 'reply' ? renderReply(item.spec)
          : item.kind === 'ehlo' ? renderReply({ code: 250, lines: ['fuzz.test', ...item.caps] }) : item.text;
        // Replies keep coming after close: the session must ignore them, never throw.
        for (const ev of parser.push(text)) {
          if (ev.type === 'error') {
            parserDead = true;
            dispatch({ type: 'error', kind: 'protocol', message: ev.message });
            break;
          }
          dispatch({ type: 'reply', reply: ev.reply });
        }
        break;
      }
      case 'error': dispatch({ type: 'error', kind: item.err, message: 'fuzz' }); break;
      case 'quit':
        if (!closed && s.phase === 'ready') dispatch({ type: 'quit' });
        break;
    }
  }
  // The socket closes in the end: everything still open gets its result now.
  dispatch({ type: 'error', kind: 'connection', message: 'connection closed' });
  return run;
}

/** Every begun transaction ends with exactly one well-formed result; no step throws or writes after close. */
export const sessionScripts: FuzzTarget = {
  name: 'client-session/scripts',
  ci: { numRuns: 1500, timeMs: 8000 },
  property: () => fc.property(
    sessionOptions,
    fc.array(txRequest, { minLength: 1, maxLength: 4 }),
    fc.array(scriptItem, { maxLength: 60 }),
    fc.boolean(),
    (opts: SessionOptions, txs: TransactionRequest[], script: ScriptItem[], verified: boolean) => {
      const run = runSession(opts, txs, script, verified);
      assert.equal(run.done.length, run.begun.length, 'every begun transaction got exactly one result');
    },
  ),
};

/** A well-behaved server script reaches delivery: the driver is not vacuous (acceptance is reachable). */
export const sessionHappyPath: FuzzTarget = {
  name: 'client-session/happy-path',
  ci: { numRuns: 300, timeMs: 3000 },
  property: () => fc.property(
    sessionOptions.filter((o) => o.tls !== 'required' && o.auth === undefined),
    fc.array(fc.constantFrom('a@example.com', 'b@example.org'), { minLength: 1, maxLength: 4 }),
    (opts, rcpts) => {
      const ok: ScriptItem = { kind: 'reply', spec: { code: 250, lines: ['ok'] } };
      const script: ScriptItem[] = [{ kind: 'reply', spec: { code: 220, lines: ['hi'] } }, { kind: 'ehlo', caps: ['PIPELINING', 'CHUNKING'] }];
      script.push(ok, ...rcpts.map(() => ok));
      if (!opts.chunking) script.push({ kind: 'reply', spec: { code: 354, lines: ['go'] } });
      script.push({ kind: 'deliver-pending' }, { kind: 'deliver-pending' }, ok);
      const run = runSession(opts, [{ from: 's@relay.test', recipients: rcpts.map((address) => ({ address })), size: 10 }], script);
      assert.equal(run.done.length, 1);
      assert.deepEqual(run.done[0]!.recipients.map((r) => r.verdict.status), rcpts.map(() => 'accepted'));
    },
  ),
};

/** Every client-session target. */
export const clientSessionTargets: FuzzTarget[] = [sessionScripts, sessionHappyPath];
