// PURE transaction planning for one message's recipients at one destination: which
// recipients go into the next transaction, and what a transaction's result means for the
// ones after it. The engine (engine.ts) only carries the plan out over pooled connections.
//
// The rules, each with the bug it prevents:
//  - Batching: at most min(configured, learned, provisional) recipients per transaction.
//  - "Too many" is never final while it does not stand alone (seed 000, RFC 5321
//    §4.5.3.1.10): a recipient refused with 452/552 after an accepted one (classify.ts)
//    is put back at the FRONT of the queue, so it is the first RCPT of the next
//    transaction on the same connection, with no backoff. Only a refusal there is about
//    its mailbox (seed 001). Each recipient is put back at most `maxRequeues` times in
//    one attempt; after that it waits for the retry schedule, so no reply sequence loops.
//  - Learning the limit: from the position at which the refusals started (the session's
//    candidate, see TransactionResult.learnedLimit), never from the text. The candidate
//    is used at once as a provisional batch size for this message and becomes the
//    destination's learned limit only when it is confirmed: the first refused recipient,
//    sent first in the next transaction, is accepted. A real quota error at position N
//    then never teaches the destination a limit of N.
//  - No storm (seed 001, "IMS storms host"): when every recipient of a transaction was
//    deferred for later, no further transaction is tried for this message now.
import type { Verdict } from '../protocol/classify.ts';
import type { RecipientResult, TransactionResult, TxRecipient } from '../protocol/client-session.ts';

/** Times one recipient may be put back for the same connection in one delivery attempt. */
export const MAX_REQUEUES = 3;

/** A recipient waiting in the plan: its index in the caller's list, and how often it was put back. */
export interface Queued {
  rcpt: TxRecipient;
  index: number;
  requeues: number;
}

/** The plan for one message at one destination (immutable: every step returns a new one). */
export interface Plan {
  /** Recipients still to send, in the order they will be sent. */
  queue: readonly Queued[];
  /** The configured per-transaction limit (destination override or global). */
  configured: number;
  /** The destination's confirmed limit, if one was learned. */
  learned: number | null;
  /** Candidate limit from the last "too many" pattern, awaiting confirmation. */
  candidate: { limit: number; address: string } | null;
}

/** A recipient whose result is final for this attempt (delivered, failed, or deferred to the schedule). */
export interface Settled {
  index: number;
  result: RecipientResult;
}

/** What a transaction's result did to the plan. */
export interface Step {
  plan: Plan;
  settled: Settled[];
  /** A limit just confirmed for the destination, to remember for later messages. */
  confirmed: number | null;
  /** Set when no further transaction should run for this message now (everything left is deferred with this). */
  stop: { verdict: Verdict; note: string } | null;
}

/** Starts a plan for recipients at one destination. */
export function startPlan(recipients: readonly TxRecipient[], configured: number, learned: number | null): Plan {
  if (!(configured >= 1)) throw new Error(`recipient limit must be at least 1, got ${configured}`);
  return { queue: recipients.map((rcpt, index) => ({ rcpt, index, requeues: 0 })), configured, learned: learned !== null && learned >= 1 ? learned : null, candidate: null };
}

/** Recipients per transaction the plan allows now. */
export function batchSize(plan: Plan): number {
  return Math.max(1, Math.min(plan.configured, plan.learned ?? Infinity, plan.candidate?.limit ?? Infinity));
}

/** The next transaction's recipients (empty when the plan is done). */
export function nextBatch(plan: Plan): readonly Queued[] {
  return plan.queue.slice(0, batchSize(plan));
}

/** Applies the result of the transaction that carried `batch` (= nextBatch(plan)). */
export function applyResult(plan: Plan, batch: readonly Queued[], result: TransactionResult): Step {
  if (result.recipients.length !== batch.length) throw new Error(`result has ${result.recipients.length} recipients for a batch of ${batch.length}`);
  const settled: Settled[] = [];
  const again: Queued[] = [];
  const refusedIdx = new Set<number>();
  result.recipients.forEach((r, i) => {
    const q = batch[i]!;
    if (r.rcptReply !== null && r.rcptReply.code >= 400) refusedIdx.add(q.index);
    if (r.verdict.status === 'deferred' && r.verdict.sameConnection) {
      if (q.requeues < MAX_REQUEUES) {
        again.push({ ...q, requeues: q.requeues + 1 });
        return;
      }
      settled.push({ index: q.index, result: { ...r, verdict: { ...r.verdict, sameConnection: false }, note: r.note ?? 'put back too often in one attempt; retried later' } });
      return;
    }
    settled.push({ index: q.index, result: r });
  });

  // The previous candidate is settled once its recipient was in a transaction again (within
  // the candidate's size): confirmed if it was accepted there, dropped if it was refused
  // (then that refusal was about its mailbox).
  let learned = plan.learned;
  let confirmed: number | null = null;
  let candidate = plan.candidate;
  if (candidate) {
    const i = batch.findIndex((q) => q.rcpt.address === candidate!.address);
    const reply = i >= 0 ? result.recipients[i]!.rcptReply : null;
    if (reply !== null) {
      if (reply.code >= 200 && reply.code < 300) {
        confirmed = candidate.limit;
        learned = Math.min(learned ?? Infinity, confirmed);
      }
      candidate = null;
    }
  }
  // A new candidate: where this transaction's trailing run of "too many" refusals started,
  // named by the first refused recipient of that run.
  if (result.learnedLimit !== null && result.learnedLimit >= 1) {
    let lastAccepted = -1;
    result.recipients.forEach((r, i) => { if (r.rcptReply !== null && r.rcptReply.code >= 200 && r.rcptReply.code < 300) lastAccepted = i; });
    const i = result.recipients.findIndex((r, j) => j > lastAccepted && r.rcptReply !== null && r.rcptReply.code >= 400 && r.verdict.status === 'deferred' && r.verdict.sameConnection);
    const q = i >= 0 ? batch[i]! : undefined;
    if (q && again.some((a) => a.index === q.index)) candidate = { limit: result.learnedLimit, address: q.rcpt.address };
  }

  const rest = plan.queue.slice(batch.length);
  // Refused recipients lead (the first of them is the one that tells quota from limit), then
  // accepted ones whose data phase was refused because of the surplus, then the rest.
  const againSorted = [...again.filter((q) => refusedIdx.has(q.index)), ...again.filter((q) => !refusedIdx.has(q.index))];
  const next: Plan = { ...plan, queue: [...againSorted, ...rest], learned, candidate };
  const everyDeferredLater = result.recipients.length > 0 &&
    result.recipients.every((r) => r.verdict.status === 'deferred') && again.length === 0;
  const stop = everyDeferredLater && next.queue.length > 0
    ? { verdict: { status: 'deferred', reason: 'temporary_reply', sameConnection: false } as Verdict, note: 'not attempted: every recipient of the previous transaction was deferred' }
    : null;
  return { plan: next, settled, confirmed, stop };
}

/** Settles everything still queued with one verdict (connection lost, route failed, engine closing). */
export function strand(plan: Plan, verdict: Verdict, reply: RecipientResult['reply'], note: string): Settled[] {
  const v: Verdict = verdict.status === 'deferred' ? { ...verdict, sameConnection: false } : verdict;
  return plan.queue.map((q) => ({ index: q.index, result: { address: q.rcpt.address, verdict: v, reply, rcptReply: null, class552: null, note } }));
}
