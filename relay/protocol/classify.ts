// Reply classification: one pure function per decision, the heart of seeds 000-003.
//
//  - A 452 or 552 to a RCPT after at least one RCPT of the same transaction was accepted
//    is never final, whatever its enhanced code or text (RFC 5321 §4.5.3.1.10: RFC 821
//    wrongly listed 552 for "too many recipients"; clients SHOULD treat it as temporary).
//    Servers cannot be trusted to tell the two cases apart: smtp-server prefixes its
//    default enhanced code, so a recipient limit reaches the wire as
//    `552 5.2.2 Too many recipients` or `552 5.2.2 5.5.3 Too many recipients`, and
//    Postfix 3.7 trusts that 5.2.2 and bounces. Such a recipient goes into the next
//    transaction on the same connection, as its FIRST RCPT (seed 000).
//  - A 552 when nothing was accepted before it is about that mailbox (seed 001): over
//    quota (bounce or retry per overQuotaPolicy), or another permanent failure. A
//    recipient deferred as "too many" is retried as the first RCPT of its own transaction,
//    so a real quota failure is confirmed there: the two readings converge.
//  - Enhanced X.5.3 ("too many recipients") with nothing accepted waits for the schedule.
//  - A reply concerns only the recipient(s) it answers (seed 003: no "stamping").
import type { RetryReason } from '../metrics.ts';
import type { Reply } from './reply.ts';

/** What one reply means for the recipient(s) it concerns. */
export type Verdict =
  | { status: 'accepted' }
  | { status: 'deferred'; reason: RetryReason; sameConnection: boolean }
  | { status: 'failed'; reason: 'permanent' | 'over_quota' };

/** How a RCPT 552 was read, for mailrelay_rcpt_552_total. */
export type Rcpt552Class = 'too_many_recipients' | 'mailbox';

/** Policy for RFC 3463 5.2.2 (mailbox full): bounce now, or retry as a persistent transient failure. */
export type OverQuotaPolicy = 'bounce' | 'retry';

/** Context a RCPT reply is read in. */
export interface RcptContext {
  /** RCPTs of this transaction accepted before this one (in command order). */
  acceptedBefore: number;
  overQuotaPolicy: OverQuotaPolicy;
}

const isMailboxFull = (r: Reply) => r.enhanced !== null && r.enhanced.subject === 2 && r.enhanced.detail === 2;
const isTooManyCode = (r: Reply) => r.enhanced !== null && r.enhanced.subject === 5 && r.enhanced.detail === 3;

function overQuota(policy: OverQuotaPolicy): Verdict {
  return policy === 'bounce'
    ? { status: 'failed', reason: 'over_quota' }
    : { status: 'deferred', reason: 'temporary_reply', sameConnection: false };
}

/** Classifies a reply to RCPT TO. `class552` is set for every 552 so it can be counted. */
export function classifyRcpt(reply: Reply, ctx: RcptContext): { verdict: Verdict; class552: Rcpt552Class | null } {
  const { code } = reply;
  if (code >= 200 && code < 300) return { verdict: { status: 'accepted' }, class552: null };

  // RFC 5321 §4.5.3.1.10: after an accepted RCPT, 452 and 552 are "too many recipients"
  // whatever the enhanced code says (smtp-server's 5.2.2 prefix, Postfix 3.7's trust in it).
  if ((code === 452 || code === 552) && ctx.acceptedBefore > 0) {
    const verdict: Verdict = { status: 'deferred', reason: 'too_many_recipients', sameConnection: true };
    return { verdict, class552: code === 552 ? 'too_many_recipients' : null };
  }
  if (isTooManyCode(reply)) {
    // With nothing accepted before it, retrying on this connection would only repeat the
    // same transaction: wait for the retry schedule instead, so we never loop.
    const verdict: Verdict = { status: 'deferred', reason: 'too_many_recipients', sameConnection: ctx.acceptedBefore > 0 };
    return { verdict, class552: code === 552 ? 'too_many_recipients' : null };
  }
  if (code === 552) {
    // Standing alone (nothing accepted before it): RFC 5321 §4.2.2 "exceeded storage
    // allocation". Without an enhanced code (the ISPs of seed 001) or with X.2.2 it is the
    // mailbox quota; other enhanced codes (e.g. 5.3.4 message too big) are permanent.
    const quota = reply.enhanced === null || isMailboxFull(reply);
    return { verdict: quota ? overQuota(ctx.overQuotaPolicy) : { status: 'failed', reason: 'permanent' }, class552: 'mailbox' };
  }
  return { verdict: classifyFailure(reply, ctx.overQuotaPolicy), class552: null };
}

/**
 * Classifies a reply that ended a transaction without success (to MAIL, DATA, the final
 * dot or BDAT) — applied only to the recipients accepted in that transaction. It never
 * answers "accepted": only a 2xx to the final dot (or BDAT LAST) delivers, and the session
 * checks that itself. A 2xx/3xx here is a reply out of place (a server that split a reply
 * in two shifts every later one): temporary, so the message is retried, never lost.
 */
export function classifyFailure(reply: Reply, overQuotaPolicy: OverQuotaPolicy = 'bounce'): Verdict {
  const { code } = reply;
  if (code >= 400 && code < 500) return { status: 'deferred', reason: 'temporary_reply', sameConnection: false };
  if (code === 552 && isMailboxFull(reply)) return overQuota(overQuotaPolicy);
  if (code >= 500 && code < 600) return { status: 'failed', reason: 'permanent' };
  // Anything else (1xx, 6xx+) is a protocol violation: temporary, the server is broken.
  return { status: 'deferred', reason: 'temporary_reply', sameConnection: false };
}

/** Classifies a connection-level failure (no reply at all) for the recipients it strands. */
export function classifyNoReply(kind: 'connection' | 'timeout' | 'tls'): Verdict {
  return { status: 'deferred', reason: kind, sameConnection: false };
}

/**
 * Classifies the greeting or EHLO/HELO/STARTTLS/AUTH reply failing: a 4xx (or a broken
 * server) defers everything and moves on to the next MX; a 5xx greeting/EHLO is
 * permanent only for 5.7.x policy rejections of authentication; otherwise we defer
 * (RFC 5321 §3.1: a 554 greeting means "no service here", try another host).
 */
export function classifySessionFailure(reply: Reply, stage: 'connect' | 'ehlo' | 'starttls' | 'auth'): Verdict {
  if (stage === 'auth' && reply.code >= 500) return { status: 'failed', reason: 'permanent' };
  if (stage === 'starttls') return { status: 'deferred', reason: 'tls', sameConnection: false };
  return { status: 'deferred', reason: 'temporary_reply', sameConnection: false };
}
