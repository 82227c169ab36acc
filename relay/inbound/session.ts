// PURE session policy: the per-session decisions of the inbound listener that are not
// about one command's arguments (those are in policy.ts). Each takes plain facts the
// adapter reports (no sockets, no smtp-server objects) and returns what to do, so
// session.test.ts pins them down without a connection. server.ts applies the results.
import type { DataOutcome } from './body.ts';
import { REPLIES, checkMessageSize, libraryRefusal, sinkFailureReply } from './policy.ts';
import type { InboundLimits, PolicyReply } from './policy.ts';
import type { InboundEnvelope, InboundRecipient, NotifyKeyword, SinkErrorKind } from './types.ts';

/** Whose move it is in a session: the client sends message data, we work on its last command, or it owes us one. */
export type Turn = 'data' | 'ours' | 'client';

/** The two client clocks: since our last reply (a command is due), and since the 354 (the message is due). */
export interface ClientClock {
  waitingSince: number;
  dataSince: number;
}

/** Client time limits, in ms. */
export interface ClientTimeouts {
  commandTimeoutMs: number;
  dataTimeoutMs: number;
}

/** What to do when a client's clock may have run out: end the session, look again later, or nothing (our turn). */
export type ClockVerdict = { expire: PolicyReply } | { recheckInMs: number } | null;

/**
 * RFC 5321 §4.5.3.2.7 lets a server time out an idle client. smtp-server's own idle timer
 * restarts with every byte, so a client trickling a byte a minute would hold a session for
 * ever; our clocks bound what the client owes in total: a complete command within
 * commandTimeout of our last reply, the whole DATA phase within dataTimeout of the 354.
 * While it is our turn (a handler, e.g. SPF, or the sink storing a message) the client
 * waits for us, and our next reply starts its clock again.
 */
export function checkClientClock(turn: Turn, clock: ClientClock, now: number, t: ClientTimeouts): ClockVerdict {
  if (turn === 'ours') return null;
  const left = turn === 'data' ? clock.dataSince + t.dataTimeoutMs - now : clock.waitingSince + t.commandTimeoutMs - now;
  if (left > 0) return { recheckInMs: left };
  return { expire: turn === 'data' ? REPLIES.dataTimeout : REPLIES.commandTimeout };
}

/** Which clock a reply starts: the 354 starts the data clock, every other reply the command clock. */
export function clockAfterReply(code: number, clock: ClientClock, now: number, t: ClientTimeouts): { clock: ClientClock; armMs: number } {
  return code === 354
    ? { clock: { ...clock, dataSince: now }, armMs: t.dataTimeoutMs }
    : { clock: { ...clock, waitingSince: now }, armMs: t.commandTimeoutMs };
}

/** The n-th command line of a session: past `maxCommandsPerSession` it ends the session with 421 4.7.0. */
export function checkCommandCount(n: number, limits: { maxCommandsPerSession: number }): PolicyReply | null {
  return n > limits.maxCommandsPerSession ? REPLIES.tooManyCommands : null;
}

/** The outcome of one password check. */
export type AuthResult = 'ok' | 'failed' | 'unavailable';

/**
 * The reply to a failed AUTH, and the session's failure count after it. The third bad
 * password gets 421 4.7.0, which ends the session, so one connection cannot try passwords
 * for ever; an unavailable store (454 4.7.0) is not the client's fault and is not counted.
 */
export function authFailure(result: Exclude<AuthResult, 'ok'>, failuresSoFar: number): { reply: PolicyReply; failures: number } {
  if (result === 'unavailable') return { reply: REPLIES.authUnavailable, failures: failuresSoFar };
  const failures = failuresSoFar + 1;
  return { reply: failures >= 3 ? REPLIES.tooManyAuthFailures : REPLIES.authFailed, failures };
}

/** RFC 4616 §2: an authorization identity other than the authentication identity asks to act as someone else; we have no such roles. */
export function authAllowed(method: string, authzid: string | undefined, authcid: string | undefined): boolean {
  if (method !== 'PLAIN' && method !== 'LOGIN') return false;
  return !(authzid && authcid && authzid !== authcid);
}

/**
 * The pause before the greeting (ms). An early-talker pause catches bots that send before
 * the 220 (RFC 5321 §4.3.1: the client waits for it), which matters on an MX facing the
 * internet. Clients in relayNetworks are ours: they never wait. The others wait
 * `delayMs`; 0 greets at once.
 */
export function greetingDelayFor(trusted: boolean, delayMs: number): number {
  return trusted ? 0 : delayMs;
}

