// The SMTP client session as a pure state machine: step(state, event) -> {state, actions}.
// No sockets, no timers, no clock: the driver (relay/outbound/connection.ts) feeds it
// replies and I/O events and carries out the actions it returns.
//
// Pipelining (RFC 2920): MAIL, every RCPT and DATA are written in one group; replies are
// matched to commands strictly in order through `expect`, so every command gets exactly
// one result, and commands that never got a reply (or were never sent) get an explicit
// one when the session ends (RFC 2920 §3.1: the client MUST check ALL statuses).
// Chunking (RFC 3030): MAIL, RCPTs and BDAT ... LAST go out in one group.
import type { ReplyCommand } from '../metrics.ts';
import { type Capabilities, NO_CAPABILITIES, parseCapabilities } from './capabilities.ts';
import {
  classifyFailure, classifyNoReply, classifyRcpt, classifySessionFailure,
  type OverQuotaPolicy, type Rcpt552Class, type Verdict,
} from './classify.ts';
import { type Reply, makeReply } from './reply.ts';

/** Outbound TLS policy (mirrors relay config). */
export type SessionTlsPolicy = 'opportunistic' | 'required' | 'implicit' | 'none';

/** Fixed settings of one session. */
export interface SessionOptions {
  heloName: string;
  tls: SessionTlsPolicy;
  pipelining: boolean;
  chunking: boolean;
  overQuotaPolicy: OverQuotaPolicy;
  auth?: { username: string; password: string };
}

/** One recipient of a transaction, with its RFC 3461 DSN parameters. */
export interface TxRecipient {
  address: string;
  notify?: readonly string[];
  orcpt?: string;
}

/** One message transaction the caller asks the session to run. */
export interface TransactionRequest {
  from: string; // '' is the null reverse-path
  recipients: readonly TxRecipient[];
  size: number;
  eightBit?: boolean;
  smtputf8?: boolean;
  ret?: 'FULL' | 'HDRS';
  envid?: string;
}

/** What happened to one recipient in one transaction. */
export interface RecipientResult {
  address: string;
  verdict: Verdict;
  /** The reply that decided the verdict (RCPT, DATA, final dot/BDAT, or MAIL); null if none came. */
  reply: Reply | null;
  /** This recipient's own RCPT reply, if one came. */
  rcptReply: Reply | null;
  /** Set when a RCPT 552 decided (or was seen for) this recipient. */
  class552: Rcpt552Class | null;
  /** Why there was no reply (connection lost, timeout, never sent because of the limit). */
  note?: string;
}

/** The result of one transaction: one entry per requested recipient, in request order. */
export interface TransactionResult {
  recipients: RecipientResult[];
  accepted: number; // RCPTs accepted by the server
  mailReply: Reply | null;
  dataReply: Reply | null; // 354 / DATA failure, or the failing BDAT reply
  finalReply: Reply | null; // reply to the final dot or BDAT LAST
  /**
   * Where the server's "too many recipients" refusals started: the number of RCPTs it had
   * accepted before the first one, provided none was accepted after it (a limit refuses
   * every RCPT past it; a refusal followed by an acceptance was about its own mailbox).
   * Only a candidate: the engine's plan confirms it when the first refused recipient is
   * accepted as the first RCPT of the next transaction (relay/outbound/plan.ts).
   */
  learnedLimit: number | null;
  mode: 'data' | 'bdat';
}

type Expect =
  | { cmd: 'greeting' | 'ehlo' | 'helo' | 'starttls' | 'auth' | 'auth-user' | 'auth-pass' | 'quit' | 'rset' }
  | { cmd: 'mail' }
  | { cmd: 'rcpt'; index: number }
  | { cmd: 'data' }
  | { cmd: 'dot'; empty: boolean }
  | { cmd: 'bdat'; last: boolean };

interface RcptSlot {
  rcpt: TxRecipient;
  sent: boolean;
  reply: Reply | null;
  verdict: Verdict | null;
  class552: Rcpt552Class | null;
}

