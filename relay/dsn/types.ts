// Input and output shapes of the DSN builder (RFC 3464 delivery status notifications,
// requested through the RFC 3461 SMTP DSN extension). Values are the *decoded* forms the
// spool stores: ORCPT and ENVID arrive xtext-encoded on the wire (RFC 3461 §4) and inbound
// decodes them before they are spooled, the same convention relay/protocol/client-session.ts
// follows when it re-encodes them for the next hop.

/** RFC 3464 §2.3.3 action values this relay reports ('expanded' is for list expanders, not us). */
export type DsnAction = 'failed' | 'delayed' | 'delivered' | 'relayed';

/** RFC 3461 §4.1 NOTIFY keywords (the spool's NotifyKeyword, repeated so dsn/ does not import spool/). */
export type DsnNotifyKeyword = 'NEVER' | 'SUCCESS' | 'FAILURE' | 'DELAY';

/** One recipient the DSN reports on: one RFC 3464 §2.3 per-recipient field group. */
export interface DsnRecipient {
  /** Final-Recipient (RFC 3464 §2.3.2): the bare envelope address, written as "rfc822; address". */
  address: string;
  /** Original-Recipient (RFC 3464 §2.3.1, RFC 3461 §6.3 d): the decoded ORCPT, "rfc822;addr" or a bare address. */
  orcpt?: string;
  /** Action (RFC 3464 §2.3.3). 'relayed': handed to a next hop that does not issue DSNs itself. */
  action: DsnAction;
  /** Status (RFC 3464 §2.3.4): an RFC 3463 code such as "5.2.2", or "4.4.7" for an expired message. */
  status: string;
  /** Remote-MTA (RFC 3464 §2.3.5): the host that answered, "dns;mx.example.com" or a bare hostname. */
  remoteMta?: string;
  /** The remote server's exact reply, e.g. "552 5.2.2 Mailbox full" → Diagnostic-Code: smtp; 552 5.2.2 Mailbox full (RFC 3464 §2.3.6). */
  diagnostic?: string;
  /** Last-Attempt-Date (RFC 3464 §2.3.7), ms since the epoch. */
  lastAttemptAt?: number;
  /** Will-Retry-Until (RFC 3464 §2.3.9), ms since the epoch; only written for action 'delayed'. */
  willRetryUntil?: number;
}

/** Everything buildDsn needs to write one notification to one envelope sender. */
export interface DsnInput {
  /** Our hostname, for Reporting-MTA: dns; <host> (RFC 3464 §2.2.2). */
  reportingMta: string;
  /** Our bounce sender address (header From only; the envelope sender is always null, see dsnEnvelope). */
  from: string;
  /** The original envelope sender. Never '' (RFC 5321 §4.5.5: bounces are not bounced); buildDsn throws on it. */
  to: string;
  /** Original-Envelope-Id (RFC 3464 §2.2.1), the decoded ENVID of the original MAIL command (RFC 3461 §6.3 a). */
  envid?: string;
  /** Arrival-Date (RFC 3464 §2.2.5), ms since the epoch. */
  arrivalDate: number;
  /** The recipients to report on, at least one. */
  recipients: DsnRecipient[];
  /** RET= of the original MAIL command (RFC 3461 §4.3); HDRS when the client gave none. */
  ret: 'FULL' | 'HDRS';
  /** The spooled message. Read only as far as needed: to the end of the header for HDRS, to the cap for FULL. */
  originalMessage: Buffer | AsyncIterable<Buffer | string>;
  /** Message-ID of the DSN, with or without angle brackets; generated from reportingMta when absent. */
  messageId?: string;
  /** The DSN's Date, ms since the epoch (injectable for deterministic tests). */
  now?: number;
  /** Largest original returned whole for RET=FULL; above it only the header is returned. Default 10 MiB. */
  maxReturnBytes?: number;
}

/** SMTP envelope for sending a DSN: always the null reverse-path (RFC 5321 §4.5.5, §6.1). */
export interface DsnEnvelope {
  from: '';
  to: string[];
}