/** How smtp-server's reply should go out, judged from its code and text. */
export type OutgoingReply =
  /** Ours: the text starts with an enhanced code of the right class; send it verbatim. */
  | { kind: 'ours' }
  /** smtp-server's own: a refusal we recognise (sent as `refusal` instead), or any other reply it maps itself. */
  | { kind: 'library'; refusal: PolicyReply | null };

const ENHANCED_PREFIX = /^([245])\.\d{1,3}\.\d{1,3} /;

/** Tells our replies (they carry their RFC 3463 code) from smtp-server's, and maps its abuse refusals to ours. */
export function classifyReply(code: number, text: string): OutgoingReply {
  const m = ENHANCED_PREFIX.exec(text);
  if (m && Number(m[1]) === Math.floor(code / 100)) return { kind: 'ours' };
  return { kind: 'library', refusal: code >= 400 ? libraryRefusal(code, text) : null };
}

/** The envelope as smtp-server parsed it, in plain terms. */
export interface EnvelopeFacts {
  from: string;
  recipients: readonly { address: string; notify?: readonly string[]; orcpt?: string }[];
  ret?: string | null;
  envid?: string | null;
  smtputf8: boolean;
  bodyType: string;
}

/** Session facts that go into the stored envelope. */
export interface ClientFacts {
  clientAddress: string;
  heloName: string;
  authUser: string | undefined;
}

const compact = <T extends object>(o: T): T =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;

/**
 * The envelope handed to the sink. smtp-server folds repeated RCPTs case-insensitively by
 * the address as sent; two spellings of one IDN domain only meet after our normalisation
 * (policy.normaliseMailbox), so they are folded again here, first one kept.
 */
export function buildEnvelope(e: EnvelopeFacts, c: ClientFacts, receivedAt: number): InboundEnvelope {
  const seen = new Set<string>();
  const recipients: InboundRecipient[] = [];
  for (const r of e.recipients) {
    const key = r.address.toLowerCase();
    if (seen.has(key)) continue;
    seen.add(key);
    recipients.push(compact({ address: r.address, notify: r.notify as NotifyKeyword[] | undefined, orcpt: r.orcpt }));
  }
  return compact<InboundEnvelope>({
    from: e.from,
    recipients,
    receivedAt,
    clientAddress: c.clientAddress,
    heloName: c.heloName || undefined,
    authUser: c.authUser,
    ret: e.ret === 'FULL' || e.ret === 'HDRS' ? e.ret : undefined,
    envid: e.envid ?? undefined,
    smtputf8: e.smtputf8 ? true : undefined,
    bodyType: e.bodyType === '8bitmime' ? '8BITMIME' : '7BIT',
  });
}

/** What happened to one message's DATA: how the client's data ended and what the sink said. */
export interface DataFacts {
  outcome: DataOutcome;
  /** The sink stored it (resolved with an id). */
  stored: boolean;
  /** The sink read the body to its end. */
  consumed: boolean;
  /** Bytes of message data as received (before our header). */
  receivedBytes: number;
  /** The sink's failure kind, when it rejected. */
  failureKind: SinkErrorKind | undefined;
}

/** The reply after the final dot. */
export type DataVerdict =
  /** The client is gone: nobody to answer. */
  | { kind: 'aborted' }
  | { kind: 'accepted' }
  /** Refused for what the client sent (size, content limits): 5xx, and a log line when the sink stored it anyway. */
  | { kind: 'rejected'; reply: PolicyReply; storedAnyway: boolean }
  /** The sink failed, or resolved without reading the whole body: 4xx, so the client retries. */
  | { kind: 'tempfail'; reply: PolicyReply; unreadBody: boolean };

/**
 * The final reply to DATA. A 250 needs both a stored message and a body the sink read to
 * its end; an oversized message is refused whatever the sink did (RFC 1870 §6), then a
 * broken content limit; a sink failure is never a 5xx (sinkFailureReply).
 */
export function dataVerdict(f: DataFacts, limits: Pick<InboundLimits, 'maxMessageSize'>): DataVerdict {
  if (f.outcome === 'aborted') return { kind: 'aborted' };
  const tooBig = f.outcome === 'too_big' ? REPLIES.tooBig : checkMessageSize(f.receivedBytes, limits);
  if (tooBig) return { kind: 'rejected', reply: tooBig, storedAnyway: f.stored };
  const broken = f.outcome === 'line_too_long' ? REPLIES.lineTooLong : f.outcome === 'header_too_big' ? REPLIES.headerTooBig : null;
  if (broken) return { kind: 'rejected', reply: broken, storedAnyway: f.stored };
  if (f.stored && f.consumed) return { kind: 'accepted' };
  return { kind: 'tempfail', reply: sinkFailureReply(f.stored ? undefined : f.failureKind), unreadBody: f.stored };
}
