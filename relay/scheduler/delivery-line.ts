// PURE: the delivery log line, with the fields of Postfix's smtp lines (to, relay
// host[IP]:port, delay, dsn, status, the reply) plus the queue id and Message-ID, so an
// operator can follow a message by either; and the RFC 3463 status of a reply, which the
// DSNs use too.
import type { QueuedMessage, RecipientUpdate } from '../spool/record.ts';

/** The RFC 3463 status a reply stands for: its enhanced code, else X.0.0 from its reply class, else the fallback. */
export function statusOfReply(reply: string, fallback: string): string {
  const enh = /^(?:\d{3}[ -])?([245]\.\d{1,3}\.\d{1,3})/.exec(reply)?.[1];
  if (enh !== undefined) return enh;
  const cls = /^([245])\d\d/.exec(reply)?.[1];
  return cls !== undefined ? `${cls}.0.0` : fallback;
}

/** Postfix's status words: sent, deferred, bounced, expired. */
export type DeliveryStatus = 'sent' | 'deferred' | 'bounced' | 'expired';

/** One recipient's delivery line (the fields after level/time/component). */
export interface DeliveryLine {
  queueId: string;
  from: string;
  to: string;
  /** host[address]:port of the server that answered; "none" when no connection was made. */
  relay: string;
  /** Seconds from arrival to this outcome. */
  delay: number;
  attempts: number;
  dsn: string;
  status: DeliveryStatus;
  reply?: string;
  messageId?: string;
}

/** The line for one recipient update. */
export function deliveryLine(msg: Pick<QueuedMessage, 'id' | 'from' | 'receivedAt' | 'messageId'>, u: RecipientUpdate, relay: string | undefined, now: number): DeliveryLine {
  const s = u.state;
  const status: DeliveryStatus = s.state === 'delivered' ? 'sent' : s.state === 'failed' ? (s.reason === 'expired' ? 'expired' : 'bounced') : 'deferred';
  const reply = s.state === 'delivered' || s.state === 'failed' ? s.reply : s.state === 'deferred' ? s.lastReply : undefined;
  const fallback = status === 'sent' ? '2.0.0' : status === 'deferred' ? '4.0.0' : '5.0.0';
  const line: DeliveryLine = {
    queueId: msg.id, from: msg.from, to: u.address, relay: relay ?? 'none',
    delay: Math.max(0, Math.round(now - msg.receivedAt) / 1000),
    attempts: s.state === 'pending' ? 0 : s.attempts,
    dsn: status === 'expired' ? '4.4.7' : statusOfReply(reply ?? '', fallback),
    status,
  };
  if (reply !== undefined) line.reply = reply;
  if (msg.messageId !== undefined) line.messageId = msg.messageId;
  return line;
}
