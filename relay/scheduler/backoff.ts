// PURE retry policy: how a delivery result becomes the recipient's next spool state.
// Exponential schedule with jitter (so a failed destination's retries don't stampede
// back at once), and a maximum age after which the recipient bounces with 4.4.7
// (RFC 3463: "delivery time expired").
import type { DeliveryResult } from '../outbound/engine.ts';
import { replyText } from '../protocol/reply.ts';
import type { RecipientState } from '../spool/record.ts';

/** Retry settings (the config's delivery.retry, in seconds). */
export interface RetryPolicy {
  schedule: readonly number[];
  jitter: number;
  maxAge: number;
}

/** Delay in ms before attempt number `attempts + 1`, given `attempts` attempts so far (>= 1). */
export function retryDelayMs(attempts: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const s = policy.schedule;
  const base = s[Math.min(Math.max(attempts, 1), s.length) - 1] ?? 60;
  const factor = 1 + policy.jitter * (2 * random() - 1);
  return Math.max(1000, Math.round(base * 1000 * factor));
}

/** Attempts made so far for a recipient state. */
export function attemptsOf(s: RecipientState): number {
  return s.state === 'pending' ? 0 : s.attempts;
}

/** True when a message received at `receivedAt` has outlived the maximum queue age. */
export function isExpired(receivedAt: number, now: number, policy: RetryPolicy): boolean {
  return now - receivedAt >= policy.maxAge * 1000;
}

/** The reply text recorded for a result: the server's exact reply, or why there was none. */
export function resultText(r: DeliveryResult): string {
  if (r.reply) return replyText(r.reply);
  // A local decision carries its own status (4.7.4/4.7.5 for TLS); otherwise 4.4.1 "no answer from host".
  return r.verdict.status === 'deferred' ? `${r.status ?? '4.4.1'} ${r.note ?? `no reply (${r.verdict.reason})`}` : `${r.status ?? '5.0.0'} ${r.note ?? 'failed'}`;
}

/** Maps one delivery result to the recipient's next state. */
export function nextState(
  prev: RecipientState, r: DeliveryResult, receivedAt: number, now: number, policy: RetryPolicy, random: () => number = Math.random,
): RecipientState {
  const attempts = attemptsOf(prev) + 1;
  const reply = resultText(r);
  switch (r.verdict.status) {
    case 'accepted': return { state: 'delivered', at: now, reply, attempts };
    case 'failed': return { state: 'failed', at: now, reply, attempts, reason: 'permanent' };
    case 'deferred': {
      if (isExpired(receivedAt, now, policy)) return expiredState(attempts, now, reply);
      const next = now + retryDelayMs(attempts, policy, random);
      // Never schedule past the expiry: the last attempt happens at maxAge, then 4.4.7.
      const cap = receivedAt + policy.maxAge * 1000;
      return { state: 'deferred', attempts, nextAttemptAt: Math.min(next, Math.max(cap, now + 1000)), lastReply: reply, reason: r.verdict.reason };
    }
  }
}

/** The final state of a recipient whose time ran out (RFC 3463 4.4.7), keeping the last reply for the DSN. */
export function expiredState(attempts: number, now: number, lastReply: string): RecipientState {
  return { state: 'failed', at: now, reply: `4.4.7 Delivery time expired; last reply: ${lastReply}`, attempts, reason: 'expired' };
}
