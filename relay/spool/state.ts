// Recipient state machine and message summaries: pure functions shared by the live update
// path (strict) and crash recovery (replay).

import { InvalidTransitionError } from './errors.ts';
import type { RecipientState, RecipientUpdate, SpoolRecipient } from './record.ts';

/** True for delivered and failed: states a recipient never leaves. */
export function isFinal(s: RecipientState): boolean {
  return s.state === 'delivered' || s.state === 'failed';
}

/**
 * Applies updates in order and returns the new recipient list (the input is not modified).
 * strict (live updates): throws InvalidTransitionError on an unknown address or on leaving a
 * final state, so the caller's bug surfaces before anything is written.
 * replay (recovery): skips such updates, keeping the final state; they cannot have been
 * written by a correct spool, and keeping "delivered" is the side that never re-sends.
 */
export function applyUpdates(
  recipients: readonly SpoolRecipient[],
  updates: readonly RecipientUpdate[],
  mode: 'strict' | 'replay' = 'strict',
): SpoolRecipient[] {
  const out = recipients.slice();
  let byAddress: Map<string, number> | undefined;
  for (const u of updates) {
    let i: number;
    if (out.length <= 8) {
      i = out.findIndex((r) => r.address === u.address);
    } else {
      byAddress ??= new Map(out.map((r, k) => [r.address, k]));
      i = byAddress.get(u.address) ?? -1;
    }
    const cur = out[i];
    if (cur === undefined) {
      if (mode === 'strict') throw new InvalidTransitionError('unknown_recipient', u.address, undefined, u.state.state);
      continue;
    }
    if (isFinal(cur.state)) {
      if (mode === 'strict') throw new InvalidTransitionError('already_final', u.address, cur.state.state, u.state.state);
      continue;
    }
    const next: SpoolRecipient = { ...cur, state: u.state };
    if (u.delayNotified !== undefined) next.delayNotified = u.delayNotified;
    out[i] = next;
  }
  return out;
}

/** Which scheduler bucket a message is in; 'done' means every recipient is final, 'held' that an administrator holds it. */
export type MessageKind = 'queued' | 'deferred' | 'held' | 'done';

/** What the in-memory index needs about a message: its bucket and when it is next due. */
export interface MessageSummary {
  kind: MessageKind;
  /** ms epoch: receivedAt if some recipient is pending, else the earliest nextAttemptAt. */
  dueAt: number;
}

/**
 * Summarises recipients for the index. A message with any pending recipient is 'queued' and
 * due since it arrived; with none pending but some deferred it is 'deferred' and due at the
 * earliest retry time; otherwise it is 'done' and should be removed.
 */
export function summarize(recipients: readonly SpoolRecipient[], receivedAt: number): MessageSummary {
  let pending = false;
  let earliest = Infinity;
  for (const r of recipients) {
    if (r.state.state === 'pending') pending = true;
    else if (r.state.state === 'deferred' && r.state.nextAttemptAt < earliest) earliest = r.state.nextAttemptAt;
  }
  if (pending) return { kind: 'queued', dueAt: receivedAt };
  if (earliest !== Infinity) return { kind: 'deferred', dueAt: earliest };
  return { kind: 'done', dueAt: Infinity };
}

/** A held message is never due (dueAt Infinity) until released; a finished one is done regardless. */
export function withHold(summary: MessageSummary, heldAt: number | undefined): MessageSummary {
  return heldAt === undefined || summary.kind === 'done' ? summary : { kind: 'held', dueAt: Infinity };
}

/**
 * The part of a recipient list that a state record must carry: every recipient that is not
 * plain pending. Pending is implied by the envelope, so a message's state record stays small
 * until its recipients are actually attempted.
 */
export function snapshotOf(recipients: readonly SpoolRecipient[]): RecipientUpdate[] {
  const out: RecipientUpdate[] = [];
  for (const r of recipients) {
    if (r.state.state === 'pending' && r.delayNotified === undefined) continue;
    out.push(r.delayNotified === undefined ? { address: r.address, state: r.state } : { address: r.address, state: r.state, delayNotified: r.delayNotified });
  }
  return out;
}

/** Rebuilds the recipient list from the envelope and the latest snapshot. */
export function restore(envelopeRecipients: readonly Omit<SpoolRecipient, 'state'>[], snapshot: readonly RecipientUpdate[] | undefined): SpoolRecipient[] {
  const base: SpoolRecipient[] = envelopeRecipients.map((r) => ({ ...r, state: { state: 'pending' } }));
  return snapshot === undefined || snapshot.length === 0 ? base : applyUpdates(base, snapshot, 'replay');
}

/**
 * summarize() from a snapshot and the recipient count alone (recovery keeps no recipient lists).
 * Relies on a snapshot naming each recipient at most once, as snapshotOf guarantees.
 */
export function summarizeSnapshot(recipientCount: number, snapshot: readonly RecipientUpdate[] | undefined, receivedAt: number): MessageSummary {
  let notPending = 0;
  let pending = false;
  let earliest = Infinity;
  for (const u of snapshot ?? []) {
    if (u.state.state === 'pending') {
      pending = true;
      continue;
    }
    notPending++;
    if (u.state.state === 'deferred' && u.state.nextAttemptAt < earliest) earliest = u.state.nextAttemptAt;
  }
  if (pending || notPending < recipientCount) return { kind: 'queued', dueAt: receivedAt };
  if (earliest !== Infinity) return { kind: 'deferred', dueAt: earliest };
  return { kind: 'done', dueAt: Infinity };
}