interface TxState {
  req: TransactionRequest;
  mode: 'data' | 'bdat';
  pipelined: boolean;
  slots: RcptSlot[];
  accepted: number;
  mailReply: Reply | null;
  dataReply: Reply | null;
  finalReply: Reply | null;
  /** Lock-step: index of the next RCPT to send, or -1 once no more will be sent. */
  nextRcpt: number;
  /** BDAT: a chunk got a non-2xx reply; the driver sends no further segments (RFC 3030 §2). */
  bodyAborted: boolean;
  bodyStarted: boolean;
  bodyDone: boolean;
  learnedLimit: number | null;
}

/** Session phases. */
export type Phase = 'greeting' | 'ehlo' | 'starttls' | 'auth' | 'ready' | 'tx' | 'rset' | 'quit' | 'closed';

/** The whole session state (immutable from the caller's point of view). */
export interface SessionState {
  phase: Phase;
  opts: SessionOptions;
  caps: Capabilities;
  tls: boolean;
  ehloAfterTls: boolean;
  expect: Expect[];
  tx: TxState | null;
  /** Set once the session can no longer be used (failure, 421, QUIT). */
  dead: boolean;
}

/** Inputs to the state machine. */
export type SessionEvent =
  | { type: 'reply'; reply: Reply }
  | { type: 'tls-established' }
  | { type: 'begin'; tx: TransactionRequest }
  | { type: 'bdat-chunk'; last: boolean }
  | { type: 'body-done' }
  | { type: 'quit' }
  | { type: 'error'; kind: 'connection' | 'timeout' | 'protocol' | 'tls'; message: string };

/** Outputs of the state machine, carried out by the driver in order. */
export type SessionAction =
  | { type: 'write'; text: string }
  | { type: 'start-tls' }
  | { type: 'send-body'; mode: 'data' | 'bdat'; pipelined: boolean }
  | { type: 'ready' }
  | { type: 'tx-done'; result: TransactionResult }
  | { type: 'session-failed'; stage: 'connect' | 'ehlo' | 'starttls' | 'auth' | 'protocol'; verdict: Verdict; reply: Reply | null; message: string }
  | { type: 'reply-seen'; reply: Reply }
  | { type: 'close' };

/** Result of one step. */
export interface Step {
  state: SessionState;
  actions: SessionAction[];
}

/** A fresh session, waiting for the server's greeting (implicit TLS: the socket is already TLS). */
export function initialSession(opts: SessionOptions): SessionState {
  return {
    phase: 'greeting', opts, caps: NO_CAPABILITIES, tls: opts.tls === 'implicit', ehloAfterTls: false,
    expect: [{ cmd: 'greeting' }], tx: null, dead: false,
  };
}

/** Which timeout (RFC 5321 §4.5.3.2) applies while waiting for the oldest outstanding reply; null if none is awaited. */
export function pendingTimeout(s: SessionState): 'greeting' | 'command' | 'dataInit' | 'dataTerm' | null {
  const head = s.expect[0];
  if (!head) return null;
  if (head.cmd === 'greeting') return 'greeting';
  if (head.cmd === 'data') return 'dataInit';
  if (head.cmd === 'dot' || head.cmd === 'bdat') return 'dataTerm';
  return 'command';
}

/** True when the driver must stop sending BDAT segments (a BDAT got a 4xx/5xx). */
export function bodyAborted(s: SessionState): boolean {
  return s.tx?.bodyAborted ?? true;
}

const COMMAND_OF: Record<Expect['cmd'], ReplyCommand> = {
  greeting: 'connect', ehlo: 'ehlo', helo: 'helo', starttls: 'starttls', auth: 'auth', 'auth-user': 'auth',
  'auth-pass': 'auth', quit: 'quit', rset: 'rset', mail: 'mail', rcpt: 'rcpt', data: 'data', dot: 'dot', bdat: 'bdat',
};

