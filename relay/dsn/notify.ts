// When to send a DSN and how to address it: RFC 3461 §4.1 NOTIFY semantics, and the
// null reverse-path that keeps notifications from looping (RFC 5321 §4.5.5, §6.1).
import type { DsnAction, DsnEnvelope, DsnInput } from './types.ts';

/** Options for shouldNotify. */
export interface ShouldNotifyOptions {
  /** Without NOTIFY, delay DSNs are at the MTA's discretion (RFC 3461 §4.1); default true. */
  delayWhenAbsent?: boolean;
}

/**
 * Whether a recipient's NOTIFY list (RFC 3461 §4.1) asks for a DSN of this action.
 * Absent or empty: failures are reported, delays per `delayWhenAbsent`, successes never.
 * NEVER: nothing. Otherwise only the listed conditions: FAILURE → 'failed', DELAY →
 * 'delayed', SUCCESS → 'delivered' and 'relayed'. Keywords are matched case-insensitively.
 */
export function shouldNotify(
  notify: readonly string[] | undefined,
  action: DsnAction,
  options: ShouldNotifyOptions = {},
): boolean {
  const listed = new Set((notify ?? []).map((k) => k.trim().toUpperCase()).filter((k) => k !== ''));
  if (listed.size === 0) {
    if (action === 'failed') return true;
    if (action === 'delayed') return options.delayWhenAbsent ?? true;
    return false;
  }
  // RFC 3461 §4.1: NEVER must appear alone; if a client combined it anyway, it still wins.
  if (listed.has('NEVER')) return false;
  switch (action) {
    case 'failed':
      return listed.has('FAILURE');
    case 'delayed':
      return listed.has('DELAY');
    case 'delivered':
    case 'relayed':
      return listed.has('SUCCESS');
  }
}

/**
 * True when no DSN may be sent for a message with this envelope sender: the null
 * reverse-path '' (also written '<>') marks a notification itself, and notifications are
 * never answered with notifications (RFC 5321 §4.5.5, §6.1).
 */
export function mustNotBounce(envelopeFrom: string): boolean {
  const from = envelopeFrom.trim();
  return from === '' || from === '<>';
}

/** The SMTP envelope for a DSN: MAIL FROM:<> so it can never bounce (RFC 5321 §4.5.5), to the original sender. */
export function dsnEnvelope(input: Pick<DsnInput, 'to'>): DsnEnvelope {
  return { from: '', to: [input.to] };
}