// Envelope values go into command lines verbatim, so anything that could end a line or
// smuggle a second command is refused before it is written (CRLF injection).
// eslint-disable-next-line no-control-regex -- control characters are exactly what we refuse
const SAFE_ADDRESS = /^[^\s<>\x00-\x1f\x7f]*$/;
const SAFE_XTEXT = /^[\x21-\x7e]*$/;

/** True if an envelope address can be written into MAIL/RCPT safely. */
export function isSafeAddress(addr: string): boolean {
  return addr.length <= 998 && SAFE_ADDRESS.test(addr);
}

/** RFC 3461 §4 xtext encoding for ORCPT and ENVID values. */
export function xtext(value: string): string {
  let out = '';
  for (const ch of Buffer.from(value, 'utf8')) {
    out += ch >= 0x21 && ch <= 0x7e && ch !== 0x2b && ch !== 0x3d ? String.fromCharCode(ch) : `+${ch.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Advances the session by one event. Pure: the input state is not modified. */
export function step(state: SessionState, ev: SessionEvent): Step {
  const s: SessionState = { ...state, expect: [...state.expect], tx: state.tx ? cloneTx(state.tx) : null };
  const actions: SessionAction[] = [];
  switch (ev.type) {
    case 'reply': onReply(s, ev.reply, actions); break;
    case 'tls-established': {
      s.tls = true;
      s.phase = 'ehlo';
      s.ehloAfterTls = true;
      // RFC 3207 §4.2: forget everything learned before TLS and EHLO again.
      s.caps = NO_CAPABILITIES;
      write(s, actions, [`EHLO ${s.opts.heloName}`], [{ cmd: 'ehlo' }]);
      break;
    }
    case 'begin': begin(s, ev.tx, actions); break;
    case 'bdat-chunk': {
      if (s.tx) {
        s.tx.bodyStarted = true;
        s.expect.push({ cmd: 'bdat', last: ev.last });
      }
      break;
    }
    case 'body-done': {
      if (s.tx) {
        s.tx.bodyDone = true;
        if (s.tx.mode === 'data') s.expect.push({ cmd: 'dot', empty: false });
        else maybeFinishBdat(s, actions);
      }
      break;
    }
    case 'quit': {
      if (!s.dead && s.phase === 'ready') {
        s.phase = 'quit';
        write(s, actions, ['QUIT'], [{ cmd: 'quit' }]);
      } else {
        s.phase = 'closed';
        actions.push({ type: 'close' });
      }
      s.dead = true;
      break;
    }
    case 'error': onError(s, ev.kind, ev.message, actions); break;
  }
  return { state: s, actions };
}

// Copy-on-write: the slot array is copied (pointers only) and a slot object is replaced,
// never changed, when a step updates it; copying every slot on every reply made a
// 50-recipient transaction cost O(R^2) allocations.
function cloneTx(t: TxState): TxState {
  return { ...t, slots: [...t.slots] };
}

function write(s: SessionState, actions: SessionAction[], lines: string[], expects: Expect[]): void {
  actions.push({ type: 'write', text: lines.map((l) => `${l}\r\n`).join('') });
  s.expect.push(...expects);
}

function onReply(s: SessionState, raw: Reply, actions: SessionAction[]): void {
  const head = s.expect.shift();
  if (!head) {
    // RFC 5321 §3.8: a server may send 421 at any time before closing.
    actions.push({ type: 'reply-seen', reply: { ...raw, command: null } });
    onError(s, 'protocol', `unsolicited reply: ${raw.code} ${raw.lines[0] ?? ''}`, actions);
    return;
  }
  const reply: Reply = { ...raw, command: COMMAND_OF[head.cmd] };
  actions.push({ type: 'reply-seen', reply });
  const code = reply.code;
  if (code === 421) s.dead = true;

  switch (head.cmd) {
    case 'greeting':
      if (code !== 220) return sessionFailed(s, actions, 'connect', reply, `greeting refused: ${code}`);
      write(s, actions, [`EHLO ${s.opts.heloName}`], [{ cmd: 'ehlo' }]);
      s.phase = 'ehlo';
      return;
    case 'ehlo':
      if (code === 250) {
        s.caps = parseCapabilities(reply);
        return afterEhlo(s, actions);
      }
      // RFC 5321 §3.2: fall back to HELO when EHLO is not recognised (5xx), not after TLS.
      if (code >= 500 && code < 600 && !s.ehloAfterTls) {
        write(s, actions, [`HELO ${s.opts.heloName}`], [{ cmd: 'helo' }]);
        return;
      }
      return sessionFailed(s, actions, 'ehlo', reply, `EHLO refused: ${code}`);
    case 'helo':
      if (code !== 250) return sessionFailed(s, actions, 'ehlo', reply, `HELO refused: ${code}`);
      s.caps = NO_CAPABILITIES;
      return afterEhlo(s, actions);
    case 'starttls':
      if (code === 220) {
        s.phase = 'starttls';
        actions.push({ type: 'start-tls' });
        return;
      }
      if (s.opts.tls === 'required') return sessionFailed(s, actions, 'starttls', reply, `STARTTLS refused (${code}) and TLS is required`);
      // Opportunistic: carry on in plaintext (RFC 3207 §4.1 leaves the decision to the client).
      return afterTls(s, actions);
    case 'auth':
      if (code === 235) return goReady(s, actions);
      if (code === 334 && s.opts.auth) {
        // AUTH LOGIN: the server asks for the username, then the password.
        write(s, actions, [Buffer.from(s.opts.auth.username).toString('base64')], [{ cmd: 'auth-user' }]);
        return;
      }
      return sessionFailed(s, actions, 'auth', reply, `AUTH failed: ${code}`);
    case 'auth-user':
      if (code === 334 && s.opts.auth) {
        write(s, actions, [Buffer.from(s.opts.auth.password).toString('base64')], [{ cmd: 'auth-pass' }]);
        return;
      }
      return sessionFailed(s, actions, 'auth', reply, `AUTH LOGIN username step failed: ${code}`);
    case 'auth-pass':
      if (code === 235) return goReady(s, actions);
      return sessionFailed(s, actions, 'auth', reply, `AUTH failed: ${code}`);
    case 'quit':
      s.phase = 'closed';
      actions.push({ type: 'close' });
      return;
    case 'rset':
      // Anything but 2xx to RSET means the replies are out of step with our commands.
      if (code < 200 || code >= 300 || s.dead) {
        s.dead = true;
        s.phase = 'closed';
        actions.push({ type: 'close' });
        return;
      }
      return goReady(s, actions);
    case 'mail': return onMail(s, reply, actions);
    case 'rcpt': return onRcpt(s, head.index, reply, actions);
    case 'data': return onData(s, reply, actions);
    case 'dot': return onDot(s, head.empty, reply, actions);
    case 'bdat': return onBdat(s, head.last, reply, actions);
  }
}

function afterEhlo(s: SessionState, actions: SessionAction[]): void {
  const wantTls = s.opts.tls === 'opportunistic' || s.opts.tls === 'required';
  if (!s.tls && wantTls) {
    if (s.caps.startTls) {
      write(s, actions, ['STARTTLS'], [{ cmd: 'starttls' }]);
      return;
    }
    if (s.opts.tls === 'required') {
      return sessionFailed(s, actions, 'starttls', null, 'TLS is required but the server does not offer STARTTLS');
    }
  }
  afterTls(s, actions);
}

function afterTls(s: SessionState, actions: SessionAction[]): void {
  const auth = s.opts.auth;
  if (!auth) return goReady(s, actions);
  s.phase = 'auth';
  if (s.caps.auth.includes('PLAIN')) {
    const token = Buffer.from(`\0${auth.username}\0${auth.password}`).toString('base64');
    write(s, actions, [`AUTH PLAIN ${token}`], [{ cmd: 'auth' }]);
  } else if (s.caps.auth.includes('LOGIN')) {
    write(s, actions, ['AUTH LOGIN'], [{ cmd: 'auth' }]);
  } else {
    sessionFailed(s, actions, 'auth', null, `credentials are configured but the server offers no PLAIN/LOGIN (offered: ${s.caps.auth.join(' ') || 'none'})`);
  }
}

function goReady(s: SessionState, actions: SessionAction[]): void {
  if (s.dead) {
    s.phase = 'closed';
    actions.push({ type: 'close' });
    return;
  }
  s.phase = 'ready';
  s.tx = null;
  actions.push({ type: 'ready' });
}

function sessionFailed(
  s: SessionState, actions: SessionAction[], stage: 'connect' | 'ehlo' | 'starttls' | 'auth' | 'protocol', reply: Reply | null, message: string,
): void {
  const verdict = reply
    ? classifySessionFailure(reply, stage === 'protocol' ? 'connect' : stage)
    : classifyNoReply(stage === 'starttls' ? 'tls' : 'connection');
  s.dead = true;
  s.phase = 'closed';
  s.expect = [];
  if (s.tx) failTransactionEarly(s, actions, verdict, reply, message);
  actions.push({ type: 'session-failed', stage, verdict, reply, message });
  actions.push({ type: 'close' });
}

function mailParams(s: SessionState, req: TransactionRequest): string[] {
  const p: string[] = [];
  if (s.caps.size !== null) p.push(`SIZE=${req.size}`);
  if (req.eightBit && s.caps.eightBitMime) p.push('BODY=8BITMIME');
  if (req.smtputf8 && s.caps.smtpUtf8) p.push('SMTPUTF8');
  if (s.caps.dsn) {
    if (req.ret) p.push(`RET=${req.ret}`);
    if (req.envid) p.push(`ENVID=${xtext(req.envid)}`);
  }
  return p;
}

function rcptLine(s: SessionState, r: TxRecipient): string {
  let line = `RCPT TO:<${r.address}>`;
  if (s.caps.dsn) {
    if (r.notify && r.notify.length > 0) line += ` NOTIFY=${r.notify.join(',')}`;
    if (r.orcpt) line += ` ORCPT=${r.orcpt.includes(';') ? r.orcpt.split(';')[0] + ';' + xtext(r.orcpt.split(';').slice(1).join(';')) : 'rfc822;' + xtext(r.orcpt)}`;
  }
  return line;
}

function begin(s: SessionState, req: TransactionRequest, actions: SessionAction[]): void {
  if (s.phase !== 'ready' || s.dead) throw new Error(`begin in phase ${s.phase}`);
  const slots: RcptSlot[] = req.recipients.map((rcpt) => ({ rcpt, sent: false, reply: null, verdict: null, class552: null }));
  const mode: 'data' | 'bdat' = s.opts.chunking && s.caps.chunking ? 'bdat' : 'data';
  const pipelined = s.opts.pipelining && s.caps.pipelining;
  const tx: TxState = {
    req, mode, pipelined, slots, accepted: 0, mailReply: null, dataReply: null, finalReply: null,
    nextRcpt: 0, bodyAborted: false, bodyStarted: false, bodyDone: false, learnedLimit: null,
  };
  s.tx = tx;
  s.phase = 'tx';

  // RFC 6531 §3.2: a message that needs SMTPUTF8 must not go to a server that lacks it;
  // RFC 6531 §3.5 gives 5.6.7 for that bounce.
  if (req.smtputf8 && !s.caps.smtpUtf8) {
    for (const sl of slots) {
      sl.verdict = { status: 'failed', reason: 'permanent' };
      sl.reply = makeReply(553, '5.6.7 The next hop does not support SMTPUTF8, which this message needs');
    }
    finish(s, actions, false);
    return;
  }
  const bad = (_a: string, what: string) => makeReply(501, `5.1.3 ${what} contains characters that cannot be sent safely`);
  if (!isSafeAddress(req.from) || (req.envid !== undefined && !SAFE_XTEXT.test(xtext(req.envid)))) {
    for (const sl of slots) sl.verdict = { status: 'failed', reason: 'permanent' };
    for (const sl of slots) sl.reply = bad(req.from, 'sender address');
    finish(s, actions, false);
    return;
  }
  for (const sl of slots) {
    if (!isSafeAddress(sl.rcpt.address) || sl.rcpt.address === '') {
      sl.verdict = { status: 'failed', reason: 'permanent' };
      sl.reply = bad(sl.rcpt.address, 'recipient address');
      sl.sent = true; // decided locally; never goes on the wire
    }
  }
  const sendable = slots.map((sl, i) => ({ sl, i })).filter(({ sl }) => !sl.sent);
  if (sendable.length === 0) {
    finish(s, actions, false);
    return;
  }

  const mail = `MAIL FROM:<${req.from}>${mailParams(s, req).map((p) => ` ${p}`).join('')}`;
  if (pipelined) {
    const lines = [mail];
    const ex: Expect[] = [{ cmd: 'mail' }];
    for (const { sl, i } of sendable) {
      lines.push(rcptLine(s, sl.rcpt));
      ex.push({ cmd: 'rcpt', index: i });
      sl.sent = true;
    }
    tx.nextRcpt = -1;
    if (mode === 'data') {
      lines.push('DATA');
      ex.push({ cmd: 'data' });
      write(s, actions, lines, ex);
    } else {
      write(s, actions, lines, ex);
      // RFC 3030 + RFC 2920: BDAT chunks are pipelined behind the envelope, one round trip.
      actions.push({ type: 'send-body', mode: 'bdat', pipelined: true });
    }
  } else {
    write(s, actions, [mail], [{ cmd: 'mail' }]);
  }
}

/** Lock-step: send the next RCPT that is still to be sent, or move on to the data phase. */
function nextLockstep(s: SessionState, actions: SessionAction[]): void {
  const tx = s.tx!;
  while (tx.nextRcpt >= 0 && tx.nextRcpt < tx.slots.length) {
    const i = tx.nextRcpt++;
    if (tx.slots[i]!.sent) continue;
    const sl = { ...tx.slots[i]!, sent: true };
    tx.slots[i] = sl;
    write(s, actions, [rcptLine(s, sl.rcpt)], [{ cmd: 'rcpt', index: i }]);
    return;
  }
  tx.nextRcpt = -1;
  if (tx.accepted === 0) {
    // Nothing accepted: never send a body; reset and report.
    return finish(s, actions, true);
  }
  if (tx.mode === 'data') write(s, actions, ['DATA'], [{ cmd: 'data' }]);
  else actions.push({ type: 'send-body', mode: 'bdat', pipelined: false });
}

function onMail(s: SessionState, reply: Reply, actions: SessionAction[]): void {
  const tx = s.tx!;
  tx.mailReply = reply;
  if (reply.code >= 200 && reply.code < 300) {
    if (!tx.pipelined) nextLockstep(s, actions);
    return;
  }
  if (!tx.pipelined) {
    tx.nextRcpt = -1;
    finish(s, actions, true);
  }
  // Pipelined: the RCPT/DATA/BDAT replies still to come are consumed in order and ignored.
}

function onRcpt(s: SessionState, index: number, reply: Reply, actions: SessionAction[]): void {
  const tx = s.tx!;
  const sl = { ...tx.slots[index]! };
  tx.slots[index] = sl;
  sl.reply = reply;
  if (tx.mailReply && tx.mailReply.code >= 300) {
    // MAIL failed: this RCPT reply (usually 503) says nothing about the mailbox.
    sl.verdict = classifyFailure(tx.mailReply, s.opts.overQuotaPolicy);
  } else {
    const acceptedBefore = tx.accepted;
    const { verdict, class552 } = classifyRcpt(reply, { acceptedBefore, overQuotaPolicy: s.opts.overQuotaPolicy });
    sl.verdict = verdict;
    sl.class552 = class552;
    if (verdict.status === 'accepted') tx.accepted++;
    if (verdict.status === 'deferred' && verdict.reason === 'too_many_recipients' && tx.learnedLimit === null && acceptedBefore > 0) {
      tx.learnedLimit = acceptedBefore;
      // Seed 001's fix: in lock-step, stop sending RCPTs once the server says "too many";
      // the rest go into the next transaction on this connection.
      if (!tx.pipelined) tx.nextRcpt = -1;
    }
  }
  if (!tx.pipelined) nextLockstep(s, actions);
}

function onData(s: SessionState, reply: Reply, actions: SessionAction[]): void {
  const tx = s.tx!;
  tx.dataReply = reply;
  if (reply.code === 354) {
    if (tx.accepted > 0 && tx.mailReply !== null && tx.mailReply.code < 300) {
      actions.push({ type: 'send-body', mode: 'data', pipelined: tx.pipelined });
      return;
    }
    // RFC 2920 §3.1: DATA was pipelined, no recipient was accepted, but the server said 354
    // anyway. End the data at once with a lone "." — no body for zero recipients — then RSET.
    write(s, actions, ['.'], [{ cmd: 'dot', empty: true }]);
    return;
  }
  finish(s, actions, true);
}

function onDot(s: SessionState, empty: boolean, reply: Reply, actions: SessionAction[]): void {
  const tx = s.tx!;
  if (empty) return finish(s, actions, true);
  tx.finalReply = reply;
  finish(s, actions, reply.code < 200 || reply.code >= 300);
}

function onBdat(s: SessionState, last: boolean, reply: Reply, actions: SessionAction[]): void {
  const tx = s.tx!;
  const ok = reply.code >= 200 && reply.code < 300;
  if (!ok && !tx.bodyAborted) {
    tx.bodyAborted = true;
    tx.dataReply = reply;
  }
  if (last && ok && !tx.bodyAborted) tx.finalReply = reply;
  maybeFinishBdat(s, actions);
}

function maybeFinishBdat(s: SessionState, actions: SessionAction[]): void {
  const tx = s.tx!;
  if (!tx.bodyDone || s.expect.some((e) => e.cmd === 'bdat' || e.cmd === 'rcpt' || e.cmd === 'mail')) return;
  finish(s, actions, tx.finalReply === null);
}

/** Computes every recipient's result and emits tx-done; `needRset` resets the server's state first. */
function finish(s: SessionState, actions: SessionAction[], needRset: boolean): void {
  const tx = s.tx!;
  const result = buildResult(s, tx, null);
  actions.push({ type: 'tx-done', result });
  s.tx = null;
  if (s.dead) {
    s.phase = 'closed';
    actions.push({ type: 'close' });
  } else if (needRset) {
    s.phase = 'rset';
    write(s, actions, ['RSET'], [{ cmd: 'rset' }]);
  } else {
    goReady(s, actions);
  }
}

/**
 * The limit pattern: the RCPTs end in a run of "too many" refusals (those never sent count
 * too) after at least one acceptance. Returns how many were accepted before that run, or
 * null. Refusals earlier in the transaction, with acceptances after them, were about their
 * own mailboxes and are not part of it.
 */
function limitPosition(tx: TxState): number | null {
  let i = tx.slots.length - 1;
  let refusals = 0;
  for (; i >= 0; i--) {
    const sl = tx.slots[i]!;
    if (sl.verdict === null) continue; // never sent (lock-step stopped at the limit)
    if (sl.verdict.status === 'deferred' && sl.verdict.reason === 'too_many_recipients' && sl.verdict.sameConnection) {
      refusals++;
      continue;
    }
    break;
  }
  if (refusals === 0 || i < 0 || tx.slots[i]!.verdict?.status !== 'accepted') return null;
  return tx.accepted;
}

function buildResult(s: SessionState, tx: TxState, lost: { verdict: Verdict; reply: Reply | null; note: string } | null): TransactionResult {
  const mailFailed = tx.mailReply !== null && tx.mailReply.code >= 300;
  const limitAt = limitPosition(tx);
  // Exim with recipients_max_reject answers the surplus RCPTs with 552 and then DATA with
  // 554, refusing the whole message *because of* the surplus. A data-phase 5xx after the
  // limit pattern is therefore not final either: the accepted recipients go into the next
  // transaction (now within the limit); there, without any surplus, a 5xx is final.
  const dataVerdict = (failing: Reply): Verdict =>
    limitAt !== null && failing.code >= 500 && failing.code < 600
      ? { status: 'deferred', reason: 'too_many_recipients', sameConnection: true }
      : classifyFailure(failing, s.opts.overQuotaPolicy);
  const recipients: RecipientResult[] = tx.slots.map((sl) => {
    const base = { address: sl.rcpt.address, rcptReply: sl.reply, class552: sl.class552 };
    // MAIL failed: the RCPT replies that followed (usually 503) say nothing about the mailboxes.
    if (mailFailed && (sl.verdict === null || sl.reply !== null)) {
      return { ...base, verdict: classifyFailure(tx.mailReply!, s.opts.overQuotaPolicy), reply: tx.mailReply };
    }
    if (sl.verdict === null) {
      if (lost) return { ...base, verdict: lost.verdict, reply: lost.reply, note: lost.note };
      // Never sent because the server said "too many" earlier in this lock-step transaction.
      const sameConnection = tx.learnedLimit !== null && tx.accepted > 0;
      return { ...base, verdict: { status: 'deferred', reason: 'too_many_recipients', sameConnection }, reply: null, note: 'not sent: recipient limit reached' };
    }
    if (sl.verdict.status !== 'accepted') return { ...base, verdict: sl.verdict, reply: sl.reply };
    // Accepted at RCPT: the outcome is the data phase's, and only for accepted recipients.
    if (tx.finalReply && tx.finalReply.code >= 200 && tx.finalReply.code < 300) return { ...base, verdict: sl.verdict, reply: tx.finalReply };
    const failing = tx.finalReply ?? (tx.dataReply && tx.dataReply.code !== 354 ? tx.dataReply : null);
    if (failing) return { ...base, verdict: dataVerdict(failing), reply: failing };
    if (lost) return { ...base, verdict: lost.verdict, reply: lost.reply, note: lost.note };
    return { ...base, verdict: classifyNoReply('connection'), reply: null, note: 'no final reply' };
  });
  return {
    recipients, accepted: tx.accepted, mailReply: tx.mailReply, dataReply: tx.dataReply, finalReply: tx.finalReply,
    learnedLimit: limitAt, mode: tx.mode,
  };
}

function failTransactionEarly(s: SessionState, actions: SessionAction[], verdict: Verdict, reply: Reply | null, note: string): void {
  const tx = s.tx!;
  actions.push({ type: 'tx-done', result: buildResult(s, tx, { verdict, reply, note }) });
  s.tx = null;
}

function onError(s: SessionState, kind: 'connection' | 'timeout' | 'protocol' | 'tls', message: string, actions: SessionAction[]): void {
  if (s.phase === 'closed' && !s.tx) return;
  // A failure during the TLS handshake (or the EHLO right after it) is a TLS problem,
  // whatever the socket called it: the driver may then retry without TLS if policy allows.
  const inTls = s.phase === 'starttls' || (s.ehloAfterTls && s.phase === 'ehlo');
  const verdict = classifyNoReply(inTls ? 'tls' : kind === 'protocol' ? 'connection' : kind);
  const pendingSetup = s.phase === 'greeting' || s.phase === 'ehlo' || s.phase === 'starttls' || s.phase === 'auth';
  // Every command still waiting gets an explicit result: the recipients it covers are
  // deferred (never silently dropped, never treated as delivered).
  if (s.tx) failTransactionEarly(s, actions, verdict, null, `${kind}: ${message}`);
  s.expect = [];
  s.dead = true;
  const wasQuit = s.phase === 'quit';
  s.phase = 'closed';
  if (pendingSetup) {
    const stage = inTls || kind === 'tls' ? 'starttls' : kind === 'protocol' ? 'protocol' : 'connect';
    actions.push({ type: 'session-failed', stage, verdict, reply: null, message: `${kind}: ${message}` });
  }
  if (!wasQuit) actions.push({ type: 'close' });
}
